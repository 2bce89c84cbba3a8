"""One scan explained: heatmaps per slice, overlay PNGs, a contact sheet and a summary."""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from .._utils import atomic_open, atomic_write_text, check_choice
from ._common import CamResult, _device_and_dtype, _evaluating, _labels_of, _model_input
from .cam import CAM_METHODS, grad_cam
from .pictures import _draw_lines, _upscale, contact_sheet, overlay
from .sensitivity import occlusion
from .slices import slice_heatmaps

if TYPE_CHECKING:
    from PIL import Image as PILImage

    from ..data.volumes import SliceStacker

logger = logging.getLogger(__name__)

METHODS: tuple[str, ...] = (*CAM_METHODS, "occlusion")
"""The methods :func:`explain_scan` offers: the class activation maps of
:func:`~resnet3d.explain.grad_cam` and :func:`~resnet3d.explain.occlusion`."""

NORMALIZE: tuple[str, ...] = ("scan", "volume")
"""How :func:`explain_scan` scales heatmaps to ``[0, 1]``: over the whole scan or per volume."""

SUMMARY_NAME = "explanation.json"
"""The summary :func:`explain_scan` writes beside the overlays (it also marks the folder)."""

_SLICE_PATTERN = re.compile(r"^slice_\d{4,}\.png$")


