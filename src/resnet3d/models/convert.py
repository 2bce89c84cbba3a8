"""Weights from other 3D ResNet libraries, converted into an equivalent :class:`ResNet3D`.

Each converter takes a state dict (or a checkpoint file), works out the equivalent
:class:`~resnet3d.models.config.ResNet3DConfig` (stem, shortcut, (2+1)D midplanes rule), maps the
keys, loads them strictly and returns the model with a :class:`ConversionReport` that lists
every key it mapped, dropped or initialised. What cannot be mapped exactly is refused with a
:class:`ConversionError` that says why.

==================  =====================================================================
source              what is converted
==================  =====================================================================
``torchvision``     ``r3d_18`` and ``r2plus1d_18`` (any ``VideoResNet`` built from
                    ``Conv3DSimple`` or ``Conv2Plus1D``); ``mc3_18`` is refused (its mixed
                    3D/2D stages and (1, 2, 2) downsampling have no config equivalent).
``monai``           ``monai.networks.nets.ResNet`` (3D): keys already match; a
                    ``bias_downsample=True`` bias is folded into the following BN.
``hara``            Hara et al.'s 3D-ResNets-PyTorch ``resnet`` and ``resnet2p1d``
                    checkpoints (``{"state_dict": ...}``, ``module.`` prefixes).
``medicalnet``      Chen et al.'s MedicalNet encoders: refused unless ``allow_inexact=True``
                    (their dilated stages cannot be expressed).
==================  =====================================================================

Pickled files are read with ``torch.load(weights_only=True)``: a checkpoint that needs
arbitrary objects is refused, never executed.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .._utils import check_choice, to_3tuple
from ..errors import CheckpointMismatchError, ConversionError, UnreadableTorchFileError
from ..presets import get_preset
from ..torch_files import load_torch_file
from ..weights.cfg import PretrainedCfg
from ..weights.state_dict import check_state_dict
from .config import ResNet3DConfig
from .registry import list_models, registered_config
from .resnet import ResNet3D

__all__ = [
    "SOURCES",
    "ConversionError",
    "ConversionReport",
    "convert",
    "from_hara",
    "from_medicalnet",
    "from_monai",
    "from_torchvision",
    "infer_config",
    "load_state_dict_file",
]

logger = logging.getLogger(__name__)

StateDict = dict[str, Tensor]
_PREFIXES = ("module.", "_orig_mod.")
_LAYER_KEY = re.compile(r"^layer(\d+)\.(\d+)\.")


@dataclass
class ConversionReport:
    """What a converter did.

    Attributes:
        source: The library the weights came from.
        config: The equivalent architecture.
        mapped: ``(source key, resnet3d key)`` for every tensor carried over.
        dropped: Source keys not used (e.g. a segmentation head), with the reason in ``notes``.
        initialised: resnet3d keys that did not come from the source (e.g. a new classifier).
        notes: Everything else worth knowing (folded biases, inexact mappings).
    """

    source: str
    config: ResNet3DConfig
    mapped: list[tuple[str, str]] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    initialised: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def renamed(self) -> list[tuple[str, str]]:
        """The mapped keys whose name changed."""
        return [(a, b) for a, b in self.mapped if a != b]

    def to_dict(self) -> dict[str, Any]:
        """The report as a JSON-able dict."""
        return {
            "source": self.source,
            "config": self.config.to_dict(),
            "mapped": [list(pair) for pair in self.mapped],
            "dropped": list(self.dropped),
            "initialised": list(self.initialised),
            "notes": list(self.notes),
        }

    def __str__(self) -> str:
        lines = [
            f"converted {self.source} weights -> {self.config.name or 'ResNet3D'}: "
            f"{len(self.mapped)} tensors mapped ({len(self.renamed)} renamed), "
            f"{len(self.dropped)} dropped, {len(self.initialised)} initialised"
        ]
        if self.dropped:
            lines.append("dropped: " + ", ".join(self.dropped))
        if self.initialised:
            lines.append("initialised: " + ", ".join(self.initialised))
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


# ----------------------------------------------------------------------------- reading
def load_state_dict_file(path: str | os.PathLike[str]) -> StateDict:
    """Read a state dict from a ``.safetensors`` file or a pickled checkpoint, safely.

    Pickled files go through ``torch.load(weights_only=True)``: only tensors and plain
    containers are accepted, so a file whose unpickling would run code is refused. A wrapper
    dict (``{"state_dict": ...}``, ``{"model": ...}``) is unwrapped.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ConversionError: If the file cannot be read safely or holds no state dict.
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"checkpoint not found: {file}")
    if file.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return dict(load_file(os.fspath(file), device="cpu"))
        except (SafetensorError, OSError) as error:
            raise ConversionError(
                f"cannot read {file} as safetensors: {error}", path=file
            ) from None
    try:
        obj = load_torch_file(file)
    except UnreadableTorchFileError as error:
        raise ConversionError(str(error), path=file) from None
    return unwrap_state_dict(obj, where=os.fspath(file))


