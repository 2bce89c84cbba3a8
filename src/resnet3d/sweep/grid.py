"""Sweep grids: typed ``--grid`` strings, the paper's presets, and their expansion into cells.

A grid names training settings and the values to try, e.g. ``depth=2,4,8 batch_size=8``:
every combination (the cartesian product) is one run, a :class:`SweepCell`. Several grids
are the union of their cells, and cells that coincide are one cell, run once. The
settings a grid may vary are the fields of :class:`~resnet3d.engine.train.TrainConfig` and of
:class:`~resnet3d.data.volumes.SliceStacker`, plus ``dropout`` (a model override); their values
are typed from those fields' types, so ``depth=4`` is an int and ``precision=bf16`` a string.

A cell's *settings* are everything that defines its result: the base options every cell
shares (a ``resnet3d train`` command line) with the grid's values on top. A cell's folder
name is its varied settings, readable, plus a short hash of all of them, so runs with other
settings (another ``--epochs``, say) never share a folder.

The paper presets (Li, Pei and Guo 2021, trained on CC-CCII) are the runs of its three
experiments: slices per volume (``depth``), batch size and slice depth together (``batch``),
and architectures (``models``); ``all`` is their union, 16 distinct cells.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import re
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._utils import check_choice, did_you_mean
from ..data.volumes import WINDOWS, SliceStacker
from ..engine.train import TrainConfig

__all__ = [
    "GRID_FIELDS",
    "PAPER_PRESETS",
    "SweepCell",
    "base_settings",
    "expand_grid",
    "parse_grid",
    "settings_hash",
]

#: TrainConfig fields that say where and how fast a run goes, not what it computes. They
#: are part of a cell's settings (and its hash) only when a grid varies them.
RUNTIME_FIELDS: tuple[str, ...] = ("workers", "channels_last", "compile")

#: TrainConfig fields that are never settings: the sweep sets them for each cell.
_SET_BY_SWEEP = ("out_dir", "device", "progress")

#: TrainConfig fields in a cell's settings: everything that shapes the result.
TRAIN_SETTINGS: tuple[str, ...] = tuple(
    f.name for f in dataclasses.fields(TrainConfig) if f.name not in _SET_BY_SWEEP + RUNTIME_FIELDS
)

#: SliceStacker fields in a cell's settings (its preprocessing spec).
STACKER_SETTINGS: tuple[str, ...] = tuple(SliceStacker().to_dict())

#: Settings a grid may vary. ``dropout`` sets ``model_overrides["dropout"]``.
GRID_FIELDS: tuple[str, ...] = (
    *(name for name in TRAIN_SETTINGS if name != "model_overrides"),
    *RUNTIME_FIELDS,
    *STACKER_SETTINGS,
    "dropout",
)

#: The paper's runs, each a dict of the settings it sets (slices per volume ``depth``,
#: ``batch_size`` and ``model``; every other setting is the base recipe's).
PAPER_PRESETS: dict[str, list[dict[str, Any]]] = {
    "depth": [
        {"depth": depth, "batch_size": 8, "model": "resnet18"} for depth in (2, 4, 8, 16, 32, 64)
    ],
    "batch": [
        {"depth": depth, "batch_size": batch, "model": "resnet18"}
        for depth, batch in ((2, 32), (2, 64), (4, 32), (4, 64), (8, 32), (16, 32))
    ],
    "models": [
        {"depth": 4, "batch_size": 32, "model": model}
        for model in (
            "resnet18",
            "resnet18_2plus1d",
            "resnet34",
            "resnet34_2plus1d",
            "resnet50",
        )
    ],
}
PAPER_PRESETS["all"] = [
    dict(items)
    for items in dict.fromkeys(
        tuple(cell.items()) for name in ("depth", "batch", "models") for cell in PAPER_PRESETS[name]
    )
]

#: Settings the paper's presets vary, in the order cell names list them.
PAPER_VARIED: tuple[str, ...] = ("depth", "batch_size", "model")

_HASH_CHARS = 8
_NAME_CHARS = 96  # the readable part of a folder name, before the hash
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")
_NONE = ("none", "null")


@dataclass(frozen=True)
class SweepCell:
    """One run of a sweep.

    Attributes:
        name: The folder name: varied settings, then a hash of all settings.
        settings: Everything that defines the run (JSON-able): the :class:`TrainConfig`
            fields that shape the result, the :class:`SliceStacker` spec, ``nproc``, and any
            runtime field (``workers``...) that a grid varies.
        varied: The settings the grid or preset set, in name order (``dropout`` stands for
            ``model_overrides["dropout"]``).
    """

    name: str
    settings: dict[str, Any]
    varied: dict[str, Any]

    @property
    def folder(self) -> str:
        """The cell's folder, relative to the sweep's folder."""
        return f"runs/{self.name}"

    def label(self) -> str:
        """The varied settings as ``key=value`` words, e.g. ``depth=4 model=resnet18``."""
        return " ".join(f"{key}={_word(value)}" for key, value in self.varied.items())

    def to_dict(self) -> dict[str, Any]:
        """``name``, ``folder``, ``settings`` and ``varied`` (the plan's entry)."""
        return {
            "name": self.name,
            "folder": self.folder,
            "settings": self.settings,
            "varied": self.varied,
        }

    def train_config(self, out_dir: str, runtime: Mapping[str, Any] | None = None) -> TrainConfig:
        """The cell's :class:`TrainConfig` in ``out_dir``.

        Args:
            out_dir: The run folder.
            runtime: ``device``, ``workers``, ``channels_last``, ``compile``, ``progress``
                for this run; settings the grid varied win over them.
        """
        fields = {f.name for f in dataclasses.fields(TrainConfig)}
        values = {k: v for k, v in (runtime or {}).items() if k in fields}
        values.update({k: v for k, v in self.settings.items() if k in fields})
        return TrainConfig(**{**values, "out_dir": out_dir})

    def stacker(self) -> SliceStacker:
        """The cell's :class:`SliceStacker`."""
        return SliceStacker.from_dict({k: self.settings[k] for k in STACKER_SETTINGS})


def settings_hash(settings: Mapping[str, Any]) -> str:
    """A short hex digest of ``settings`` (canonical JSON), the tail of a cell's name."""
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:_HASH_CHARS]


