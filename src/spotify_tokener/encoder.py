"""Token answers as bytes, encoded once per token.

The body of a token answer changes only in its ``timestamp``, so everything before it is encoded
when the token (or its ``cached`` flag) changes and reused until then, and the whole body is reused
within the same millisecond. The HTTP fast path keeps its own copy of the last body on top of this
(``App._reheat``), so under load most answers cost no encoding and no call.
"""

from __future__ import annotations

import orjson

from spotify_tokener.schemas import TokenBody
from spotify_tokener.token import Token

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


class TokenEncoder:
    """Remembers the encoded prefix of the last token answer it made, and the last body."""

    def __init__(self) -> None:
        self._token: Token | None = None
        self._cached = False
        self._prefix = b""
        self._now_ms = -1
        self._body = b""

    def encode(self, token: Token, *, cached: bool, now_ms: int) -> bytes:
        if token is not self._token or cached is not self._cached or not self._prefix:
            full = orjson.dumps(token_body(token, cached=cached, now_ms=0))
            self._prefix = full[: full.rindex(TIMESTAMP_FIELD) + len(TIMESTAMP_FIELD)]
            self._token, self._cached = token, cached
            self._now_ms = -1
        if now_ms != self._now_ms:
            self._body = self._prefix + str(now_ms).encode() + b"}"
            self._now_ms = now_ms
        return self._body