def unwrap_state_dict(obj: Any, where: str = "checkpoint") -> StateDict:
    """The state dict inside ``obj``: itself, or its ``state_dict``/``model``/... entry.

    Raises:
        ConversionError: If no mapping of names to tensors is found.
    """
    for _ in range(3):
        if isinstance(obj, Mapping) and obj and all(isinstance(v, Tensor) for v in obj.values()):
            return {str(k): v for k, v in obj.items()}
        if not isinstance(obj, Mapping):
            break
        inner = next(
            (obj[k] for k in ("state_dict", "model", "model_state_dict", "net") if k in obj), None
        )
        if inner is None:
            break
        obj = inner
    raise ConversionError(
        f"{where} holds no state dict (a mapping of parameter names to tensors, possibly under "
        "'state_dict' or 'model')"
    )


def strip_prefixes(state_dict: Mapping[str, Tensor]) -> StateDict:
    """Remove ``module.`` (DataParallel/DDP) and ``_orig_mod.`` (torch.compile) prefixes."""
    out = {}
    for key, value in state_dict.items():
        new = key
        changed = True
        while changed:
            changed = False
            for prefix in _PREFIXES:
                if new.startswith(prefix):
                    new, changed = new[len(prefix) :], True
        if new in out:
            raise ConversionError(f"two keys map to {new!r} after removing prefixes {_PREFIXES}")
        out[new] = value
    return out


def _as_state_dict(source: Mapping[str, Tensor] | str | os.PathLike[str]) -> StateDict:
    if isinstance(source, (str, os.PathLike)):
        return strip_prefixes(load_state_dict_file(source))
    if not isinstance(source, Mapping):
        raise TypeError(f"expected a state dict or a checkpoint path, got {type(source).__name__}")
    return strip_prefixes(unwrap_state_dict(source))


# ----------------------------------------------------------------------------- config inference
def _stages(state_dict: Mapping[str, Tensor]) -> tuple[int, ...]:
    blocks: dict[int, set[int]] = {}
    for key in state_dict:
        match = _LAYER_KEY.match(key)
        if match:
            blocks.setdefault(int(match.group(1)), set()).add(int(match.group(2)))
    if not blocks:
        raise ConversionError("no 'layerN.M.' keys: this is not a ResNet state dict")
    if sorted(blocks) != list(range(1, len(blocks) + 1)):
        raise ConversionError(f"stages must be layer1..layerN, found layers {sorted(blocks)}")
    layers = []
    for stage in sorted(blocks):
        indices = sorted(blocks[stage])
        if indices != list(range(len(indices))):
            raise ConversionError(
                f"layer{stage} has blocks {indices}, expected 0..{len(indices) - 1}"
            )
        layers.append(len(indices))
    return tuple(layers)


def _shape(state_dict: Mapping[str, Tensor], key: str) -> tuple[int, ...]:
    if key not in state_dict:
        raise ConversionError(
            f"expected key {key!r} is missing; keys start with {sorted(state_dict)[:8]}"
        )
    return tuple(state_dict[key].shape)


