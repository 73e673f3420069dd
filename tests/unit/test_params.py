from __future__ import annotations

import pytest

from spotify_tokener.params import MAX_QUERY_LENGTH, InvalidParameter, parse_force


@pytest.mark.parametrize("query", ["force=1", "force=true", "force=TRUE", "force=Yes", "a=b&force=yes"])
def test_words_that_force(query: str) -> None:
    assert parse_force(query) is True


@pytest.mark.parametrize("query", ["", "force=0", "force=false", "force=No", "force=", "force", "other=1"])
def test_words_that_do_not_force(query: str) -> None:
    assert parse_force(query) is False


@pytest.mark.parametrize(
    ("query", "detail"),
    [
        ("force=maybe", "must be one of"),
        ("force=2", "must be one of"),
        ("force=1&force=1", "at most once"),
        ("force=%ff", "UTF-8"),
        ("force=" + "1" * MAX_QUERY_LENGTH, "longer than"),
    ],
)
def test_bad_values_say_what_is_wrong(query: str, detail: str) -> None:
    with pytest.raises(InvalidParameter, match=detail):
        parse_force(query)
