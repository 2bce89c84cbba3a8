"""Training augmentation (resnet3d.engine.augment): specs, the draws against a brute-force oracle,
and the trainer's use of it (exact resume, validation untouched)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.helpers.toy import make_trainer

from resnet3d.engine.augment import DEFAULT_SHIFT, Augment, epoch_generator
from resnet3d.engine.train import TrainConfig


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (None, Augment()),
        ("", Augment()),
        ("none", Augment()),
        ("flip", Augment(flip=True)),
        ("shift", Augment(shift=DEFAULT_SHIFT)),
        (" flip , shift=0.1 ", Augment(flip=True, shift=0.1)),
        (["shift=0.25", "flip"], Augment(flip=True, shift=0.25)),
    ],
)
def test_parse(spec: object, expected: Augment) -> None:
    parsed = Augment.parse(spec)  # type: ignore[arg-type]
    assert parsed == expected
    assert Augment.parse(parsed.spec()) == parsed
    assert parsed.enabled == (expected != Augment())


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("flp", "Did you mean 'flip'"),
        ("flip,flip", "twice"),
        ("flip=1", "takes no value"),
        ("shift=abc", "needs a fraction"),
        ("shift=0.6", r"\[0, 0.5\)"),
        ("rotate", "unknown augmentation 'rotate'"),
    ],
)
def test_bad_specs_are_explained(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Augment.parse(spec)
    with pytest.raises(ValueError, match=message):
        TrainConfig(augment=spec)


def test_bad_fields_and_shapes() -> None:
    with pytest.raises(TypeError, match="flip"):
        Augment(flip=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shift"):
        Augment(shift=-0.1)
    with pytest.raises(TypeError, match="augment"):
        TrainConfig(augment=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="B, C, D, H, W"):
        Augment(flip=True)(torch.zeros(3, 4, 8, 8), torch.Generator())


def shifted(volume: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """The oracle: move a (C, D, H, W) volume by (dy, dx) pixels, zeros coming in."""
    out = np.zeros_like(volume)
    h, w = volume.shape[-2:]
    src_y, dst_y = slice(max(0, -dy), min(h, h - dy)), slice(max(0, dy), min(h, h + dy))
    src_x, dst_x = slice(max(0, -dx), min(w, w - dx)), slice(max(0, dx), min(w, w + dx))
    out[..., dst_y, dst_x] = volume[..., src_y, src_x]
    return out


def test_every_volume_is_one_of_the_allowed_moves() -> None:
    """Brute force: each output is the input flipped or not, shifted by some (dy, dx) within
    the range; over many volumes every move occurs; slices and channels move together."""
    torch.manual_seed(0)
    x = torch.rand(1000, 2, 3, 8, 12)
    before = x.clone()
    augment = Augment(flip=True, shift=0.25)  # up to 2 px in height, 3 px in width
    out = augment(x, torch.Generator().manual_seed(1))
    assert torch.equal(x, before), "the input must be left as it was"
    assert out.shape == x.shape and out.dtype == x.dtype
    seen = set()
    for volume, result in zip(x.numpy(), out.numpy()):
        matches = [
            (flip, dy, dx)
            for flip, dy, dx in itertools.product((False, True), range(-2, 3), range(-3, 4))
            if np.array_equal(shifted(volume[..., ::-1] if flip else volume, dy, dx), result)
        ]
        assert len(matches) == 1, matches
        seen.add(matches[0])
    assert len(seen) == 2 * 5 * 7


def test_draws_depend_only_on_the_generator() -> None:
    x = torch.rand(6, 1, 2, 16, 16)
    augment = Augment.parse("flip,shift")
    a = augment(x, epoch_generator(3, 1))
    b = augment(x, epoch_generator(3, 1))
    assert torch.equal(a, b)
    assert not torch.equal(a, augment(x, epoch_generator(3, 2)))
    assert not torch.equal(a, augment(x, epoch_generator(3, 1, rank=1)))
    # Disabled: the batch comes back unchanged.
    assert Augment()(x, epoch_generator(0, 0)) is x


def test_channels_last_batches() -> None:
    x = torch.rand(4, 3, 2, 8, 8)
    cl = x.contiguous(memory_format=torch.channels_last_3d)
    augment = Augment(flip=True, shift=0.25)
    assert torch.equal(augment(x, epoch_generator(0, 0)), augment(cl, epoch_generator(0, 0)))


def test_trainer_augments_training_only_and_resumes_exactly(tmp_path: Path) -> None:
    plain = make_trainer(tmp_path / "plain", 2, augment="none")
    plain.fit()
    straight = make_trainer(tmp_path / "straight", 2, augment="flip,shift=0.2")
    straight.fit()
    # Augmentation changed what was learned...
    assert not torch.equal(
        plain.model.state_dict()["fc.weight"], straight.model.state_dict()["fc.weight"]
    )
    first = make_trainer(tmp_path / "resumed", 1, augment="flip,shift=0.2")
    first.fit()
    resumed = make_trainer(tmp_path / "resumed", 2, augment="flip,shift=0.2")
    resumed.fit(resume="auto")
    # ...and a resumed run draws what the uninterrupted one drew.
    sa, sb = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    # Validation sees the data as it is: the same weights give the same validation loss
    # whether or not the run augments.
    plain.model.load_state_dict(sa)
    assert plain.validate()["loss"] == pytest.approx(straight.validate()["loss"], abs=1e-6)
