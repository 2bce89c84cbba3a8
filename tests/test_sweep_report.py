"""The sweep's results: the paper's values as data, and sweep.json / .csv / .md / PNGs read
from a sweep folder whose evaluations are real ``evaluate_model`` (or
``classification_report``) output, with failed, queued and running cells among them."""

from __future__ import annotations

import csv
import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from resnet3d.metrics import classification_report
from resnet3d.sweep.paper import (
    PAPER_SETTINGS,
    PAPER_VALUES,
    PRESETS,
    SOURCE,
    paper_deviations,
    paper_values,
)
from resnet3d.sweep.report import LEVELS, METRICS, load_sweep, write_sweep_report

LABELS = ["NCP", "CP", "Normal"]

# The paper's three sweeps (complete CT, test split): preset -> (model, depth, batch) ->
# (accuracy, recall).
EXPECTED = {
    "depth": {
        ("resnet18", 2, 8): (0.8482, 0.9796),
        ("resnet18", 4, 8): (0.9147, 0.9402),
        ("resnet18", 8, 8): (0.9684, 0.9504),
        ("resnet18", 16, 8): (0.9673, 0.9480),
        ("resnet18", 32, 8): (0.9636, 0.9341),
        ("resnet18", 64, 8): (0.9296, 0.9078),
    },
    "batch": {
        ("resnet18", 2, 32): (0.9914, 0.9991),
        ("resnet18", 2, 64): (0.9900, 0.9991),
        ("resnet18", 4, 32): (0.9924, 0.9996),
        ("resnet18", 4, 64): (0.9833, 0.9944),
        ("resnet18", 8, 32): (0.9815, 0.9844),
        ("resnet18", 16, 32): (0.9791, 0.9610),
    },
    "models": {
        ("resnet18", 4, 32): (0.9924, 0.9996),
        ("resnet18_2plus1d", 4, 32): (0.9885, 0.9978),
        ("resnet34", 4, 32): (0.9800, 0.9714),
        ("resnet34_2plus1d", 4, 32): (0.9718, 0.9632),
        ("resnet50", 4, 32): (0.9802, 0.9723),
    },
}

# A cell's effective settings as the sweep engine records them (the paper's recipe, then
# the test's small size and one epoch on top).
BASE: dict[str, Any] = {
    "model": "resnet18",
    "model_overrides": {},
    "epochs": 1,
    "batch_size": 8,
    "lr": 0.001,
    "lr_step": 10,
    "lr_gamma": 0.1,
    "weight_decay": 0.0,
    "precision": "fp32",
    "grad_accum": 1,
    "seed": 0,
    "augment": "none",
    "depth": 4,
    "stride": None,
    "size": [16, 16],
    "channels": 3,
    "nproc": 1,
}


# ---------------------------------------------------------------------------- paper data
def test_paper_values_are_the_papers_numbers() -> None:
    got: dict[str, dict[tuple[str, int, int], tuple[float, float]]] = {}
    for v in PAPER_VALUES:
        key = (v.model, v.depth, v.batch_size)
        assert key not in got.setdefault(v.preset, {}), f"{v} listed twice in its preset"
        got[v.preset][key] = (v.accuracy, v.recall)
    assert got == EXPECTED
    assert len(PAPER_VALUES) == 17
    assert {p: len(rows) for p, rows in got.items()} == {"depth": 6, "batch": 6, "models": 5}
    assert list(PRESETS) == ["depth", "batch", "models"]


def test_paper_source_names_the_paper_unit_split_and_recall() -> None:
    assert SOURCE["doi"] == "10.1101/2021.01.21.21249999"
    assert "Li, Pei and Guo" in SOURCE["citation"]
    assert "volume" in SOURCE["unit"]
    assert "patient" in SOURCE["split"] and "138 patients" in SOURCE["split"]
    assert "COVID-19" in SOURCE["recall"] and "not macro" in SOURCE["recall"]
    assert "not the lung-segmented" in SOURCE["data"]
    # The recall argument in SOURCE: a macro recall of 0.9996 over three classes puts every
    # class's recall, hence the accuracy (a weighted mean of them), above 1 - 3 * 0.0004.
    best = paper_values({"depth": 4, "batch_size": 32, "model": "resnet18"})[0]
    assert best.accuracy < 1 - 3 * (1 - best.recall)


