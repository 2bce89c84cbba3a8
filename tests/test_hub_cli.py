"""``resnet3d export`` and ``resnet3d models --pretrained`` (``push`` is tested beside the
loopback Hub server in test_hub_download.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import resnet3d
from resnet3d._utils import sha256_file
from resnet3d.cli import main
from resnet3d.data.volumes import SliceStacker
from resnet3d.engine.checkpoint import save_checkpoint
from resnet3d.metrics import classification_report
from resnet3d.models.pretrained import from_pretrained
from resnet3d.weights.evaluation import metrics_from_evaluation

LABELS = ["NCP", "CP", "Normal"]


def training_checkpoint(path: Path, **changes: Any) -> tuple[resnet3d.ResNet3D, Path]:
    """A checkpoint with the keys ``resnet3d train`` writes (see Trainer.state_dict)."""
    torch.manual_seed(0)
    model = resnet3d.create_model("resnet18", widths=(4, 8, 8, 8), layers=(1, 1, 1, 1)).eval()
    state: dict[str, Any] = {
        "format_version": 1,
        "model": model.state_dict(),
        "optimizer": {"state": {}, "param_groups": []},
        "epoch": 20,
        "step": 400,
        "model_name": "resnet18",
        "model_config": model.config.to_dict(),
        "labels": LABELS,
        "metadata": {"preprocessing": SliceStacker(depth=4, size=16).to_dict(), "labels": LABELS},
    }
    state.update(changes)
    return model, save_checkpoint(state, path)


def evaluation_json(path: Path, labels: list[str] = LABELS) -> Path:
    """An evaluation.json as ``resnet3d evaluate`` writes it, from the real report code."""
    rng = np.random.default_rng(0)
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    probs = rng.dirichlet(np.ones(3), size=len(y))
    probs[np.arange(len(y)), y] += 1.0  # mostly right
    probs /= probs.sum(1, keepdims=True)
    patients = ["p0", "p1", "p2", "p0", "p1", "p2", "p3", "p4"]
    levels = {
        "volume": classification_report(y, probs, labels, zero_division=0.0).to_dict(),
        "patient": classification_report(
            y, probs, labels, groups=patients, zero_division=0.0
        ).to_dict(),
    }
    path.write_text(json.dumps({"labels": labels, "levels": levels}, allow_nan=False))
    return path


def test_export_checkpoint_with_metrics(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model, ckpt = training_checkpoint(tmp_path / "run" / "best.pt")
    eval_file = evaluation_json(tmp_path / "evaluation.json")
    out = tmp_path / "export"
    status = main(
        [
            "export",
            str(ckpt),
            str(out),
            "--eval-json",
            str(eval_file),
            "--split",
            "synthetic test",
            "--license",
            "apache-2.0",
        ]
    )
    printed = capsys.readouterr().out
    assert status == 0
    assert sha256_file(out / "model.safetensors") in printed
    loaded = from_pretrained(out)
    x = torch.randn(1, 3, 4, 16, 16)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    cfg = loaded.pretrained_cfg
    assert cfg is not None
    assert cfg["labels"] == LABELS and cfg["license"] == "apache-2.0"
    # The spec configures the volume builder exactly as in training.
    assert SliceStacker.from_dict(cfg["preprocessing"]) == SliceStacker(depth=4, size=16)
    doc = json.loads(eval_file.read_text())
    metrics = {m["name"]: m for m in cfg["metrics"]}
    assert metrics["volume_accuracy"]["value"] == doc["levels"]["volume"]["accuracy"]
    assert metrics["patient_macro_auroc"]["value"] == doc["levels"]["patient"]["macro"]["auroc"]
    assert metrics["patient_accuracy"]["split"] == "synthetic test, patient level (n=5)"
    assert "| volume_accuracy |" in (out / "README.md").read_text()


def test_metrics_from_evaluation_formats(tmp_path: Path) -> None:
    eval_file = evaluation_json(tmp_path / "e.json")
    metrics, labels = metrics_from_evaluation(eval_file)
    assert labels == LABELS
    assert {m.name for m in metrics} >= {
        "volume_accuracy",
        "volume_macro_f1",
        "patient_macro_recall",
    }
    assert metrics[0].split.startswith("split not recorded (e.json), volume level")
    single = json.loads(eval_file.read_text())["levels"]["volume"]
    (tmp_path / "single.json").write_text(json.dumps(single))
    metrics, _ = metrics_from_evaluation(tmp_path / "single.json", split="held-out")
    assert metrics[0].name == f"{single['level']}_accuracy" and metrics[0].split.startswith(
        "held-out"
    )
    (tmp_path / "bad.json").write_text('{"loss": 0.1}')
    with pytest.raises(ValueError, match="not an evaluation report"):
        metrics_from_evaluation(tmp_path / "bad.json")


def test_model_card_names_the_split_that_evaluate_recorded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``resnet3d evaluate --split test`` records the split; ``export`` names it in the card."""
    from resnet3d.data.index import ScanIndex
    from resnet3d.data.phantom import write_dataset
    from resnet3d.data.split import split_by_patient

    root = write_dataset(
        tmp_path / "data", patients=9, size=32, slices=(4, 4), scans_per_patient=(1, 1)
    )
    _, ckpt = training_checkpoint(tmp_path / "run" / "best.pt")
    split = split_by_patient(ScanIndex.from_ccii(root), fractions=(0.34, 0.33, 0.33))
    split.to_json(tmp_path / "run" / "split.json")  # where evaluate looks, beside the checkpoint
    evaluate = ["evaluate", "--checkpoint", str(ckpt), "--data", str(root), "--split", "test"]
    assert main([*evaluate, "--out", str(tmp_path / "eval"), "--no-plots"]) == 0
    eval_file = tmp_path / "eval" / "evaluation.json"
    assert json.loads(eval_file.read_text())["split"] == "test"
    assert main(["export", str(ckpt), str(tmp_path / "export"), "--eval-json", str(eval_file)]) == 0
    card = (tmp_path / "export" / "README.md").read_text()
    n_test = len({row.patient_id for row in split.test})
    assert "| patient_accuracy | " in card
    assert f"| test split, patient level (n={n_test}) |" in card
    assert "evaluation set" not in card and "not recorded" not in card
    capsys.readouterr()


