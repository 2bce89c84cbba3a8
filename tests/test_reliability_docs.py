"""docs/reliability.md and the reliability tests agree: every bad input the tests try is a row
of the page's table, and every row names tests that exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "reliability.md"
TEST_ID = re.compile(r"`(test_reliability_\w+\.py)::(test_\w+)`")


def documented() -> dict[tuple[str, str], str]:
    """``(file, test) -> row number`` for every test named in the page's tables."""
    rows: dict[tuple[str, str], str] = {}
    for line in PAGE.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) != 4 or not TEST_ID.search(cells[3]):
            continue
        for test in TEST_ID.findall(cells[3]):
            assert test not in rows, f"{test} is listed twice"
            rows[test] = cells[0]
    return rows


def defined() -> set[tuple[str, str]]:
    """Every test function in tests/test_reliability_*.py (this file excepted)."""
    tests = set()
    for path in sorted(Path(__file__).parent.glob("test_reliability_*.py")):
        if path.name == Path(__file__).name:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                tests.add((path.name, node.name))
    return tests


def test_every_reliability_test_is_a_row_of_the_page() -> None:
    missing = sorted(defined() - set(documented()))
    assert not missing, f"tests without a row in docs/reliability.md: {missing}"


def test_every_row_of_the_page_names_a_test_that_exists() -> None:
    ghosts = sorted(set(documented()) - defined())
    assert not ghosts, f"docs/reliability.md names tests that do not exist: {ghosts}"


def test_every_row_belongs_to_a_numbered_rule_of_the_page() -> None:
    text = PAGE.read_text(encoding="utf-8")
    rules = set(re.findall(r"^## (\d+)\. ", text, flags=re.MULTILINE))
    assert rules, "the page has no numbered rules"
    numbers = {number.split(".")[0] for number in documented().values()}
    assert numbers <= rules, f"rows under no rule: {sorted(numbers - rules)}"
    assert rules <= numbers, f"rules without a tested row: {sorted(rules - numbers)}"
