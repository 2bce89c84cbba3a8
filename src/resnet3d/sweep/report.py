"""The sweep's results: one row per cell as ``sweep.json``, ``sweep.csv`` and ``sweep.md``,
with the paper's values beside the matching cells, and plots of accuracy against depth and
batch size.

Reads a sweep folder as the sweep engine writes it: ``plan.json`` (the cells and their
settings), each cell's ``cell.json`` (status and timings) and, for a finished cell,
``eval/evaluation.json`` (:func:`resnet3d.workflows.evaluate_model` with ``ci=True``). The
report is rewritten after every cell, so it reads partial sweeps: cells that are queued,
running or failed, evaluations that are missing and metrics that are undefined (``null``)
are reported as such, never guessed.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .._utils import atomic_write_text
from .paper import PAPER_VALUES, PRESETS, SOURCE, paper_deviations, paper_values

__all__ = ["LEVELS", "METRICS", "load_sweep", "write_sweep_report"]

logger = logging.getLogger(__name__)

FORMAT = 1
LEVELS = ("volume", "scan", "patient")
#: Per level: three-way accuracy, recall of the COVID-19 class (the paper's "recall"),
#: and the unweighted means over classes of recall, F1 and one-vs-rest AUROC.
METRICS = ("accuracy", "covid_recall", "macro_recall", "macro_f1", "macro_auroc")
METRIC_TITLES = {
    "accuracy": "accuracy",
    "covid_recall": "COVID-19 recall",
    "macro_recall": "macro recall",
    "macro_f1": "macro-F1",
    "macro_auroc": "macro-AUROC",
}
#: The COVID-19 class as CC-CCII names it.
COVID_LABEL = "NCP"
# Settings shown as their own CSV columns, in this order; other varied keys follow.
SETTING_COLUMNS = ("model", "depth", "batch_size", "size", "epochs", "lr", "precision")
NOT_DONE = ("failed", "running", "queued")
# The CSV's last columns: timings, the paper's values, the error (cell record keys).
TAIL_COLUMNS = (
    "train_seconds",
    "samples_per_second",
    "best_val_accuracy",
    "epochs_run",
    "paper_accuracy",
    "paper_recall",
    "paper_preset",
    "at_paper_settings",
    "paper_deviations",
    "error",
)
# What the paper's presets vary: a cell varying exactly these is one of the paper's runs.
PAPER_VARIED = ("depth", "batch_size", "model")

CONTEXT = (
    "Published results on the cleaned CC-CCII (Clean-CC-CCII: He et al., 'Benchmarking "
    "Deep Learning Models and Automated Model Design for COVID-19 Detection with Chest CT "
    "Scans', medRxiv 10.1101/2020.06.08.20125963) are far lower than this paper's: about "
    "0.88 accuracy and AUROC 0.94-0.96 with 3D CNNs, 3D ResNets among them. The unit of "
    "evaluation and the split matter as much as the model: compare only the volume-level "
    "columns with this paper's numbers, and read the scan- and patient-level columns as "
    "what a scan or a patient gets."
)


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _clean(value: Any) -> Any:
    """JSON-safe: non-finite floats to None, tuples to lists, keys to strings."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _read_json(path: Path, problems: list[str], what: str) -> Any:
    """The parsed file, or ``None`` (with a problem noted) if it is missing or unreadable."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        problems.append(f"{what} {path.name} unreadable: {error}")
        return None


def _interval(ci: Any) -> tuple[float | None, float | None]:
    if not isinstance(ci, Mapping):
        return None, None
    return _finite(ci.get("low")), _finite(ci.get("high"))


def _metric(value: Any, ci: Any) -> dict[str, float | None]:
    low, high = _interval(ci)
    return {"value": _finite(value), "low": low, "high": high}


def _level_metrics(report: Mapping[str, Any], covid: str | None) -> dict[str, Any]:
    """One level of ``evaluation.json`` (a ``ClassificationReport.to_dict()``) as the
    report's metrics: value and interval of each of :data:`METRICS`."""
    intervals = report.get("intervals") or {}
    macro = report.get("macro") or {}
    out: dict[str, Any] = {
        "n": report.get("n_samples"),
        "accuracy": _metric(report.get("accuracy"), intervals.get("accuracy")),
    }
    per_class = (report.get("per_class") or {}).get(covid) if covid else None
    class_ci = ((report.get("class_intervals") or {}).get(covid) or {}) if covid else {}
    out["covid_recall"] = _metric(
        per_class.get("recall") if isinstance(per_class, Mapping) else None,
        class_ci.get("recall"),
    )
    for name in ("recall", "f1", "auroc"):
        out[f"macro_{name}"] = _metric(macro.get(name), intervals.get(f"macro_{name}"))
    alphas = [ci.get("alpha") for ci in intervals.values() if isinstance(ci, Mapping)]
    out["alpha"] = _finite(alphas[0]) if alphas else None
    return out


