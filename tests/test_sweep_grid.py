"""Sweep grids: typed parsing, the paper's presets, expansion into cells, cell names, errors."""

from __future__ import annotations

import re

import pytest

from resnet3d.data.volumes import SliceStacker
from resnet3d.engine.train import RESUME_MAY_CHANGE, TrainConfig
from resnet3d.sweep import PAPER_PRESETS, SweepCell, expand_grid, parse_grid
from resnet3d.sweep.grid import (
    GRID_FIELDS,
    RUNTIME_FIELDS,
    STACKER_SETTINGS,
    base_settings,
    settings_hash,
)


def paper_cells(name: str) -> set[tuple[int, int, str]]:
    return {(c["depth"], c["batch_size"], c["model"]) for c in PAPER_PRESETS[name]}


def test_parse_types_values_from_the_fields() -> None:
    grid = parse_grid(
        "depth=2,4 batch-size=8 lr=1e-3,0.01 compile=true,off patience=none,3 "
        "size=64,64x48 window=lung,-600:1500,none augment=none,flip+shift dropout=none,0.2 "
        "model=resnet18"
    )
    assert grid == {
        "depth": [2, 4],
        "batch_size": [8],
        "lr": [0.001, 0.01],
        "compile": [True, False],
        "patience": [None, 3],
        "size": [[64, 64], [64, 48]],
        "window": ["lung", [-600.0, 1500.0], None],
        "augment": ["none", "flip,shift"],
        "dropout": [None, 0.2],
        "model": ["resnet18"],
    }


