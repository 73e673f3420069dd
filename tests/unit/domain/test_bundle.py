"""Candidates for the secret, from every shape the scripts have written it in, and the page's scripts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spotify_tokener.domain.bundle import script_urls, secret_candidates
from spotify_tokener.domain.totp import Secret

SECRET = "=n:b#OuEfH\\fE])e*K"


def codes(text: str) -> str:
    return ",".join(str(ord(char)) for char in text)


@pytest.mark.parametrize(
    "script",
    [
        'const s=[{secret:"=n:b#OuEfH\\\\fE])e*K",version:61},{secret:"older-secret-x",version:60}]',
        "x={'version': 61, 'secret': '=n:b#OuEfH\\\\fE])e*K'}",
        '{"secret": "\\x3dn:b#OuEfH\\u005cfE])e*K", "version": 61}',
        f"a=[{{secret:[{codes(SECRET)}],version:61}}]",
        f"a={{secret:String.fromCharCode({codes(SECRET)}),version:61}}",
    ],
    ids=["literal", "version-first", "escaped", "char-codes", "from-char-code"],
)
def test_a_versioned_secret_comes_first_whatever_its_shape(script: str) -> None:
    assert secret_candidates(script)[0] == Secret(SECRET, 61)


def test_the_newest_version_comes_first_wherever_it_is_written() -> None:
    script = '[{secret:"older-secret-x",version:60},{secret:"newest-secret",version:62}]'
    assert [secret.version for secret in secret_candidates(script)[:2]] == [62, 60]


def test_other_strings_and_code_lists_follow_unversioned() -> None:
    script = f'const a="short", b="a-long-enough-string"; c=[{codes("made-of-codes")}]; d="{SECRET}"'
    found = secret_candidates(script)
    assert Secret("a-long-enough-string") in found
    assert Secret("made-of-codes") in found
    assert Secret("short") not in found
    assert all(secret.version is None for secret in found)


def test_an_escape_beyond_unicode_is_dropped_not_raised() -> None:
    assert secret_candidates('"abc\\u{110000}defghijk"') == [Secret("abcdefghijk")]


@given(st.text(max_size=300))
def test_any_text_gives_candidates_without_raising(text: str) -> None:
    for secret in secret_candidates(text):
        assert secret.value


def test_scripts_are_absolute_in_order_once_each() -> None:
    html = (
        '<script src="/a.js"></script><SCRIPT SRC="https://open.spotifycdn.com/b.js" defer></SCRIPT>'
        '<script>inline()</script><script src="/a.js"></script><script src="data:text/javascript,1"></script>'
    )
    assert script_urls(html, "https://open.spotify.com/") == [
        "https://open.spotify.com/a.js",
        "https://open.spotifycdn.com/b.js",
    ]