def infer_config(
    state_dict: Mapping[str, Tensor],
    *,
    stem_stride: int | tuple[int, int, int] = (1, 2, 2),
    stem_pool: bool = True,
    name: str = "",
) -> ResNet3DConfig:
    """Work out the :class:`ResNet3DConfig` of a state dict in resnet3d's key layout.

    Block type, stages, widths, convolution kind, stem kernel (and (2+1)D stem width),
    shortcut type, input channels and classes are read from the tensors. The stem stride and
    max pool leave no trace in the weights, so they are arguments. For (2+1)D nets the
    midplanes rule (``"tran"`` or ``"shared"``) is the one whose shapes match.

    Raises:
        ConversionError: If the keys are not a ResNet or no config reproduces the shapes.
    """
    sd = state_dict
    layers = _stages(sd)
    conv = "2plus1d" if "conv1_s.weight" in sd else "3d"
    block = "bottleneck" if "layer1.0.conv3.weight" in sd else "basic"
    fields: dict[str, Any] = {"block": block, "layers": layers, "conv": conv}
    if conv == "3d":
        out, in_ch, *kernel = _shape(sd, "conv1.weight")
    else:
        mid, in_ch, _, kh, kw = _shape(sd, "conv1_s.weight")
        out, _, kt, _, _ = _shape(sd, "conv1_t.weight")
        kernel = [kt, kh, kw]
        fields["stem_midplanes"] = mid
    fields["stem_kernel"] = tuple(kernel)
    fields["in_channels"] = in_ch
    widths = []
    for stage in range(1, len(layers) + 1):
        prefix = f"layer{stage}.0."
        if block == "bottleneck" or conv == "3d":
            widths.append(_shape(sd, prefix + "conv1.weight")[0])
        else:
            widths.append(_shape(sd, prefix + "conv1_t.weight")[0])
    fields["widths"] = tuple(widths)
    if widths[0] != out:
        raise ConversionError(f"the stem has {out} output channels but layer1 is {widths[0]} wide")
    fields["shortcut"] = "B" if any(k.endswith(".downsample.0.weight") for k in sd) else "A"
    fields["num_classes"] = _shape(sd, "fc.weight")[0] if "fc.weight" in sd else 0
    fields["stem_stride"] = to_3tuple(stem_stride, "stem_stride")
    fields["stem_pool"] = stem_pool
    rules = ("tran", "shared") if conv == "2plus1d" else ("tran",)
    first_error: CheckpointMismatchError | None = None
    for rule in rules:
        config = ResNet3DConfig(**fields, midplanes=rule, name=name)
        with torch.device("meta"):
            probe = ResNet3D(config)
        # BN step counters may be absent (old checkpoints); _build fills them in.
        counters = {
            k: v for k, v in probe.state_dict().items() if k.endswith("num_batches_tracked")
        }
        try:
            check_state_dict({**counters, **sd}, probe, source="the converted state dict")
        except CheckpointMismatchError as error:
            first_error = first_error or error
            continue
        return config.replace(name=name or _registered_name(config))
    raise ConversionError(f"no ResNet3DConfig reproduces these weights: {first_error}")


def _registered_name(config: ResNet3DConfig) -> str:
    """The registered model this config equals (ignoring channels and classes), else ""."""
    # ResNet-N has N = (convolutions per block) x blocks + stem + classifier layers.
    per_block = 2 if config.block == "basic" else 3
    candidate = f"resnet{per_block * sum(config.layers) + 2}"
    if config.conv == "2plus1d":
        candidate += "_2plus1d"
    if candidate not in list_models():
        return ""
    reference = registered_config(
        candidate, in_channels=config.in_channels, num_classes=config.num_classes
    )
    return candidate if reference == config else ""


def _build(
    source: str, state: StateDict, config: ResNet3DConfig, report: ConversionReport
) -> ResNet3D:
    model = ResNet3D(config)
    # Old PyTorch (< 0.4.1) checkpoints have no BN step counters; they only matter when
    # BN momentum is None, so zero is the faithful value.
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = torch.zeros_like(value)
            report.initialised.append(key)
    check_state_dict(state, model, source=f"the converted {source} state dict")
    model.load_state_dict(state, strict=True)
    logger.info("%s", report)
    return model.eval()


def _fold_conv_bias_into_bn(state: StateDict) -> tuple[list[str], list[str]]:
    """Fold ``downsample.0.bias`` into ``downsample.1.running_mean`` (exact).

    BatchNorm subtracts a mean, so a constant added before it cancels: in training the batch
    mean absorbs it, and in eval ``BN(conv(x) + b)`` with running mean ``m`` equals
    ``BN(conv(x))`` with running mean ``m - b``.

    Returns:
        The removed bias keys and a note for the report (empty when there was none).
    """
    dropped = []
    for key in sorted(k for k in state if k.endswith(".downsample.0.bias")):
        bias = state.pop(key)
        mean_key = key.replace(".downsample.0.bias", ".downsample.1.running_mean")
        if mean_key not in state:
            raise ConversionError(f"{key} has no following BatchNorm ({mean_key} missing)")
        state[mean_key] = state[mean_key] - bias.to(state[mean_key].dtype)
        dropped.append(key)
    notes = []
    if dropped:
        notes.append(
            "downsample convolution biases were folded into the following BatchNorm's running "
            "mean (exact in train and eval mode: BN subtracts the mean)"
        )
    return dropped, notes


