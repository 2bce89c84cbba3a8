"""Execution variants (precision, memory layout, compilation) and the steps they time.

A variant is written ``PRECISION[+cl][+compile][+conv3d]``: ``fp32``, ``fp32+cl``,
``bf16+cl``, ``bf16+cl+compile``, ``fp32+conv3d``... ``cl`` is ``torch.channels_last_3d`` for
the weights and the input; ``compile`` is ``torch.compile`` (with inductor's ``freezing`` for
inference, which folds the weights into the graph and pre-packs them for oneDNN on CPU);
``conv3d`` runs every convolution as ``Conv3d`` (``conv_impl="conv3d"``) instead of folding
thin depths into 2D convolutions (``"auto"``, the library's default). ``default`` names what
the library itself does on the device: :class:`resnet3d.engine.train.TrainConfig`'s defaults for
training, :func:`resnet3d.workflows.predict_scans`'s for inference, resolved with the same
functions they call, so the benchmark follows the library when its defaults change.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .._utils import did_you_mean

__all__ = ["MODES", "Variant", "default_variant", "make_step", "parse_variants"]

#: ``forward``: inference (eval, no_grad). ``train``: forward + backward (train mode).
MODES = ("forward", "train")
_PRECISIONS = ("fp32", "bf16", "fp16")
_FLAGS = ("cl", "compile", "conv3d")


@dataclass(frozen=True)
class Variant:
    """How a model is run.

    Attributes:
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"`` (autocast for the last two).
        channels_last: Weights and input in ``channels_last_3d``.
        compile: ``torch.compile`` the model (with freezing for inference).
        conv3d: Run convolutions as ``Conv3d`` (``conv_impl="conv3d"``); other libraries'
            models have no such choice and run as they are.
    """

    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    conv3d: bool = False

    @property
    def name(self) -> str:
        """The variant's spelling, e.g. ``"bf16+cl+compile"``."""
        parts = [self.precision]
        if self.channels_last:
            parts.append("cl")
        if self.compile:
            parts.append("compile")
        if self.conv3d:
            parts.append("conv3d")
        return "+".join(parts)

    @property
    def without_conv3d(self) -> Variant:
        """The same variant with the library's default convolutions (what MONAI is timed as)."""
        return Variant(self.precision, self.channels_last, self.compile)

    @property
    def eager_fp32(self) -> bool:
        """Whether this is the plain reference: fp32, NCDHW, eager."""
        return self == Variant()

    @classmethod
    def parse(cls, text: str) -> Variant:
        """Parse ``PRECISION[+cl][+compile][+conv3d]`` (``default`` is resolved by the caller).

        Raises:
            ValueError: For an unknown precision or flag, naming the closest one.
        """
        parts = [p.strip() for p in text.strip().lower().split("+") if p.strip()]
        if not parts:
            raise ValueError(f"empty variant {text!r}; e.g. 'fp32', 'fp32+cl', 'bf16+cl+compile'")
        precision, flags = parts[0], parts[1:]
        if precision not in _PRECISIONS:
            raise ValueError(
                f"variant {text!r}: unknown precision {precision!r}; choose one of "
                f"{list(_PRECISIONS)} (or 'default')." + did_you_mean(precision, _PRECISIONS)
            )
        for flag in flags:
            if flag not in _FLAGS:
                raise ValueError(
                    f"variant {text!r}: unknown flag {flag!r}; flags are {list(_FLAGS)}."
                    + did_you_mean(flag, _FLAGS)
                )
        return cls(precision, "cl" in flags, "compile" in flags, "conv3d" in flags)


def default_variant(mode: str, device: torch.device) -> Variant:
    """What the library runs by default for ``mode`` on ``device``.

    ``train``: :class:`~resnet3d.engine.train.TrainConfig` defaults (precision, channels_last,
    compile) resolved as the trainer resolves them. ``forward``: the defaults of
    :func:`~resnet3d.workflows.predict_scans` (its ``precision``, and ``compile`` if it has
    one), with the channels-last rule it applies.

    Raises:
        ValueError: For an unknown mode.
    """
    from ..engine.device import resolve_precision, use_channels_last

    if mode == "train":
        from ..engine.train import TrainConfig

        config = TrainConfig()
        precision = resolve_precision(config.precision, device)
        channels_last = use_channels_last(config.channels_last, device, precision)
        return Variant(precision, channels_last, bool(config.compile))
    if mode == "forward":
        from ..workflows import predict_scans

        params = inspect.signature(predict_scans).parameters
        precision = resolve_precision(_default(params, "precision", "fp32"), device)
        channels_last = use_channels_last(
            _default(params, "channels_last", "auto"), device, precision
        )
        return Variant(precision, channels_last, bool(_default(params, "compile", False)))
    raise ValueError(f"mode={mode!r} is not supported; choose one of {list(MODES)}")


