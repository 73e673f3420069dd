from __future__ import annotations

from spotify_tokener.freshness import Freshness
from spotify_tokener.token import Token

RULES = Freshness.from_seconds(buffer=300, window=600, stale_margin=30)


def token_with(remaining_s: float, now_ms: int = 0) -> Token:
    return Token("BQ", now_ms + int(remaining_s * 1000), "client", True)


def test_no_token_is_never_servable_and_always_wants_a_refresh() -> None:
    assert not RULES.is_servable(None, 0)
    assert not RULES.is_usable_stale(None, 0)
    assert RULES.wants_refresh(None, 0)
    assert RULES.ms_until_refresh(None, 0) == 0


def test_a_token_is_served_only_above_the_buffer() -> None:
    assert RULES.is_servable(token_with(300.001), 0)
    assert not RULES.is_servable(token_with(300), 0)


def test_renewal_starts_inside_the_window() -> None:
    assert not RULES.wants_refresh(token_with(600), 0)
    assert RULES.wants_refresh(token_with(599.999), 0)


def test_time_until_refresh_counts_down_to_the_window() -> None:
    assert RULES.ms_until_refresh(token_with(3600), 0) == 3_000_000
    assert RULES.ms_until_refresh(token_with(100), 0) == 0


def test_stale_tokens_limp_on_until_the_margin() -> None:
    assert RULES.is_usable_stale(token_with(31), 0)
    assert not RULES.is_usable_stale(token_with(30), 0)
    assert not RULES.is_usable_stale(token_with(-1), 0)
