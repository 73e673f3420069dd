"""The docs hold together: every relative link between them leads somewhere.

A renamed heading or a moved page breaks links silently on GitHub; this finds them on every run.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from spotify_tokener.domain.errors import FAILURES

ROOT = Path(__file__).resolve().parents[2]
SKIPPED = {".git", "node_modules", "fake_spotify", "fixtures"}  # and every .venv*

FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def markdown_files() -> list[Path]:
    return sorted(
        path
        for path in ROOT.rglob("*.md")
        if not any(part in SKIPPED or part.startswith(".venv") for part in path.relative_to(ROOT).parts)
    )


def prose(text: str) -> str:
    """The text without code, where a bracket is not a link."""
    return CODE.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text, lower case, punctuation dropped, each space a hyphen."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading's anchor; a repeated heading gets -1, -2... as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for heading in HEADING.findall(FENCE.sub("", path.read_text())):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(f"{base}-{count}" if count else base)
    return found


def broken_links(path: Path) -> list[str]:
    broken = []
    for target in LINK.findall(prose(path.read_text())):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: and the like
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no such heading")
    return broken


@pytest.mark.parametrize("path", markdown_files(), ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_resolves(path: Path) -> None:
    assert broken_links(path) == []


def test_a_broken_link_is_found(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# The `other` page: (its) title\n\n## Twice\n\n## Twice\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[good](other.md#the-other-page-its-title) [good](other.md#twice-1) [good](#here) "
        "[web](https://example.com/x.md#nowhere)\n\n## Here\n\n"
        "[bad](missing.md) [bad](other.md#twice-2) [bad](#nowhere) `[code](missing.md)`\n"
    )
    assert broken_links(page) == [
        "missing.md: no such file",
        "other.md#twice-2: no such heading",
        "#nowhere: no such heading",
    ]


def test_every_test_reliability_names_exists() -> None:
    """RELIABILITY.md's table is only as good as the tests it names: a renamed test must take it along."""
    table = (ROOT / "RELIABILITY.md").read_text()
    sources = "\n".join(path.read_text() for path in (ROOT / "tests").rglob("test_*.py"))
    files = {path.relative_to(ROOT / "tests").as_posix() for path in (ROOT / "tests").rglob("test_*.py")}
    named_files = set(re.findall(r"`((?:unit/|integration/)?[\w/]*test_\w+\.py)", table))
    missing_files = {name for name in named_files if not any(f.endswith(name) for f in files)}
    missing_tests = {
        name for name in re.findall(r"::(test_\w+)", table) if not re.search(rf"def {name}\b", sources)
    }
    assert (missing_files, missing_tests) == (set(), set())


def failure_table() -> str:
    """``FAILURES`` as the Markdown table docs/operations.md holds."""
    lines = [
        "| failure | status | retried | next source | next proxy | shared | cool-down |",
        "| --- " * 7 + "|",
    ]
    for kind, row in list(FAILURES.items())[1:]:  # not the base's
        flags = (row.retried, row.next_source, row.proxy.value, row.shared, row.cools_down)
        cells = [flag if isinstance(flag, str) else ("yes" if flag else "no") for flag in flags]
        shown = cells if row.ends in ("attempt", "fetch") else ["—"] * len(cells)
        counted = f" (counted as `{row.counted_as}`)" if row.counted_as else ""
        lines.append(f"| `{kind}`: {row.when}{counted} | {row.status} | {' | '.join(shown)} |")
    return "\n".join(lines) + "\n"


def test_the_failure_table_in_the_operations_guide_is_the_codes() -> None:
    """On a difference, paste ``failure_table()``'s text between the markers."""
    text = (ROOT / "docs" / "operations.md").read_text()
    shown = text.split("<!-- failures:begin -->\n", 1)[1].split("<!-- failures:end -->", 1)[0]
    assert shown == failure_table()