def test_paper_lookup_matches_depth_batch_and_model_and_keeps_duplicates() -> None:
    both = paper_values({**BASE, "depth": 4, "batch_size": 32, "model": "resnet18"})
    assert [v.preset for v in both] == ["batch", "models"]
    assert {(v.accuracy, v.recall) for v in both} == {(0.9924, 0.9996)}
    only = paper_values({"depth": 4, "batch_size": 32, "model": "resnet18"}, preset="models")
    assert [v.preset for v in only] == ["models"]
    one = paper_values({"depth": 2, "batch_size": 8, "model": "resnet18", "epochs": 3})
    assert [(v.preset, v.accuracy) for v in one] == [("depth", 0.8482)]
    assert paper_values({"depth": 4, "batch_size": 16, "model": "resnet18"}) == []
    assert paper_values({"depth": 4, "batch_size": 8, "model": "resnet34"}) == []
    assert paper_values({"batch_size": 8, "model": "resnet18"}) == []
    assert paper_values({"depth": 4.0, "batch_size": 8, "model": "resnet18"})[0].depth == 4
    with pytest.raises(ValueError, match="preset must be one of"):
        paper_values({}, preset="all")


def test_paper_deviations_name_each_difference() -> None:
    assert paper_deviations({**BASE, **PAPER_SETTINGS, "size": [512, 512]}) == []
    assert paper_deviations({"size": 512, "epochs": 20}) == []
    assert paper_deviations({**BASE, "lr": 1e-3}) == [
        "size 16 x 16 (paper 512 x 512)",
        "epochs 1 (paper 20)",
    ]
    assert paper_deviations({"size": None}) == ["size native (paper 512 x 512)"]
    assert paper_deviations({"batch_size": 8, "nproc": 4, "grad_accum": 1}) == [
        "effective batch 32 (batch_size 8 x nproc 4 x grad_accum 1)"
    ]
    assert paper_deviations({}) == []


def test_every_paper_value_is_one_cell_of_its_grid_preset() -> None:
    grid = pytest.importorskip(
        "resnet3d.sweep.grid", reason="the sweep engine's grid module is not in this tree"
    )
    for name in PRESETS:
        cells = grid.PAPER_PRESETS[name]
        for value in (v for v in PAPER_VALUES if v.preset == name):
            hits = [c for c in cells if paper_values(c, preset=name) == [value]]
            assert len(hits) == 1, (name, value, hits)
        assert len(cells) == sum(v.preset == name for v in PAPER_VALUES)
        assert all(len(paper_values(c, preset=name)) == 1 for c in cells)


# ------------------------------------------------------------------- a synthetic sweep
def _write(path: Path, document: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, allow_nan=False))


def _cell(name: str, varied: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "folder": f"runs/{name}",
        "settings": {**BASE, **varied},
        "varied": varied,
    }


def _state(cell: dict[str, Any], status: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": cell["name"],
        "settings": cell["settings"],
        "varied": cell["varied"],
        "status": status,
        "epochs": 0,
        **dict.fromkeys(("train_seconds", "samples_per_second", "best_val_accuracy")),
        **dict.fromkeys(("started", "finished", "error")),
        **extra,
    }