def _cell_record(root: Path, entry: Mapping[str, Any], index: int) -> dict[str, Any]:
    problems: list[str] = []
    name = str(entry.get("name") or f"cell{index}")
    folder = str(entry.get("folder") or name)
    cell_dir = root / folder
    state = _read_json(cell_dir / "cell.json", problems, "cell file")
    state = state if isinstance(state, Mapping) else {}
    settings = dict(state.get("settings") or entry.get("settings") or {})
    varied = dict(state.get("varied") or entry.get("varied") or {})
    status = str(state.get("status") or "queued")
    labels: list[str] = []
    levels: dict[str, Any] | None = None
    level_names: dict[str, str] | None = None
    if status == "done":
        document = _read_json(cell_dir / "eval" / "evaluation.json", problems, "evaluation")
        if not isinstance(document, Mapping):
            if not problems:
                problems.append("done, but it has no eval/evaluation.json")
        else:
            labels = [str(x) for x in document.get("labels") or []]
            names = document.get("level_names")
            if isinstance(names, Mapping):  # a data set of videos: clip, video, group
                level_names = {str(k): str(v) for k, v in names.items()}
            covid = COVID_LABEL if COVID_LABEL in labels else None
            found = document.get("levels") or {}
            levels = {
                level: _level_metrics(found[level], covid)
                for level in LEVELS
                if isinstance(found.get(level), Mapping)
            }
            # Videos have no COVID-19 class to miss: not a problem of the cell.
            if covid is None and level_names is None:
                problems.append(f"no class {COVID_LABEL!r} among {labels}: no COVID-19 recall")
    matches = paper_values(settings)
    chosen = matches[0] if matches else None
    if len({(v.accuracy, v.recall) for v in matches}) > 1:
        problems.append("the paper reports different values for these settings; shown: the first")
    deviations = paper_deviations(settings)
    return {
        "name": name,
        "folder": folder,
        "status": status,
        "settings": settings,
        "varied": varied,
        "labels": labels,
        "levels": levels,
        "level_names": level_names,
        "train_seconds": _finite(state.get("train_seconds")),
        "samples_per_second": _finite(state.get("samples_per_second")),
        "best_val_accuracy": _finite(state.get("best_val_accuracy")),
        "epochs_run": state.get("epochs"),
        "started": state.get("started"),
        "finished": state.get("finished"),
        "error": state.get("error"),
        "problems": problems,
        "paper": [v.to_dict() for v in matches],
        "paper_accuracy": chosen.accuracy if chosen else None,
        "paper_recall": chosen.recall if chosen else None,
        "paper_preset": "+".join(v.preset for v in matches) or None,
        "paper_deviations": deviations,
        "at_paper_settings": bool(matches) and not deviations,
    }