def _default(params: Any, name: str, fallback: Any) -> Any:
    param = params.get(name)
    if param is None or param.default is inspect.Parameter.empty:
        return fallback
    return param.default


def parse_variants(
    texts: list[str], mode: str, device: torch.device
) -> tuple[list[Variant], Variant]:
    """Parse variant names for one mode; ``default`` becomes :func:`default_variant`.

    Only the variants named are timed: ``default`` too only when named, so that a variant
    that fails or hangs on a machine can be left out, whichever it is.

    Returns:
        The variants without duplicates (order kept) and the library default (to mark the
        row that is the default, if it was named).
    """
    default = default_variant(mode, device)
    out: list[Variant] = []
    for text in texts:
        variant = default if text.strip().lower() == "default" else Variant.parse(text)
        if variant.precision == "fp16" and device.type != "cuda":
            raise ValueError(f"variant {text!r}: fp16 needs a CUDA device; use bf16 or fp32")
        if variant not in out:
            out.append(variant)
    return out, default


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    from ..engine.device import autocast

    return autocast(device, precision)


@contextlib.contextmanager
def _inductor_freezing(enabled: bool) -> Iterator[None]:
    if not enabled:
        yield
        return
    import torch._inductor.config as inductor_config

    with inductor_config.patch(freezing=True):
        yield


def make_step(
    model: nn.Module,
    x: Tensor | Callable[[], Tensor],
    variant: Variant,
    mode: str,
    *,
    device: torch.device | None = None,
    labels: Tensor | None = None,
    optimizer: Callable[[list[nn.Parameter]], torch.optim.Optimizer] | None = None,
) -> tuple[Callable[[], Tensor | None], nn.Module]:
    """A callable running one batch of ``model`` as ``variant`` in ``mode``.

    The model is deep-copied (layouts and compilation do not leak into the caller's model)
    and moved to the device. A tensor ``x`` is converted to the variant's layout once,
    outside the timed call; a callable ``x`` is called inside every step (to time the
    batch preparation too) and must return the right layout itself.

    Args:
        model: The model (left unchanged).
        x: The input batch ``(B, C, D, H, W)`` on the device, or a callable returning it.
        variant: How to run it.
        device: The device; default ``x.device`` (required when ``x`` is a callable).
        mode: ``"forward"`` (eval, ``no_grad``; returns the logits) or ``"train"`` (train
            mode, cross-entropy, backward; returns ``None``).
        labels: Training targets ``(B,)``; default zeros.
        optimizer: For ``"train"``: a factory such as ``torch.optim.Adam``; its ``step`` and
            ``zero_grad`` then run inside the call (a full training step). Without it the
            gradients are just cleared.

    Returns:
        ``(step, prepared model)``.

    Raises:
        ValueError: For an unknown mode.
    """
    from ..engine.loss import cross_entropy

    if mode not in MODES:
        raise ValueError(f"mode={mode!r} is not supported; choose one of {list(MODES)}")
    if isinstance(x, Tensor):
        device = x.device if device is None else device
        batch = x.to(device)
        if variant.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last_3d)
        source: Callable[[], Tensor] = lambda: batch  # noqa: E731
        batch_size = batch.shape[0]
    else:
        if device is None:
            raise ValueError("make_step: pass device= when x is a callable")
        source = x
        batch_size = source().shape[0]
    net = copy.deepcopy(model).to(device)
    set_conv_impl = getattr(net, "set_conv_impl", None)
    if set_conv_impl is not None:
        set_conv_impl("conv3d" if variant.conv3d else "auto")
    if variant.channels_last:
        net = net.to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]
    freezing = variant.compile and mode == "forward"
    if mode == "forward":
        net.eval()
        for p in net.parameters():
            p.requires_grad_(False)
        run: nn.Module = torch.compile(net) if variant.compile else net  # type: ignore[assignment]

        def forward_step() -> Tensor:
            # Inductor reads ``freezing`` when it compiles, i.e. at the first call.
            with (
                _inductor_freezing(freezing),
                torch.no_grad(),
                _autocast(device, variant.precision),
            ):
                return run(source())

        return forward_step, net

    net.train()
    y = labels if labels is not None else torch.zeros(batch_size, dtype=torch.long, device=device)
    opt = optimizer(list(net.parameters())) if optimizer is not None else None
    run = torch.compile(net) if variant.compile else net  # type: ignore[assignment]

    def train_step() -> None:
        inputs = source()
        with _autocast(device, variant.precision):
            logits = run(inputs)
        loss = cross_entropy(logits, y)
        loss.backward()
        if opt is not None:
            opt.step()
            opt.zero_grad(set_to_none=True)
        else:
            net.zero_grad(set_to_none=True)
        return None

    return train_step, net
