from __future__ import annotations

import pytest

from spotify_tokener.http.params import ApiKeys, presented_key


@pytest.mark.parametrize(
    ("authorization", "query", "expected"),
    [
        ("Bearer s3cret", "", "s3cret"),
        ("bearer s3cret ", "force=1", "s3cret"),
        (None, "key=s3cret", "s3cret"),
        (None, "force=1&key=s3cret", "s3cret"),
        ("Bearer from-header", "key=from-query", "from-header"),
        ("Basic dXNlcjpwYXNz", "", None),
        ("Bearer ", "", None),
        (None, "", None),
        (None, "key=", None),
        (None, "key=a&key=b", None),
        (None, "monkey=business", None),
    ],
)
def test_where_a_key_is_read_from(authorization: str | None, query: str, expected: str | None) -> None:
    assert presented_key(authorization, query) == expected


def test_any_of_several_keys_is_accepted() -> None:
    keys = ApiKeys(["first", "second"])
    assert keys.enabled
    assert keys.accepts("first")
    assert keys.accepts("second")
    assert not keys.accepts("third")
    assert not keys.accepts("firs")
    assert not keys.accepts(None)


def test_no_keys_means_no_check() -> None:
    assert not ApiKeys([]).enabled
