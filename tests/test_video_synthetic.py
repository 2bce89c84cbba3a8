"""The moving-squares video set: deterministic, a single frame cannot tell the class, motion can."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from resnet3d.data.synthetic_video import CLASSES, MARKER_NAME, MOTIONS, generate_video

LOOK = {"side": 4, "background": [10, 20, 30], "color": [200, 180, 160]}


def test_frames_are_deterministic_per_seed() -> None:
    a = generate_video("right", frames=6, size=16, seed=5)
    np.testing.assert_array_equal(a, generate_video("right", frames=6, size=16, seed=5))
    assert not np.array_equal(a, generate_video("right", frames=6, size=16, seed=6))
    assert a.shape == (6, 16, 16, 3) and a.dtype == np.uint8


def test_a_single_frame_cannot_tell_the_class() -> None:
    # Frame 0 depends on the seed only, not on the motion.
    first = [generate_video(m, frames=3, size=16, seed=9)[0] for m in CLASSES]
    for frame in first[1:]:
        np.testing.assert_array_equal(frame, first[0])

    # Over all start positions, frame t of every class is the same set of pictures: the
    # square wraps around, so each class shows it everywhere equally often.
    def frames_at(motion: str, t: int) -> set[bytes]:
        return {
            generate_video(motion, frames=t + 1, size=16, start=(y, x), look=LOOK)[t].tobytes()
            for y in range(16)
            for x in range(16)
        }

    reference = frames_at("right", 3)
    assert len(reference) == 256
    for motion in CLASSES[1:]:
        assert frames_at(motion, 3) == reference
    # A left video is a right video played backwards.
    right = generate_video("right", frames=5, size=16, start=(2, 7), look=LOOK)
    left = generate_video("left", frames=5, size=16, start=(2, 7 + 4), look=LOOK)
    np.testing.assert_array_equal(left, right[::-1])


def _shift(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """The circular (dy, dx) that best maps frame a onto frame b (cross-correlation)."""
    fa = np.fft.fft2(a.astype(np.float64).mean(-1) - a.mean())
    fb = np.fft.fft2(b.astype(np.float64).mean(-1) - b.mean())
    corr = np.fft.ifft2(fb * np.conj(fa)).real
    dy, dx = np.unravel_index(int(np.argmax(corr)), corr.shape)
    h, w = corr.shape
    return (dy - h if dy > h // 2 else dy), (dx - w if dx > w // 2 else dx)


def test_written_set_layout_and_motion_read_back(tmp_path: Path) -> None:
    pytest.importorskip("av")
    from resnet3d.data.synthetic_video import write_video_dataset
    from resnet3d.data.video import read_frames, read_video_info

    root = write_video_dataset(tmp_path / "set", videos_per_class=3, groups=2, frames=8, seed=1)
    marker = json.loads((root / MARKER_NAME).read_text())
    names = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.mp4"))
    assert names == sorted(v["path"] for v in marker["videos"])
    assert sorted(p.name for p in (root / "up").iterdir()) == [
        "v_up_g01_c01.mp4",
        "v_up_g01_c02.mp4",
        "v_up_g02_c01.mp4",
    ]
    for entry in marker["videos"]:
        path = root / entry["path"]
        assert read_video_info(path).frames == 8
        frames = read_frames(path, range(8))
        truth = generate_video(
            entry["label"], frames=8, size=32, seed=entry["seed"], look=entry["look"]
        )
        assert np.abs(frames.astype(np.int16) - truth).mean() < 4
        # Motion, measured on the decoded frames, gives the class every time.
        shifts = {_shift(frames[t], frames[t + 1]) for t in range(7)}
        dy, dx = MOTIONS[entry["label"]]
        assert shifts == {(2 * dy, 2 * dx)}  # size 32: 2 pixels a frame
    # Videos of one group share their look; groups differ.
    looks = {(v["label"], v["group"]): json.dumps(v["look"]) for v in marker["videos"]}
    assert len(set(looks.values())) == len(looks)


def test_written_set_refuses_to_overwrite_other_files(tmp_path: Path) -> None:
    pytest.importorskip("av")
    from resnet3d.data.synthetic_video import write_video_dataset

    out = tmp_path / "set"
    write_video_dataset(out, classes=("left", "right"), videos_per_class=1, groups=1, frames=2)
    with pytest.raises(FileExistsError, match="not empty"):
        write_video_dataset(out, classes=("left",), videos_per_class=1, groups=1, frames=2)
    write_video_dataset(
        out, classes=("up",), videos_per_class=1, groups=1, frames=2, overwrite=True
    )
    assert sorted(p.name for p in out.iterdir()) == [MARKER_NAME, "up"]
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="only a set written"):
        write_video_dataset(other, videos_per_class=1, groups=1, frames=2, overwrite=True)
    assert (other / "keep.txt").exists()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"classes": ("sideways",)}, ValueError, "unknown motion 'sideways'"),
        ({"size": 33}, ValueError, "even"),
        ({"groups": 5, "videos_per_class": 2}, ValueError, "groups"),
        ({"layout": "flat"}, ValueError, "layout"),
        ({"frames": 1.5}, TypeError, "frames"),
    ],
)
def test_bad_settings(tmp_path: Path, kwargs: dict, error: type, match: str) -> None:
    from resnet3d.data.synthetic_video import write_video_dataset

    with pytest.raises(error, match=match):
        write_video_dataset(tmp_path / "set", **kwargs)
    assert not (tmp_path / "set").exists()
