"""The docs that restate the code are checked against it, so the two cannot drift."""

from __future__ import annotations

from pathlib import Path

from spotify_tokener.domain.errors import failure_table

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_the_failure_table_in_the_operations_guide_is_the_codes() -> None:
    """On a difference, paste ``failure_table()``'s text between the markers."""
    text = (DOCS / "operations.md").read_text()
    shown = text.split("<!-- failures:begin -->\n", 1)[1].split("<!-- failures:end -->", 1)[0]
    assert shown == failure_table()
