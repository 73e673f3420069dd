from __future__ import annotations

import orjson

from spotify_tokener.encoder import TokenEncoder, token_body
from spotify_tokener.token import Token

TOKEN = Token("BQ-abc", 1_800_000_000_000, "client", True)


def test_the_bytes_are_exactly_the_json_of_the_body() -> None:
    encoder = TokenEncoder()
    for now in (1_700_000_000_000, 1_700_000_000_001, 5):
        expected = token_body(TOKEN, cached=True, now_ms=now)
        assert orjson.loads(encoder.encode(TOKEN, cached=True, now_ms=now)) == expected


def test_a_new_token_or_flag_is_never_served_from_the_memo() -> None:
    encoder = TokenEncoder()
    encoder.encode(TOKEN, cached=True, now_ms=1)
    other = Token("BQ-other", 1_900_000_000_000, "client", True)
    assert orjson.loads(encoder.encode(other, cached=True, now_ms=1))["accessToken"] == "BQ-other"
    assert orjson.loads(encoder.encode(other, cached=False, now_ms=1))["cached"] is False


def test_the_same_millisecond_reuses_the_bytes() -> None:
    encoder = TokenEncoder()
    assert encoder.encode(TOKEN, cached=True, now_ms=7) is encoder.encode(TOKEN, cached=True, now_ms=7)