# ----------------------------------------------------------------------------- converters
def from_monai(
    state_dict: Mapping[str, Tensor] | str | os.PathLike[str],
    *,
    conv1_t_stride: int | tuple[int, int, int] = 1,
    no_max_pool: bool = False,
) -> tuple[ResNet3D, ConversionReport]:
    """Convert a 3D ``monai.networks.nets.ResNet`` (``resnet10`` ... ``resnet200``).

    The keys already match; only what the weights do not show must be given, with MONAI's
    argument names and defaults.

    Args:
        state_dict: The MONAI model's state dict, or a checkpoint file.
        conv1_t_stride: The MONAI model's ``conv1_t_stride`` (an int is used in D, H and W, as
            MONAI does; the paper's stem is ``(1, 2, 2)``).
        no_max_pool: The MONAI model's ``no_max_pool``.

    Returns:
        The converted model (eval mode) and the report.

    Raises:
        ConversionError: If the weights are not a 3D MONAI ResNet.
    """
    return _from_same_keys(
        "monai",
        state_dict,
        stem_stride=conv1_t_stride,
        no_max_pool=no_max_pool,
        fold_conv_bias=True,
    )


def from_hara(
    state_dict: Mapping[str, Tensor] | str | os.PathLike[str],
    *,
    conv1_t_stride: int = 1,
    no_max_pool: bool = False,
) -> tuple[ResNet3D, ConversionReport]:
    """Convert Hara et al.'s 3D-ResNets-PyTorch ``resnet`` or ``resnet2p1d`` weights.

    Their checkpoints (``{"arch", "state_dict", ...}``, ``module.``-prefixed keys from
    DataParallel) use resnet3d's key names. Their (2+1)D stem width is computed for 3 input
    channels whatever the input, so it is read from the weights.

    Args:
        state_dict: A state dict or checkpoint dict, or a ``.pth`` file.
        conv1_t_stride: Their ``--conv1_t_stride`` (the stem stride is
            ``(conv1_t_stride, 2, 2)``).
        no_max_pool: Their ``--no_max_pool``.

    Returns:
        The converted model (eval mode) and the report.
    """
    return _from_same_keys(
        "hara",
        state_dict,
        stem_stride=(conv1_t_stride, 2, 2),
        no_max_pool=no_max_pool,
        fold_conv_bias=False,
    )


def _from_same_keys(
    source: str,
    state_dict: Mapping[str, Tensor] | str | os.PathLike[str],
    *,
    stem_stride: int | tuple[int, int, int],
    no_max_pool: bool,
    fold_conv_bias: bool,
) -> tuple[ResNet3D, ConversionReport]:
    """Convert weights whose keys are already resnet3d's (MONAI, Hara et al.): the config is
    read from the tensors' shapes, and only the stem stride and pool must be given.
    MONAI's stem convolution may carry a bias, which is folded into its batch norm."""
    state = _as_state_dict(state_dict)
    dropped, notes = _fold_conv_bias_into_bn(state) if fold_conv_bias else ([], [])
    config = infer_config(state, stem_stride=stem_stride, stem_pool=not no_max_pool)
    report = ConversionReport(source, config, dropped=dropped, notes=notes)
    report.mapped = [(k, k) for k in state]
    return _build(source, state, config, report), report


