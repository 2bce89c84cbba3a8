"""docs/metrics.md: every snippet that shows its output still prints exactly that output."""

from __future__ import annotations

import contextlib
import io
import re
import warnings
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "metrics.md"
SNIPPET = re.compile(r"```python\n(.*?)```\n\nOutput:\n\n```text\n(.*?)```", re.S)


def test_doc_snippets_print_what_the_page_shows() -> None:
    if not DOC.exists():
        pytest.skip("docs/metrics.md is not part of this checkout")
    snippets = SNIPPET.findall(DOC.read_text(encoding="utf-8"))
    assert len(snippets) >= 3  # the worked example, the report and the aggregation
    namespace: dict[str, object] = {}
    for code, shown in snippets:  # run in order, sharing names, like a reader would
        out = io.StringIO()
        with contextlib.redirect_stdout(out), warnings.catch_warnings():
            warnings.simplefilter("error")  # the examples should not trip any warning
            exec(compile(code, str(DOC), "exec"), namespace)
        assert out.getvalue().rstrip() == shown.rstrip()