@dataclass
class ScanExplanation:
    """Grad-CAM of one scan, slice by slice.

    Attributes:
        scan: The scan folder (or NIfTI file).
        labels: Class names of the model's outputs.
        probs: The scan's class probabilities (softmax averaged over its volumes, as
            :func:`resnet3d.workflows.predict_scans` computes them).
        volume_probs: Class probabilities of each volume.
        target: Index of the class the heatmaps explain.
        heatmaps: Heatmap of every original slice in ``[0, 1]`` at the model's input size;
            ``NaN`` for slices no volume covers.
        covered: Whether some volume contains the slice.
        slices: The slices as the model saw them (after resizing and windowing), gray
            ``uint8``.
        indices: Slice numbers of each volume (``SliceStacker.volume_indices``).
        layer: The layer the maps come from.
        method: ``"gradcam"``, ``"gradcam++"`` or ``"layercam"``.
        normalize: ``"scan"`` or ``"volume"`` (see :func:`explain_scan`).
        feature_shape: ``(d, h, w)`` of the layer's feature map (the maps' true resolution).
        files: Overlay PNGs written, one per slice, in slice order.
        contact_sheet: The contact sheet PNG, when written.
        summary: The JSON summary, when written.

    Shape:
        ``heatmaps`` and ``slices``: ``(n_slices, H, W)``; ``covered``: ``(n_slices,)``;
        ``volume_probs``: ``(N, num_classes)``; ``indices``: ``(N, D)``.
    """

    scan: Path
    labels: list[str]
    probs: np.ndarray
    volume_probs: np.ndarray
    target: int
    heatmaps: np.ndarray
    covered: np.ndarray
    slices: np.ndarray
    indices: np.ndarray
    layer: str
    method: str
    normalize: str
    feature_shape: tuple[int, int, int]
    files: list[Path] = field(default_factory=list)
    contact_sheet: Path | None = None
    summary: Path | None = None

    @property
    def prediction(self) -> str:
        """The scan's most probable class."""
        return self.labels[int(np.argmax(self.probs))]

    @property
    def target_label(self) -> str:
        """The class the heatmaps explain."""
        return self.labels[self.target]

    @property
    def n_slices(self) -> int:
        """Slices in the scan."""
        return int(self.heatmaps.shape[0])

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (no arrays): prediction, probabilities, layer, files."""
        return {
            "scan": os.fspath(self.scan),
            "prediction": self.prediction,
            "probabilities": {k: float(v) for k, v in zip(self.labels, self.probs)},
            "target": self.target_label,
            "method": self.method,
            "layer": self.layer,
            "feature_shape": list(self.feature_shape),
            "normalize": self.normalize,
            "n_slices": self.n_slices,
            "n_volumes": len(self.volume_probs),
            "uncovered_slices": [int(i) for i in np.flatnonzero(~self.covered)],
            "files": [p.name for p in self.files],
            "contact_sheet": None if self.contact_sheet is None else self.contact_sheet.name,
        }


def _gray_u8(prepared: np.ndarray) -> np.ndarray:
    """Prepared slices ``(S, H, W[, C])`` (uint8 or float in [0, 1]) as gray uint8."""
    arr = prepared.astype(np.float32) / 255.0 if prepared.dtype == np.uint8 else prepared
    if arr.ndim == 4:
        arr = arr.mean(axis=-1)
    return np.rint(np.clip(arr, 0.0, 1.0) * 255.0).astype(np.uint8)


def _clear_stale(out: Path, keep: set[str]) -> None:
    """Remove overlays of an earlier explanation in ``out`` that this one does not rewrite."""
    if not (out / SUMMARY_NAME).is_file():
        return
    for path in out.iterdir():
        if _SLICE_PATTERN.match(path.name) and path.name not in keep and path.is_file():
            path.unlink()


def _save_png(image: PILImage.Image, path: Path) -> None:
    with atomic_open(path) as handle:
        image.save(handle, format="PNG", optimize=True)


def explain_scan(
    model: nn.Module,
    scan: str | os.PathLike[str],
    stacker: SliceStacker | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    *,
    target: int | str | None = None,
    layer: str = "auto",
    method: str = "gradcam",
    patch: int | Sequence[int] | None = None,
    stride: int | Sequence[int] | None = None,
    fill: str | float = "mean",
    normalize: str = "scan",
    batch_size: int = 8,
    alpha: float = 0.5,
    min_size: int | None = 256,
    tile: int = 128,
    columns: int | None = None,
    progress: bool = False,
) -> ScanExplanation:
    """Heatmaps of one scan, mapped back to its slices, with one overlay PNG per slice.

    The scan is stacked into volumes as the model's preprocessing spec says (or as
    ``stacker`` says), every volume is classified, the scan's prediction is the mean of the
    volume probabilities, and each volume's map for the target class (Grad-CAM by default,
    or occlusion sensitivity) is put back on the slices it was made of (averaged where
    volumes overlap, see :func:`slice_heatmaps`).

    With ``out_dir``, writes there: ``slice_0000.png``, ``slice_0001.png``, ... (the slice as
    the model saw it, in gray, the heatmap in colour, the predicted class and probability
    and the slice number written on it), ``contact_sheet.png`` (all slices on one grid under
    a title line) and ``explanation.json`` (the summary). Overlays of an earlier
    explanation in the same folder that this one does not overwrite are removed.

    Args:
        model: The classifier; it is left as it was (see :func:`grad_cam`).
        scan: A folder of slices or a NIfTI file.
        stacker: The volume builder; default the model's (``model.pretrained_cfg``, as
            :func:`resnet3d.workflows.stacker_for` builds it).
        out_dir: Where to write the pictures; ``None`` writes nothing.
        target: The class to explain, index or name; default the scan's predicted class.
        layer: See :func:`grad_cam` (default: :func:`default_layer`); the CAM methods only.
        method: ``"gradcam"``, ``"gradcam++"``, ``"layercam"`` (:func:`grad_cam`) or
            ``"occlusion"`` (:func:`occlusion`: slower, one forward pass per window, but it
            measures the model instead of its gradients).
        patch: Occlusion window (see :func:`occlusion`); ``method="occlusion"`` only.
        stride: Occlusion step (see :func:`occlusion`); ``method="occlusion"`` only.
        fill: What fills an occluded window (see :func:`occlusion`).
        normalize: ``"scan"`` (default): raw map values averaged per slice, then scaled to
            ``[0, 1]`` over the whole scan, so a volume with little evidence stays cold.
            ``"volume"``: every volume's map scaled to ``[0, 1]`` first, so every volume
            shows its own hottest spot.
        batch_size: Volumes per forward/backward pass (occluded copies per pass for
            occlusion).
        alpha: Opacity of the heatmap colour at heat 1.
        min_size: Overlays smaller than this (long side, pixels) are upscaled by an integer
            factor so the text stays legible; ``None`` keeps the model's input size.
        tile: Long side of each slice on the contact sheet, in pixels.
        columns: Slices per row on the contact sheet; default about square.
        progress: Show a progress bar over the batches (stderr).

    Returns:
        The per-slice heatmaps, the scan's prediction and the files written.

    Raises:
        FileNotFoundError: If the scan does not exist.
        ValueError: If the scan yields no volume (shorter than the depth with
            ``remainder="drop"``), the model has no preprocessing spec and no ``stacker`` is
            given, or an argument is invalid.
    """
    from ..data.readers import scan_files
    from ..data.volumes import SliceStacker

    check_choice("normalize", normalize, NORMALIZE)
    check_choice("method", method, METHODS)
    if method == "occlusion" and layer != "auto":
        raise ValueError(
            f"layer={layer!r} applies to the class activation maps {list(CAM_METHODS)}; "
            "occlusion hides parts of the input and has no layer"
        )
    if method != "occlusion" and (patch is not None or stride is not None):
        raise ValueError(
            f"patch and stride apply to method='occlusion' only, not method={method!r}"
        )
    if not (isinstance(alpha, (int, float)) and 0.0 <= alpha <= 1.0):
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")
    if min_size is not None and (
        not isinstance(min_size, int) or isinstance(min_size, bool) or min_size < 1
    ):
        raise ValueError(f"min_size must be an int >= 1 or None, got {min_size!r}")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    path = Path(scan)
    if not path.exists():
        raise FileNotFoundError(f"scan not found: {path}")
    if stacker is None:
        from ..workflows import stacker_for

        stacker = stacker_for(model)  # type: ignore[arg-type]
    elif not isinstance(stacker, SliceStacker):
        raise TypeError(f"stacker must be a SliceStacker, got {type(stacker).__name__}")

    files = scan_files(path)
    prepared = stacker.read(files)
    n_slices = len(prepared)
    indices = stacker.volume_indices(n_slices)
    if len(indices) == 0:
        raise ValueError(
            f"{path}: {n_slices} slices give no volume of depth {stacker.depth} "
            f"(remainder={stacker.remainder!r}); use a stacker with remainder='pad'"
        )
    volumes = torch.from_numpy(stacker.stack_prepared(prepared, indices))
    gray = _gray_u8(prepared)
    del prepared

    labels: list[str] | None = None
    volume_probs: Tensor | None = None
    cam_target: Any = target
    if target is None:
        # The scan's class decides what to explain, so the scan must be classified first;
        # a no-grad pass is a fraction of the cost of the Grad-CAM pass.
        volume_probs = _predict(model, volumes, batch_size)
        labels = _labels_of(model, int(volume_probs.shape[1]))
        cam_target = int(volume_probs.mean(dim=0).argmax())

    cams: list[CamResult] = []
    if method == "occlusion":
        cams.append(
            occlusion(
                model,
                volumes,
                target=cam_target,
                patch=patch,
                stride=stride,
                fill=fill,
                batch_size=batch_size,
                normalize=normalize == "volume",
                progress=progress,
            )
        )
    else:
        from tqdm.auto import tqdm

        starts = range(0, len(volumes), batch_size)
        for start in tqdm(starts, desc="grad-cam", unit="batch", disable=not progress):
            cams.append(
                grad_cam(
                    model,
                    volumes[start : start + batch_size],
                    target=cam_target,
                    layer=layer,
                    method=method,
                    batch_size=batch_size,
                    normalize=normalize == "volume",
                )
            )
    cam = cams[0]
    probs_all = volume_probs if volume_probs is not None else torch.cat([c.probs for c in cams])
    if labels is None:
        labels = _labels_of(model, int(probs_all.shape[1]))
    target_index = int(cam.targets[0])

    heat, covered = slice_heatmaps(torch.cat([c.heatmaps for c in cams]), indices, n_slices)
    if covered.any() and not np.any(heat[covered] > 0):
        # Grad-CAM's ReLU zeroes a map whose weighted features all speak against the class
        # (and no occluded window may lower the score); a blank picture without a word would
        # look like a bug.
        hint = (
            "no occluded window lowers the class score; try a larger patch"
            if method == "occlusion"
            else "no positive evidence at that layer; try method='occlusion' or 'layercam'"
        )
        logger.warning(
            "%s: the %s map of class %d at %s is zero everywhere (%s)",
            path,
            method,
            int(cams[0].targets[0]),
            cams[0].layer,
            hint,
        )
    if normalize == "scan" and covered.any():
        values = heat[covered]
        low, high = float(values.min()), float(values.max())
        heat[covered] = (values - low) / (high - low) if high > low else 0.0

    scan_probs = probs_all.double().mean(dim=0).numpy()
    result = ScanExplanation(
        scan=path,
        labels=labels,
        probs=scan_probs,
        volume_probs=probs_all.numpy(),
        target=target_index,
        heatmaps=heat,
        covered=covered,
        slices=gray,
        indices=indices,
        layer=cam.layer,
        method=method,
        normalize=normalize,
        feature_shape=cam.feature_shape,
    )
    if out_dir is not None:
        _write_pictures(result, Path(out_dir), alpha, min_size, tile, columns)
    return result


@torch.no_grad()
def _predict(model: nn.Module, volumes: Tensor, batch_size: int) -> Tensor:
    """Softmax probabilities of volumes, in eval mode, restoring the training flags."""
    device, dtype = _device_and_dtype(model)
    out = []
    with _evaluating(model):
        for start in range(0, len(volumes), batch_size):
            x = _model_input(volumes[start : start + batch_size], device, dtype)
            out.append(torch.softmax(model(x).float(), dim=1).cpu())
    return torch.cat(out)


def slice_word(scan: str | os.PathLike[str]) -> str:
    """What a slice of ``scan`` is called in captions: ``"frame"`` for a video file."""
    from ..data.files import is_video_name

    return "frame" if is_video_name(os.fspath(scan)) else "slice"


def _source(result: ScanExplanation) -> str:
    """Where the map comes from, for the contact sheet's title."""
    if result.method == "occlusion":
        return "over {} x {} x {} windows".format(*result.feature_shape)
    return f"at {result.layer}"


