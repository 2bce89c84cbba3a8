"""Classes by name, never by position: the same scans in any layout meet a model alike.

A CC-CCII folder lists its classes as NCP, CP, Normal; the same scans as a class tree list
them as CP, NCP, Normal (natural order). Evaluation, fine-tuning from a pretrained head and
resuming match the data's classes to the model's by name, and a class the model does not
know is a one-line error that lists both sets.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.helpers.toy import TINY

from resnet3d.cli import main
from resnet3d.data import phantom
from resnet3d.data.dataset import VolumeDataset
from resnet3d.data.index import ScanIndex
from resnet3d.data.volumes import SliceStacker
from resnet3d.engine.checkpoint import load_checkpoint
from resnet3d.engine.train import TrainConfig
from resnet3d.metrics import classification_report
from resnet3d.models.factory import create_model
from resnet3d.models.resnet import ResNet3D
from resnet3d.workflows import evaluate_model, fit_from_folder

MODEL_LABELS = ["NCP", "CP", "Normal"]
STACKER = SliceStacker(depth=4, size=16)


def tree_from_ccii(ccii: Path, tree: Path, names: dict[str, str] | None = None) -> Path:
    """The CC-CCII phantom's scans as ``TREE/<class>/<patient>_<scan>`` (copies)."""
    for class_dir in sorted(p for p in ccii.iterdir() if p.is_dir() and p.name in MODEL_LABELS):
        for scan in sorted(class_dir.glob("*/*")):
            if scan.is_dir():
                name = (names or {}).get(class_dir.name, class_dir.name)
                shutil.copytree(scan, tree / name / f"{scan.parent.name}_{scan.name}")
    return tree


