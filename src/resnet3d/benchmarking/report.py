"""Markdown tables and JSON files for benchmark results."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from .._utils import atomic_write_text

__all__ = ["RowsResult", "fmt", "markdown_table", "write_result"]


@dataclass
class RowsResult:
    """A benchmark's result as settings, the machine and one dict per measured row.

    Subclasses name their benchmark in ``BENCHMARK`` and add ``to_markdown``.
    """

    BENCHMARK: ClassVar[str] = ""
    settings: dict[str, Any]
    environment: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The JSON document."""
        return {
            "benchmark": self.BENCHMARK,
            "settings": self.settings,
            "environment": self.environment,
            "rows": self.rows,
        }


def fmt(value: Any, digits: int = 3) -> str:
    """A table cell: ``-`` for missing values, ``digits`` significant digits for floats."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        if value == 0:
            return "0"
        magnitude = math.floor(math.log10(abs(value)))
        decimals = max(0, digits - 1 - magnitude)
        return f"{value:,.{decimals}f}"
    return str(value)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: str = "") -> str:
    """A GitHub-flavoured markdown table.

    Args:
        header: Column titles.
        rows: Cells (formatted with :func:`fmt` unless already strings).
        align: One letter per column, ``l`` or ``r`` (default: first left, others right).

    Returns:
        The table, lines joined by newlines (no trailing newline).
    """
    align = align or "l" + "r" * (len(header) - 1)
    if len(align) != len(header):
        raise ValueError(f"align has {len(align)} letters for {len(header)} columns")
    rule = ["---" if a == "l" else "---:" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(rule) + " |"]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"row {list(row)!r} has {len(row)} cells for {len(header)} columns")
        cells = [c if isinstance(c, str) else fmt(c) for c in row]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_result(
    document: dict[str, Any], markdown: str, out_dir: str | os.PathLike[str], stem: str
) -> tuple[Path, Path]:
    """Write ``OUT/STEM.json`` and ``OUT/STEM.md`` atomically; return both paths.

    Non-finite floats become ``null`` so that the JSON is strict.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = (out / f"{stem}.json", out / f"{stem}.md")
    texts = (json.dumps(_json_safe(document), indent=1, allow_nan=False) + "\n", markdown + "\n")
    for path, text in zip(paths, texts):
        atomic_write_text(path, text)
    return paths