class _Volumes:
    """Toy volumes ``3 x 4 x 16 x 16``: ``n_patients`` patients of the given classes in
    turn, 2 scans each, 2 volumes a scan, every volume with its patient's label."""

    def __init__(self, n_patients: int, seed: int, classes: tuple[int, ...] = (0, 1, 2)) -> None:
        import torch

        self.items = []
        g = torch.Generator().manual_seed(seed)
        for p in range(n_patients):
            label = classes[p % len(classes)]
            for v in range(4):
                x = torch.rand(3, 4, 16, 16, generator=g) + 0.2 * label
                self.items.append((x, label, f"p{p}/s{v // 2}", f"p{p}"))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Any:
        return self.items[i]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """Three done cells evaluated by evaluate_model (a tiny untrained model on toy volumes;
    the third lacks class Normal), one failed, one running, one queued (no cell.json)."""
    import torch
    from tests.helpers.toy import TINY

    from resnet3d import create_model
    from resnet3d.workflows import evaluate_model

    root = tmp_path_factory.mktemp("sweep")
    cells = [
        _cell("d2", {"depth": 2, "batch_size": 8, "model": "resnet18"}),
        _cell("d4", {"depth": 4, "batch_size": 8, "model": "resnet18"}),
        _cell("d4b32", {"depth": 4, "batch_size": 32, "model": "resnet18"}),
        _cell("d8", {"depth": 8, "batch_size": 8, "model": "resnet18"}),
        _cell("d16", {"depth": 16, "batch_size": 8, "model": "resnet18"}),
        _cell("d32", {"depth": 32, "batch_size": 8, "model": "resnet18"}),
    ]
    plan = {"format": 1, "data": "toy", "split_file": "split.json", "cells": cells}
    _write(root / "plan.json", {**plan, "split": {"seed": 0, "fractions": [0.7, 0.15, 0.15]}})
    evaluations = {}
    for seed, cell in enumerate(cells[:3]):
        torch.manual_seed(seed)
        model = create_model("resnet10", num_classes=3, **TINY)
        # d4b32's test data has no Normal: its AUROC is undefined, macro-AUROC null.
        data = _Volumes(6, seed, (0, 1) if cell["name"] == "d4b32" else (0, 1, 2))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # d4b32's undefined AUROC
            evaluate_model(
                model,
                data,
                labels=LABELS,
                out_dir=root / cell["folder"] / "eval",
                plots=False,
                device="cpu",
                workers=0,
                ci=True,
                split="test",
            )
        evaluations[cell["name"]] = json.loads(
            (root / cell["folder"] / "eval" / "evaluation.json").read_text()
        )
        timing = {"train_seconds": 12.5 + seed, "samples_per_second": 100.0 + seed}
        _write(root / cell["folder"] / "cell.json", _state(cell, "done", **timing, epochs=1))
    _write(
        root / cells[3]["folder"] / "cell.json",
        _state(cells[3], "failed", error="RuntimeError: CUDA out of memory\nTraceback ..."),
    )
    _write(root / cells[5]["folder"] / "cell.json", _state(cells[5], "running"))
    return root, evaluations


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _strict_json(path: Path) -> Any:
    def refuse(token: str) -> None:
        raise AssertionError(f"{path.name} has {token}")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_report_rows_values_intervals_and_paper_values(sweep: tuple[Path, Any]) -> None:
    root, evaluations = sweep
    files = write_sweep_report(root)
    names = {p.name for p in files}
    assert {"sweep.json", "sweep.csv", "sweep.md"} <= names
    document = _strict_json(root / "sweep.json")
    cells = {c["name"]: c for c in document["cells"]}
    assert list(cells) == ["d2", "d4", "d4b32", "d8", "d16", "d32"]
    assert {n: c["status"] for n, c in cells.items()} == {
        "d2": "done",
        "d4": "done",
        "d4b32": "done",
        "d8": "failed",
        "d16": "queued",
        "d32": "running",
    }
    assert document["counts"] == {"done": 3, "failed": 1, "running": 1, "queued": 1}
    for name, evaluation in evaluations.items():
        for level in LEVELS:
            report = evaluation["levels"][level]
            got = cells[name]["levels"][level]
            assert got["n"] == report["n_samples"]
            assert got["accuracy"]["value"] == report["accuracy"]
            assert got["accuracy"]["low"] == report["intervals"]["accuracy"]["low"]
            assert got["accuracy"]["high"] == report["intervals"]["accuracy"]["high"]
            ncp = report["per_class"]["NCP"]["recall"]
            assert got["covid_recall"]["value"] == ncp
            assert got["covid_recall"]["low"] == report["class_intervals"]["NCP"]["recall"]["low"]
            for metric in ("recall", "f1", "auroc"):
                assert got[f"macro_{metric}"]["value"] == report["macro"][metric]
                ci = report["intervals"][f"macro_{metric}"]
                assert got[f"macro_{metric}"]["high"] == ci["high"]
    # No Normal in d4b32's test data: its macro-AUROC is undefined (null), not 0 or NaN.
    assert cells["d4b32"]["levels"]["scan"]["macro_auroc"]["value"] is None
    assert cells["d2"]["levels"]["scan"]["macro_auroc"]["value"] is not None
    # The paper's values beside matching cells, done or not; the duplicate cell once.
    paper = {
        n: (c["paper_accuracy"], c["paper_recall"], c["paper_preset"]) for n, c in cells.items()
    }
    assert paper == {
        "d2": (0.8482, 0.9796, "depth"),
        "d4": (0.9147, 0.9402, "depth"),
        "d4b32": (0.9924, 0.9996, "batch+models"),
        "d8": (0.9684, 0.9504, "depth"),
        "d16": (0.9673, 0.9480, "depth"),
        "d32": (0.9636, 0.9341, "depth"),
    }
    assert len(cells["d4b32"]["paper"]) == 2
    assert cells["d2"]["paper_deviations"] == [
        "size 16 x 16 (paper 512 x 512)",
        "epochs 1 (paper 20)",
    ]
    assert cells["d2"]["at_paper_settings"] is False
    assert cells["d8"]["levels"] is None and "out of memory" in cells["d8"]["error"]
    assert cells["d2"]["train_seconds"] == 12.5 and cells["d4"]["samples_per_second"] == 101.0
    assert document["paper"]["source"]["doi"] == "10.1101/2021.01.21.21249999"
    assert len(document["paper"]["values"]) == 17


