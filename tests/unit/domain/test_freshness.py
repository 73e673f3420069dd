from __future__ import annotations

from spotify_tokener.domain.freshness import Freshness
from spotify_tokener.domain.token import Token

RULES = Freshness.from_seconds(buffer=300, window=600, stale_margin=30)
MINUTE_MS = 60_000


def token_with(remaining_s: float, now_ms: int = 0) -> Token:
    return Token("BQ", now_ms + int(remaining_s * 1000), "client", True)


def test_no_token_is_never_servable_and_always_due() -> None:
    assert not RULES.is_servable(None, 0)
    assert not RULES.is_usable_stale(None, 0)
    assert RULES.refresh_due_ms(None, None) == 0


def test_a_token_is_served_only_above_the_buffer() -> None:
    assert RULES.is_servable(token_with(300.001), 0)
    assert not RULES.is_servable(token_with(300), 0)


def test_renewal_is_due_when_the_window_opens() -> None:
    hour = token_with(3600)
    assert RULES.refresh_due_ms(hour, 0) == 3000 * 1000


def test_a_short_lived_token_is_not_due_at_once() -> None:
    # 8 minutes of life: the window (10 min) is open from the start, but renewing at once would loop.
    short = token_with(480)
    due = RULES.refresh_due_ms(short, 0)
    assert due == (480 - 300) * 1000 // 2
    assert due > 0
    assert due < (480 - 300) * 1000  # still renewed while it is servable


def test_without_a_fetch_time_the_window_decides() -> None:
    assert RULES.refresh_due_ms(token_with(480, now_ms=MINUTE_MS), None) == MINUTE_MS - 120_000


def test_stale_tokens_limp_on_until_the_margin() -> None:
    assert RULES.is_usable_stale(token_with(31), 0)
    assert not RULES.is_usable_stale(token_with(30), 0)
    assert not RULES.is_usable_stale(token_with(-1), 0)