def base_settings(
    config: TrainConfig | None = None, stacker: SliceStacker | None = None, *, nproc: int = 1
) -> dict[str, Any]:
    """The settings every cell starts from: a training config, a stacker and the process count.

    Args:
        config: The base recipe (default: the paper's, :class:`TrainConfig`'s defaults).
        stacker: The base preprocessing (default :class:`SliceStacker`'s).
        nproc: Processes per run (DDP); the effective batch is ``batch_size x nproc``.

    Returns:
        A JSON-able dict (see :attr:`SweepCell.settings`) without the runtime fields.
    """
    config = config if config is not None else TrainConfig()
    stacker = stacker if stacker is not None else SliceStacker()
    fields = config.to_dict()
    settings = {name: fields[name] for name in TRAIN_SETTINGS}
    settings.update(stacker.to_dict())
    settings["nproc"] = nproc
    return _canonical(settings)


def parse_grid(spec: str | Sequence[str]) -> dict[str, list[Any]]:
    """Parse one grid: ``"depth=2,4,8 batch_size=8"`` (or its words as a list).

    Each word is ``FIELD=V1,V2,...``; a ``-`` in a field name stands for ``_``. Values are
    typed from the field: ints, floats, booleans (``true``/``false``), ``none`` for an
    optional field, strings; ``size`` takes ``64`` or ``64x48``; ``window`` takes a name or
    ``CENTER:WIDTH``; ``augment`` joins names with ``+`` (``flip+shift``), since ``,``
    separates values.

    Args:
        spec: The grid.

    Returns:
        Field name -> list of values, in the order given (a value given twice counts once).

    Raises:
        ValueError: For an empty grid, a word that is not ``FIELD=VALUES``, an unknown field
            (naming the closest), a field given twice or a value of the wrong type.
    """
    words = spec.split() if isinstance(spec, str) else [w for part in spec for w in part.split()]
    if not words:
        raise ValueError("empty grid: give FIELD=V1,V2,... words, e.g. depth=2,4,8 batch_size=8")
    grid: dict[str, list[Any]] = {}
    for word in words:
        key, sep, text = word.partition("=")
        if not sep or not key:
            raise ValueError(
                f"grid word {word!r} is not FIELD=V1,V2,..., e.g. depth=2,4,8 or model=resnet18"
            )
        key = _field(key)
        if key in grid:
            raise ValueError(f"grid field {key!r} is given twice in one grid: {' '.join(words)}")
        texts = [t for t in text.split(",") if t != ""]
        if not texts:
            raise ValueError(f"grid field {key!r} has no values: give {key}=V1,V2,...")
        values: list[Any] = []
        for value in (_parse_value(key, t) for t in texts):
            if value not in values:
                values.append(value)
        grid[key] = values
    return grid