def test_csv_round_trips_the_json(sweep: tuple[Path, Any]) -> None:
    root, _ = sweep
    write_sweep_report(root, plots=False)
    document = _strict_json(root / "sweep.json")
    rows = _rows(root / "sweep.csv")
    assert [r["name"] for r in rows] == [c["name"] for c in document["cells"]]
    for row, cell in zip(rows, document["cells"]):
        assert row["status"] == cell["status"]
        assert int(row["depth"]) == cell["settings"]["depth"]
        assert row["size"] == "16x16"
        for level in LEVELS:
            found = (cell["levels"] or {}).get(level) or {}
            for metric in METRICS:
                value = found.get(metric) or {}
                for suffix, key in (("", "value"), ("_lo", "low"), ("_hi", "high")):
                    text = row[f"{level}_{metric}{suffix}"]
                    expected = value.get(key)
                    assert (float(text) if text else None) == expected, (level, metric, suffix)
        assert float(row["paper_accuracy"]) == cell["paper_accuracy"]
        assert float(row["paper_recall"]) == cell["paper_recall"]
        timing = row["train_seconds"]
        assert (float(timing) if timing else None) == cell["train_seconds"]
    assert rows[0]["scan_accuracy_lo"] != ""  # intervals are there for done cells
    assert rows[3]["scan_accuracy"] == "" and rows[3]["status"] == "failed"
    assert "nan" not in (root / "sweep.csv").read_text().lower()


