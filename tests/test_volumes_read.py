"""Decoding every Pillow mode, bit depth, windowing and the channel policy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from resnet3d.data.readers import read_slice
from resnet3d.data.volumes import WINDOWS, SliceStacker, apply_window, resolve_window

H, W = 4, 6


def _luma(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601-2 luma, in Pillow's integer arithmetic (documented by Image.convert)."""
    r, g, b = (rgb[..., i].astype(np.int64) for i in range(3))
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)


def _scan(tmp_path: Path, images: list[Image.Image], ext: str = "png", **save: object) -> Path:
    scan = tmp_path / "scan"
    scan.mkdir(exist_ok=True)
    for i, im in enumerate(images):
        im.save(scan / f"{i}.{ext}", **save)
    return scan


def _one(tmp_path: Path, im: Image.Image, ext: str = "png", **kwargs: object) -> np.ndarray:
    """Stack a 1-slice scan with depth 1 and return the (C, H, W) slice."""
    scan = _scan(tmp_path, [im], ext)
    out = SliceStacker(depth=1, size=None, **kwargs).load(scan)  # type: ignore[arg-type]
    assert out.shape[:3] == (1, out.shape[1], 1)
    return out[0, :, 0]


RGB = np.arange(H * W * 3, dtype=np.uint8).reshape(H, W, 3) * 5


def test_mode_L(tmp_path: Path) -> None:
    gray = (np.arange(H * W, dtype=np.uint8) * 11).reshape(H, W)
    im = Image.fromarray(gray)
    assert im.mode == "L"
    np.testing.assert_array_equal(read_slice(_scan(tmp_path, [im]) / "0.png"), gray)
    out = _one(tmp_path, im)
    assert out.shape == (3, H, W) and out.dtype == np.float32
    for c in range(3):  # the paper's 3 channels: gray repeated
        np.testing.assert_array_equal(out[c], gray / np.float32(255))


def test_mode_RGB_three_channels_and_luma(tmp_path: Path) -> None:
    im = Image.fromarray(RGB)
    assert im.mode == "RGB"
    np.testing.assert_array_equal(_one(tmp_path, im), np.moveaxis(RGB, -1, 0) / np.float32(255))
    one = _one(tmp_path, im, channels=1)
    np.testing.assert_array_equal(one[0], _luma(RGB) / np.float32(255))


def test_mode_RGBA_drops_alpha(tmp_path: Path) -> None:
    rgba = np.concatenate([RGB, np.full((H, W, 1), 7, np.uint8)], axis=-1)
    im = Image.fromarray(rgba)
    assert im.mode == "RGBA"
    got = read_slice(_scan(tmp_path, [im]) / "0.png")
    np.testing.assert_array_equal(got, RGB)


def test_mode_P_gray_palette_is_gray(tmp_path: Path) -> None:
    idx = (np.arange(H * W) % 4).astype(np.uint8).reshape(H, W)
    im = Image.fromarray(idx, mode="L").convert("L")
    pim = Image.new("P", (W, H))
    pim.putpalette([0, 0, 0, 60, 60, 60, 120, 120, 120, 250, 250, 250] + [0] * (252 * 3))
    pim.putdata(idx.ravel().tolist())
    assert pim.mode == "P"
    got = read_slice(_scan(tmp_path, [pim]) / "0.png")
    assert got.ndim == 2
    np.testing.assert_array_equal(got, np.array([0, 60, 120, 250], np.uint8)[idx])
    del im


def test_mode_P_colour_palette_is_rgb(tmp_path: Path) -> None:
    idx = (np.arange(H * W) % 3).astype(np.uint8).reshape(H, W)
    palette = np.array([[255, 0, 0], [0, 255, 0], [10, 20, 30]], np.uint8)
    pim = Image.new("P", (W, H))
    pim.putpalette(palette.ravel().tolist() + [0] * (253 * 3))
    pim.putdata(idx.ravel().tolist())
    got = read_slice(_scan(tmp_path, [pim]) / "0.png")
    np.testing.assert_array_equal(got, palette[idx])


def test_modes_1_and_LA(tmp_path: Path) -> None:
    bits = np.zeros((H, W), bool)
    bits[1, 2] = True
    (tmp_path / "a").mkdir()
    Image.fromarray(bits).save(tmp_path / "a" / "bits.png")
    got = read_slice(tmp_path / "a" / "bits.png")
    np.testing.assert_array_equal(got, bits.astype(np.uint8) * 255)
    la = Image.fromarray(np.stack([np.full((H, W), 9, np.uint8), np.zeros((H, W), np.uint8)], -1))
    assert la.mode == "LA"
    la.save(tmp_path / "a" / "la.png")
    np.testing.assert_array_equal(read_slice(tmp_path / "a" / "la.png"), np.full((H, W), 9))


def test_16_bit_png_never_clipped(tmp_path: Path) -> None:
    values = np.array([[0, 255, 256, 257, 4095, 65535]] * H, dtype=np.uint16)
    im = Image.fromarray(values)
    assert im.mode == "I;16"
    scan = _scan(tmp_path, [im])
    raw = read_slice(scan / "0.png")
    assert raw.dtype == np.uint16
    np.testing.assert_array_equal(raw, values)
    out = _one(tmp_path, im, channels=1)[0]
    np.testing.assert_allclose(out, values / 65535.0, rtol=0, atol=1e-7)
    assert len(np.unique(out[0])) == 6  # 255, 256, 257 stay distinct: no 8-bit clipping
    # a window applies to the stored values: [0, 512] -> [0, 1]
    win = _one(tmp_path, im, channels=1, window=(256.0, 512.0))[0]
    np.testing.assert_allclose(win[0], [0, 255 / 512, 256 / 512, 257 / 512, 1, 1], atol=1e-7)
    # uint8 output rounds to the nearest of 256 levels
    u8 = _one(tmp_path, im, channels=1, dtype="uint8")[0]
    np.testing.assert_array_equal(u8[0], np.rint(values[0] / 65535.0 * 255).astype(np.uint8))