def _write_pictures(
    result: ScanExplanation,
    out: Path,
    alpha: float,
    min_size: int | None,
    tile: int,
    columns: int | None,
) -> None:
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    n = result.n_slices
    unit = slice_word(result.scan)
    digits = max(4, len(str(n - 1)))
    names = [f"slice_{i:0{digits}d}.png" for i in range(n)]
    _clear_stale(out, set(names))
    prob = float(result.probs[int(np.argmax(result.probs))])
    head = f"{result.prediction} {prob:.2f}"
    if result.target_label != result.prediction:
        head += f" | map: {result.target_label}"
    pictures = []
    for i in range(n):
        rgb = overlay(result.slices[i], result.heatmaps[i], alpha)
        image = _upscale(Image.fromarray(rgb), min_size)
        size = max(10, max(image.size) // 18)
        _draw_lines(image, [head], "top", size)
        foot = f"{unit} {i}/{n - 1}" + ("" if result.covered[i] else " (not covered)")
        _draw_lines(image, [foot], "bottom", size)
        _save_png(image, out / names[i])
        result.files.append(out / names[i])
        pictures.append(overlay(result.slices[i], result.heatmaps[i], alpha))
    probs = "  ".join(f"{k} {v:.2f}" for k, v in zip(result.labels, result.probs))
    title = [
        f"{result.scan.name}: {result.prediction} ({probs})",
        f"{result.method} of {result.target_label} {_source(result)}, {n} {unit}s",
    ]
    sheet = contact_sheet(
        pictures, columns=columns, tile=tile, captions=[str(i) for i in range(n)], title=title
    )
    result.contact_sheet = out / "contact_sheet.png"
    _save_png(sheet, result.contact_sheet)
    result.summary = out / SUMMARY_NAME
    atomic_write_text(result.summary, json.dumps(result.to_dict(), indent=2) + "\n")
    logger.info("wrote %d overlays and %s to %s", n, result.contact_sheet.name, out)