def test_markdown_lists_cells_not_done_and_notes(sweep: tuple[Path, Any]) -> None:
    root, _ = sweep
    write_sweep_report(root, plots=False)
    text = (root / "sweep.md").read_text()
    assert "## The paper's depth sweep" in text and "## The paper's batch sweep" in text
    assert "## The paper's models sweep" in text  # d4b32 is in two of the paper's tables
    section = text.split("## Cells not done, or done with a problem", 1)[1].split("## ", 1)[0]
    assert "| d8 | failed | RuntimeError: CUDA out of memory |" in section
    assert "| d16 | queued | — |" in section and "| d32 | running | — |" in section
    assert "| d2 |" not in section
    notes = text.split("## Notes", 1)[1]
    for phrase in (
        "read as volume-level",
        "not a whole scan",
        "recall (sensitivity) of COVID-19",
        "patient-level split in `split.json`, 70/15/15% of each class's patients, seed 0",
        "about 0.88 accuracy and AUROC 0.94-0.96",
        "95% percentile bootstrap",
        "3 of 6 cells are not done",
    ):
        assert phrase in notes, phrase
    assert "Not drawn (plots=False)." in text
    assert not (root / "sweep_depth.png").exists() or (root / "sweep_depth.png").stat().st_size


def test_plots_are_written(sweep: tuple[Path, Any]) -> None:
    pytest.importorskip("matplotlib", reason="matplotlib draws the plots")
    root, _ = sweep
    files = write_sweep_report(root)
    for name in ("sweep_depth.png", "sweep_batch.png"):
        path = root / name
        assert path in files
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 1000
    assert not list(root.glob(".*partial*"))
    assert _strict_json(root / "sweep.json")["plots"] == ["sweep_depth.png", "sweep_batch.png"]


def test_plots_are_skipped_with_fewer_than_two_cells(tmp_path: Path) -> None:
    cell = _cell("only", {"depth": 4})
    _write(tmp_path / "plan.json", {"format": 1, "data": "d", "split_file": "s", "cells": [cell]})
    files = write_sweep_report(tmp_path)
    assert [p.name for p in files] == ["sweep.json", "sweep.csv", "sweep.md"]
    text = (tmp_path / "sweep.md").read_text()
    assert "`sweep_depth.png` not drawn: fewer than 2 done cells differ only in depth" in text
    assert "| only | queued |" in text
    assert "## Cells varying depth" in text


def test_a_done_cell_without_evaluation_and_a_broken_cell_file(tmp_path: Path) -> None:
    a, b = _cell("a", {"depth": 2}), _cell("b", {"depth": 4})
    _write(tmp_path / "plan.json", {"format": 1, "data": "d", "split_file": "s", "cells": [a, b]})
    _write(tmp_path / a["folder"] / "cell.json", _state(a, "done"))
    (tmp_path / b["folder"]).mkdir(parents=True)
    (tmp_path / b["folder"] / "cell.json").write_text('{"status": "do')
    document = load_sweep(tmp_path)
    first, second = document["cells"]
    assert first["status"] == "done" and first["levels"] is None
    assert first["problems"] == ["done, but it has no eval/evaluation.json"]
    assert second["status"] == "queued" and "cell.json unreadable" in second["problems"][0]
    write_sweep_report(tmp_path, plots=False)
    section = (tmp_path / "sweep.md").read_text().split("## Cells not done", 1)[1]
    assert "| a | done | done, but it has no eval/evaluation.json |" in section


def test_missing_or_bad_plan(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"plan\.json: no sweep plan here"):
        write_sweep_report(tmp_path)
    (tmp_path / "plan.json").write_text('{"cells": 3}')
    with pytest.raises(ValueError, match="'cells' list"):
        write_sweep_report(tmp_path)


def test_report_on_the_paper_preset_plan(tmp_path: Path) -> None:
    grid = pytest.importorskip(
        "resnet3d.sweep.grid", reason="the sweep engine's grid module is not in this tree"
    )
    cells = [c.to_dict() for c in grid.expand_grid(paper=["all"], base=grid.base_settings())]
    _write(tmp_path / "plan.json", {"format": 1, "data": "d", "split_file": "s", "cells": cells})
    document = load_sweep(tmp_path)
    assert len(document["cells"]) == 16
    assert all(c["at_paper_settings"] for c in document["cells"])
    assert all(c["paper_accuracy"] is not None for c in document["cells"])
    write_sweep_report(tmp_path, plots=False)
    text = (tmp_path / "sweep.md").read_text()
    tables = text.split("### Accuracy")[1:]
    rows = [
        sum(line.startswith("| depth-") for line in t.split("###")[0].splitlines()) for t in tables
    ]
    assert rows == [6, 6, 5]