def _groups(cells: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """The report's tables: a cell that varies exactly a paper preset's settings (depth,
    batch size and model) goes in the table of each of the paper's sweeps that reports
    it, in the paper's order; any other cell in a table of the cells that vary what it
    varies."""
    groups: dict[str, list[Mapping[str, Any]]] = {
        f"The paper's {name} sweep: {what}": [] for name, what in PRESETS.items()
    }
    titles = dict(zip(PRESETS, groups))
    for cell in cells:
        presets = [v["preset"] for v in cell["paper"]]
        if presets and set(cell["varied"]) == set(PAPER_VARIED):
            for preset in dict.fromkeys(presets):
                groups[titles[preset]].append(cell)
            continue
        varied = list(cell["varied"])
        title = "Cells varying " + ", ".join(varied) if varied else "Cells"
        groups.setdefault(title, []).append(cell)
    return {title: members for title, members in groups.items() if members}


def load_sweep(out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a sweep folder into the ``sweep.json`` document (without writing anything).

    Args:
        out_dir: The sweep folder, holding ``plan.json``.

    Returns:
        ``{"format", "generated", "data", "split_file", "paper", "counts", "cells",
        "notes"}``: one record per planned cell with its status, settings, timings, metrics
        per level (value, 95% interval) and the paper's values; JSON-able, no NaN.

    Raises:
        FileNotFoundError: If ``out_dir`` has no ``plan.json``.
        ValueError: If ``plan.json`` is not a sweep plan.
    """
    root = Path(out_dir)
    plan_path = root / "plan.json"
    if not plan_path.is_file():
        raise FileNotFoundError(f"{plan_path}: no sweep plan here (is {root} a sweep folder?)")
    try:
        plan = json.loads(plan_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{plan_path}: not valid JSON: {error}") from None
    if not isinstance(plan, Mapping) or not isinstance(plan.get("cells"), list):
        raise ValueError(f"{plan_path}: a sweep plan has a 'cells' list")
    cells = [
        _cell_record(root, entry, i)
        for i, entry in enumerate(plan["cells"])
        if isinstance(entry, Mapping)
    ]
    counts = {s: sum(c["status"] == s for c in cells) for s in ("done", *NOT_DONE)}
    others = sum(c["status"] not in counts for c in cells)
    if others:
        counts["other"] = others
    document = {
        "format": FORMAT,
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "data": plan.get("data"),
        "split_file": plan.get("split_file"),
        "split": plan.get("split"),
        "paper": {
            "source": dict(SOURCE),
            "presets": dict(PRESETS),
            "values": [v.to_dict() for v in PAPER_VALUES],
        },
        "metrics": {
            "levels": list(LEVELS),
            "names": list(METRICS),
            "covid_label": COVID_LABEL,
        },
        "counts": counts,
        "cells": cells,
    }
    document["notes"] = _notes(document)
    return _clean(document)


# -- text ----------------------------------------------------------------------------------


def _alpha(cells: Sequence[Mapping[str, Any]]) -> float | None:
    for cell in cells:
        for level in (cell["levels"] or {}).values():
            if level.get("alpha") is not None:
                return float(level["alpha"])
    return None


def _notes(document: Mapping[str, Any]) -> list[str]:
    cells = document["cells"]
    alpha = _alpha(cells)
    coverage = f"{100 * (1 - alpha):g}%" if alpha is not None else "no"
    split = document.get("split_file")
    notes = [
        "Paper: Li, Pei and Guo, 'A 3D CNN Classification Model for Accurate Diagnosis of "
        "Coronavirus Disease 2019 using Computed Tomography Images', medRxiv "
        f"{SOURCE['doi']} (2021). Its values here are from {SOURCE['results']}.",
        "Unit of evaluation. The paper stacks n consecutive slices of one scan into a "
        "volume (n = the depth) and treats each volume as one sample carrying its scan's "
        "label; it states no scan- or patient-level evaluation for these sweeps, so its "
        "accuracy and recall are read as volume-level. 'Complete CT' in the paper names the "
        "data (all slices, not the lung-segmented subset), not a whole scan. Our levels: "
        "volume = the same unit, one prediction per stack; scan = the mean of the class "
        "probabilities of the scan's volumes; patient = the mean over all of the patient's "
        "volumes. Only the volume level is comparable in unit with the paper. At the volume "
        "level the number of test samples changes with the depth, and a long scan counts "
        "many times; at the scan and patient levels each scan or patient counts once.",
        "Recall. The paper's recall is the recall (sensitivity) of COVID-19 (class "
        f"{COVID_LABEL}), not a macro average: for ResNet-18 at depth 4 and batch size 32 "
        "its recall 0.9996 is its COVID-19-against-the-rest recall (99.96%), and a "
        "three-way macro recall that high would need an accuracy above 0.9988, not the "
        "reported 0.9924. 'COVID-19 recall' here is the same quantity (the recall of "
        f"{COVID_LABEL} is the same in the three-way and the COVID-19-against-the-rest "
        "view); 'macro recall' is the unweighted mean of the three classes' recalls. "
        "Accuracy is three-way in both.",
        "Split. Ours is the patient-level split in "
        + (f"`{split}`" if split else "the sweep's split file")
        + _split_words(document.get("split"))
        + " (no patient in two parts), shared by every cell. The paper also split by patient "
        f"({SOURCE['split'].split('; ', 1)[-1]}), but unless that file reproduces its "
        "assignment of patients, the test patients differ from the paper's.",
        f"Intervals: {coverage} percentile bootstrap intervals, `value [low, high]`, from "
        "the evaluation: volume and scan level resample whole patients (a patient's volumes "
        "stay together), patient level resamples patients. The paper reports no intervals.",
        "Settings. The paper trains on slices resized to 512 x 512 for 20 epochs (Adam, "
        "learning rate 1e-3, x0.1 every 10 epochs), on NVIDIA V100 GPUs. A cell matches the "
        "paper's value on depth, batch size and model alone; where its other settings "
        "differ, the table of samples and training says how, and the numbers are not a "
        "reproduction of the paper's setting.",
        "Timing: train time and samples/s are measured by the sweep on its own machine; "
        "the paper reports no times.",
        CONTEXT,
    ]
    not_done = [c for c in cells if c["status"] != "done"]
    if not_done:
        notes.append(
            f"{len(not_done)} of {len(cells)} cells are not done (listed with their status); "
            "their rows have no metrics."
        )
    return notes


def _split_words(split: Any) -> str:
    """``", 70/15/15% of each class's patients, seed 0"`` from the plan's split settings."""
    if not isinstance(split, Mapping):
        return ""
    fractions, seed = split.get("fractions"), split.get("seed")
    words = []
    if isinstance(fractions, list) and all(_finite(f) is not None for f in fractions):
        words.append("/".join(f"{100 * f:g}" for f in fractions) + "% of each class's patients")
    if seed is not None:
        words.append(f"seed {seed}")
    return "".join(f", {w}" for w in words)


def _num(value: Any, digits: int = 3) -> str:
    v = _finite(value)
    return "—" if v is None else f"{v:.{digits}f}"


def _with_ci(metric: Mapping[str, Any] | None) -> str:
    if not metric or metric.get("value") is None:
        return "—"
    text = _num(metric["value"])
    if metric.get("low") is not None and metric.get("high") is not None:
        text += f" [{_num(metric['low'])}, {_num(metric['high'])}]"
    return text


def _cell_metric(cell: Mapping[str, Any], level: str, name: str) -> Mapping[str, Any] | None:
    levels = cell.get("levels") or {}
    found = levels.get(level)
    return found.get(name) if found else None


def _duration(seconds: Any) -> str:
    s = _finite(seconds)
    if s is None:
        return "—"
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.2f} h"


def _setting_text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return " x ".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return "" if value is None else str(value)


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return [_md_row(header), "|" + "---|" * len(header), *(_md_row(r) for r in rows), ""]


def _level_words(cells: Sequence[Mapping[str, Any]]) -> list[str]:
    """Column names of the levels: the cells' own (``clip``, ``video``, ``group`` for videos)
    when every cell that has them agrees, else ``volume``, ``scan``, ``patient``."""
    found = {json.dumps(c.get("level_names"), sort_keys=True) for c in cells if c.get("levels")}
    if len(found) != 1:
        return list(LEVELS)
    names = json.loads(found.pop()) or {}
    return [str(names.get(level, level)) for level in LEVELS]


def _group_markdown(title: str, cells: Sequence[Mapping[str, Any]]) -> list[str]:
    words = _level_words(cells)
    keys = list(dict.fromkeys(k for c in cells for k in c["varied"]))
    fixed = {
        k: cells[0]["settings"][k]
        for k in SETTING_COLUMNS
        if k not in keys
        and k in cells[0]["settings"]
        and all(c["settings"].get(k) == cells[0]["settings"][k] for c in cells)
    }
    lines = [f"## {title}", ""]
    if fixed:
        shown = ", ".join(f"{k} {_setting_text(v)}" for k, v in fixed.items())
        lines += [f"Fixed: {shown}.", ""]

    def head(cell: Mapping[str, Any]) -> list[str]:
        shown = {**cell["varied"], **cell["settings"]}
        return [cell["name"], *(_setting_text(shown.get(k)) for k in keys)]

    first = ["cell", *keys]
    lines += ["### Accuracy", ""]
    lines += _md_table(
        [*first, "status", *words, "paper (volume)"],
        [
            [
                *head(c),
                c["status"],
                *(_with_ci(_cell_metric(c, lv, "accuracy")) for lv in LEVELS),
                _num(c["paper_accuracy"], 4),
            ]
            for c in cells
        ],
    )
    lines += ["### COVID-19 recall (the paper's recall) and macro recall", ""]
    lines += _md_table(
        [*first, *words, "paper (volume)", *(f"macro {lv}" for lv in words)],
        [
            [
                *head(c),
                *(_with_ci(_cell_metric(c, lv, "covid_recall")) for lv in LEVELS),
                _num(c["paper_recall"], 4),
                *(_with_ci(_cell_metric(c, lv, "macro_recall")) for lv in LEVELS),
            ]
            for c in cells
        ],
    )
    lines += ["### Macro-F1 and macro-AUROC", ""]
    lines += _md_table(
        [*first, *(f"F1 {lv}" for lv in words), *(f"AUROC {lv}" for lv in words)],
        [
            [
                *head(c),
                *(_with_ci(_cell_metric(c, lv, "macro_f1")) for lv in LEVELS),
                *(_with_ci(_cell_metric(c, lv, "macro_auroc")) for lv in LEVELS),
            ]
            for c in cells
        ],
    )
    lines += ["### Samples and training", ""]
    lines += _md_table(
        [
            *first,
            *(f"{lv}s" for lv in words),
            "train time",
            "samples/s",
            "best val acc",
            "differs from the paper's settings",
        ],
        [
            [
                *head(c),
                *(str(((c["levels"] or {}).get(lv) or {}).get("n") or "—") for lv in LEVELS),
                _duration(c["train_seconds"]),
                _num(c["samples_per_second"], 1),
                _num(c["best_val_accuracy"]),
                "; ".join(c["paper_deviations"]) or ("no" if c["paper"] else "no paper value"),
            ]
            for c in cells
        ],
    )
    return lines


def _markdown(document: Mapping[str, Any], plot_notes: Sequence[str]) -> str:
    cells = document["cells"]
    words = _level_words(cells)
    counts = document["counts"]
    lines = [
        "# Sweep results",
        "",
        f"Data: `{document.get('data')}`; split: `{document.get('split_file')}`. "
        f"{len(cells)} cells: " + ", ".join(f"{n} {s}" for s, n in counts.items()) + ". "
        f"Generated {document['generated']}.",
        "",
        "Accuracy, COVID-19 recall, macro recall, macro-F1 and macro-AUROC of each cell on "
        f"the test split at {words[0]}, {words[1]} and {words[2]} level, as "
        "`value [low, high]` with the bootstrap interval; *paper* is the value Li, Pei and "
        "Guo report for the cell's depth, batch size and model, which is volume-level (see "
        "the notes).",
        "",
    ]
    for title, members in _groups(cells).items():
        lines += _group_markdown(title, members)
    not_done = [c for c in cells if c["status"] != "done" or c["problems"]]
    lines += ["## Cells not done, or done with a problem", ""]
    if not_done:
        lines += _md_table(
            ["cell", "status", "error or problem"],
            [
                [
                    c["name"],
                    c["status"],
                    "; ".join(
                        str(x).strip().splitlines()[0] if str(x).strip() else ""
                        for x in [c["error"], *c["problems"]]
                        if x
                    )
                    or "—",
                ]
                for c in not_done
            ],
        )
    else:
        lines += ["Every cell is done.", ""]
    lines += ["## Plots", "", *(f"- {n}" for n in plot_notes), ""]
    lines += ["## Notes", "", *(f"- {n}" for n in document["notes"]), ""]
    return "\n".join(lines)


def _csv_columns(cells: Sequence[Mapping[str, Any]]) -> list[str]:
    extra = [k for c in cells for k in c["varied"] if k not in SETTING_COLUMNS]
    columns = ["name", "folder", "status", *SETTING_COLUMNS, *dict.fromkeys(extra)]
    for level in LEVELS:
        columns.append(f"{level}_n")
        for name in METRICS:
            columns += [f"{level}_{name}", f"{level}_{name}_lo", f"{level}_{name}_hi"]
    return [*columns, *TAIL_COLUMNS]


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ""
    if isinstance(value, (list, tuple)):
        return "x".join(str(v) for v in value)
    return str(value)


def _csv_row(cell: Mapping[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {k: cell[k] for k in ("name", "folder", "status")}
    row.update(cell["settings"])
    row.update({k: v for k, v in cell["varied"].items() if k not in cell["settings"]})
    for level in LEVELS:
        found = (cell["levels"] or {}).get(level) or {}
        row[f"{level}_n"] = found.get("n")
        for name in METRICS:
            metric = found.get(name) or {}
            row[f"{level}_{name}"] = metric.get("value")
            row[f"{level}_{name}_lo"] = metric.get("low")
            row[f"{level}_{name}_hi"] = metric.get("high")
    row.update({key: cell[key] for key in TAIL_COLUMNS})
    row["paper_deviations"] = "; ".join(cell["paper_deviations"])
    return row


def _csv(cells: Sequence[Mapping[str, Any]]) -> str:
    buffer = io.StringIO()
    columns = _csv_columns(cells)
    writer = csv.DictWriter(buffer, columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for cell in cells:
        writer.writerow({k: _csv_value(v) for k, v in _csv_row(cell).items()})
    return buffer.getvalue()


# -- plots ---------------------------------------------------------------------------------


def _series(
    cells: Sequence[Mapping[str, Any]], x_key: str
) -> list[tuple[dict[str, Any], list[Mapping[str, Any]]]]:
    """Done cells with metrics, grouped by every setting but ``x_key`` and sorted by it;
    only groups with at least two values of ``x_key`` (a line, not a point)."""
    groups: dict[str, tuple[dict[str, Any], list[Mapping[str, Any]]]] = {}
    for cell in cells:
        if cell["status"] != "done" or not cell["levels"]:
            continue
        if _finite(cell["settings"].get(x_key)) is None:
            continue
        rest = {k: v for k, v in cell["settings"].items() if k != x_key}
        key = json.dumps(rest, sort_keys=True, default=str)
        groups.setdefault(key, (rest, []))[1].append(cell)
    return [
        (rest, sorted(members, key=lambda c: float(c["settings"][x_key])))
        for rest, members in groups.values()
        if len({float(c["settings"][x_key]) for c in members}) >= 2
    ]


def _differing(series: Sequence[tuple[dict[str, Any], Any]], always: Sequence[str]) -> list[str]:
    """Settings that name a line: ``always``, then any other that differs between lines."""
    keys = list(dict.fromkeys(k for rest, _ in series for k in rest))
    varying = [k for k in keys if len({json.dumps(r.get(k), default=str) for r, _ in series}) > 1]
    return list(dict.fromkeys([*always, *varying]))


def _values(members: Sequence[Mapping[str, Any]], level: str) -> tuple[list[float], ...]:
    nan = math.nan
    ys, los, his = [], [], []
    for cell in members:
        metric = _cell_metric(cell, level, "accuracy") or {}
        ys.append(nan if metric.get("value") is None else metric["value"])
        los.append(nan if metric.get("low") is None else metric["low"])
        his.append(nan if metric.get("high") is None else metric["high"])
    return ys, los, his


def _paper_points(rest: Mapping[str, Any], x_key: str) -> list[tuple[float, float]]:
    """The paper's accuracies at the line's fixed settings (model and the other of depth
    and batch size), against ``x_key``."""
    fixed = [k for k in ("depth", "batch_size") if k != x_key]
    return sorted(
        {
            (float(getattr(v, x_key)), v.accuracy)
            for v in PAPER_VALUES
            if v.model == rest.get("model") and all(getattr(v, k) == rest.get(k) for k in fixed)
        }
    )


def _plot(
    cells: Sequence[Mapping[str, Any]],
    path: Path,
    x_key: str,
    levels: Sequence[str],
    title: str,
    xlabel: str,
    dpi: int,
) -> tuple[Path | None, str]:
    """Draw accuracy against ``x_key``: the file (``None`` if not drawn) and a line for
    the report's plot notes.

    With several ``levels``, each line of fixed settings gets its own panel, one curve per
    level; with one level, all lines share one panel, one colour each.
    """
    series = _series(cells, x_key)
    if not series:
        return None, (
            f"`{path.name}` not drawn: fewer than 2 done cells differ only in {x_key} "
            "(the other settings equal)."
        )
    from ..metrics._plot import _new_figure, _save

    differing = _differing(series, ["model", "batch_size" if x_key == "depth" else "depth"])
    panels = [[line] for line in series] if len(levels) > 1 else [list(series)]
    columns = min(len(panels), 3)
    rows = -(-len(panels) // columns)
    fig = _new_figure((0.6 + 5.0 * columns, 0.6 + 3.8 * rows))
    for p, lines in enumerate(panels):
        ax = fig.add_subplot(rows, columns, p + 1)
        ticks: set[float] = set()
        for g, (rest, members) in enumerate(lines):
            xs = [float(c["settings"][x_key]) for c in members]
            label = ", ".join(f"{k} {_setting_text(rest.get(k))}" for k in differing)
            for k, level in enumerate(levels):
                color = f"C{(k if len(levels) > 1 else g) % 10}"
                name = level if len(levels) > 1 else label
                ys, los, his = _values(members, level)
                ax.plot(xs, ys, marker="o", color=color, label=name)
                ax.fill_between(xs, los, his, color=color, alpha=0.15, linewidth=0)
            points = _paper_points(rest, x_key)
            if points:
                px, py = zip(*points)
                star = "black" if len(levels) > 1 else f"C{g % 10}"
                shown = "paper (volume)" + ("" if len(levels) > 1 else ", colour of its line")
                ax.plot(px, py, "*", markersize=11, color=star, label="_" * g + shown)
            ticks.update(xs, (x for x, _ in points))
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted(ticks), labels=[f"{t:g}" for t in sorted(ticks)])
        ax.minorticks_off()
        ax.set_xlabel(xlabel)
        ax.set_ylabel("accuracy (test split)")
        ax.set_title(label if len(levels) > 1 else title, fontsize="medium")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    if len(levels) > 1:
        fig.suptitle(title)
    _save(fig, path, dpi)
    return (
        path,
        f"`{path.name}`: {title[0].lower() + title[1:]}; bands are the bootstrap intervals.",
    )


def write_sweep_report(
    out_dir: str | os.PathLike[str], *, plots: bool = True, dpi: int = 120
) -> list[Path]:
    """Write the sweep's results next to its plan: ``sweep.json``, ``sweep.csv``,
    ``sweep.md`` and (with ``plots``) ``sweep_depth.png`` and ``sweep_batch.png``.

    One row per planned cell: its status, settings, training time and throughput, and at
    volume, scan and patient level the accuracy, COVID-19 recall, macro recall, macro-F1
    and macro-AUROC with their bootstrap intervals, beside the paper's accuracy and recall
    for the cell's depth, batch size and model (Li, Pei and Guo, medRxiv
    10.1101/2021.01.21.21249999). Safe to call on a partial sweep; each file is replaced
    atomically. A plot needs at least 2 done cells that differ only in depth (or batch
    size); otherwise it is skipped and ``sweep.md`` says why.

    Args:
        out_dir: The sweep folder (with ``plan.json``).
        plots: Draw the PNGs (matplotlib).
        dpi: Resolution of the PNGs.

    Returns:
        The files written.

    Raises:
        FileNotFoundError: If ``out_dir`` has no ``plan.json``.
        ValueError: If ``plan.json`` is not a sweep plan.
        ImportError: If ``plots`` and matplotlib is missing (before anything is written).
    """
    root = Path(out_dir)
    document = load_sweep(root)
    if plots:
        from ..metrics import require_matplotlib

        require_matplotlib()
    written: list[Path] = []
    plot_notes: list[str] = []
    if plots:
        cells = document["cells"]
        for drawn, note in (
            _plot(
                cells,
                root / "sweep_depth.png",
                "depth",
                LEVELS,
                "Accuracy against volume depth",
                "depth (slices per volume)",
                dpi,
            ),
            _plot(
                cells,
                root / "sweep_batch.png",
                "batch_size",
                ("scan",),
                "Scan-level accuracy against batch size, one line per depth",
                "batch size",
                dpi,
            ),
        ):
            plot_notes.append(note)
            written += [drawn] if drawn else []
        plot_notes.append(
            "Stars: the paper's values (volume level), at the settings of the line they sit on."
        )
    else:
        plot_notes.append("Not drawn (plots=False).")
    document["plots"] = [p.name for p in written]
    text = json.dumps(document, indent=2, allow_nan=False) + "\n"
    written.append(atomic_write_text(root / "sweep.json", text))
    written.append(atomic_write_text(root / "sweep.csv", _csv(document["cells"])))
    written.append(atomic_write_text(root / "sweep.md", _markdown(document, plot_notes)))
    logger.info("sweep report: %s", ", ".join(p.name for p in written))
    return written
