"""Report figures. matplotlib (a dependency since the demo's pictures are part of the main
path) is imported only here, inside the functions, so importing the metrics stays cheap;
figures are drawn on an Agg canvas so no GUI backend or pyplot state is used.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._utils import atomic_open
from .ranking import RocCurve

MATPLOTLIB_HINT = "plotting needs matplotlib, which is not installed: pip install matplotlib"


def require_matplotlib() -> None:
    """Check that the figures can be drawn, before any work that ends in one.

    matplotlib is a dependency of resnet3d, so it is missing only from a broken or partial
    install; callers that draw at the end of a long run check first.

    Raises:
        ImportError: If matplotlib (its ``Figure`` or Agg canvas) cannot be imported; the
            message says how to install it.
    """
    _matplotlib()


def _matplotlib() -> tuple[Any, Any]:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(MATPLOTLIB_HINT) from error
    return Figure, FigureCanvasAgg


def _new_figure(figsize: tuple[float, float]) -> Any:
    Figure, FigureCanvasAgg = _matplotlib()
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: str | Path, dpi: int) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    # The format follows the suffix; without one (or with an unknown one) write PNG.
    suffix = out.suffix.lower().lstrip(".")
    supported = fig.canvas.get_supported_filetypes()
    with atomic_open(out) as handle:  # a reader never sees half a figure
        fig.savefig(handle, format=suffix if suffix in supported else "png", dpi=dpi)
    return out


def plot_confusion(
    cm: np.ndarray,
    labels: Sequence[str],
    path: str | Path,
    normalized: np.ndarray | None,
    title: str,
    dpi: int = 150,
) -> Path:
    """Draw a confusion matrix heat map; cells show the fraction (if given) and the count."""
    k = len(labels)
    size = 1.2 + 0.9 * k
    fig = _new_figure((size + 1.2, size))
    ax = fig.add_subplot()
    shown = normalized if normalized is not None else cm
    vmax = 1.0 if normalized is not None else max(1, int(cm.max()))
    image = ax.imshow(shown, cmap="Blues", vmin=0.0, vmax=vmax)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    for i in range(k):
        for j in range(k):
            text = (
                f"{normalized[i, j]:.2f}\n({int(cm[i, j])})"
                if normalized is not None
                else str(int(cm[i, j]))
            )
            dark = shown[i, j] > 0.6 * vmax
            ax.text(j, i, text, ha="center", va="center", color="white" if dark else "black")
    ax.set_xticks(range(k), labels=list(labels))
    ax.set_yticks(range(k), labels=list(labels))
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    return _save(fig, path, dpi)


def plot_roc_curves(
    curves: Sequence[RocCurve],
    aurocs: np.ndarray,
    labels: Sequence[str],
    path: str | Path,
    title: str,
    dpi: int = 150,
) -> Path:
    """Draw one-vs-rest ROC curves, one per class, with the chance diagonal."""
    fig = _new_figure((5.5, 5.0))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="chance")
    for curve, auc, name in zip(curves, aurocs, labels):
        if math.isnan(float(auc)):
            continue  # undefined: the class is absent (or alone) in y_true
        ax.plot(curve.fpr, curve.tpr, linewidth=1.8, label=f"{name} (AUC = {float(auc):.3f})")
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.02)
    ax.set_aspect("equal")
    ax.set_xlabel("false positive rate (1 - specificity)")
    ax.set_ylabel("true positive rate (recall)")
    ax.set_title(title)
    ax.legend(loc="lower right")
    return _save(fig, path, dpi)
