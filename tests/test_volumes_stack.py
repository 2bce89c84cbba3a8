"""Stacking slices into volumes: counts, shapes, policies, layout, spec round trip."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import einops
import numpy as np
import pytest
import torch
from PIL import Image

from resnet3d.data.volumes import SliceStacker, list_slices, load_scan
from resnet3d.errors import CorruptSliceError


def _write_scan(folder: Path, n: int, size: int = 8, rgb: bool = True, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for i in range(n):
        shape = (size, size, 3) if rgb else (size, size)
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def _expected_indices(n: int, depth: int, stride: int, remainder: str, pad: str) -> list[list[int]]:
    """A direct, independent statement of the documented rules."""
    rows = []
    start = 0
    while start + depth <= n:
        rows.append(list(range(start, start + depth)))
        start += stride
    covered = rows[-1][-1] + 1 if rows else 0
    if remainder == "drop" or start >= n or covered >= n:
        return rows
    if remainder == "overlap" and n >= depth:
        return [*rows, list(range(n - depth, n))]
    tail = list(range(start, n))
    fill = n - 1 if pad == "edge" else -1
    return [*rows, tail + [fill] * (depth - len(tail))]


@pytest.mark.parametrize("remainder", ["drop", "pad", "overlap"])
@pytest.mark.parametrize("stride", [None, 1, 2, 3, 5])
@pytest.mark.parametrize("pad_mode", ["edge", "zero"])
def test_volume_indices_follow_the_rules(remainder: str, stride: int | None, pad_mode: str) -> None:
    depth = 3
    stacker = SliceStacker(depth=depth, stride=stride, remainder=remainder, pad_mode=pad_mode)
    for n in range(0, 12):
        got = stacker.volume_indices(n)
        expected = _expected_indices(n, depth, stride or depth, remainder, pad_mode)
        assert got.tolist() == expected, (n, stride, remainder)
        assert got.shape == (len(expected), depth)
        assert stacker.num_volumes(n) == len(expected)


def test_paper_counts_hand_checked() -> None:
    # 10 slices, depth 4: drop -> 2 volumes, pad -> 3, overlap -> 3 (last = slices 6..9)
    assert SliceStacker(depth=4).volume_indices(10).tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert SliceStacker(depth=4, remainder="pad").volume_indices(10)[-1].tolist() == [8, 9, 9, 9]
    zero = SliceStacker(depth=4, remainder="pad", pad_mode="zero")
    assert zero.volume_indices(10)[-1].tolist() == [8, 9, -1, -1]
    over = SliceStacker(depth=4, remainder="overlap")
    assert over.volume_indices(10)[-1].tolist() == [6, 7, 8, 9]
    # a scan shorter than depth: drop gives nothing, pad and overlap pad it
    assert SliceStacker(depth=4).volume_indices(3).shape == (0, 4)
    assert over.volume_indices(3).tolist() == [[0, 1, 2, 2]]


def test_volumes_equal_einops_of_slices_read_one_by_one(tmp_path: Path) -> None:
    scan = _write_scan(tmp_path / "scan", 11, rgb=True)
    stacker = SliceStacker(depth=4, size=None, threads=3)
    vol = stacker(scan)
    assert isinstance(vol, torch.Tensor) and vol.dtype == torch.float32
    assert vol.shape == (2, 3, 4, 8, 8)
    one_by_one = [np.asarray(Image.open(p)) for p in list_slices(scan)]
    for v, rows in enumerate(stacker.volume_indices(11)):
        stacked = np.stack([one_by_one[i] for i in rows])  # (d, h, w, c)
        expected = einops.rearrange(stacked, "d h w c -> c d h w") / np.float32(255)
        np.testing.assert_array_equal(vol[v].numpy(), expected)


@pytest.mark.parametrize("remainder", ["drop", "pad", "overlap"])
@pytest.mark.parametrize("stride", [None, 2])
def test_shapes_per_policy(tmp_path: Path, remainder: str, stride: int | None) -> None:
    scan = _write_scan(tmp_path / "scan", 7, rgb=False)
    stacker = SliceStacker(depth=3, stride=stride, size=(4, 6), remainder=remainder)
    out = stacker.load(scan)
    n = stacker.num_volumes(7)
    assert out.shape == (n, 3, 3, 4, 6)
    # every volume equals stacking its documented slice numbers of the full prepared scan
    prepared = stacker.read(scan)
    assert prepared.shape == (7, 4, 6)
    for v, rows in enumerate(stacker.volume_indices(7)):
        np.testing.assert_array_equal(out[v, 0], prepared[rows])


def test_zero_padding_is_black(tmp_path: Path) -> None:
    scan = _write_scan(tmp_path / "scan", 5, rgb=False)
    out = SliceStacker(depth=4, size=None, remainder="pad", pad_mode="zero").load(scan)
    assert out.shape[0] == 2
    assert (out[1, :, 1:] == 0).all() and out[1, :, 0].any()


def test_only_needed_slices_are_decoded(tmp_path: Path) -> None:
    scan = _write_scan(tmp_path / "scan", 6, rgb=False)
    data = (scan / "5.png").read_bytes()
    (scan / "5.png").write_bytes(data[: len(data) // 2])  # truncated: PNG magic, no pixels
    stacker = SliceStacker(depth=4, size=None)
    full = stacker.load(scan)  # drop: slices 4 and 5 are never decoded
    assert full.shape[0] == 1
    np.testing.assert_array_equal(stacker.load(scan, volumes=[0]), full)
    with pytest.raises(IndexError, match="1 volumes"):
        stacker.load(scan, volumes=[1])
    with pytest.raises(CorruptSliceError) as info:
        stacker.replace(remainder="pad").load(scan)
    assert str(scan / "5.png") in str(info.value)


def test_threads_do_not_change_the_result(tmp_path: Path) -> None:
    scan = _write_scan(tmp_path / "scan", 9, rgb=True)
    a = SliceStacker(depth=3, size=5, threads=1).load(scan)
    b = SliceStacker(depth=3, size=5, threads=4).load(scan)
    np.testing.assert_array_equal(a, b)


def test_uint8_output_is_the_cache_format(tmp_path: Path) -> None:
    scan = _write_scan(tmp_path / "scan", 4, rgb=True)
    f = SliceStacker(depth=4, size=None).load(scan)
    u = SliceStacker(depth=4, size=None, dtype="uint8").load(scan)
    assert u.dtype == np.uint8
    np.testing.assert_array_equal(u / np.float32(255), f)


def test_short_scan_with_drop_gives_empty_batch(tmp_path: Path) -> None:
    scan = _write_scan(tmp_path / "scan", 2, rgb=False)
    out = load_scan(scan, depth=4, size=(3, 5))
    assert tuple(out.shape) == (0, 3, 4, 3, 5)
    padded = load_scan(scan, depth=4, size=(3, 5), remainder="pad", as_numpy=True)
    assert padded.shape == (1, 3, 4, 3, 5)
    np.testing.assert_array_equal(padded[0, :, 2], padded[0, :, 1])  # edge padding


def test_stack_array_and_stack_prepared() -> None:
    slices = np.arange(5 * 2 * 3, dtype=np.uint8).reshape(5, 2, 3)
    stacker = SliceStacker(depth=2, size=None, channels=1, dtype="uint8")
    out = stacker.stack_array(slices)
    assert out.shape == (2, 1, 2, 2, 3)
    np.testing.assert_array_equal(out[:, 0], slices[:4].reshape(2, 2, 2, 3))
    rgb = np.arange(4 * 2 * 2 * 3, dtype=np.uint8).reshape(4, 2, 2, 3)
    vols = SliceStacker(depth=4, size=None, dtype="uint8").stack_prepared(rgb)
    np.testing.assert_array_equal(vols[0], einops.rearrange(rgb, "d h w c -> c d h w"))
    with pytest.raises(ValueError, match="channels"):
        SliceStacker(depth=4, size=None, channels=1).stack_prepared(rgb)
    with pytest.raises(ValueError, match="shape"):
        stacker.prepare(np.zeros((2, 3)))


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"depth": 8, "stride": 2, "size": 64, "remainder": "pad", "pad_mode": "zero"},
        {"window": "lung", "channels": 1, "dtype": "uint8", "size": None},
        {"window": [-600, 1500]},
        {"window": ["lung", [40, 400], "bone"], "channels": 3, "resample": "nearest"},
    ],
)
def test_spec_round_trips_through_json(kwargs: dict[str, object]) -> None:
    stacker = SliceStacker(**kwargs)  # type: ignore[arg-type]
    spec = json.loads(json.dumps(stacker.to_dict()))
    again = SliceStacker.from_dict(spec)
    assert again == stacker
    assert again.to_dict() == stacker.to_dict()
    assert hash(again) == hash(stacker)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"depth": 0}, "depth must be an int >= 1"),
        ({"stride": -1}, "stride"),
        ({"size": (0, 4)}, "size"),
        ({"size": (1, 2, 3)}, "size must be"),
        ({"channels": 2}, "channels must be 1 or 3"),
        ({"window": ("lung", "bone"), "channels": 3}, "channels must be 2"),
        ({"window": "lungs"}, "Did you mean 'lung'"),
        ({"remainder": "pads"}, "Did you mean 'pad'"),
        ({"resample": "bilinaer"}, "Did you mean 'bilinear'"),
        ({"dtype": "float16"}, "dtype"),
    ],
)
def test_invalid_settings_are_explained(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SliceStacker(**kwargs)  # type: ignore[arg-type]


def test_from_dict_unknown_key() -> None:
    with pytest.raises(ValueError, match="Did you mean 'depth'"):
        SliceStacker.from_dict({"dept": 4})


def test_volumes_and_cache_import_neither_torch_nor_the_models() -> None:
    code = (
        "import sys, resnet3d.data.volumes, resnet3d.data.readers, resnet3d.data.cache\n"
        "import resnet3d.errors\n"
        "models = ('torch', 'resnet3d.models.resnet', 'resnet3d.models.blocks')\n"
        "bad = [m for m in models if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_convert_dtype_round_trips_every_level() -> None:
    from resnet3d.data.volumes import convert_dtype

    levels = np.arange(256, dtype=np.uint8).reshape(4, 8, 8)
    floats = convert_dtype(levels, "float32")
    assert floats.dtype == np.float32
    np.testing.assert_array_equal(floats, levels / np.float32(255.0))  # exact division
    assert np.array_equal(convert_dtype(floats, "uint8"), levels)  # back to the same level
    assert convert_dtype(levels, "uint8") is levels  # already uint8: no copy
    out = convert_dtype(np.array([-0.5, 0.0019, 0.0021, 1.5], dtype=np.float32), "uint8")
    assert out.tolist() == [0, 0, 1, 255]  # clipped, rounded to the nearest level
    with pytest.raises(ValueError, match="Did you mean 'float32'"):
        convert_dtype(levels, "float23")