def expand_grid(
    grids: Iterable[str | Sequence[str] | Mapping[str, Any]] = (),
    paper: Iterable[str] = (),
    base: Mapping[str, Any] | None = None,
) -> list[SweepCell]:
    """The cells of paper presets and grids over a base, each distinct cell once.

    Args:
        grids: Grids as :func:`parse_grid` takes them, or mappings of field -> values (a
            list holds candidates; any other value is one candidate; strings are parsed as
            in a grid string). Each grid is one cartesian product; several are their union.
        paper: Names of :data:`PAPER_PRESETS` (``depth``, ``batch``, ``models``, ``all``).
        base: The settings a grid does not set (:func:`base_settings`; default the
            paper's recipe).

    Returns:
        The cells: the presets' first, then each grid's in product order (the first field
        varies slowest). A cell that two grids (or presets) give is listed once, where it
        first appears, and its ``varied`` holds the fields any of them set.

    Raises:
        ValueError: If there are no cells, a preset or field is unknown, or a value is not
            valid for its field (the message names the cell's settings).
    """
    base_values = dict(base) if base is not None else base_settings()
    products: list[list[dict[str, Any]]] = []
    for name in paper:
        check_choice("paper preset", name, tuple(PAPER_PRESETS))
        products.append([dict(values) for values in PAPER_PRESETS[name]])
    for grid in grids:
        products.append(_product(_grid_values(grid)))
    if not products:
        raise ValueError("empty sweep: give a grid (--grid FIELD=V1,V2,...) or a paper preset")

    order: list[str] = []  # varied fields in order of first appearance
    found: dict[str, tuple[dict[str, Any], list[str]]] = {}  # hash -> (settings, varied)
    for product in products:
        for values in product:
            settings = _apply(base_values, values)
            digest = settings_hash(settings)
            _, varied = found.setdefault(digest, (settings, []))
            for key in values:
                if key not in varied:
                    varied.append(key)
                if key not in order:
                    order.append(key)
    cells = []
    for digest, (settings, varied) in found.items():
        shown = {key: _varied_value(settings, key) for key in order if key in varied}
        cells.append(SweepCell(name=_cell_name(shown, digest), settings=settings, varied=shown))
    return cells


# ---------------------------------------------------------------------------------- helpers
def _field(key: str) -> str:
    key = key.strip().replace("-", "_")
    if key not in GRID_FIELDS:
        if key == "nproc":
            raise ValueError("nproc is a sweep option (--nproc), the same for every cell")
        raise ValueError(
            f"unknown grid field {key!r}; fields are {list(GRID_FIELDS)}."
            + did_you_mean(key, GRID_FIELDS)
        )
    return key


def _kind(key: str) -> tuple[type, bool]:
    """The base type of a grid field and whether it may be ``None``."""
    if key == "dropout":
        return float, True
    owner = TrainConfig if key in TRAIN_SETTINGS or key in RUNTIME_FIELDS else SliceStacker
    hint = typing.get_type_hints(owner)[key]
    args = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    kinds = [a for a in args if a is not type(None)]
    return kinds[0], len(kinds) < len(args)