def from_medicalnet(
    state_dict: Mapping[str, Tensor] | str | os.PathLike[str],
    *,
    num_classes: int = 0,
    allow_inexact: bool = False,
) -> tuple[ResNet3D, ConversionReport]:
    """Convert a MedicalNet (Chen et al. 2019) encoder: 1 channel, 7x7x7 stem with stride 2.

    MedicalNet's ``layer3`` and ``layer4`` keep stride 1 and use dilation 2 and 4; a
    ResNet3D has stride 2 and no dilation there. The tensors fit, but the network computes
    something else, so this is refused unless ``allow_inexact=True`` (what MONAI does when it
    loads MedicalNet weights): a starting point for fine-tuning, not the original model.
    The segmentation head (``conv_seg``) is dropped.

    Args:
        state_dict: A MedicalNet state dict or ``.pth`` file.
        num_classes: Outputs of a new classifier (0: the model returns pooled features).
        allow_inexact: Accept the non-dilated equivalent (logged and noted in the report).

    Returns:
        The converted model (eval mode) and the report.

    Raises:
        ConversionError: Unless ``allow_inexact=True``.
    """
    if not allow_inexact:
        raise ConversionError(
            "MedicalNet weights cannot be mapped exactly: its layer3 and layer4 use stride 1 "
            "with dilation 2 and 4, which ResNet3DConfig cannot express (every later stage has "
            "stride 2, no dilation). Pass allow_inexact=True to load them into the equivalent "
            "non-dilated ResNet3D, as MONAI does, as a starting point for fine-tuning."
        )
    state = _as_state_dict(state_dict)
    report_dropped = sorted(k for k in state if not (k.startswith(("conv1.", "bn1.", "layer"))))
    for key in report_dropped:
        state.pop(key)
    folded, notes = _fold_conv_bias_into_bn(state)
    config = infer_config(state, stem_stride=(2, 2, 2), stem_pool=True)
    config = config.replace(num_classes=num_classes)
    report = ConversionReport("medicalnet", config, dropped=report_dropped + folded, notes=notes)
    report.mapped = [(k, k) for k in state]
    report.notes.append(
        "inexact: MedicalNet's dilated layer3/layer4 (stride 1, dilation 2/4) were loaded into "
        "stride-2, non-dilated stages; outputs differ from MedicalNet's"
    )
    if num_classes:
        fresh = ResNet3D(config)
        for key in ("fc.weight", "fc.bias"):
            state[key] = fresh.state_dict()[key]
            report.initialised.append(key)
    logger.warning("MedicalNet weights loaded inexactly (no dilation); see the report")
    return _build("medicalnet", state, config, report), report


_TV_CONV = re.compile(r"^(layer\d+\.\d+\.)conv(\d)\.(.+)$")


def from_torchvision(
    state_dict: Mapping[str, Tensor] | str | os.PathLike[str],
    *,
    arch: str | None = None,
) -> tuple[ResNet3D, ConversionReport]:
    """Convert torchvision's ``r3d_18`` or ``r2plus1d_18`` (``VideoResNet``) weights.

    ``r3d_18`` becomes a 3D ResNet-18 with a ``(3, 7, 7)`` stem of stride ``(1, 2, 2)``, no
    max pool and type-B shortcuts; ``r2plus1d_18`` a (2+1)D one with torchvision's stem (width
    45) and one midplanes width per block (``midplanes="shared"``). ``mc3_18`` is refused:
    its stages 2-4 use 2D (1x3x3) convolutions and keep the depth, which a config cannot
    express.

    The model carries the input torchvision's video weights expect, the ``"kinetics400"``
    preset of :mod:`resnet3d.presets` (16 frames resized to 128 x 171, centre-cropped to
    112 x 112, Kinetics mean and std), in ``model.pretrained_cfg["preprocessing"]``:
    :func:`resnet3d.weights.save.save_pretrained` stores it, and the volume builder of a model
    loaded back (``resnet3d.workflows.stacker_for``) preprocesses as torchvision does.

    Args:
        state_dict: ``torchvision.models.video.r3d_18(...).state_dict()`` or similar, or a file.
        arch: ``"r3d_18"``, ``"r2plus1d_18"`` or ``"mc3_18"``; detected from the keys if omitted.

    Returns:
        The converted model (eval mode; outputs equal torchvision's; preprocessing spec in
        ``pretrained_cfg``) and the report.

    Raises:
        ConversionError: For ``mc3_18``-style mixed convolutions or an unknown layout.
    """
    src = _as_state_dict(state_dict)
    if "stem.0.weight" not in src:
        raise ConversionError(
            "not a torchvision VideoResNet state dict: no 'stem.0.weight' (keys start with "
            f"{sorted(src)[:6]})"
        )
    detected = _detect_torchvision(src)
    if arch is not None:
        check_choice("arch", arch, ("r3d_18", "r2plus1d_18", "mc3_18"))
        family = {"r3d_18": "r3d", "r2plus1d_18": "r2plus1d", "mc3_18": "mc3"}[arch]
        if family != detected:
            raise ConversionError(f"arch={arch!r} but the weights have the {detected} layout")
    if detected == "mc3":
        raise ConversionError(
            "mc3_18 cannot be converted exactly: its layer1 uses 3x3x3 convolutions but layers "
            "2-4 use 1x3x3 (2D) convolutions with (1, 2, 2) downsampling, while a "
            "ResNet3DConfig has one convolution kind and stride 2 in depth for every stage"
        )
    factorised = detected == "r2plus1d"
    state: StateDict = {}
    report_pairs: list[tuple[str, str]] = []
    stem_map = (
        {"stem.0.": "conv1_s.", "stem.1.": "bn1_s.", "stem.3.": "conv1_t.", "stem.4.": "bn1_t."}
        if factorised
        else {"stem.0.": "conv1.", "stem.1.": "bn1."}
    )
    for key, value in src.items():
        new = _map_torchvision_key(key, src, stem_map)
        if new is None:
            raise ConversionError(f"unexpected torchvision key {key!r}: cannot map it")
        state[new] = value
        report_pairs.append((key, new))
    config = infer_config(state, stem_stride=(1, 2, 2), stem_pool=False)
    expected_mid = "shared" if factorised else "tran"
    if config.midplanes != expected_mid:
        raise ConversionError(
            f"torchvision (2+1)D blocks use one midplanes width per block; these weights fit "
            f"midplanes={config.midplanes!r}"
        )
    name = "r2plus1d_18" if factorised else "r3d_18"
    if config.layers != (2, 2, 2, 2) or config.block != "basic":
        name = f"torchvision-{detected}"
    config = config.replace(name=name)
    report = ConversionReport("torchvision", config, mapped=report_pairs)
    report.notes.append(
        "torchvision's video models expect (B, 3, T, H, W) clips normalised with the Kinetics "
        "mean and std; the converted model takes the same input, and carries that "
        "preprocessing (preset 'kinetics400') in pretrained_cfg['preprocessing']"
    )
    model = _build("torchvision", state, config, report)
    model.pretrained_cfg = PretrainedCfg(
        architecture=config.name or None,
        preprocessing=get_preset("kinetics400"),
        description=f"converted from torchvision's {name}",
        source="converted",
    )
    return model, report


