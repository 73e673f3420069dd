"""Reading a heap snapshot's string table as it streams in, however the chunks fall."""

from __future__ import annotations

import itertools
import json

from hypothesis import given
from hypothesis import strategies as st

from spotify_tokener.domain.bundle import MAX_CANDIDATES
from spotify_tokener.sources.browser.heap import StringTable

STRINGS = [
    "",
    "short",
    "=n:b#OuEfH\\fE])e*K",
    'with "quotes" in',
    "é-unicode-ü-long",
    "x" * 400,
    "tab\there!",
    'a script\'s source: "quoted", \\ escaped \\" and long, ' * 500,  # skipped as it streams
    "after-the-long-one",
]
SNAPSHOT = json.dumps(
    {
        "snapshot": {"meta": {"node_types": [["hidden", "string"]], "node_fields": ["type", "name"]}},
        "nodes": [0, 1, 2, 3] * 50,
        "edges": [],
        "strings": STRINGS,
    },
    separators=(",", ":"),
)
WORTH_A_CHECK = ["=n:b#OuEfH\\fE])e*K", 'with "quotes" in', "é-unicode-ü-long", "after-the-long-one"]


def fed(chunks: list[str]) -> StringTable:
    table = StringTable()
    for chunk in chunks:
        table.feed(chunk)
    return table


@given(st.lists(st.integers(min_value=0, max_value=len(SNAPSHOT)), max_size=40))
def test_the_strings_worth_a_check_are_found_however_the_chunks_fall(cuts: list[int]) -> None:
    points = [0, *sorted(cuts), len(SNAPSHOT)]
    table = fed([SNAPSHOT[start:end] for start, end in itertools.pairwise(points)])
    assert list(table.found) == WORTH_A_CHECK
    assert table.done


def test_numbers_before_the_table_and_text_after_it_are_not_strings() -> None:
    table = fed(
        ['{"nodes":[1,2],"names":["not-in-the-table"],"strings":["in-the-table"],"x":"after-it-too"}']
    )
    assert list(table.found) == ["in-the-table"]


def test_a_snapshot_cut_short_keeps_what_it_read() -> None:
    table = fed(['{"strings":["complete-one","half-writ'])
    assert list(table.found) == ["complete-one"]
    assert not table.done


def test_known_strings_are_left_out_before_the_cap_counts() -> None:
    browsers_own = [f"browser-own-{number:06d}" for number in range(MAX_CANDIDATES)]
    snapshot = json.dumps({"strings": [*browsers_own, "the-page's-own-string"]}, separators=(",", ":"))
    table = StringTable(known=frozenset(browsers_own))
    table.feed(snapshot)
    assert list(table.found) == ["the-page's-own-string"]
    assert not table.truncated


def test_a_table_with_more_strings_than_the_cap_is_done_at_the_cap_and_takes_no_more() -> None:
    table = StringTable(cap=3)
    table.feed('{"strings":["candidate-0","candidate-1","candidate-2","candidate-3",')
    table.feed('"candidate-4"]}')
    assert list(table.found) == ["candidate-0", "candidate-1", "candidate-2"]
    assert table.done
    assert table.truncated
