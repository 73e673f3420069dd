"""Token answers as bytes, and the hot answer: the bare ``GET /api/token`` body, kept for a millisecond.

A token answer changes only in its ``timestamp`` (ms), so the hot answer (LavaSrc's call, nearly all
traffic) is encoded at most once per millisecond: all before ``timestamp`` once per token, then only
the stamp. Other answers are rare and cheap, so they are encoded when made.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson

from spotify_tokener.core.slot import CachedToken
from spotify_tokener.domain.token import Token
from spotify_tokener.http.schemas import TokenBody

NS_PER_MS = 1_000_000
TIMESTAMP_FIELD = b',"timestamp":'


def token_body(token: Token, *, cached: bool, now_ms: int) -> TokenBody:
    return {
        "success": True,
        "accessToken": token.access_token,
        "accessTokenExpirationTimestampMs": token.expires_at_ms,
        "clientId": token.client_id,
        "isAnonymous": token.is_anonymous,
        "cached": cached,
        "timestamp": now_ms,
    }


def encode_token(token: Token, *, cached: bool, now_ms: int) -> bytes:
    return orjson.dumps(token_body(token, cached=cached, now_ms=now_ms))


class HotAnswer:
    """The cached anonymous token's answer, valid while the clock is before ``until_ns``: the end of the
    millisecond it is stamped with, never past the token's serving window (which ends on a millisecond
    too). :meth:`drop` is the slot's watcher, so a new token is served from the very next request."""

    __slots__ = ("_held", "_prefix", "_read", "body", "until_ns")

    def __init__(self, read: Callable[[], CachedToken | None], *, enabled: bool = True) -> None:
        self._read = read if enabled else lambda: None  # with API keys every request must show its key
        self._held: CachedToken | None = None
        self._prefix = b""
        self.body = b""
        self.until_ns = 0

    def drop(self, _new: CachedToken) -> None:
        self.until_ns = 0

    def reheat(self, now_ns: int) -> bool:
        """Stamp the body for this millisecond, if the cached token may be served now."""
        held, now_ms = self._read(), now_ns // NS_PER_MS
        if held is None or now_ms >= held.serve_until_ms:
            return False
        if held is not self._held:
            full = encode_token(held.token, cached=True, now_ms=0)
            self._prefix = full[: full.rindex(TIMESTAMP_FIELD) + len(TIMESTAMP_FIELD)]
            self._held = held
        self.body = self._prefix + str(now_ms).encode() + b"}"
        self.until_ns = (now_ms + 1) * NS_PER_MS
        return True
