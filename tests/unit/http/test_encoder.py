from __future__ import annotations

import orjson

from spotify_tokener.core.slot import CachedToken
from spotify_tokener.domain.token import Token
from spotify_tokener.http.encoder import NS_PER_MS, HotAnswer, encode_token, token_body

TOKEN = Token("BQ-abc", 1_800_000_000_000, "client", True)
SERVE_UNTIL_MS = TOKEN.expires_at_ms - 300_000
HELD = CachedToken(TOKEN, SERVE_UNTIL_MS, fetched_at_ms=1_700_000_000_000)


def test_the_bytes_are_exactly_the_json_of_the_body() -> None:
    for now in (1_700_000_000_000, 1_700_000_000_001, 5):
        for cached in (True, False):
            expected = token_body(TOKEN, cached=cached, now_ms=now)
            assert orjson.loads(encode_token(TOKEN, cached=cached, now_ms=now)) == expected


def test_the_hot_answer_is_the_cached_body_stamped_for_its_millisecond() -> None:
    hot = HotAnswer(lambda: HELD)
    now_ms = 1_700_000_000_123
    assert hot.reheat(now_ms * NS_PER_MS + 456)
    assert orjson.loads(hot.body) == token_body(TOKEN, cached=True, now_ms=now_ms)
    assert hot.until_ns == (now_ms + 1) * NS_PER_MS


def test_a_new_token_is_read_as_soon_as_the_slot_says_so() -> None:
    held = [HELD]
    hot = HotAnswer(lambda: held[0])
    hot.reheat(7 * NS_PER_MS)
    other = Token("BQ-other", TOKEN.expires_at_ms + 1, "client", True)
    held[0] = CachedToken(other, SERVE_UNTIL_MS + 1, fetched_at_ms=8)
    hot.drop(held[0])
    assert hot.until_ns == 0  # the very next request reheats, within the same millisecond too
    assert hot.reheat(7 * NS_PER_MS)
    assert orjson.loads(hot.body)["accessToken"] == "BQ-other"


def test_nothing_is_served_from_the_first_millisecond_past_the_serving_window() -> None:
    hot = HotAnswer(lambda: HELD)
    assert hot.reheat((SERVE_UNTIL_MS - 1) * NS_PER_MS)
    assert hot.until_ns == SERVE_UNTIL_MS * NS_PER_MS
    assert not hot.reheat(SERVE_UNTIL_MS * NS_PER_MS)


def test_without_a_token_or_when_disabled_there_is_no_hot_answer() -> None:
    assert not HotAnswer(lambda: None).reheat(NS_PER_MS)
    assert not HotAnswer(lambda: HELD, enabled=False).reheat(NS_PER_MS)
