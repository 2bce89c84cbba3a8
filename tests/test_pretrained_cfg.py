"""PretrainedCfg: one typed record of what travels with weights, through JSON and back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import resnet3d
from resnet3d.data.volumes import SliceStacker
from resnet3d.models.pretrained import from_pretrained
from resnet3d.presets import PREPROCESSING_KEYS
from resnet3d.weights.cfg import PretrainedCfg
from resnet3d.weights.table import Metric
from resnet3d.workflows import model_from_checkpoint

SPEC = SliceStacker(depth=4, size=16).to_dict()


def full_cfg() -> PretrainedCfg:
    return PretrainedCfg(
        architecture="resnet18",
        preprocessing=SPEC,
        labels=("NCP", "CP", "Normal"),
        metrics=(Metric("accuracy", 0.5, "test split"),),
        license="apache-2.0",
        dataset="CC-CCII",
        description="one line",
        source="hub",
        repo_id="org/name",
        revision="0" * 40,
        alias="ccii-depth4",
        library_version="0.1.0",
        adapted={"num_classes": (3, 5)},
    )


def test_json_round_trip_is_exact() -> None:
    cfg = full_cfg()
    again = PretrainedCfg.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    assert again.metrics[0] == Metric("accuracy", 0.5, "test split")
    assert again.adapted["num_classes"] == (3, 5)


def test_reads_like_the_dict_it_replaces() -> None:
    cfg = PretrainedCfg(preprocessing=SPEC, labels=["a", "b"], source="local", path="/x")
    assert cfg["labels"] == ["a", "b"] and cfg.get("preprocessing") == SPEC
    assert "alias" not in cfg and cfg["source"] == "local"
    assert cfg["metrics"] == [] and cfg["adapted"] == {}
    assert dict(cfg) == cfg.to_dict()


def test_it_is_frozen_and_replace_validates() -> None:
    cfg = full_cfg()
    with pytest.raises(AttributeError):
        cfg.labels = ("x",)  # type: ignore[misc]
    with pytest.raises(ValueError, match="unknown preprocessing keys"):
        cfg.replace(preprocessing={"depht": 4})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"labelz": ["a"]}, "Did you mean 'labels'"),
        ({"labels": "abc"}, "sequence of strings"),
        ({"source": "ftp"}, "source must be one of"),
        ({"preprocessing": {"size": 16, "dpeth": 4}}, "unknown preprocessing keys"),
        ({"metrics": [{"name": "acc"}]}, "lacks"),
    ],
)
def test_bad_fields_are_refused(data: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PretrainedCfg.from_dict(data)


def test_one_list_of_preprocessing_keys() -> None:
    every_field = SliceStacker(depth=4, size=16, crop=(8, 8), mean=(0.5,) * 3, std=(0.2,) * 3)
    assert set(every_field.to_dict()) == set(PREPROCESSING_KEYS)


def test_save_load_and_checkpoint_carry_the_same_record(tmp_path: Path) -> None:
    model = resnet3d.create_model("resnet10", num_classes=3, widths=(4, 8, 8, 8))
    model.pretrained_cfg = {"preprocessing": SPEC, "labels": ["NCP", "CP", "Normal"]}
    assert isinstance(model.pretrained_cfg, PretrainedCfg)
    folder = model.save_pretrained(tmp_path / "export", license="mit")
    loaded = from_pretrained(folder).pretrained_cfg
    assert isinstance(loaded, PretrainedCfg)
    assert loaded.preprocessing == SPEC and loaded.labels == ("NCP", "CP", "Normal")
    assert loaded.license == "mit" and loaded.source == "local"
    assert loaded.architecture == "resnet10"

    state = {
        "format_version": 1,
        "model": model.state_dict(),
        "optimizer": {},
        "epoch": 3,
        "step": 9,
        "model_config": model.config.to_dict(),
        "labels": ["NCP", "CP", "Normal"],
        "metadata": {"preprocessing": SPEC},
    }
    torch.save(state, tmp_path / "best.pt")
    rebuilt = model_from_checkpoint(tmp_path / "best.pt").pretrained_cfg
    assert rebuilt == PretrainedCfg.from_checkpoint(state, tmp_path / "best.pt")
    assert rebuilt is not None and rebuilt.epoch == 3 and rebuilt.source == "checkpoint"
    assert rebuilt.preprocessing == SPEC and rebuilt.labels == loaded.labels