@pytest.fixture(scope="module")
def layouts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Six one-scan patients (two per class) as CC-CCII, and the same scans as a tree."""
    base = tmp_path_factory.mktemp("layouts")
    ccii = phantom.write_dataset(
        base / "ccii", patients=6, size=32, seed=3, slices=8, scans_per_patient=1, masks=False
    )
    return ccii, tree_from_ccii(ccii, base / "tree")


@pytest.fixture(scope="module")
def model() -> ResNet3D:
    """An untrained tiny model whose outputs are named NCP, CP, Normal (its probabilities
    differ between scans, which is all that matching by name needs)."""
    torch.manual_seed(5)
    net = create_model("resnet10", num_classes=3, **TINY).eval()
    net.pretrained_cfg = {"labels": list(MODEL_LABELS), "preprocessing": STACKER.to_dict()}
    return net


@pytest.fixture()
def export(model: ResNet3D, tmp_path: Path) -> Path:
    """The model as an export folder (``from_pretrained``, ``--pretrained``)."""
    folder = tmp_path / "export"
    model.save_pretrained(folder, preprocessing=STACKER.to_dict(), labels=MODEL_LABELS)
    return folder


def evaluate(model: ResNet3D, root: Path, layout: str) -> dict:
    index = ScanIndex.from_path(root, layout)
    evaluation = evaluate_model(model, VolumeDataset(index, STACKER), device="cpu", workers=0)
    return evaluation.to_dict()


def test_tree_layout_scores_same_as_ccii_layout(
    layouts: tuple[Path, Path], model: ResNet3D
) -> None:
    ccii, tree = layouts
    assert ScanIndex.from_path(tree, "tree").classes == ("CP", "NCP", "Normal")
    by_ccii = evaluate(model, ccii, "ccii")
    by_tree = evaluate(model, tree, "tree")
    assert by_tree == by_ccii
    assert by_ccii["volume"]["labels"] == MODEL_LABELS
    # Control: the tree's labels taken by position (the old behaviour) score differently.
    tree_set = VolumeDataset(ScanIndex.from_path(tree, "tree"), STACKER)
    with torch.no_grad():
        probs = torch.softmax(model(torch.stack([v for v, *_ in tree_set])), 1).double().numpy()
    by_position = classification_report(
        tree_set.targets, probs, labels=MODEL_LABELS, zero_division=0.0
    )
    assert by_position.to_dict() != by_ccii["volume"]


def test_tree_layout_in_cli_evaluate_writes_same_metrics_as_ccii(
    layouts: tuple[Path, Path], export: Path, tmp_path: Path
) -> None:
    ccii, tree = layouts
    documents = []
    for root, layout in ((ccii, "ccii"), (tree, "tree")):
        out = tmp_path / layout
        argv = ["evaluate", "--pretrained", str(export), "--data", str(root), "--split", "all"]
        assert main([*argv, "--layout", layout, "--out", str(out), "--no-plots"]) == 0
        documents.append(json.loads((out / "evaluation.json").read_text()))
    assert documents[0]["labels"] == documents[1]["labels"] == MODEL_LABELS
    assert documents[0]["levels"] == documents[1]["levels"]


@pytest.fixture()
def ab_tree(layouts: tuple[Path, Path], tmp_path: Path) -> Path:
    """The NCP and CP scans as a tree with classes ``A`` and ``B``."""
    tree = tree_from_ccii(layouts[0], tmp_path / "ab", names={"NCP": "A", "CP": "B"})
    shutil.rmtree(tree / "Normal")
    return tree


def test_unknown_class_names_are_an_error_listing_both_sets(ab_tree: Path, model: ResNet3D) -> None:
    with pytest.raises(ValueError, match=r"\['A', 'B'\].*NCP.*CP.*Normal") as info:
        evaluate(model, ab_tree, "tree")
    assert "\n" not in str(info.value)


def test_unknown_class_names_in_cli_evaluate_are_one_line_exit_2(
    ab_tree: Path, export: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    argv = ["evaluate", "--pretrained", str(export), "--data", str(ab_tree), "--layout", "tree"]
    assert main([*argv, "--split", "all", "--no-plots", "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "Traceback" not in err
    assert "['A', 'B']" in errors[0] and "['NCP', 'CP', 'Normal']" in errors[0]
    assert not (tmp_path / "e" / "evaluation.json").exists()


@pytest.mark.filterwarnings("ignore::resnet3d.metrics.UndefinedMetricWarning")
def test_data_with_some_of_the_model_classes_reports_every_model_class(
    layouts: tuple[Path, Path], model: ResNet3D
) -> None:
    ccii, _ = layouts
    index = ScanIndex.from_path(ccii, "ccii")
    only_cp = index.subset(lambda row: row.label == "CP")
    evaluation = evaluate_model(model, VolumeDataset(only_cp, STACKER), device="cpu", workers=0)
    report = evaluation.to_dict()["volume"]
    assert report["labels"] == MODEL_LABELS
    assert report["per_class"]["CP"]["support"] == report["n_samples"] > 0
    assert report["per_class"]["NCP"]["support"] == 0
    assert report["per_class"]["NCP"]["auroc"] is None  # undefined, never a made-up number
    assert report["weighted"]["recall"] == report["per_class"]["CP"]["recall"]
    np.testing.assert_array_equal(evaluation.predictions.labels, 1)  # CP is output 1


def test_pretrained_head_in_another_order_is_reordered_by_name(
    layouts: tuple[Path, Path], model: ResNet3D, export: Path, tmp_path: Path
) -> None:
    _, tree = layouts
    config = TrainConfig(
        out_dir=str(tmp_path / "run"),
        pretrained=str(export),
        epochs=1,
        batch_size=2,
        lr=1e-12,  # a step that leaves the head as it was, up to rounding
        progress=False,
        workers=0,
        precision="fp32",
    )
    result = fit_from_folder(tree, config, STACKER, layout="tree", fractions=(0.5, 0.5, 0.0))
    state = load_checkpoint(result.last_checkpoint)
    assert state["labels"] == ["CP", "NCP", "Normal"]  # the data's order, the head follows
    fc = model.fc.weight.detach()
    torch.testing.assert_close(state["model"]["fc.weight"], fc[[1, 0, 2]], rtol=0, atol=1e-6)


def test_pretrained_head_with_other_classes_is_an_error_without_new_head(
    layouts: tuple[Path, Path], export: Path, tmp_path: Path
) -> None:
    ccii, _ = layouts
    tree = tree_from_ccii(ccii, tmp_path / "abc", names={"NCP": "A", "CP": "B", "Normal": "C"})
    common = dict(pretrained=str(export), epochs=1, batch_size=2, progress=False, workers=0)
    config = TrainConfig(out_dir=str(tmp_path / "run"), **common)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\['A', 'B', 'C'\].*\['NCP', 'CP', 'Normal'\]"):
        fit_from_folder(tree, config, STACKER, layout="tree", fractions=(0.5, 0.5, 0.0))
    assert not (tmp_path / "run" / "last.pt").exists()
    fresh = TrainConfig(out_dir=str(tmp_path / "new"), new_head=True, **common)  # type: ignore[arg-type]
    result = fit_from_folder(tree, fresh, STACKER, layout="tree", fractions=(0.5, 0.5, 0.0))
    assert load_checkpoint(result.last_checkpoint)["labels"] == ["A", "B", "C"]


def test_resume_with_classes_listed_in_another_order_continues_by_name(
    layouts: tuple[Path, Path], tmp_path: Path
) -> None:
    ccii, _ = layouts
    config = TrainConfig(
        out_dir=str(tmp_path / "run"),
        model="resnet10",
        model_overrides=dict(TINY),
        epochs=1,
        batch_size=2,
        progress=False,
        workers=0,
        precision="fp32",
    )
    fit_from_folder(ccii, config, STACKER, fractions=(0.5, 0.5, 0.0))
    # The same scans and patients as a CSV without label_index: classes in sorted order.
    listing = tmp_path / "scans.csv"
    with open(listing, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "patient_id", "scan_id"])
        for row in ScanIndex.from_path(ccii, "ccii"):
            writer.writerow([row.path, row.label, row.patient_id, row.scan_id])
    assert ScanIndex.from_path(listing, "csv").classes == ("CP", "NCP", "Normal")
    config.epochs = 2
    fit_from_folder(
        listing, config, STACKER, layout="csv", fractions=(0.5, 0.5, 0.0), resume="auto"
    )
    state = load_checkpoint(tmp_path / "run" / "last.pt")
    assert state["epoch"] == 2 and state["labels"] == MODEL_LABELS