def _parse_value(key: str, text: str) -> Any:
    """A grid value typed for ``key``."""
    kind, optional = _kind(key)
    lowered = text.strip().lower()
    if optional and lowered in _NONE:
        return None
    if key == "size":
        match = re.fullmatch(r"(\d+)(?:x(\d+))?", lowered)
        if match is None:
            raise ValueError(f"grid value size={text!r}: expected N, HxW or none")
        height = int(match.group(1))
        return [height, int(match.group(2) or height)]
    if key == "window":
        return _parse_window(text)
    if key == "augment":
        return text.replace("+", ",")
    try:
        if kind is bool:
            if lowered not in _TRUE + _FALSE:
                raise ValueError
            return lowered in _TRUE
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
    except ValueError:
        expected = {bool: "true or false", int: "an int", float: "a number"}[kind]
        none = " or none" if optional else ""
        raise ValueError(f"grid value {key}={text!r}: expected {expected}{none}") from None
    return text


def _parse_window(text: str) -> Any:
    if text in WINDOWS:
        return text
    center, sep, width = text.partition(":")
    try:
        if sep:
            return [float(center), float(width)]
    except ValueError:
        pass
    raise ValueError(
        f"grid value window={text!r}: expected none, a name in {list(WINDOWS)} or CENTER:WIDTH."
        + did_you_mean(text, WINDOWS)
    )


def _grid_values(grid: str | Sequence[str] | Mapping[str, Any]) -> dict[str, list[Any]]:
    if not isinstance(grid, Mapping):
        return parse_grid(grid)
    if not grid:
        raise ValueError("empty grid: give at least one field and its values")
    values: dict[str, list[Any]] = {}
    for raw_key, given in grid.items():
        key = _field(str(raw_key))
        candidates = given if isinstance(given, list) else [given]
        if not candidates:
            raise ValueError(f"grid field {key!r} has no values")
        values[key] = [_parse_value(key, v) if isinstance(v, str) else v for v in candidates]
    return values


def _product(grid: Mapping[str, list[Any]]) -> list[dict[str, Any]]:
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


def _apply(base: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with the grid's ``values``, validated and in canonical (JSON) form."""
    settings = dict(base)
    for key, value in values.items():
        if key == "dropout":
            overrides = dict(settings.get("model_overrides") or {})
            if value is None:
                overrides.pop("dropout", None)
            else:
                overrides["dropout"] = value
            settings["model_overrides"] = overrides
        else:
            settings[key] = value
    where = " ".join(f"{k}={_word(v)}" for k, v in values.items())
    try:
        config = TrainConfig(**{k: v for k, v in settings.items() if k in _CONFIG_FIELDS})
        stacker = SliceStacker.from_dict({k: settings[k] for k in STACKER_SETTINGS})
        if config.pretrained is None:
            from ..models.registry import list_models

            check_choice("model", config.model, list_models())
    except (TypeError, ValueError) as error:
        raise type(error)(f"cell {where}: {error}") from None
    fields = config.to_dict()
    for key in settings:
        if key in _CONFIG_FIELDS:
            settings[key] = fields[key]
    settings.update(stacker.to_dict())
    return _canonical(settings)


_CONFIG_FIELDS = frozenset(f.name for f in dataclasses.fields(TrainConfig))


def _canonical(settings: Mapping[str, Any]) -> dict[str, Any]:
    """As JSON holds it (tuples as lists), so a saved copy compares equal."""
    return dict(json.loads(json.dumps(dict(settings))))


def _varied_value(settings: Mapping[str, Any], key: str) -> Any:
    if key == "dropout":
        return (settings.get("model_overrides") or {}).get("dropout")
    return settings[key]


def _word(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "x".join(_word(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _cell_name(varied: Mapping[str, Any], digest: str) -> str:
    words = "_".join(f"{key}-{_word(value)}" for key, value in varied.items())
    words = re.sub(r"[^A-Za-z0-9_.+-]+", "-", words)[:_NAME_CHARS].strip("-_")
    return f"{words}-{digest}" if words else digest
