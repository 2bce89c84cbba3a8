"""Small models and scans shared by the explanation tests (Grad-CAM and occlusion)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn

import resnet3d
from resnet3d.data import phantom
from resnet3d.data.volumes import SliceStacker

TINY = (4, 8, 16, 32)


def tiny(name: str = "resnet18", seed: int = 0, **overrides: Any) -> nn.Module:
    torch.manual_seed(seed)
    fields: dict[str, Any] = {"num_classes": 3, "widths": TINY, **overrides}
    return resnet3d.create_model(name, **fields).eval()


def hook_count(model: nn.Module) -> int:
    total = 0
    for module in model.modules():
        for attr in (
            "_forward_hooks",
            "_forward_pre_hooks",
            "_backward_hooks",
            "_backward_pre_hooks",
            "_state_dict_hooks",
            "_load_state_dict_pre_hooks",
        ):
            total += len(getattr(module, attr, {}))
    return total


def write_scan(folder: Path, label: str = "NCP", n: int = 10, size: int = 32) -> Path:
    scan = phantom.generate_scan(label, seed=7, n_slices=n, size=size, return_hu=False)
    folder.mkdir(parents=True)
    for i, gray in enumerate(scan.slices):
        Image.fromarray(gray).save(folder / f"{i:04d}.png")
    return folder


def scan_model(depth: int = 4, size: int = 32) -> nn.Module:
    model = tiny("resnet10", in_channels=1)
    with torch.no_grad():  # positive class weights: every class has evidence, maps are not 0
        model.fc.weight.abs_()
    stacker = SliceStacker(depth=depth, size=size, channels=1)
    model.pretrained_cfg = {"preprocessing": stacker.to_dict(), "labels": ["NCP", "CP", "Normal"]}
    return model


def exported_scan(tmp_path: Path) -> list[str]:
    """An 8-slice scan and :func:`scan_model` exported with ``save_pretrained``: the
    ``resnet3d explain`` argv for them, writing to ``tmp_path / "out"``."""
    scan = write_scan(tmp_path / "scan", n=8)
    model = scan_model()
    export = tmp_path / "export"
    model.save_pretrained(
        export, preprocessing=model.pretrained_cfg["preprocessing"], labels=["NCP", "CP", "Normal"]
    )
    out = tmp_path / "out"
    return ["explain", str(scan), "--pretrained", str(export), "--out", str(out), "--no-progress"]