def test_parse_takes_words_as_a_list_and_drops_repeated_values() -> None:
    assert parse_grid(["depth=2,4,2", "seed=1"]) == {"depth": [2, 4], "seed": [1]}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty grid"),
        ("dpeth=2,4", "unknown grid field 'dpeth'.*Did you mean 'depth'"),
        ("depth", "is not FIELD=V1,V2"),
        ("depth=", "has no values"),
        ("depth=2.5", r"depth='2\.5': expected an int"),
        ("depth=4 depth=8", "given twice"),
        ("lr=fast", "expected a number"),
        ("compile=maybe", "expected true or false"),
        ("epochs=none", "expected an int$"),
        ("size=big", "expected N, HxW or none"),
        ("window=lng", "Did you mean 'lung'"),
        ("nproc=2", "sweep option"),
        ("out_dir=x", "unknown grid field"),
    ],
)
def test_parse_errors_are_one_clear_line(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        parse_grid(spec)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ("model=resnt18", "cell model=resnt18: .*Did you mean 'resnet18'"),
        ("precision=bf8", "cell precision=bf8: .*Did you mean 'bf16'"),
        ("depth=0", "cell depth=0: depth must be an int >= 1"),
        ("remainder=wrap", "cell remainder=wrap"),
    ],
)
def test_invalid_cells_name_their_settings(grid: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        expand_grid([grid])


def test_empty_sweep_and_unknown_preset() -> None:
    with pytest.raises(ValueError, match="empty sweep"):
        expand_grid()
    with pytest.raises(ValueError, match="empty grid"):
        expand_grid([{}])
    with pytest.raises(ValueError, match="Did you mean 'depth'"):
        expand_grid(paper=["dept"])


def test_paper_presets_are_exactly_the_papers_cells() -> None:
    assert paper_cells("depth") == {(d, 8, "resnet18") for d in (2, 4, 8, 16, 32, 64)}
    assert paper_cells("batch") == {
        (2, 32, "resnet18"),
        (2, 64, "resnet18"),
        (4, 32, "resnet18"),
        (4, 64, "resnet18"),
        (8, 32, "resnet18"),
        (16, 32, "resnet18"),
    }
    models = ("resnet18", "resnet18_2plus1d", "resnet34", "resnet34_2plus1d", "resnet50")
    assert paper_cells("models") == {(4, 32, m) for m in models}
    assert [len(PAPER_PRESETS[name]) for name in ("depth", "batch", "models")] == [6, 6, 5]
    # resnet18 at depth 4, batch 32 is in both the batch and the models experiments: one cell.
    assert len(PAPER_PRESETS["all"]) == 16
    assert paper_cells("all") == paper_cells("depth") | paper_cells("batch") | paper_cells("models")
    for cells in PAPER_PRESETS.values():
        assert all(set(c) == {"depth", "batch_size", "model"} for c in cells)


def test_paper_all_expands_to_16_cells_with_readable_hashed_names() -> None:
    cells = expand_grid(paper=["all"])
    assert len(cells) == 16
    assert len({c.name for c in cells}) == 16
    shared = [c for c in cells if c.varied == {"depth": 4, "batch_size": 32, "model": "resnet18"}]
    assert len(shared) == 1
    assert re.fullmatch(r"depth-4_batch_size-32_model-resnet18-[0-9a-f]{8}", shared[0].name)
    assert shared[0].folder == f"runs/{shared[0].name}"
    assert shared[0].label() == "depth=4 batch_size=32 model=resnet18"
    # Presets given together, or overlapping, are the union.
    assert [c.name for c in expand_grid(paper=["batch", "models"])] == [
        c.name for c in expand_grid(paper=["batch", "models", "models"])
    ]
    assert len(expand_grid(paper=["batch", "models"])) == 10


def test_each_grid_is_a_product_and_grids_are_a_union() -> None:
    cells = expand_grid(["depth=2,4 batch_size=8,16"])
    assert [(c.settings["depth"], c.settings["batch_size"]) for c in cells] == [
        (2, 8),
        (2, 16),
        (4, 8),
        (4, 16),
    ]
    # depth 4 at the base batch (32) is given by both grids: one cell, both fields varied.
    union = expand_grid(["depth=2,4", "depth=4 batch_size=32,64"])
    assert [(c.settings["depth"], c.settings["batch_size"]) for c in union] == [
        (2, 32),
        (4, 32),
        (4, 64),
    ]
    assert union[1].varied == {"depth": 4, "batch_size": 32}
    assert union[0].varied == {"depth": 2}


def test_settings_are_the_base_with_the_grid_on_top() -> None:
    base = base_settings(TrainConfig(epochs=3, workers=2), SliceStacker(size=64), nproc=2)
    (cell,) = expand_grid(["depth=8 dropout=0.2"], base=base)
    settings = cell.settings
    assert settings["depth"] == 8 and settings["epochs"] == 3 and settings["nproc"] == 2
    assert settings["size"] == [64, 64]
    assert settings["model_overrides"] == {"dropout": 0.2}
    assert cell.varied == {"depth": 8, "dropout": 0.2}
    assert set(STACKER_SETTINGS) <= set(settings)
    # How fast a run goes is not a setting unless a grid varies it.
    assert not set(RUNTIME_FIELDS) & set(settings)
    (fast,) = expand_grid(["workers=4"], base=base)
    assert fast.settings["workers"] == 4
    # The cell's objects carry its settings; runtime options fill in the rest.
    config = cell.train_config("somewhere", {"device": "cpu", "workers": 1, "progress": False})
    assert (config.out_dir, config.device, config.workers, config.epochs) == (
        "somewhere",
        "cpu",
        1,
        3,
    )
    assert config.model_overrides == {"dropout": 0.2}
    assert fast.train_config("x", {"workers": 1}).workers == 4
    assert cell.stacker() == SliceStacker(depth=8, size=64)


def test_a_changed_base_option_changes_every_cell_name() -> None:
    first = expand_grid(["depth=2,4"], base=base_settings(TrainConfig(epochs=1)))
    second = expand_grid(["depth=2,4"], base=base_settings(TrainConfig(epochs=2)))
    assert [c.label() for c in first] == [c.label() for c in second]
    assert not {c.name for c in first} & {c.name for c in second}
    # The hash covers every setting and nothing else.
    assert first[0].name.endswith(settings_hash(first[0].settings))
    again = expand_grid(["depth=2,4"], base=base_settings(TrainConfig(epochs=1, workers=3)))
    assert [c.name for c in again] == [c.name for c in first]


def test_mapping_grids_take_python_values_and_strings() -> None:
    cells = expand_grid([{"depth": [2, 4], "model": "resnet10", "size": ["32"], "lr": 0.01}])
    assert [c.settings["depth"] for c in cells] == [2, 4]
    assert cells[0].settings["size"] == [32, 32]
    assert cells[0].settings["lr"] == 0.01
    assert isinstance(cells[0], SweepCell)
    with pytest.raises(ValueError, match="unknown grid field 'dpth'"):
        expand_grid([{"dpth": [2]}])


def test_runtime_fields_may_change_on_resume() -> None:
    # Left out of a cell's settings, they may differ between a cell and its resumption.
    assert set(RUNTIME_FIELDS) <= set(RESUME_MAY_CHANGE)
    assert {"depth", "batch_size", "model", "epochs", "dropout"} <= set(GRID_FIELDS)
