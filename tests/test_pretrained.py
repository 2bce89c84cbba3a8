"""The weights table: entries, validation, lookup and the generated docs table."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from resnet3d.weights import table as pretrained
from resnet3d.weights.table import Metric, PretrainedEntry

DOC = Path(__file__).resolve().parents[1] / "docs" / "pretrained.md"
SHA = "ab" * 32
REV = "0123456789abcdef0123456789abcdef01234567"


def _entry(**changes: object) -> PretrainedEntry:
    fields: dict[str, object] = dict(
        alias="test-entry",
        architecture="resnet18",
        preprocessing={"depth": 4, "size": 64, "channels": 3},
        labels=("a", "b", "c"),
    )
    fields.update(changes)
    return PretrainedEntry(**fields)  # type: ignore[arg-type]


def test_paper_aliases_exist_and_describe_their_input() -> None:
    aliases = pretrained.list_pretrained()
    for alias in ("ccii-depth4", "ccii-depth2", "ccii-depth8", "ccii-r2plus1d-depth4"):
        assert alias in aliases
    best = pretrained.get_pretrained("ccii-depth4")
    assert best.architecture == "resnet18"
    assert best.preprocessing["depth"] == 4 and best.preprocessing["size"] == [512, 512]
    assert best.preprocessing["channels"] == 3
    assert best.labels == ("NCP", "CP", "Normal")
    assert pretrained.get_pretrained("ccii-r2plus1d-depth4").architecture == "resnet18_2plus1d"


def test_preprocessing_specs_are_slice_stacker_specs() -> None:
    # Each spec must configure the volume builder exactly: it round-trips through SliceStacker.
    from resnet3d.data.volumes import SliceStacker

    for entry in pretrained.entries():
        spec = dict(entry.preprocessing)
        assert SliceStacker.from_dict(spec).to_dict() == spec, entry.alias
    # The keys are those to_dict can give: crop, mean and std appear only when set.
    every_field = SliceStacker(size=(8, 8), crop=4, mean=(0, 0, 0), std=(1, 1, 1))
    assert set(pretrained.PREPROCESSING_KEYS) == set(every_field.to_dict())


def test_no_builtin_entry_invents_a_revision_hash_or_metric() -> None:
    # Nothing has been trained and uploaded: every built-in row must be an honest plan.
    for entry in pretrained.entries():
        assert not entry.published, entry.alias
        assert entry.repo_id is None and entry.revision is None and entry.sha256 is None
        assert entry.metrics == ()
    assert pretrained.list_pretrained(published_only=True) == []


def test_builtin_architectures_are_registered_models() -> None:
    import resnet3d

    names = resnet3d.list_models()
    for entry in pretrained.entries():
        assert entry.architecture in names, entry.alias


def test_unknown_alias_lists_closest_names() -> None:
    with pytest.raises(ValueError, match=r"unknown pretrained alias 'ccii-depht4'.*'ccii-depth4'"):
        pretrained.get_pretrained("ccii-depht4")


def test_recipe_commands_are_the_training_recipe() -> None:
    commands = pretrained.recipe_commands(pretrained.get_pretrained("ccii-depth4"))
    assert commands[0].startswith(
        "resnet3d train --data ROOT --model resnet18 --depth 4 --size 512 --batch-size 32"
    )
    assert commands[1].startswith("resnet3d export ") and "best.pt" in commands[1]
    assert commands[2].startswith("resnet3d push ")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"alias": "org/name"}, "alias must be"),
        ({"preprocessing": {"dept": 4}}, "Did you mean 'depth'"),
        ({"repo_id": "org/name", "revision": "main", "sha256": SHA}, "pinned commit"),
        ({"repo_id": "org/name", "revision": REV, "sha256": "abc"}, "64 lower-case hex"),
        ({"repo_id": "org/name"}, "repo_id, revision and sha256 together"),
        ({"repo_id": "noslash", "revision": REV, "sha256": SHA}, "org/name"),
        ({"metrics": (Metric("accuracy", 0.9, "test"),)}, "only be given for published"),
        ({"filename": "model.bin"}, "only safetensors"),
        ({"labels": ("a", "")}, "labels must be non-empty"),
    ],
)
def test_entry_validation(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _entry(**changes)


def test_metric_validation() -> None:
    with pytest.raises(ValueError, match="split"):
        Metric("accuracy", 0.9, "")
    with pytest.raises(TypeError, match="number"):
        Metric("accuracy", "high", "test")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="finite"):
        Metric("accuracy", float("nan"), "test")
    with pytest.raises(ValueError, match="unknown metric keys"):
        Metric.from_dict({"name": "a", "value": 1, "split": "t", "colour": "red"})
    m = Metric.from_dict({"name": "auroc", "value": 1, "split": "test"})
    assert m.value == 1.0 and m.unit == "fraction"
    assert Metric.from_dict(m.to_dict()) == m


def test_register_and_unregister_round_trip() -> None:
    entry = _entry(
        repo_id="org/name", revision=REV, sha256=SHA, metrics=(Metric("accuracy", 0.5, "held-out"),)
    )
    assert entry.published
    try:
        assert pretrained.register_pretrained(entry) is entry
        assert pretrained.get_pretrained("test-entry") is entry
        assert "test-entry" in pretrained.list_pretrained(published_only=True)
        with pytest.raises(ValueError, match="already in the weights table"):
            pretrained.register_pretrained(entry)
        replacement = entry.replace(description="v2")
        assert pretrained.register_pretrained(replacement, overwrite=True) is entry
    finally:
        pretrained.unregister_pretrained("test-entry")
    assert "test-entry" not in pretrained.list_pretrained()
    with pytest.raises(TypeError):
        pretrained.register_pretrained({"alias": "x"})  # type: ignore[arg-type]


def test_list_pattern() -> None:
    assert pretrained.list_pretrained("ccii-depth*") == [
        "ccii-depth4",
        "ccii-depth2",
        "ccii-depth8",
        "ccii-depth16",
    ]
    assert pretrained.list_pretrained("nothing*") == []


def test_table_markdown_shape() -> None:
    table = pretrained.table_markdown()
    lines = table.strip().splitlines()
    assert len(lines) == 2 + len(pretrained.list_pretrained())
    assert all(line.count("|") == 9 for line in lines)
    assert "not yet published" in table


def test_docs_contain_the_generated_table() -> None:
    # docs/pretrained.md embeds table_markdown() verbatim; regenerate it when the table changes.
    assert pretrained.table_markdown() in DOC.read_text(encoding="utf-8")


def test_table_imports_no_torch() -> None:
    code = (
        "import sys, resnet3d.weights.table as p; p.table_markdown(); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_published_entry_table_row_shows_pinned_revision() -> None:
    entry = _entry(
        alias="test-row",
        repo_id="org/name",
        revision=REV,
        sha256=SHA,
        metrics=(Metric("accuracy", 0.25, "held-out"),),
        license="apache-2.0",
    )
    pretrained.register_pretrained(entry)
    try:
        row = pretrained.table_markdown("test-row").splitlines()[2]
    finally:
        pretrained.unregister_pretrained("test-row")
    assert "`org/name` @ `0123456789ab`" in row
    assert re.search(r"accuracy 0\.25 \(fraction, held-out\)", row)
    assert "apache-2.0" in row
