from __future__ import annotations

import pytest

from spotify_tokener.http.params import (
    MAX_COOKIE_SIZE,
    MAX_QUERY_LENGTH,
    InvalidParameter,
    parse_force,
    parse_sp_dc,
)


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
        ("force=%0A", "must be one of"),
        ("force=%201", "must be one of"),
        ("force=true+", "must be one of"),
        ("force=1&force=1", "at most once"),
        ("force=%ff", "UTF-8"),
        ("force=" + "1" * MAX_QUERY_LENGTH, "longer than"),
    ],
)
def test_bad_values_say_what_is_wrong(query: str, detail: str) -> None:
    with pytest.raises(InvalidParameter, match=detail):
        parse_force(query)


SP_DC = "AQBx-7_sessionValue.abc%2F"


@pytest.mark.parametrize(
    "headers",
    [
        [f"sp_dc={SP_DC}"],
        [f"sp_t=abc; sp_dc={SP_DC}; other=1"],
        [f'sp_dc="{SP_DC}"'],
        [f"sp_dc= {SP_DC}\t"],
        ["sp_t=abc", f"sp_dc={SP_DC}"],
        [f"sp_dc={SP_DC}", f"sp_dc={SP_DC}"],
        [f"junk; sp_dc={SP_DC}; =odd"],
    ],
)
def test_the_sp_dc_cookie_is_found_among_others(headers: list[str]) -> None:
    assert parse_sp_dc(headers) == SP_DC


@pytest.mark.parametrize("headers", [[], ["sp_t=abc; theme=dark"], ["sp_dcx=1; xsp_dc=2"]])
def test_no_sp_dc_means_anonymous(headers: list[str]) -> None:
    assert parse_sp_dc(headers) is None


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        (["sp_dc="], "is empty"),
        (["sp_dc"], "no '='"),
        (["sp_dc=a b"], "characters a cookie value may not"),
        (["sp_dc=\u0085a"], "characters a cookie value may not"),
        (["sp_dc=a\u00a0"], "characters a cookie value may not"),
        (['sp_dc=a"b'], "characters a cookie value may not"),
        (["sp_dc=caf\u00e9"], "characters a cookie value may not"),
        (["sp_dc=a\\b"], "characters a cookie value may not"),
        (["sp_dc=one", "sp_dc=two"], "more than once"),
        (["sp_dc=" + "a" * (MAX_COOKIE_SIZE - len("sp_dc") + 1)], "name and value together"),
    ],
)
def test_malformed_cookies_are_described_without_their_value(headers: list[str], detail: str) -> None:
    with pytest.raises(InvalidParameter, match=detail) as caught:
        parse_sp_dc(headers)
    assert "café" not in str(caught.value)
    assert "one" not in str(caught.value)


def test_a_cookie_at_the_browsers_limit_is_taken() -> None:
    value = "a" * (MAX_COOKIE_SIZE - len("sp_dc"))
    assert parse_sp_dc([f"sp_dc={value}"]) == value