def _detect_torchvision(src: Mapping[str, Tensor]) -> str:
    if "stem.3.weight" in src:
        return "r2plus1d"
    # Conv3DSimple has 3x3x3 kernels everywhere; mc3 has 1x3x3 kernels after layer1.
    for key, value in src.items():
        match = _TV_CONV.match(key)
        if match and value.ndim == 5 and match.group(3) == "0.weight":
            kernel = tuple(value.shape[2:])
            if kernel not in ((3, 3, 3), (1, 1, 1)):
                return "mc3"
    return "r3d"


def _map_torchvision_key(
    key: str, src: Mapping[str, Tensor], stem_map: Mapping[str, str]
) -> str | None:
    for old, new in stem_map.items():
        if key.startswith(old):
            return new + key[len(old) :]
    if key.startswith("fc.") or ".downsample." in key:
        return key
    match = _TV_CONV.match(key)
    if not match:
        return None
    prefix, index, rest = match.groups()
    factorised = f"{prefix}conv{index}.0.0.weight" in src
    # conv{i} is Sequential(conv_builder, BN[, ReLU]); Conv2Plus1D is Sequential(conv_s, BN,
    # ReLU, conv_t).
    table: dict[str, str] = (
        {
            "0.0.": f"conv{index}_s.",
            "0.1.": f"bn{index}_s.",
            "0.3.": f"conv{index}_t.",
            "1.": f"bn{index}_t.",
        }
        if factorised
        else {"0.": f"conv{index}.", "1.": f"bn{index}."}
    )
    for old, new in table.items():
        if rest.startswith(old):
            return prefix + new + rest[len(old) :]
    return None


SOURCES: dict[str, Callable[..., tuple[ResNet3D, ConversionReport]]] = {
    "torchvision": from_torchvision,
    "monai": from_monai,
    "hara": from_hara,
    "medicalnet": from_medicalnet,
}


def convert(
    source: str, state_dict: Mapping[str, Tensor] | str | os.PathLike[str], **kwargs: Any
) -> tuple[ResNet3D, ConversionReport]:
    """Convert weights from ``source`` (one of :data:`SOURCES`); see the per-source functions.

    Raises:
        ValueError: If ``source`` is unknown (closest names listed).
    """
    check_choice("source", source, tuple(SOURCES))
    return SOURCES[source](state_dict, **kwargs)
