"""Where did the model look? 3D heatmaps, mapped back to the slices of a CT scan.

Each module is usable alone:

* :mod:`~resnet3d.explain.cam`: :func:`grad_cam`, Grad-CAM (Selvaraju et al., ICCV 2017),
  Grad-CAM++ (Chattopadhay et al., WACV 2018) or LayerCAM (Jiang et al., IEEE TIP 2021) for a
  batch of volumes ``(N, C, D, H, W)``, upsampled trilinearly to the input's ``D x H x W``;
  :func:`default_layer` picks the layer.
* :mod:`~resnet3d.explain.sensitivity`: :func:`occlusion`, occlusion sensitivity (Zeiler and
  Fergus, ECCV 2014): the drop of the class score when a window of the input is hidden. One
  forward pass per window, but it measures the model rather than its gradients.
* :mod:`~resnet3d.explain.slices`: :func:`slice_heatmaps`, the per-volume maps mapped back to
  the scan's original slice numbers, averaged where volumes overlap.
* :mod:`~resnet3d.explain.pictures`: :func:`colorize` (matplotlib's ``jet``, reimplemented in
  numpy, so nothing here needs matplotlib), :func:`overlay` and :func:`contact_sheet`.
* :mod:`~resnet3d.explain.scan`: :func:`explain_scan`, all of the above for one scan folder,
  with one overlay PNG per slice and a contact sheet.
* :mod:`~resnet3d.explain.overlap`: :func:`mask_overlap` scores a heatmap against a
  ground-truth mask (e.g. the phantom's lesion masks) and the chance level of a random map of
  the same area.

The model is left as it was: it runs in eval mode and every module's ``training`` flag is
restored afterwards; Grad-CAM's one forward hook is removed when the call ends, also on error,
and its gradients are taken with respect to the feature map only, so no parameter's ``.grad``
is touched.
"""

from __future__ import annotations

from ._common import CamResult
from .cam import CAM_METHODS, default_layer, grad_cam
from .overlap import MaskOverlap, mask_overlap
from .pictures import colorize, contact_sheet, overlay
from .scan import METHODS, NORMALIZE, ScanExplanation, explain_scan
from .sensitivity import FILLS, occlusion
from .slices import slice_heatmaps

__all__ = [
    "CAM_METHODS",
    "FILLS",
    "METHODS",
    "NORMALIZE",
    "CamResult",
    "MaskOverlap",
    "ScanExplanation",
    "colorize",
    "contact_sheet",
    "default_layer",
    "explain_scan",
    "grad_cam",
    "mask_overlap",
    "occlusion",
    "overlay",
    "slice_heatmaps",
]
