"""The model card (``README.md`` of an export) with Hub metadata front matter."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .table import Metric

if TYPE_CHECKING:
    from ..models.resnet import ResNet3D

__all__ = ["render_model_card", "write_model_card"]


def _fmt(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "x".join(str(v) for v in value)
    return "none" if value is None else str(value)


def write_model_card(
    path: Path, model: ResNet3D, document: Mapping[str, Any], metrics: Sequence[Metric]
) -> None:
    """Write the model card (``README.md``) with Hub metadata front matter."""
    path.write_text(render_model_card(model, document, metrics), encoding="utf-8")


def render_model_card(
    model: ResNet3D, document: Mapping[str, Any], metrics: Sequence[Metric]
) -> str:
    """The model card text for ``model`` and its ``config.json`` ``document``."""
    config = model.config
    name = document.get("alias") or config.name or "resnet3d model"
    params = sum(p.numel() for p in model.parameters())
    front = ["---", "library_name: resnet3d"]
    if document.get("license"):
        front.append(f"license: {document['license']}")
    front += [
        "tags:",
        "  - resnet3d",
        "  - 3d-cnn",
        "  - medical-imaging",
        "  - computed-tomography",
        "---",
    ]
    lines = [*front, "", f"# {name}", ""]
    if document.get("description"):
        lines += [str(document["description"]), ""]
    lines += [
        "## Model",
        "",
        f"- Architecture: `{config.name or 'custom'}` ({config.block} blocks, layers "
        f"{_fmt(config.layers)}, widths {_fmt(config.widths)}, {config.conv} convolutions, "
        f"type-{config.shortcut} shortcuts), {params / 1e6:.2f}M parameters.",
        f"- Stem: kernel {_fmt(config.stem_kernel)}, stride {_fmt(config.stem_stride)}, "
        f"max pool {'yes' if config.stem_pool else 'no'}.",
        f"- Input: `(B, {config.in_channels}, D, H, W)`; output: "
        + (f"`(B, {config.num_classes})` logits." if config.num_classes else "pooled features."),
    ]
    labels = document.get("labels")
    if labels:
        lines.append(f"- Classes (output order): {', '.join(labels)}.")
    lines.append(f"- Written by resnet3d {document.get('library_version')}.")
    lines += ["", "## Preprocessing", ""]
    spec = document.get("preprocessing")
    if spec:
        lines += [
            "Build input volumes with `resnet3d.data.volumes.SliceStacker` configured as:",
            "",
            "| argument | value |",
            "|---|---|",
            *[f"| `{k}` | `{v!r}` |" for k, v in spec.items()],
        ]
    else:
        lines.append("Not recorded.")
    lines += ["", "## Training data", "", str(document.get("dataset") or "Not recorded."), ""]
    lines += ["## Metrics", ""]
    if metrics:
        lines += ["| metric | value | unit | split |", "|---|---|---|---|"]
        lines += [f"| {m.name} | {m.value:.4f} | {m.unit} | {m.split} |" for m in metrics]
    else:
        lines.append("No metrics recorded for these weights.")
    lines += [
        "",
        "## How to use",
        "",
        "```python",
        "import resnet3d",
        "",
        'model = resnet3d.from_pretrained("ORG/NAME")  # this repo',
        "print(model.pretrained_cfg['preprocessing'], model.pretrained_cfg['labels'])",
        "```",
        "",
        "## Intended use",
        "",
        "Research on 3D convolutional classification of CT volumes (and other volumetric data), "
        "reproduction of published results, and as a starting point for fine-tuning.",
        "",
        "## Limitations",
        "",
        "- **Research use only. Not a medical device and not for clinical decisions**: it has "
        "not been validated for diagnosis, screening or triage of any patient.",
        "- Results hold for data prepared exactly as above, from the population and scanners of "
        "the training data; other hospitals, scanners, reconstructions or slice spacings may "
        "change its behaviour without warning.",
        "- Metrics are for the split named in the table only.",
        "",
        "## Citation",
        "",
        "Li, Pei and Guo, *A 3D CNN Classification Model for Accurate Diagnosis of Coronavirus "
        "Disease 2019 using Computed Tomography Images*, medRxiv 10.1101/2021.01.21.21249999 "
        "(2021).",
        "",
    ]
    return "\n".join(lines)