# ------------------------------------------------------------------------ md snapshot
def _evaluation(correct: list[bool]) -> dict[str, Any]:
    """evaluation.json of one volume per scan and one scan per patient, class i % 3 for
    patient i, right or wrong as ``correct`` says."""
    y = np.arange(len(correct)) % 3
    probs = np.full((len(correct), 3), 0.1)
    for i, ok in enumerate(correct):
        probs[i, y[i] if ok else (y[i] + 1) % 3] = 0.8
    ids = [f"p{i}" for i in range(len(correct))]
    common: dict[str, Any] = {
        "labels": LABELS,
        "ci": True,
        "n_bootstrap": 200,
        "zero_division": 0.0,
    }
    levels = {
        "volume": classification_report(y, probs, ci_groups=ids, **common),
        "scan": classification_report(y, probs, groups=ids, ci_groups=ids, **common),
        "patient": classification_report(y, probs, groups=ids, **common),
    }
    return {
        "split": "test",
        "labels": LABELS,
        "levels": {k: r.to_dict() for k, r in levels.items()},
    }


CI_A = "1.000 [1.000, 1.000]"  # all 6 right
CI_B = "0.750 [0.375, 1.000]"  # 6 of 8 right; 200 resamples, seed 0
SNAPSHOT = "\n".join(
    [
        "| cell | depth | batch_size | model | status | volume | scan | patient | paper (volume) |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| a | 2 | 8 | resnet18 | done | {CI_A} | {CI_A} | {CI_A} | 0.8482 |",
        f"| b | 4 | 8 | resnet18 | done | {CI_B} | {CI_B} | {CI_B} | 0.9147 |",
        "| c | 8 | 8 | resnet18 | failed | — | — | — | 0.9684 |",
        "",
    ]
)


def test_markdown_snapshot_of_the_accuracy_table(tmp_path: Path) -> None:
    varied = [{"depth": d, "batch_size": 8, "model": "resnet18"} for d in (2, 4, 8)]
    cells = [_cell(n, v) for n, v in zip("abc", varied)]
    _write(tmp_path / "plan.json", {"format": 1, "data": "d", "split_file": "s", "cells": cells})
    for cell, correct in zip(cells, ([True] * 6, [True, True, True, False] * 2)):
        _write(tmp_path / cell["folder"] / "eval" / "evaluation.json", _evaluation(correct))
        _write(tmp_path / cell["folder"] / "cell.json", _state(cell, "done"))
    _write(tmp_path / cells[2]["folder"] / "cell.json", _state(cells[2], "failed", error="boom"))
    write_sweep_report(tmp_path, plots=False)
    text = (tmp_path / "sweep.md").read_text()
    table = text.split("### Accuracy\n\n", 1)[1].split("\n\n", 1)[0] + "\n"
    assert table == SNAPSHOT
    assert "Fixed: size 16 x 16, epochs 1, lr 0.001, precision fp32." in text


def test_json_has_no_nan_even_from_nan_timings(tmp_path: Path) -> None:
    cell = _cell("a", {"depth": 2})
    _write(tmp_path / "plan.json", {"format": 1, "data": "d", "split_file": "s", "cells": [cell]})
    state = _state(cell, "done", train_seconds=float("nan"), samples_per_second=float("inf"))
    (tmp_path / cell["folder"]).mkdir(parents=True)
    (tmp_path / cell["folder"] / "cell.json").write_text(json.dumps(state))  # NaN, Infinity
    _write(tmp_path / cell["folder"] / "eval" / "evaluation.json", _evaluation([True, False, True]))
    write_sweep_report(tmp_path, plots=False)
    document = _strict_json(tmp_path / "sweep.json")
    assert document["cells"][0]["train_seconds"] is None
    assert document["cells"][0]["samples_per_second"] is None
    assert not math.isnan(document["cells"][0]["levels"]["volume"]["accuracy"]["value"])
