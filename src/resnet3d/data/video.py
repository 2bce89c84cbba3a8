"""Video files as scans: header probing, clip sampling and decoding only the frames needed.

A video file (``.mp4``, ``.m4v``, ``.mov``, ``.avi``, ``.mkv``, ``.webm``) is read like a scan
whose slices are its frames: :func:`resnet3d.data.volumes.load_scan` turns ``clip.mp4`` into
``(N, 3, D, H, W)`` clips exactly as it turns a folder of slices into volumes. This module
holds the video-specific parts:

* :func:`read_video_info`: what the container header declares (:class:`VideoInfo`: frames,
  frame rate, duration, size, codec, rotation), checked against ``max_pixels`` before any
  frame is decoded;
* :func:`sample_clips` and :class:`ClipSampler`: which frames make each clip (frames per
  clip, a frame stride or a target frame rate, clips per video, uniform or random starts,
  and what to do with a video shorter than one clip). Pure functions of a frame count;
* :func:`read_frames` and :func:`read_clips`: decode just those frames, seeking to the key
  frame before each clip instead of decoding the whole video, as ``uint8`` RGB ``(H, W, 3)``.

**Frame numbers are times.** Frame ``i`` is the frame shown at ``start + i / fps``, where
``fps`` is the stream's average frame rate; the decoded frame whose timestamp is nearest is
taken. For a constant frame rate that is exactly the ``i``-th frame. For a variable frame
rate it samples by timestamps: a ``stride`` of ``k`` steps ``k`` average frame intervals, a
target ``fps`` steps ``1 / fps`` seconds (to the nearest average frame interval), and a frame
may repeat where the rate drops or be skipped where it rises.

PyAV (``pip install "resnet3d[video]"``) is imported on first use; importing this module does
not import it.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._utils import check_choice, did_you_mean
from ..errors import (
    CorruptSliceError,
    DatasetLayoutError,
    DatasetNotFoundError,
    InconsistentScanError,
    MissingDependencyError,
    UnsupportedFormatError,
)
from .files import (
    DEFAULT_MAX_PIXELS,
    VIDEO_SUFFIXES,
    ScanFiles,
    ScanHeader,
    is_video_name,
    refuse_pixels,
    refuse_size,
)

__all__ = [
    "SHORT_POLICIES",
    "START_MODES",
    "VIDEO_SUFFIXES",
    "ClipSampler",
    "VideoInfo",
    "is_video_name",
    "read_clips",
    "read_frames",
    "read_video_info",
    "sample_clips",
    "video_scan",
]

logger = logging.getLogger(__name__)

#: What :func:`sample_clips` does with a video shorter than one clip: ``"loop"`` wraps
#: around to the first frame, ``"pad"`` repeats the last frame, ``"refuse"`` raises.
SHORT_POLICIES = ("loop", "pad", "refuse")
#: Where clips start: ``"uniform"`` (evenly spaced, deterministic) or ``"random"``.
START_MODES = ("uniform", "random")

_AV_HINT = 'reading video needs PyAV: pip install "resnet3d[video]"'


def _require_av() -> Any:
    try:
        import av
    except ImportError as error:
        raise MissingDependencyError(_AV_HINT) from error
    return av


# ----------------------------------------------------------------------------------------
# Header


@dataclass(frozen=True)
class VideoInfo:
    """What a video's container header declares, plus the rotation of its first frame.

    Attributes:
        path: The video file.
        frames: Frame count: the header's, or ``duration x fps`` rounded when the container
            does not store one (Matroska, WebM); see ``frames_exact``.
        fps: Average frame rate (frames per second).
        duration: Seconds, from the stream (or container) header.
        width: Stored frame width in pixels (before rotation).
        height: Stored frame height in pixels.
        codec: The decoder's name (``"h264"``, ``"mpeg4"``, ``"vp9"``, ...).
        rotation: Counter-clockwise degrees the display matrix rotates the frames by
            (``0``, ``90``, ``180`` or ``-90``); frames are returned rotated by it.
        frames_exact: Whether ``frames`` is the header's count (not an estimate).
        variable_frame_rate: Whether the header's average and base frame rates differ by
            more than 1 %: FFmpeg's sign of a variable frame rate (a heuristic).
        start_time: Seconds of the first frame (the stream's start time).
    """

    path: Path
    frames: int
    fps: float
    duration: float
    width: int
    height: int
    codec: str
    rotation: int = 0
    frames_exact: bool = True
    variable_frame_rate: bool = False
    start_time: float = 0.0

    @property
    def display_hw(self) -> tuple[int, int]:
        """``(H, W)`` of a frame as returned (after rotation)."""
        if self.rotation % 180:
            return self.width, self.height
        return self.height, self.width

    @property
    def text(self) -> str:
        """The declaration in words, for messages."""
        rate = "variable" if self.variable_frame_rate else "constant"
        return (
            f"{self.frames} frames of {self.width} x {self.height} ({self.codec}, "
            f"{self.fps:.3g} fps, {rate} frame rate)"
        )


def _fraction(value: Any) -> float:
    try:
        out = float(value) if value is not None else 0.0
    except (TypeError, ValueError, ZeroDivisionError):
        return 0.0
    return out if math.isfinite(out) and out > 0 else 0.0


def _check_file(path: Path) -> None:
    if not path.exists():
        raise DatasetNotFoundError(f"video {os.fspath(path)!r} does not exist", path=path)
    if path.is_file() and path.stat().st_size == 0:
        raise CorruptSliceError(f"{os.fspath(path)}: video file is empty (0 bytes)", path=path)


@contextmanager
def _open(path: Path) -> Iterator[tuple[Any, Any]]:
    """Open a container and its first video stream; errors become the library's types."""
    av = _require_av()
    _check_file(path)
    try:
        container = av.open(os.fspath(path), metadata_errors="ignore")
    except av.error.FFmpegError as error:
        raise CorruptSliceError(
            f"{os.fspath(path)}: cannot read as a video container (truncated, damaged or not a "
            f"video): {_ffmpeg_message(error)}",
            path=path,
        ) from error
    try:
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["none"]
            raise UnsupportedFormatError(
                f"{os.fspath(path)}: holds no video stream (streams: {', '.join(kinds)})",
                path=path,
            )
        stream = container.streams.video[0]
        if stream.codec_context is None:
            raise UnsupportedFormatError(
                f"{os.fspath(path)}: no decoder for its video codec in this FFmpeg build "
                f"(PyAV {av.__version__}); re-encode it, e.g. to H.264 or VP9",
                path=path,
            )
        yield container, stream
    finally:
        container.close()


def _ffmpeg_message(error: BaseException) -> str:
    """FFmpeg's message without the errno prefix PyAV adds."""
    text = getattr(error, "strerror", None) or str(error)
    return str(text).strip()


def _header(path: Path, container: Any, stream: Any, max_pixels: int) -> VideoInfo:
    ctx = stream.codec_context
    width, height = int(ctx.width or 0), int(ctx.height or 0)
    if width < 1 or height < 1:
        raise CorruptSliceError(
            f"{os.fspath(path)}: video stream declares no frame size ({width} x {height})",
            path=path,
        )
    refuse_pixels(path, width, height, max_pixels)
    fps = _fraction(stream.average_rate) or _fraction(stream.guessed_rate)
    fps = fps or _fraction(stream.base_rate)
    if not fps:
        raise CorruptSliceError(
            f"{os.fspath(path)}: video stream declares no frame rate", path=path
        )
    time_base = _fraction(stream.time_base)
    duration = 0.0
    if stream.duration and time_base:
        duration = float(stream.duration) * time_base
    elif container.duration:
        duration = float(container.duration) / 1e6  # AV_TIME_BASE
    start = float(stream.start_time) * time_base if stream.start_time and time_base else 0.0
    frames = int(stream.frames or 0)
    exact = frames > 0
    if not exact:
        frames = round(duration * fps)
    base = _fraction(stream.base_rate)
    variable = bool(base) and abs(base / fps - 1.0) > 0.01
    return VideoInfo(
        path=path,
        frames=frames,
        fps=fps,
        duration=duration,
        width=width,
        height=height,
        codec=str(ctx.name),
        frames_exact=exact,
        variable_frame_rate=variable,
        start_time=start,
    )


def _rotation_of(path: Path, degrees: float) -> int:
    rotation = round(degrees)
    if rotation % 90:
        raise UnsupportedFormatError(
            f"{os.fspath(path)}: display matrix rotates by {degrees:g} degrees; only multiples "
            "of 90 are applied (pass autorotate=False to read the frames as stored)",
            path=path,
        )
    return (rotation + 180) % 360 - 180 if rotation % 360 else 0


def read_video_info(
    path: str | os.PathLike[str], *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> VideoInfo:
    """Read a video's header, check its frame size, and decode its first frame.

    The header gives the frame count, rate, duration, size and codec. The frame size is
    checked against ``max_pixels`` before anything is decoded (a file declaring huge frames
    is refused unread). Then the first frame is decoded: PyAV reports the display matrix
    (rotation) only on decoded frames, and decoding one frame proves the codec works.

    Args:
        path: A video file.
        max_pixels: Largest frame accepted, ``width x height``.

    Returns:
        The :class:`VideoInfo`.

    Raises:
        DatasetNotFoundError: If the file does not exist.
        CorruptSliceError: If it is empty, not a video, truncated, or no frame decodes.
        ImageTooLargeError: If a frame declares more than ``max_pixels``.
        UnsupportedFormatError: If it holds no video stream, FFmpeg has no decoder for its
            codec, or its rotation is not a multiple of 90 degrees.
        MissingDependencyError: If PyAV is not installed.
    """
    path = Path(path)
    _check_file(path)
    stat = path.stat()
    # Probed once per file version: a clip read after listing does not decode frame 0 again.
    return _probe(path, stat.st_mtime_ns, stat.st_size, max_pixels)


@functools.lru_cache(maxsize=512)
def _probe(path: Path, mtime_ns: int, size: int, max_pixels: int) -> VideoInfo:
    av = _require_av()
    with _open(path) as (container, stream):
        info = _header(path, container, stream, max_pixels)
        try:
            first = next(container.decode(stream), None)
        except av.error.FFmpegError as error:
            raise _decode_error(path, error) from error
        if first is None:
            raise _no_frames(info)
        rotation = _rotation_of(path, float(getattr(first, "rotation", 0) or 0))
    if info.variable_frame_rate:
        logger.debug("%s: variable frame rate; frames are sampled by timestamp", path)
    return dataclasses.replace(info, rotation=rotation)


def _no_frames(info: VideoInfo) -> CorruptSliceError:
    return CorruptSliceError(
        f"{os.fspath(info.path)}: declares {info.text} but no frame decodes (truncated or damaged)",
        path=info.path,
    )


def _decode_error(path: Path, error: BaseException) -> Exception:
    av = _require_av()
    if isinstance(error, av.error.DecoderNotFoundError):
        return UnsupportedFormatError(
            f"{os.fspath(path)}: no decoder for its video codec in this FFmpeg build "
            f"(PyAV {av.__version__}); re-encode it, e.g. to H.264 or VP9",
            path=path,
        )
    return CorruptSliceError(
        f"{os.fspath(path)}: cannot decode the video (truncated or damaged?): "
        f"{_ffmpeg_message(error)}",
        path=path,
    )


def video_scan(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> ScanFiles:
    """A video file as a scan: its frames are the slices (``kind="video"``, no slice files).

    Args:
        path: A video file.
        max_pixels: Largest frame accepted (checked before decoding).

    Returns:
        A :class:`~resnet3d.data.readers.ScanFiles` whose ``n_slices`` is the frame count and
        whose header declares ``(frames, H, W)`` 8-bit RGB frames (after rotation).

    Raises:
        As :func:`read_video_info`.
    """
    info = read_video_info(path, max_pixels=max_pixels)
    height, width = info.display_hw
    header = ScanHeader((info.frames, height, width), 3, "u8", info.text)
    return ScanFiles(Path(path), "video", (), info.frames, header)


# ----------------------------------------------------------------------------------------
# Sampling


def _positive_int(name: str, value: Any) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return int(value)


def sample_clips(
    video: int | VideoInfo,
    frames_per_clip: int,
    *,
    stride: int = 1,
    fps: float | None = None,
    clips: int = 1,
    start: str = "uniform",
    seed: int | None = None,
    short: str = "loop",
    video_fps: float | None = None,
    path: str | os.PathLike[str] | None = None,
) -> np.ndarray:
    """Frame numbers of ``clips`` clips of ``frames_per_clip`` frames; reads nothing.

    A clip takes every ``stride``-th frame, or, with ``fps``, one frame every
    ``1 / fps`` seconds (``video_fps / fps`` frames, rounded per frame). It spans
    ``(frames_per_clip - 1) x step + 1`` frames. Starts:

    * ``"uniform"``: the possible starts are cut into ``clips`` equal segments and each
      clip starts in the middle of its own (one clip: the centred clip). Deterministic.
    * ``"random"``: each clip starts at a random frame of its own segment (so clips stay
      spread over the video and in order); ``seed`` makes it reproducible.

    A video shorter than one clip follows ``short``: ``"loop"`` (the default: frame numbers
    wrap around to the start, keeping the motion at its speed), ``"pad"`` (the last frame is
    repeated) or ``"refuse"`` (an error naming the video, its frame count and the clip's).
    Every clip of a short video starts at frame 0.

    Args:
        video: The frame count, or a :class:`VideoInfo` (its ``frames``, ``fps``, ``path``).
        frames_per_clip: Frames per clip (``D``).
        stride: Frames between the frames of a clip (1: consecutive frames).
        fps: Target frame rate instead of ``stride`` (needs the video's rate).
        clips: Clips per video.
        start: ``"uniform"`` or ``"random"``.
        seed: Seed of the random starts (``None``: fresh entropy on every call).
        short: ``"loop"``, ``"pad"`` or ``"refuse"``.
        video_fps: The video's frame rate when ``video`` is a count.
        path: The video, for messages, when ``video`` is a count.

    Returns:
        An int64 array of frame numbers in ``[0, frames)``.

    Shape:
        ``(clips, frames_per_clip)``.

    Raises:
        DatasetLayoutError: If the video has no frames, or is shorter than one clip with
            ``short="refuse"``.
        ValueError: For an invalid argument.
    """
    if isinstance(video, VideoInfo):
        n, video_fps, path = video.frames, video.fps, video.path
    else:
        if not isinstance(video, (int, np.integer)) or isinstance(video, bool) or video < 0:
            raise ValueError(f"video must be a frame count >= 0 or a VideoInfo, got {video!r}")
        n = int(video)
    length = _positive_int("frames_per_clip", frames_per_clip)
    stride = _positive_int("stride", stride)
    clips = _positive_int("clips", clips)
    check_choice("start", start, START_MODES)
    check_choice("short", short, SHORT_POLICIES)
    name = "video" if path is None else os.fspath(path)
    if fps is not None:
        if stride != 1:
            raise ValueError(f"give stride or fps, not both (stride={stride}, fps={fps})")
        if not isinstance(fps, (int, float)) or isinstance(fps, bool) or not fps > 0:
            raise ValueError(f"fps must be a number > 0, got {fps!r}")
        if video_fps is None or not video_fps > 0:
            raise ValueError("sampling at a target fps needs the video's frame rate (video_fps)")
        step = float(video_fps) / float(fps)
        offsets = np.floor(np.arange(length) * step + 0.5).astype(np.int64)
        how = f"{fps:g} fps from {video_fps:.3g}"
    else:
        offsets = np.arange(length, dtype=np.int64) * stride
        how = f"stride {stride}"
    span = int(offsets[-1]) + 1
    if n == 0:
        raise DatasetLayoutError(f"{name}: has no frames", path=path)
    if n < span:
        if short == "refuse":
            raise DatasetLayoutError(
                f"{name}: {n} frames, shorter than one clip of {length} frames ({how}: spans "
                f"{span} frames); short='refuse' (short='loop' or 'pad' accepts it)",
                path=path,
            )
        rows = offsets % n if short == "loop" else np.minimum(offsets, n - 1)
        return np.tile(rows, (clips, 1))
    avail = n - span + 1  # possible starts 0 .. n - span
    edges = np.arange(clips + 1) * avail / clips
    if start == "uniform":
        starts = np.floor((edges[:-1] + edges[1:]) / 2).astype(np.int64)
    else:
        rng = np.random.default_rng(seed)
        low = np.floor(edges[:-1]).astype(np.int64)
        high = np.maximum(np.floor(edges[1:]).astype(np.int64), low + 1)
        starts = rng.integers(low, high)
    starts = np.minimum(starts, avail - 1)
    return starts[:, None] + offsets[None, :]


@dataclass(frozen=True)
class ClipSampler:
    """How clips are taken from a video (or a scan), as a frozen, JSON-able spec.

    Pass it to :func:`resnet3d.data.volumes.load_scan` or :meth:`SliceStacker.load
    <resnet3d.data.volumes.SliceStacker.load>` (``sampler=``); the stacker's ``depth`` is the
    frames per clip. Without a sampler a video gives consecutive, non-overlapping clips that
    cover it, as slices give volumes (``stride``/``remainder`` of the stacker).

    Args:
        clips: Clips per video.
        stride: Frames between a clip's frames.
        fps: Target frame rate instead of ``stride`` (video only).
        start: ``"uniform"`` or ``"random"`` (see :func:`sample_clips`).
        seed: Seed of random starts; ``None`` draws new starts on every read.
        short: ``"loop"``, ``"pad"`` or ``"refuse"`` for a video shorter than one clip.

    Raises:
        ValueError: For an invalid value.
    """

    clips: int = 1
    stride: int = 1
    fps: float | None = None
    start: str = "uniform"
    seed: int | None = None
    short: str = "loop"

    def __post_init__(self) -> None:
        _positive_int("clips", self.clips)
        _positive_int("stride", self.stride)
        if self.fps is not None:
            if not isinstance(self.fps, (int, float)) or isinstance(self.fps, bool):
                raise ValueError(f"fps must be a number > 0 or None, got {self.fps!r}")
            if not self.fps > 0:
                raise ValueError(f"fps must be a number > 0 or None, got {self.fps!r}")
            if self.stride != 1:
                raise ValueError(f"give stride or fps, not both (stride={self.stride})")
        check_choice("start", self.start, START_MODES)
        check_choice("short", self.short, SHORT_POLICIES)
        if self.seed is not None and (not isinstance(self.seed, int) or self.seed < 0):
            raise ValueError(f"seed must be an int >= 0 or None, got {self.seed!r}")

    def indices(
        self,
        frames: int,
        frames_per_clip: int,
        *,
        video_fps: float | None = None,
        path: str | os.PathLike[str] | None = None,
    ) -> np.ndarray:
        """:func:`sample_clips` with this spec. Shape: ``(clips, frames_per_clip)``."""
        if self.fps is not None and video_fps is None:
            raise ValueError(
                f"{'this scan' if path is None else os.fspath(path)}: ClipSampler(fps=...) "
                "needs a video (a frame rate); use stride for slice folders"
            )
        return sample_clips(
            frames,
            frames_per_clip,
            stride=self.stride,
            fps=self.fps,
            clips=self.clips,
            start=self.start,
            seed=self.seed,
            short=self.short,
            video_fps=video_fps,
            path=path,
        )

    def to_dict(self) -> dict[str, Any]:
        """The spec as a JSON-able dict; :meth:`from_dict` turns it back."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> ClipSampler:
        """Build a sampler from :meth:`to_dict` output.

        Raises:
            ValueError: For an unknown key (naming the closest field) or an invalid value.
        """
        names = [f.name for f in dataclasses.fields(cls)]
        for key in spec:
            if key not in names:
                raise ValueError(
                    f"unknown ClipSampler field {key!r}; fields are {names}."
                    + did_you_mean(key, names)
                )
        return cls(**dict(spec))


# ----------------------------------------------------------------------------------------
# Decoding


def _check_held(info: VideoInfo, count: int, max_voxels: int | None, max_bytes: int | None) -> None:
    """Refuse before decoding if the frames to be returned exceed the scan limits."""
    height, width = info.display_hw
    voxels = count * height * width
    what = f"{count} frames of {width} x {height} RGB to be decoded, of {info.frames} in the video"
    refuse_size(info.path, what, voxels, voxels * 3, max_voxels, max_bytes)


class _Decoder:
    """Walks one video forward, seeking to key frames when that skips decoding."""

    def __init__(self, info: VideoInfo, seek: bool, max_pixels: int) -> None:
        self.info = info
        self.av = _require_av()
        self.seek = seek
        self.max_pixels = max_pixels
        self.half = 0.5 / info.fps
        self.seeks = 0
        self.decoded = 0

    def run(self, times: np.ndarray) -> list[Any]:
        """The av frames nearest to each of the sorted ``times`` (seconds)."""
        path = self.info.path
        with _open(path) as (container, stream):
            try:
                return self._walk(container, stream, times)
            except self.av.error.FFmpegError as error:
                raise _decode_error(path, error) from error

    def _keyframes(self, stream: Any) -> tuple[np.ndarray, np.ndarray]:
        """Times (seconds, sorted) and timestamps of the key frames in the index."""
        if not self.seek:
            return np.zeros(0), np.zeros(0, dtype=np.int64)
        time_base = _fraction(stream.time_base)
        try:
            stamps = sorted(e.timestamp for e in stream.index_entries if e.is_keyframe)
        except Exception:  # an index PyAV cannot read: decode sequentially
            stamps = []
        raw = np.asarray(stamps, dtype=np.int64)
        if not len(raw):
            return np.zeros(0), raw
        # MP4 indexes decoding timestamps, which run ahead of presentation by the B-frame
        # delay, while seeking takes presentation timestamps: shift the index so that its
        # first key frame (the first frame) is at the stream's start.
        pts = raw - raw[0] + int(stream.start_time or 0)
        return pts * time_base, pts

    def _walk(self, container: Any, stream: Any, times: np.ndarray) -> list[Any]:
        time_base = _fraction(stream.time_base)
        keys, stamps = self._keyframes(stream)
        sought = -math.inf  # the last key frame sought: never seek to it (or before) again
        chosen: list[Any] = [None] * len(times)
        k = 0
        prev: Any = None
        prev_t = -math.inf
        pos = self.info.start_time  # decoding from here costs nothing extra
        frames: Iterator[Any] | None = None
        after_seek = False
        count = 0
        while k < len(times):
            target = float(times[k])
            i = int(np.searchsorted(keys, target + self.half, side="right")) - 1
            key = float(keys[i]) if i >= 0 else -math.inf
            worth = key > pos + self.half and key > sought
            if frames is None or worth:
                if worth:
                    try:
                        container.seek(
                            int(stamps[i]), stream=stream, backward=True, any_frame=False
                        )
                    except self.av.error.FFmpegError:
                        logger.debug("%s: seek failed; decoding sequentially", self.info.path)
                        return self._restart(times, chosen, k)
                    self.seeks += 1
                    after_seek = True
                    prev, prev_t, pos, sought = None, -math.inf, key, key
                frames = iter(container.decode(stream))
                count = 0
            frame = next(frames, None)
            if frame is None and after_seek:  # a seek led past the decodable end
                return self._restart(times, chosen, k)
            if frame is None:
                self._finish(times, chosen, k, prev, prev_t)
                return chosen
            self.decoded += 1
            if frame.pts is not None and time_base:
                t = float(frame.pts) * time_base
            elif after_seek:  # no timestamps after a seek: position unknown
                return self._restart(times, chosen, k)
            else:
                t = self.info.start_time + count / self.info.fps
            count += 1
            if after_seek:
                after_seek = False
                if t > target + self.half:  # landed after the frame wanted
                    logger.debug("%s: seek landed late; decoding sequentially", self.info.path)
                    return self._restart(times, chosen, k)
            self._check_frame(frame, t)
            pos = t
            while k < len(times) and t >= times[k]:
                target = float(times[k])
                take_prev = prev is not None and (target - prev_t) <= (t - target)
                chosen[k] = prev if take_prev else frame
                k += 1
            prev, prev_t = frame, t
        return chosen

    def _restart(self, times: np.ndarray, chosen: list[Any], k: int) -> list[Any]:
        """Decode from the start without seeking, for the targets from ``k`` on."""
        rest = _Decoder(self.info, seek=False, max_pixels=self.max_pixels)
        tail = rest.run(times[k:])
        self.decoded += rest.decoded
        chosen[k:] = tail
        return chosen

    def _finish(
        self, times: np.ndarray, chosen: list[Any], k: int, prev: Any, prev_t: float
    ) -> None:
        """End of stream: the last frame stands for targets within a frame of it."""
        path, info = self.info.path, self.info
        if prev is None:
            raise _no_frames(info)
        for j in range(k, len(times)):
            if times[j] > prev_t + 3 * self.half:
                asked = round((times[j] - info.start_time) * info.fps)
                last = round((prev_t - info.start_time) * info.fps)
                raise CorruptSliceError(
                    f"{os.fspath(path)}: decoding ended at frame {last} ({prev_t:.3f} s) but "
                    f"frame {asked} was asked for; the header declares {info.frames} frames "
                    "(truncated or damaged file?)",
                    path=path,
                )
            chosen[j] = prev

    def _check_frame(self, frame: Any, t: float) -> None:
        info = self.info
        if (frame.width, frame.height) != (info.width, info.height):
            refuse_pixels(info.path, frame.width, frame.height, self.max_pixels)
            raise InconsistentScanError(
                f"{os.fspath(info.path)}: frame at {t:.3f} s is {frame.width}x{frame.height} "
                f"but the stream declares {info.width}x{info.height}; a video must keep one "
                "frame size",
                path=info.path,
            )


def _to_rgb(frame: Any, rotation: int, reformatter: Any = None) -> np.ndarray:
    """A decoded frame as ``uint8`` RGB ``(H, W, 3)``, rotated for display.

    One shared ``VideoReformatter`` keeps one swscale context for all the frames of a read:
    ``frame.to_ndarray(format=...)`` sets up a new one (and its threads) per frame, which
    cost ten times the conversion itself on small frames.
    """
    if reformatter is not None:
        frame = reformatter.reformat(frame, format="rgb24")
    rgb = frame.to_ndarray(format="rgb24")
    if rotation:
        rgb = np.ascontiguousarray(np.rot90(rgb, k=rotation // 90))
    return rgb


def read_frames(
    path: str | os.PathLike[str],
    indices: Sequence[int] | np.ndarray,
    *,
    info: VideoInfo | None = None,
    seek: bool = True,
    autorotate: bool = True,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_voxels: int | None = None,
    max_bytes: int | None = None,
) -> np.ndarray:
    """Decode the given frames of a video, decoding as few others as it can.

    The asked frames are visited in time order. Before each one the decoder seeks to the key
    frame at or before it (``container.seek(..., backward=True, any_frame=False)``) when the
    container's index shows one beyond what was already decoded; otherwise it decodes
    forward. Frames in between are decoded (a P or B frame needs them) but never converted to
    RGB. Without an index (``index_entries`` empty), when a seek fails, or when it lands after
    the wanted frame or on frames without timestamps, it decodes sequentially from the start.

    The limits are checked before decoding: each frame against ``max_pixels``, and the
    frames returned (``len(indices) x H x W x 3`` bytes) against ``max_voxels`` and
    ``max_bytes`` (see :func:`resnet3d.data.readers.size_limits`).

    Args:
        path: A video file.
        indices: Frame numbers in ``[0, frames)`` in any order, repeats allowed (frame ``i``
            is the frame shown at ``start + i / fps``; see the module docstring).
        info: The video's :class:`VideoInfo` if already read (saves one probe).
        seek: Seek to key frames (``False``: decode from the start; the same frames).
        autorotate: Rotate frames as their display matrix says (90-degree steps).
        max_pixels: Largest frame, in pixels.
        max_voxels: Largest output, in pixels x frames.
        max_bytes: Largest output, in bytes.

    Returns:
        ``uint8`` RGB frames in the order of ``indices``.

    Shape:
        ``(len(indices), H, W, 3)``; ``H`` and ``W`` after rotation.

    Raises:
        CorruptSliceError: If the file cannot be decoded, or ends before a frame asked for.
        ImageTooLargeError: If a frame or the output exceeds a limit.
        IndexError: For a frame number outside ``[0, frames)``.
        UnsupportedFormatError, MissingDependencyError: As :func:`read_video_info`.
    """
    if info is None:
        info = read_video_info(path, max_pixels=max_pixels)
    else:
        refuse_pixels(info.path, info.width, info.height, max_pixels)
    rotation = info.rotation if autorotate else 0
    if not autorotate:
        info = dataclasses.replace(info, rotation=0)
    wanted = np.asarray(indices, dtype=np.int64).reshape(-1)
    bad = wanted[(wanted < 0) | (wanted >= max(info.frames, 1))]
    if len(bad):
        raise IndexError(
            f"frame {int(bad[0])} out of range: {os.fspath(info.path)} has {info.frames} frames"
        )
    _check_held(info, len(wanted), max_voxels, max_bytes)
    height, width = info.display_hw
    out = np.empty((len(wanted), height, width, 3), dtype=np.uint8)
    if not len(wanted):
        return out
    unique, inverse = np.unique(wanted, return_inverse=True)
    times = info.start_time + unique / info.fps
    decoder = _Decoder(info, seek=seek, max_pixels=max_pixels)
    frames = decoder.run(times)
    logger.debug(
        "%s: %d frames asked, %d decoded, %d seeks", info.path, len(unique), decoder.decoded,
        decoder.seeks,
    )  # fmt: skip
    from av.video.reformatter import VideoReformatter

    reformatter = VideoReformatter()
    converted = [_to_rgb(frame, rotation, reformatter) for frame in frames]
    for row, source in enumerate(inverse.reshape(-1)):
        out[row] = converted[source]
    return out


def read_clips(
    path: str | os.PathLike[str],
    clips: np.ndarray | Sequence[Sequence[int]],
    **kwargs: Any,
) -> np.ndarray:
    """Decode clips of frames (:func:`sample_clips` output); see :func:`read_frames`.

    Args:
        path: A video file.
        clips: Frame numbers, one row per clip.
        **kwargs: As :func:`read_frames` (``info``, ``seek``, ``autorotate``, limits).

    Returns:
        ``uint8`` RGB clips.

    Shape:
        ``(clips, frames_per_clip, H, W, 3)``.
    """
    rows = np.asarray(clips, dtype=np.int64)
    if rows.ndim != 2:
        raise ValueError(f"clips must be (clips, frames_per_clip) frame numbers, got {rows.shape}")
    frames = read_frames(path, rows.reshape(-1), **kwargs)
    return frames.reshape(*rows.shape, *frames.shape[1:])
