"""resolve_runtime: the device, precision and memory layout a run uses, in one line."""

from __future__ import annotations

import pytest
import torch

from resnet3d.engine.device import resolve_precision, use_channels_last
from resnet3d.engine.runtime import Runtime, resolve_runtime


def test_fp32_on_cpu_is_contiguous_and_said_in_one_line() -> None:
    runtime = resolve_runtime("cpu", "fp32")
    assert runtime == Runtime(torch.device("cpu"), "fp32", False, "fp32")
    assert runtime.describe() == "device cpu, precision fp32, memory contiguous"


def test_explicit_layout_and_bf16() -> None:
    runtime = resolve_runtime("cpu", "bf16", "on")
    assert runtime.describe() == "device cpu, precision bf16, memory channels_last_3d"
    assert not resolve_runtime("cpu", "bf16", "off").channels_last


def test_auto_is_what_inference_decides_and_says_so() -> None:
    cpu = torch.device("cpu")
    runtime = resolve_runtime("cpu", "auto")
    expected = resolve_precision("auto", cpu)
    assert runtime.precision == expected
    assert runtime.channels_last == use_channels_last("auto", cpu, expected)
    assert f"precision {expected} (auto)" in runtime.describe()


@pytest.mark.parametrize(
    ("precision", "channels_last", "message"),
    [
        ("fp16", "auto", "fp16"),
        ("half", "auto", "'auto', 'bf16', 'fp16', 'fp32'"),
        ("fp32", "sometimes", "'auto', 'on' or 'off'"),
    ],
)
def test_bad_choices_say_what_is_allowed(precision: str, channels_last: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resolve_runtime("cpu", precision, channels_last)