def test_metrics_from_evaluation_names_recorded_splits(tmp_path: Path) -> None:
    eval_file = evaluation_json(tmp_path / "e.json")
    doc = json.loads(eval_file.read_text())
    for recorded, text in [
        ("valid", "valid split"),
        ("all", "all scans (no split)"),
        ("CC-CCII test", "CC-CCII test"),
    ]:
        eval_file.write_text(json.dumps({**doc, "split": recorded}))
        metrics, _ = metrics_from_evaluation(eval_file)
        assert metrics[0].split == f"{text}, volume level (n=8)"
        # An explicit split (CLI: export --split) wins over the recorded one.
        metrics, _ = metrics_from_evaluation(eval_file, split="held-out")
        assert metrics[0].split.startswith("held-out, volume level")


def test_export_refuses_evaluation_of_other_labels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, ckpt = training_checkpoint(tmp_path / "best.pt")
    eval_file = evaluation_json(tmp_path / "e.json", labels=["a", "b", "c"])
    status = main(["export", str(ckpt), str(tmp_path / "out"), "--eval-json", str(eval_file)])
    assert status == 2
    assert "evaluates labels ['a', 'b', 'c']" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_export_refuses_bad_checkpoints(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, ckpt = training_checkpoint(tmp_path / "best.pt", model={"conv1.weight": torch.zeros(1)})
    assert main(["export", str(ckpt), str(tmp_path / "out")]) == 2
    assert "does not match the model" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "missing.pt"), str(tmp_path / "out")]) == 2
    assert "not found" in capsys.readouterr().err


def test_export_refuses_a_malicious_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self) -> tuple[object, tuple[object, ...]]:
            return (Path.touch, (marker,))

    _, ckpt = training_checkpoint(tmp_path / "best.pt", metadata={"x": Payload()})
    assert main(["export", str(ckpt), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "is not a safe checkpoint" in err and "will likely succeed" not in err
    assert len(err.strip().splitlines()) == 1
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_models_pretrained_lists_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--pretrained"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["alias", "model", "channels", "depth", "size", "weights"]
    assert any(line.split()[:2] == ["ccii-depth4", "resnet18"] for line in lines)
    assert "not published" in out and "training recipe" in out
    assert main(["models", "--pretrained", "nothing*"]) == 1
