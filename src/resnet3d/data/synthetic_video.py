"""A synthetic video set whose class is the motion: moving squares written as real mp4 files.

Every video shows one square on a plain background. The square's size and colours are shared
by a group of videos (like the actor of a UCF101 group); its start position is random and it
moves a fixed number of pixels per frame in one direction, wrapping around the edges (the
frame is a torus). The class is the direction (:data:`MOTIONS`): ``"right"``, ``"left"``,
``"down"`` or ``"up"``. Because the square wraps around and starts anywhere, every frame of
every class is drawn from the same distribution: a single frame cannot tell the classes
apart, two frames can (a ``"left"`` video is a ``"right"`` video played backwards).

:func:`write_video_dataset` writes them in a UCF101-like tree::

    OUT/<class>/v_<class>_g01_c01.mp4, v_<class>_g01_c02.mp4, ..., v_<class>_g02_c01.mp4, ...
    OUT/synthetic_video.json     the settings and the list of videos (class, group, seed,
                                 look): generate_video(label, seed=, look=) redraws a video

Frames come from ``numpy.random.Generator(PCG64(...))`` streams derived from one seed, with
integer arithmetic only, so a seed gives the same frames everywhere (the encoded bytes depend
on the encoder's version). Encoding uses H.264 (libx264, ``yuv420p``, near-lossless
``crf``) when the installed PyAV has it and MPEG-4 Part 2 (``mpeg4``) otherwise; both are in
PyAV's wheels. Needs PyAV: ``pip install "resnet3d[video]"``.

This is a toy for tests and examples: it says nothing about real video.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import zlib
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from .._utils import check_choice, did_you_mean
from .video import _require_av

__all__ = [
    "CLASSES",
    "MARKER_NAME",
    "MOTIONS",
    "generate_video",
    "video_codec",
    "write_video",
    "write_video_dataset",
]

#: Direction of each class as ``(dy, dx)`` per step (rows grow downward).
MOTIONS: dict[str, tuple[int, int]] = {
    "right": (0, 1),
    "left": (0, -1),
    "down": (1, 0),
    "up": (-1, 0),
}
#: The classes :func:`write_video_dataset` writes by default.
CLASSES: tuple[str, ...] = ("right", "left", "down", "up")
#: The file that marks a folder as written by :func:`write_video_dataset`.
MARKER_NAME = "synthetic_video.json"

_LAYOUTS = ("tree",)
MIN_SIZE, MAX_SIZE = 16, 1024


def _rng(*keys: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(list(keys))))


def _name_key(name: str) -> int:
    return zlib.crc32(name.encode("utf-8"))


def _check_motion(motion: str) -> tuple[int, int]:
    if motion not in MOTIONS:
        raise ValueError(
            f"unknown motion {motion!r}; choose one of {list(MOTIONS)}"
            + did_you_mean(motion, MOTIONS)
        )
    return MOTIONS[motion]


def _check_int(name: str, value: Any, low: int, high: int | None = None) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < low or (high is not None and value > high):
        allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be {allowed}, got {value}")
    return value


def _look(rng: np.random.Generator, size: int) -> dict[str, Any]:
    """Square side and colours of one group: dark background, bright square."""
    return {
        "side": int(rng.integers(size // 5, size // 3 + 1)),
        "background": [int(v) for v in rng.integers(0, 80, size=3)],
        "color": [int(v) for v in rng.integers(150, 256, size=3)],
    }


def generate_video(
    motion: str,
    *,
    frames: int = 16,
    size: int = 32,
    seed: int = 0,
    speed: int | None = None,
    start: tuple[int, int] | None = None,
    look: dict[str, Any] | None = None,
) -> np.ndarray:
    """Draw one video of a square moving in the direction ``motion`` (in memory).

    Args:
        motion: A key of :data:`MOTIONS`.
        frames: Number of frames.
        size: Frame height and width in pixels (even, for H.264's 4:2:0 chroma).
        seed: Seeds the start position and, without ``look``, the square's size and colours.
        speed: Pixels per frame; default ``max(1, size // 16)``.
        start: ``(row, column)`` of the square's top-left corner in frame 0; default drawn
            uniformly from the whole frame.
        look: ``{"side": int, "background": [r, g, b], "color": [r, g, b]}``; default drawn
            from ``seed``.

    Returns:
        ``uint8`` RGB frames.

    Shape:
        ``(frames, size, size, 3)``.

    Raises:
        ValueError: For an unknown motion or a value out of range.
        TypeError: For a count that is not an int.
    """
    dy, dx = _check_motion(motion)
    frames = _check_int("frames", frames, 1)
    size = _check_int("size", size, MIN_SIZE, MAX_SIZE)
    speed = max(1, size // 16) if speed is None else _check_int("speed", speed, 1, size)
    rng = _rng(_check_int("seed", seed, 0), 1)
    if look is None:
        look = _look(_rng(seed, 2), size)
    y0, x0 = (int(v) for v in rng.integers(0, size, size=2)) if start is None else start
    side = int(look["side"])
    base = np.empty((size, size, 3), dtype=np.uint8)
    base[:] = np.asarray(look["background"], dtype=np.uint8)
    base[:side, :side] = np.asarray(look["color"], dtype=np.uint8)
    out = np.empty((frames, size, size, 3), dtype=np.uint8)
    for t in range(frames):
        # np.roll wraps the square around the edges: every position is equally likely.
        shift = ((y0 + dy * speed * t) % size, (x0 + dx * speed * t) % size)
        out[t] = np.roll(base, shift, axis=(0, 1))
    return out


def video_codec() -> str:
    """The encoder :func:`write_video` uses by default: ``"libx264"``, else ``"mpeg4"``.

    Raises:
        MissingDependencyError: If PyAV is not installed.
    """
    av = _require_av()
    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


def write_video(
    path: str | os.PathLike[str],
    frames: np.ndarray,
    *,
    fps: int = 25,
    codec: str | None = None,
    keyframe_interval: int | None = None,
    crf: int = 4,
    pts: Sequence[int] | None = None,
    time_base: Fraction | None = None,
    rotation: int = 0,
    container_options: dict[str, str] | None = None,
) -> Path:
    """Encode ``uint8`` RGB frames ``(T, H, W, 3)`` into a video file (container by suffix).

    Args:
        path: The file to write (``.mp4``, ``.mkv``, ``.avi``, ``.webm``, ...).
        frames: ``uint8`` RGB frames; ``H`` and ``W`` even.
        fps: Frame rate.
        codec: Encoder name (``None``: :func:`video_codec`).
        keyframe_interval: Frames between key frames (the GOP size); ``None`` keeps the
            encoder's default (libx264: 250).
        crf: libx264's constant rate factor (0 is lossless in YUV; 4 is near-lossless).
            Other encoders get a high bit rate instead.
        pts: Presentation timestamps per frame in ``time_base`` units (a variable frame
            rate); default ``0, 1, 2, ...`` frames.
        time_base: The unit of ``pts``; default ``1 / fps``.
        rotation: Display rotation in counter-clockwise degrees written to the container's
            display matrix (mp4/mov); frames are stored as given.
        container_options: Muxer options, e.g. ``{"movflags": "faststart"}`` (the mp4 index
            before the data).

    Returns:
        ``path``.

    Raises:
        ValueError: For frames of the wrong shape or type.
        MissingDependencyError: If PyAV is not installed.
    """
    av = _require_av()
    arr = np.asarray(frames)
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8 or not len(arr):
        raise ValueError(f"frames must be uint8 (T, H, W, 3) with T >= 1, got {arr.shape}")
    height, width = int(arr.shape[1]), int(arr.shape[2])
    if height % 2 or width % 2:
        raise ValueError(f"frame height and width must be even, got {height} x {width}")
    codec = video_codec() if codec is None else codec
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(os.fspath(path), "w", options=container_options or {}) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        if keyframe_interval is not None:
            stream.codec_context.gop_size = keyframe_interval
        if codec in ("libx264", "h264"):
            options = {"crf": str(crf), "preset": "veryfast"}
            if keyframe_interval is not None:  # no extra key frames at scene cuts
                options.update({"sc_threshold": "0", "keyint_min": str(keyframe_interval)})
            stream.options = options
        else:
            stream.bit_rate = max(200_000, 8 * width * height * fps)
        if pts is not None:
            stream.codec_context.time_base = time_base or Fraction(1, fps)
        if rotation:
            stream.set_display_rotation(rotation)
        for i, rgb in enumerate(arr):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            if pts is not None:
                frame.pts = int(pts[i])
                frame.time_base = stream.codec_context.time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_video_dataset(
    out: str | os.PathLike[str],
    classes: Sequence[str] = CLASSES,
    videos_per_class: int = 4,
    *,
    groups: int = 2,
    frames: int = 16,
    size: int = 32,
    fps: int = 25,
    seed: int = 0,
    layout: str = "tree",
    codec: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the moving-squares set as mp4 files in a UCF101-like tree.

    Video ``n`` (0-based) of a class is in group ``n // ceil(videos_per_class / groups) + 1``
    and is named ``v_<class>_g<group>_c<clip>.mp4`` (two digits each). A group shares the
    square's size and colours (drawn per class and group); the start position is drawn per
    video. So a split that keeps groups apart tests generalisation to a new look, as UCF101's
    group splits do.

    Args:
        out: The data set's folder (created; must be empty unless ``overwrite``).
        classes: Motions to write, keys of :data:`MOTIONS`.
        videos_per_class: Videos per class.
        groups: Groups per class (at most ``videos_per_class``).
        frames: Frames per video.
        size: Frame height and width in pixels (even).
        fps: Frame rate.
        seed: Seeds everything.
        layout: ``"tree"``: ``OUT/<class>/<video>.mp4``.
        codec: Encoder (``None``: :func:`video_codec`).
        overwrite: Replace a set written here before (only its class folders and marker).

    Returns:
        ``out`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: For an unknown class or layout, or a value out of range.
        FileExistsError: If ``out`` is not empty and not (with ``overwrite``) a set written
            by this function.
        MissingDependencyError: If PyAV is not installed.
    """
    classes = tuple(classes)
    if not classes or len(set(classes)) != len(classes):
        raise ValueError(f"classes must be distinct motions, got {list(classes)}")
    for name in classes:
        _check_motion(name)
    check_choice("layout", layout, _LAYOUTS)
    videos_per_class = _check_int("videos_per_class", videos_per_class, 1)
    groups = _check_int("groups", groups, 1, videos_per_class)
    frames = _check_int("frames", frames, 1)
    size = _check_int("size", size, MIN_SIZE, MAX_SIZE)
    if size % 2:
        raise ValueError(f"size must be even (H.264 4:2:0 chroma), got {size}")
    fps = _check_int("fps", fps, 1, 240)
    seed = _check_int("seed", seed, 0)
    root = Path(out)
    _prepare_out(root, overwrite)
    per_group = math.ceil(videos_per_class / groups)
    codec = video_codec() if codec is None else codec
    videos = []
    for name in classes:
        key = _name_key(name)
        for n in range(videos_per_class):
            group, clip = n // per_group + 1, n % per_group + 1
            look = _look(_rng(seed, key, 1000 + group), size)
            video_seed = int(_rng(seed, key, n).integers(2**31))
            file = root / name / f"v_{name}_g{group:02d}_c{clip:02d}.mp4"
            pixels = generate_video(name, frames=frames, size=size, seed=video_seed, look=look)
            write_video(file, pixels, fps=fps, codec=codec)
            videos.append(
                {
                    "path": file.relative_to(root).as_posix(),
                    "label": name,
                    "group": f"g{group:02d}",
                    "seed": video_seed,
                    "look": look,
                }
            )
    settings = {
        "generator": "resnet3d.data.synthetic_video",
        "classes": list(classes),
        "videos_per_class": videos_per_class,
        "groups": groups,
        "frames": frames,
        "size": size,
        "fps": fps,
        "seed": seed,
        "layout": layout,
        "codec": codec,
        "videos": videos,
    }
    (root / MARKER_NAME).write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    return root


def _prepare_out(root: Path, overwrite: bool) -> None:
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"out {root} exists and is not a folder")
    if root.is_dir() and any(root.iterdir()):
        marker = root / MARKER_NAME
        if not overwrite or not marker.is_file():
            raise FileExistsError(
                f"out {root} is not empty; choose a new folder"
                + (
                    " (overwrite=True replaces only a set written by write_video_dataset)"
                    if overwrite
                    else " or pass overwrite=True to replace a set written here before"
                )
            )
        try:
            old = json.loads(marker.read_text(encoding="utf-8"))
            old_classes = [str(c) for c in old.get("classes", [])]
        except (OSError, ValueError, AttributeError) as error:
            raise FileExistsError(f"{marker}: unreadable marker ({error}); not replacing") from (
                error
            )
        for name in old_classes:
            if name in MOTIONS and (root / name).is_dir():
                shutil.rmtree(root / name)
        marker.unlink()
    root.mkdir(parents=True, exist_ok=True)
