"""The TOTP against RFC 6238's own vector and the fake web player's independent implementation."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from spotify_tokener.domain.totp import PERIOD_S, Secret, reproduces, totp
from tests.fake_spotify import totp as oracle

RFC_KEY = b"12345678901234567890"


def test_the_rfc_6238_vector_gives_its_last_six_digits() -> None:
    assert totp(RFC_KEY, 59) == "287082"
    assert totp(RFC_KEY, 1111111109) == "081804"


@given(st.text(min_size=1, max_size=40), st.integers(min_value=0, max_value=4_000_000_000))
def test_the_key_and_code_agree_with_the_fakes_own(secret: str, at_s: int) -> None:
    assert Secret(secret).key == oracle.derive_key(secret)
    assert totp(Secret(secret).key, at_s) == oracle.totp(oracle.derive_key(secret), at_s)


def test_a_code_is_reproduced_one_step_either_side_and_no_further() -> None:
    key = Secret("=n:b#OuEfH\\fE])e*K").key
    at = 1_800_000_000
    code = totp(key, at)
    assert reproduces(key, code, at + PERIOD_S)
    assert reproduces(key, code, at - PERIOD_S)
    assert not reproduces(key, code, at + 3 * PERIOD_S)
    assert not reproduces(Secret("another secret").key, code, at)


def test_a_secret_never_shows_in_its_repr() -> None:
    assert "hunter2-secret" not in repr(Secret("hunter2-secret", 61))