def test_mode_I_and_F_tiff(tmp_path: Path) -> None:
    ints = np.array([[0, 1000, 65535, 70000, -5, 3]] * H, dtype=np.int32)
    im = Image.fromarray(ints)
    assert im.mode == "I"
    out = _one(tmp_path, im, ext="tif", channels=1)[0]
    np.testing.assert_allclose(out[0], np.clip(ints[0] / 65535.0, 0, 1), atol=1e-7)
    floats = np.array([[-0.5, 0.0, 0.25, 0.5, 1.0, 2.0]] * H, dtype=np.float32)
    fim = Image.fromarray(floats)
    assert fim.mode == "F"
    (tmp_path / "f").mkdir()
    fim.save(tmp_path / "f" / "0.tif")
    assert read_slice(tmp_path / "f" / "0.tif").dtype == np.float32
    got = SliceStacker(depth=1, size=None, channels=1).load(tmp_path / "f")[0, 0, 0]
    np.testing.assert_allclose(got[0], [0, 0, 0.25, 0.5, 1, 1])


def test_named_windows_hand_computed() -> None:
    hu = np.array([-1350.0, -975.0, -600.0, -225.0, 150.0, 1000.0], np.float32)
    np.testing.assert_allclose(apply_window(hu, *WINDOWS["lung"]), [0, 0.25, 0.5, 0.75, 1, 1])
    hu2 = np.array([-500.0, -160.0, 40.0, 140.0, 240.0], np.float32)
    np.testing.assert_allclose(
        apply_window(hu2, *WINDOWS["mediastinum"]), [0, 0, 0.5, 0.75, 1], atol=1e-7
    )
    assert resolve_window((40, 400)) == (40.0, 400.0)
    with pytest.raises(ValueError, match="Did you mean 'lung'"):
        resolve_window("lungs")
    with pytest.raises(ValueError, match="width > 0"):
        resolve_window((0, 0))


def test_window_on_hu_arrays_and_multi_window_channels() -> None:
    hu = np.array([[[-1350.0, -600.0, 40.0, 240.0]]], np.float32)  # (S=1, H=1, W=4)
    lung = SliceStacker(depth=1, size=None, channels=1, window="lung").stack_array(hu)
    np.testing.assert_allclose(lung[0, 0, 0, 0], [0, 0.5, (40 + 1350) / 1500, 1], atol=1e-6)
    three = SliceStacker(depth=1, size=None, channels=3, window="lung").stack_array(hu)
    assert three.shape == (1, 3, 1, 1, 4)
    np.testing.assert_array_equal(three[0, 1], lung[0, 0])
    multi = SliceStacker(depth=1, size=None, channels=2, window=("lung", "mediastinum"))
    out = multi.stack_array(hu)
    assert out.shape == (1, 2, 1, 1, 4)
    np.testing.assert_allclose(out[0, 1, 0, 0], [0, 0, 0.5, 1], atol=1e-6)
    # without a window, HU data map the CT range [-1024, 3071] onto [0, 1]
    none = SliceStacker(depth=1, size=None, channels=1).stack_array(
        np.array([[[-2000.0, -1024.0, 1023.5, 3071.0]]], np.float32)
    )
    np.testing.assert_allclose(none[0, 0, 0, 0], [0, 0, 0.5, 1], atol=1e-6)


def test_8_bit_images_pass_through_a_window(tmp_path: Path) -> None:
    gray = np.array([[0, 100, 200, 255, 1, 2]] * H, np.uint8)
    plain = _one(tmp_path, Image.fromarray(gray), channels=1)
    windowed = _one(tmp_path, Image.fromarray(gray), channels=1, window="lung")
    np.testing.assert_array_equal(plain, windowed)


def test_resize_only_when_needed_matches_pillow(tmp_path: Path) -> None:
    gray = (np.arange(64, dtype=np.uint8) * 4).reshape(8, 8)
    scan = _scan(tmp_path, [Image.fromarray(gray)])
    got = SliceStacker(depth=1, size=(4, 6), channels=1).load(scan)[0, 0, 0]
    expected = np.asarray(Image.fromarray(gray).resize((6, 4), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(got, expected / np.float32(255))
    same = SliceStacker(depth=1, size=8, channels=1).load(scan)[0, 0, 0]
    np.testing.assert_array_equal(same, gray / np.float32(255))


def test_gray_and_rgb_slices_in_one_scan(tmp_path: Path) -> None:
    gray = np.full((H, W), 77, np.uint8)
    scan = _scan(tmp_path, [Image.fromarray(gray), Image.fromarray(RGB)])
    out = SliceStacker(depth=2, size=None).load(scan)[0]
    np.testing.assert_array_equal(out[:, 0], np.full((3, H, W), 77 / np.float32(255)))
    np.testing.assert_array_equal(out[:, 1], np.moveaxis(RGB, -1, 0) / np.float32(255))
