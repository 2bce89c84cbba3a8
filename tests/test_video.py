"""Video files: clip sampling, decoding only the frames asked for, load_scan, and bad videos."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from resnet3d.data.video import ClipSampler, sample_clips
from resnet3d.data.volumes import SliceStacker, load_scan
from resnet3d.errors import (
    CorruptSliceError,
    DatasetLayoutError,
    DatasetNotFoundError,
    ImageTooLargeError,
    MissingDependencyError,
    UnsupportedFormatError,
)

# ----------------------------------------------------------------------------------------
# Sampling: pure functions of a frame count (no PyAV needed)


def test_uniform_clips_are_centred_in_equal_segments() -> None:
    one = sample_clips(100, 16)
    np.testing.assert_array_equal(one, np.arange(42, 58)[None])  # (100 - 16 + 1) / 2 = 42.5
    four = sample_clips(100, 16, clips=4)
    assert four.shape == (4, 16) and four.dtype == np.int64
    np.testing.assert_array_equal(four[:, 0], [10, 31, 53, 74])  # floor of 21.25 (k + 1/2)
    assert (np.diff(four, axis=1) == 1).all() and four.max() < 100


def test_stride_and_target_fps() -> None:
    clip = sample_clips(100, 4, stride=3, clips=1)
    np.testing.assert_array_equal(np.diff(clip[0]), [3, 3, 3])
    # 25 fps video sampled at 10 fps: one frame every 2.5 frames, rounded half up.
    at10 = sample_clips(100, 5, fps=10, video_fps=25.0, start="uniform")
    np.testing.assert_array_equal(at10[0] - at10[0, 0], [0, 3, 5, 8, 10])
    with pytest.raises(ValueError, match="video_fps"):
        sample_clips(100, 5, fps=10)
    with pytest.raises(ValueError, match="stride or fps"):
        sample_clips(100, 5, fps=10, stride=2, video_fps=25.0)


def test_random_starts_stay_in_their_segments_and_follow_the_seed() -> None:
    a = sample_clips(1000, 8, clips=5, start="random", seed=3)
    b = sample_clips(1000, 8, clips=5, start="random", seed=3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, sample_clips(1000, 8, clips=5, start="random", seed=4))
    seg = (1000 - 8 + 1) / 5
    for k, start in enumerate(a[:, 0]):
        assert np.floor(k * seg) <= start < np.floor((k + 1) * seg)
    # More clips than possible starts: every clip still valid.
    many = sample_clips(10, 8, clips=6, start="random", seed=0)
    assert many.min() >= 0 and many.max() <= 9


@pytest.mark.parametrize(
    ("short", "expected"),
    [("loop", [0, 1, 2, 3, 4, 0, 1, 2]), ("pad", [0, 1, 2, 3, 4, 4, 4, 4])],
)
def test_short_video_policies(short: str, expected: list[int]) -> None:
    clips = sample_clips(5, 8, clips=2, short=short)
    np.testing.assert_array_equal(clips, [expected, expected])


def test_short_video_refused_names_the_video_and_both_lengths() -> None:
    with pytest.raises(DatasetLayoutError) as info:
        sample_clips(5, 8, stride=2, short="refuse", path="clip.mp4")
    message = str(info.value)
    assert "\n" not in message
    for part in ("clip.mp4", "5 frames", "8 frames", "stride 2", "15 frames", "short="):
        assert part in message
    with pytest.raises(DatasetLayoutError, match="no frames"):
        sample_clips(0, 8)


def test_sampler_validates_and_round_trips() -> None:
    sampler = ClipSampler(clips=3, fps=12.5, start="random", seed=1, short="pad")
    assert ClipSampler.from_dict(json.loads(json.dumps(sampler.to_dict()))) == sampler
    with pytest.raises(ValueError, match="short"):
        ClipSampler(short="wrap")
    with pytest.raises(ValueError, match="Did you mean 'clips'"):
        ClipSampler.from_dict({"clip": 2})
    with pytest.raises(ValueError, match="stride or fps"):
        ClipSampler(stride=2, fps=10)
    with pytest.raises(ValueError, match="needs a video"):
        ClipSampler(fps=10).indices(30, 4)


def test_importing_resnet3d_and_video_does_not_import_av() -> None:
    code = (
        "import sys, resnet3d, resnet3d.data.video, resnet3d.data.volumes, resnet3d.data.readers\n"
        "import resnet3d.data.synthetic_video\n"
        "assert 'av' not in sys.modules, 'av imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_missing_pyav_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from tests.helpers.modules import hide_module

    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\x00" * 64)
    hide_module(monkeypatch, "av")
    with pytest.raises(MissingDependencyError, match=r"resnet3d\[video\]"):
        load_scan(video, depth=4)


# ----------------------------------------------------------------------------------------
# Real files (PyAV)

FRAMES, SIZE = 24, 32


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("av")
    from resnet3d.data.synthetic_video import generate_video, write_video

    root = tmp_path_factory.mktemp("videos")
    frames = generate_video("right", frames=FRAMES, size=SIZE, seed=7)
    out = {
        "mp4": write_video(root / "clip.mp4", frames, keyframe_interval=6),
        "mkv": write_video(root / "clip.mkv", frames, keyframe_interval=6),
        "avi": write_video(root / "clip.avi", frames, codec="mpeg4", keyframe_interval=6),
        "webm": write_video(root / "clip.webm", frames, codec="libvpx-vp9", keyframe_interval=6),
        "faststart": write_video(
            root / "faststart.mp4",
            generate_video("down", frames=40, size=SIZE, seed=3),
            keyframe_interval=10,
            container_options={"movflags": "faststart"},
        ),
    }
    np.save(root / "truth.npy", frames)
    out["truth"] = root / "truth.npy"
    return out


def _truth(videos: dict[str, Path]) -> np.ndarray:
    return np.load(videos["truth"])


@pytest.mark.parametrize("kind", ["mp4", "mkv", "avi", "webm"])
def test_frames_match_the_generator_after_lossy_encoding(
    videos: dict[str, Path], kind: str
) -> None:
    from resnet3d.data.video import read_frames, read_video_info

    info = read_video_info(videos[kind])
    assert (info.frames, info.width, info.height, info.fps) == (FRAMES, SIZE, SIZE, 25.0)
    assert info.rotation == 0 and not info.variable_frame_rate
    assert info.frames_exact == (kind in ("mp4", "avi"))  # Matroska stores no frame count
    got = read_frames(videos[kind], range(FRAMES))
    assert got.shape == (FRAMES, SIZE, SIZE, 3) and got.dtype == np.uint8
    error = np.abs(got.astype(np.int16) - _truth(videos))
    # 4:2:0 chroma blurs the square's coloured edges; elsewhere the error is a few levels.
    assert error.mean() < 4 and np.percentile(error, 95) < 16


@pytest.mark.parametrize("kind", ["mp4", "mkv", "avi", "webm", "faststart"])
def test_seeking_gives_the_frames_of_a_sequential_decode(
    videos: dict[str, Path], kind: str
) -> None:
    from resnet3d.data.video import read_clips, read_frames, read_video_info

    info = read_video_info(videos[kind])
    every = read_frames(videos[kind], range(info.frames), seek=False)
    clips = sample_clips(info, 4, clips=3, stride=2)
    np.testing.assert_array_equal(read_clips(videos[kind], clips), every[clips])
    odd = [info.frames - 1, 3, 3, 0, info.frames // 2]  # any order, repeats allowed
    np.testing.assert_array_equal(read_frames(videos[kind], odd), every[odd])


def test_seeking_decodes_fewer_frames(videos: dict[str, Path]) -> None:
    from resnet3d.data.video import _Decoder, read_video_info

    info = read_video_info(videos["faststart"])
    times = info.start_time + np.arange(30, 34) / info.fps
    seeking, sequential = _Decoder(info, True, 10**6), _Decoder(info, False, 10**6)
    seeking.run(times)
    sequential.run(times)
    assert seeking.seeks == 1 and seeking.decoded < 10
    assert sequential.seeks == 0 and sequential.decoded >= 34


def test_a_failed_seek_falls_back_to_sequential_decoding(
    videos: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import av

    from resnet3d.data import video as vmod

    info = vmod.read_video_info(videos["mp4"])
    expected = vmod.read_frames(videos["mp4"], [20, 21], seek=False)
    real_open = av.open

    class NoSeek:  # a container whose seek fails, as on a stream without an index
        def __init__(self, container: object) -> None:
            self._c = container

        def __getattr__(self, name: str) -> object:
            return getattr(self._c, name)

        def seek(self, *args: object, **kwargs: object) -> None:
            raise av.error.PermissionError(1, "seek refused")

    monkeypatch.setattr(av, "open", lambda *a, **k: NoSeek(real_open(*a, **k)))
    decoder = vmod._Decoder(info, True, 10**6)
    frames = decoder.run(info.start_time + np.array([20, 21]) / info.fps)
    assert decoder.seeks == 0 and decoder.decoded >= 22
    got = np.stack([vmod._to_rgb(f, 0) for f in frames])
    np.testing.assert_array_equal(got, expected)


def test_load_scan_on_a_video_gives_clips(videos: dict[str, Path]) -> None:
    clips = load_scan(videos["mp4"], depth=8, size=16)
    assert tuple(clips.shape) == (3, 3, 8, 16, 16)  # 24 frames: 3 consecutive clips
    stacker = SliceStacker(depth=8, size=None)
    native = stacker.load(videos["mp4"])
    assert native.shape == (3, 3, 8, SIZE, SIZE)
    from resnet3d.data.video import read_frames

    frames = read_frames(videos["mp4"], range(FRAMES))
    np.testing.assert_array_equal(native[1, :, 0], np.moveaxis(frames[8], -1, 0) / np.float32(255))
    gray = load_scan(videos["mp4"], depth=8, size=16, channels=1, as_numpy=True)
    assert gray.shape == (3, 1, 8, 16, 16)
    compact = stacker.load(videos["mp4"], compact=True)
    assert compact.dtype == np.uint8 and compact.shape == native.shape


def test_load_scan_with_a_sampler(videos: dict[str, Path]) -> None:
    sampler = ClipSampler(clips=2, stride=2)
    clips = load_scan(videos["mp4"], depth=4, size=None, sampler=sampler, as_numpy=True)
    assert clips.shape == (2, 3, 4, SIZE, SIZE)
    from resnet3d.data.video import read_clips, read_video_info

    rows = sampler.indices(FRAMES, 4)
    raw = read_clips(videos["mp4"], rows)
    np.testing.assert_array_equal(clips, np.moveaxis(raw, -1, 1) / np.float32(255))
    at_fps = load_scan(videos["mp4"], depth=4, size=8, sampler=ClipSampler(fps=12.5))
    assert tuple(at_fps.shape) == (1, 3, 4, 8, 8)
    assert read_video_info(videos["mp4"]).fps == 25.0


@pytest.mark.parametrize("short", ["loop", "pad", "refuse"])
def test_a_video_shorter_than_one_clip(tmp_path: Path, short: str) -> None:
    pytest.importorskip("av")
    from resnet3d.data.synthetic_video import generate_video, write_video
    from resnet3d.data.video import read_frames

    video = write_video(tmp_path / "short.mp4", generate_video("up", frames=5, size=16, seed=1))
    sampler = ClipSampler(short=short)
    if short == "refuse":
        with pytest.raises(DatasetLayoutError, match=r"short\.mp4: 5 frames, shorter than one"):
            load_scan(video, depth=8, size=None, sampler=sampler)
        return
    clips = load_scan(video, depth=8, size=None, sampler=sampler, as_numpy=True, dtype="uint8")
    frames = read_frames(video, range(5))
    order = [0, 1, 2, 3, 4, 0, 1, 2] if short == "loop" else [0, 1, 2, 3, 4, 4, 4, 4]
    np.testing.assert_array_equal(clips[0], np.moveaxis(frames[order], -1, 0))
    # Without a sampler a short video follows the stacker's remainder, as a short scan does.
    assert load_scan(video, depth=8, size=None).shape[0] == 0
    assert load_scan(video, depth=8, size=None, remainder="pad").shape[0] == 1


def test_variable_frame_rate_is_sampled_by_timestamp(tmp_path: Path) -> None:
    pytest.importorskip("av")
    from resnet3d.data.synthetic_video import write_video
    from resnet3d.data.video import read_frames, read_video_info

    # Frame k is gray level 8 k; 15 frames at 25 fps, then 15 at 12.5 fps.
    levels = np.stack([np.full((16, 16, 3), 8 * k, np.uint8) for k in range(30)])
    pts = [40 * k for k in range(15)] + [560 + 80 * (k + 1) for k in range(15)]
    video = write_video(tmp_path / "vfr.mp4", levels, pts=pts, time_base=Fraction(1, 1000))
    info = read_video_info(video)
    assert info.variable_frame_rate and info.frames == 30
    assert info.fps == pytest.approx(30 / 1.72)  # 30 frames over 1.72 s
    got = read_frames(video, range(30))
    shown = np.rint(got.reshape(30, -1).mean(axis=1) / 8).astype(int)
    # Frame number i is the time i / fps; the frame whose timestamp is nearest is shown.
    times = np.asarray(pts) / 1000
    nearest = [int(np.argmin(np.abs(times - i / info.fps))) for i in range(30)]
    np.testing.assert_array_equal(shown, nearest)
    assert (np.diff(shown) == 0).any() and (np.diff(shown) == 2).any()  # repeats and skips


def test_rotation_metadata_is_applied(tmp_path: Path) -> None:
    pytest.importorskip("av")
    from resnet3d.data.synthetic_video import write_video
    from resnet3d.data.video import read_frames, read_video_info

    stored = np.zeros((2, 16, 32, 3), np.uint8)
    stored[:, :4, :4] = 255  # a mark in the stored top-left corner
    video = write_video(tmp_path / "portrait.mp4", stored, rotation=90)
    info = read_video_info(video)
    assert info.rotation == 90 and info.display_hw == (32, 16)
    shown = read_frames(video, [0])[0]
    assert shown.shape == (32, 16, 3)
    # 90 degrees counter-clockwise: the stored top-left corner is shown bottom-left.
    assert shown[-2, 1].min() > 200 and shown[1, 1].max() < 50
    assert read_frames(video, [0], autorotate=False).shape == (1, 16, 32, 3)
    assert tuple(load_scan(video, depth=2, size=None).shape) == (1, 3, 2, 32, 16)


def test_zero_length_and_missing_files(tmp_path: Path) -> None:
    pytest.importorskip("av")
    empty = tmp_path / "empty.mp4"
    empty.touch()
    with pytest.raises(CorruptSliceError, match=r"empty\.mp4: video file is empty \(0 bytes\)"):
        load_scan(empty)
    with pytest.raises(DatasetNotFoundError, match=r"gone\.mp4"):
        load_scan(tmp_path / "gone.mp4")


def test_random_bytes_and_truncated_files(tmp_path: Path, videos: dict[str, Path]) -> None:
    from resnet3d.data.video import read_frames, read_video_info

    noise = tmp_path / "noise.mp4"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes())
    with pytest.raises(CorruptSliceError, match=r"noise\.mp4: cannot read as a video container"):
        read_video_info(noise)
    # An mp4 with its index at the end loses the index when cut.
    data = videos["mp4"].read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptSliceError, match=r"cut\.mp4: cannot read as a video container"):
        load_scan(cut, depth=4)
    # With the index first (faststart), the header survives and the frames run out.
    data = videos["faststart"].read_bytes()
    cut_fast = tmp_path / "cut_fast.mp4"
    cut_fast.write_bytes(data[: int(len(data) * 0.6)])
    assert read_video_info(cut_fast).frames == 40
    for seek in (True, False):
        with pytest.raises(CorruptSliceError, match=r"cut_fast\.mp4: .*(truncated|damaged)") as e:
            read_frames(cut_fast, [39], seek=seek)
        assert "\n" not in str(e.value)


def test_a_codec_ffmpeg_lacks_is_unsupported(tmp_path: Path, videos: dict[str, Path]) -> None:
    from resnet3d.data.video import read_video_info

    # The AVI's codec tag (FMP4, MPEG-4 Part 2) replaced by one no FFmpeg decoder knows.
    data = videos["avi"].read_bytes()
    assert b"FMP4" in data
    unknown = tmp_path / "unknown.avi"
    unknown.write_bytes(data.replace(b"FMP4", b"QQQQ"))
    with pytest.raises(UnsupportedFormatError, match=r"unknown\.avi: no decoder for its video"):
        read_video_info(unknown)
    with pytest.raises(UnsupportedFormatError, match="no decoder"):
        load_scan(unknown, depth=4)


def test_no_video_stream(tmp_path: Path) -> None:
    av = pytest.importorskip("av")
    audio = tmp_path / "sound.mkv"
    with av.open(str(audio), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000, layout="mono")
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 800), np.int16), format="s16", layout="mono"
        )
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with pytest.raises(UnsupportedFormatError, match=r"sound\.mkv: holds no video stream"):
        load_scan(audio)


def test_size_limits_are_checked_before_decoding(
    tmp_path: Path, videos: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from resnet3d.data.video import read_frames, read_video_info

    # A cut file whose frames no longer decode: the limit, not the damage, is reported.
    data = videos["faststart"].read_bytes()
    header_only = tmp_path / "bomb.mp4"
    header_only.write_bytes(data[: data.index(b"mdat") + 40])  # the index, no frames
    with pytest.raises(ImageTooLargeError, match=r"bomb\.mp4: declares 32x32 pixels") as info:
        read_video_info(header_only, max_pixels=1000)
    assert "max_pixels" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ImageTooLargeError, match="max_pixels"):
        load_scan(header_only, depth=4, max_pixels=1000)
    # The frames to be returned count against max_voxels / max_bytes (and their variables).
    with pytest.raises(ImageTooLargeError, match=r"24 frames of 32 x 32 RGB .*\(24,576 voxels"):
        read_frames(videos["mp4"], range(24), max_voxels=20_000)
    assert read_frames(videos["mp4"], range(8), max_voxels=20_000).shape[0] == 8
    monkeypatch.setenv("RESNET3D_MAX_BYTES", "50000")
    with pytest.raises(ImageTooLargeError, match="RESNET3D_MAX_BYTES"):
        load_scan(videos["mp4"], depth=8, size=16)
    one = load_scan(videos["mp4"], depth=8, size=16, sampler=ClipSampler(clips=1))
    assert one.shape[0] == 1  # one clip of a long video fits where the whole video does not


def test_slice_folders_are_unchanged(tmp_path: Path) -> None:
    scan = tmp_path / "scan"
    scan.mkdir()
    for i in range(6):
        Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(scan / f"{i}.png")
    (scan / "notes.mp4").write_bytes(b"")  # a video name in a slice folder is not a slice
    vols = load_scan(scan, depth=3, size=None, as_numpy=True)
    assert vols.shape == (2, 3, 3, 8, 8)
    sampled = load_scan(scan, depth=3, size=None, sampler=ClipSampler(clips=2, stride=2))
    assert tuple(sampled.shape) == (2, 3, 3, 8, 8)
    np.testing.assert_array_equal(sampled[0, 0, :, 0, 0] * 255, [0, 80, 160])
    stacker = SliceStacker(depth=3)
    assert SliceStacker.from_dict(stacker.to_dict()) == stacker
    assert "sampler" not in stacker.to_dict()
