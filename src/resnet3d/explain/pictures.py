"""Heatmap pictures: the jet colour map, overlays and contact sheets (numpy + Pillow)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from PIL import Image as PILImage

# matplotlib's "jet" as segment data (x, value): matplotlib/_cm.py, _jet_data. Linear
# interpolation between these points reproduces matplotlib.cm.jet up to its 256-entry lookup.
_JET = (
    ((0.0, 0.35, 0.66, 0.89, 1.0), (0.0, 0.0, 1.0, 1.0, 0.5)),
    ((0.0, 0.125, 0.375, 0.64, 0.91, 1.0), (0.0, 0.0, 1.0, 1.0, 0.0, 0.0)),
    ((0.0, 0.11, 0.34, 0.65, 1.0), (0.5, 1.0, 1.0, 0.0, 0.0)),
)


def colorize(heat: np.ndarray) -> np.ndarray:
    """Map values in ``[0, 1]`` to RGB with matplotlib's ``jet`` colour map.

    Values are clipped to ``[0, 1]``; ``NaN`` becomes black.

    Args:
        heat: Any array of values.

    Returns:
        ``uint8`` RGB, one more axis of size 3.

    Shape:
        ``(...) -> (..., 3)``.
    """
    h = np.asarray(heat, dtype=np.float64)
    nan = np.isnan(h)
    h = np.clip(np.where(nan, 0.0, h), 0.0, 1.0)
    rgb = np.stack([np.interp(h, xs, ys) for xs, ys in _JET], axis=-1)
    rgb[nan] = 0.0
    return np.rint(rgb * 255.0).astype(np.uint8)


def overlay(gray: np.ndarray, heat: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend a colour heatmap over a gray slice.

    The heatmap's opacity grows with its value (``alpha * heat``), so regions without
    evidence show the plain slice and the hottest regions show ``alpha`` of the colour.

    Args:
        gray: The slice, ``uint8`` or floats in ``[0, 1]``.
        heat: Heatmap in ``[0, 1]``, same shape; ``NaN`` shows the plain slice.
        alpha: Opacity of the colour at heat 1, in ``[0, 1]``.

    Returns:
        ``uint8`` RGB image.

    Raises:
        ValueError: For different shapes or ``alpha`` outside ``[0, 1]``.

    Shape:
        ``(H, W), (H, W) -> (H, W, 3)``.
    """
    g = np.asarray(gray)
    h = np.asarray(heat, dtype=np.float64)
    if g.ndim != 2 or g.shape != h.shape:
        raise ValueError(
            f"gray and heat must be (H, W) of the same shape, got {g.shape} and {h.shape}"
        )
    if not (isinstance(alpha, (int, float)) and 0.0 <= alpha <= 1.0):
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")
    g = g.astype(np.float64) / 255.0 if g.dtype == np.uint8 else np.clip(g, 0.0, 1.0)
    a = alpha * np.clip(np.nan_to_num(h, nan=0.0), 0.0, 1.0)
    color = colorize(h).astype(np.float64) / 255.0
    out = g[..., None] * (1.0 - a[..., None]) + color * a[..., None]
    return np.rint(np.clip(out, 0.0, 1.0) * 255.0).astype(np.uint8)


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow < 10.1 or without FreeType
        return ImageFont.load_default()


def _draw_lines(image: PILImage.Image, lines: Sequence[str], corner: str, size: int) -> None:
    """White text on a dark box in the top-left or bottom-left corner."""
    from PIL import ImageDraw

    draw = ImageDraw.Draw(image)
    font = _font(size)
    pad = max(2, size // 5)
    boxes = [draw.textbbox((0, 0), line, font=font) for line in lines]
    heights = [b[3] - b[1] for b in boxes]
    line_h = max([*heights, size]) + pad
    block_h = line_h * len(lines) + pad
    block_w = max(b[2] - b[0] for b in boxes) + 2 * pad
    y0 = 0 if corner == "top" else image.height - block_h
    draw.rectangle((0, y0, min(block_w, image.width) - 1, y0 + block_h - 1), fill=(0, 0, 0))
    for i, line in enumerate(lines):
        draw.text((pad, y0 + pad + i * line_h), line, fill=(255, 255, 255), font=font)


def _upscale(image: PILImage.Image, min_size: int | None) -> PILImage.Image:
    from PIL import Image

    if not min_size or max(image.size) >= min_size:
        return image
    factor = math.ceil(min_size / max(image.size))
    return image.resize((image.width * factor, image.height * factor), Image.Resampling.BILINEAR)


def contact_sheet(
    images: Sequence[np.ndarray | PILImage.Image],
    columns: int | None = None,
    tile: int = 128,
    captions: Sequence[str] | None = None,
    title: Sequence[str] = (),
) -> PILImage.Image:
    """Lay images out on a grid, each scaled to ``tile`` pixels on its long side.

    Args:
        images: RGB images (``uint8`` arrays ``(H, W, 3)`` or Pillow images).
        columns: Images per row; default ``ceil(sqrt(len(images)))``.
        tile: Long side of each cell in pixels.
        captions: One short text per image, drawn in its bottom-left corner.
        title: Lines written in a band above the grid.

    Returns:
        The sheet as a Pillow RGB image.

    Raises:
        ValueError: If there are no images, or ``columns``/``tile``/``captions`` do not fit.
    """
    from PIL import Image

    if not images:
        raise ValueError("contact_sheet needs at least one image")
    if columns is None:
        columns = math.ceil(math.sqrt(len(images)))
    if not isinstance(columns, int) or isinstance(columns, bool) or columns < 1:
        raise ValueError(f"columns must be an int >= 1, got {columns!r}")
    if not isinstance(tile, int) or isinstance(tile, bool) or tile < 16:
        raise ValueError(f"tile must be an int >= 16 pixels, got {tile!r}")
    if captions is not None and len(captions) != len(images):
        raise ValueError(f"got {len(captions)} captions for {len(images)} images")
    pics = [im if isinstance(im, Image.Image) else Image.fromarray(im) for im in images]
    first = pics[0]
    scale = tile / max(first.size)
    cell = (max(1, round(first.width * scale)), max(1, round(first.height * scale)))
    font_size = max(9, tile // 12)
    header = (font_size + 6) * len(title) + (4 if title else 0)
    rows = math.ceil(len(pics) / columns)
    gap = 2
    sheet = Image.new(
        "RGB",
        (columns * (cell[0] + gap) - gap, header + rows * (cell[1] + gap) - gap),
        (24, 24, 24),
    )
    if title:
        band = Image.new("RGB", (sheet.width, header), (0, 0, 0))
        _draw_lines(band, list(title), "top", font_size)
        sheet.paste(band, (0, 0))
    for i, pic in enumerate(pics):
        thumb = pic.convert("RGB").resize(cell, Image.Resampling.BILINEAR)
        if captions is not None:
            _draw_lines(thumb, [captions[i]], "bottom", font_size)
        r, c = divmod(i, columns)
        sheet.paste(thumb, (c * (cell[0] + gap), header + r * (cell[1] + gap)))
    return sheet
