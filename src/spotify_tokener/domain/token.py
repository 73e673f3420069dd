"""The token itself, and how an upstream answer becomes one: a source hands over what it received,
and this module decides whether it is a token."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import orjson

from spotify_tokener.domain.errors import UpstreamError, refusal

HTTP_OK = 200
LONGEST_LIFE_MS = 2 * 3600 * 1000
"""Spotify's tokens live an hour: one said to live past two hours from now is not one of its."""
CLOCK_SKEW_MS = 2000  # how far replicas' clocks may disagree (NTP keeps them within milliseconds)
MAX_TOKEN_CHARS = 4096

Kind = Literal["anonymous", "account"]
"""A token's kind: anonymous (no cookie), or an account's (a ``sp_dc`` cookie)."""
KINDS: tuple[Kind, ...] = ("anonymous", "account")
SP_DC = "sp_dc"
"""Spotify's session cookie: a request that brings one asks for that account's token."""
ANONYMOUS = "anonymous"  # the anonymous token's identity, as replicas share it


def kind_of(sp_dc: str | None) -> Kind:
    return "account" if sp_dc else "anonymous"


def identity_of(sp_dc: str | None) -> str:
    """Who a request's token is for, as replicas share it: an account's cookie's hash, never the cookie."""
    return f"account:{hashlib.sha256(sp_dc.encode()).hexdigest()}" if sp_dc else ANONYMOUS


@dataclass(frozen=True, slots=True)
class Token:
    access_token: str = field(repr=False)  # never in logs and tracebacks that format the object
    expires_at_ms: int
    client_id: str
    is_anonymous: bool
    source: str | None = None  # the token source that obtained it, when known

    @property
    def kind(self) -> Kind:
        return "anonymous" if self.is_anonymous else "account"

    def remaining_ms(self, now_ms: int) -> int:
        return self.expires_at_ms - now_ms

    def is_alive(self, now_ms: int) -> bool:
        """Not yet expired: worth keeping and counting, whether or not it may still be served."""
        return self.remaining_ms(now_ms) > 0


def parse_retry_after(value: str | None, now_s: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - now_s)


def parse_token_response(status: int, headers: Mapping[str, str], body: bytes, *, now_ms: int) -> Token:
    """The web player's token answer as a :class:`Token`, or a client-safe error (whether it has life
    enough to be served is the core's question)."""
    if status != HTTP_OK:
        retry_after = parse_retry_after(headers.get("retry-after"), now_ms / 1000)
        raise refusal(status, "the token request", retry_after)
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        payload = None
    if not isinstance(payload, dict):
        raise UpstreamError("Spotify sent a malformed token response")
    if payload.get("error") is not None:
        raise UpstreamError("Spotify answered the token request with an error")
    return token_from_payload(payload)


def token_record(token: Token, fetched_at_ms: int) -> dict[str, Any]:
    """The token in Spotify's own shape and when it was fetched: what replicas share and a restart finds."""
    return {
        "accessToken": token.access_token,
        "accessTokenExpirationTimestampMs": token.expires_at_ms,
        "clientId": token.client_id,
        "isAnonymous": token.is_anonymous,
        "source": token.source,
        "fetchedAtMs": fetched_at_ms,
    }


def read_token_record(record: object, now_ms: int) -> tuple[Token, int] | None:
    """A token another process wrote (another replica, or this one before a restart), if it can be
    Spotify's. A record that says otherwise (tampered with, or from a clock gone wrong) would be adopted
    even by forced requests and renewed in years."""
    try:
        payload: Any = orjson.loads(record) if isinstance(record, bytes | str) else record
        token = token_from_payload(payload if isinstance(payload, dict) else {})
    except (orjson.JSONDecodeError, UpstreamError):
        return None
    fetched_at = payload.get("fetchedAtMs")
    text = token.access_token + token.client_id + (token.source or "")
    plausible = (
        type(fetched_at) is int
        and now_ms - LONGEST_LIFE_MS <= fetched_at <= now_ms + CLOCK_SKEW_MS
        and token.expires_at_ms <= now_ms + LONGEST_LIFE_MS
        and len(text) <= MAX_TOKEN_CHARS
        and text.isascii()
        and text.isprintable()
    )
    return (token, fetched_at) if plausible else None


def token_from_payload(payload: Mapping[str, Any], what: str = "Spotify's token response") -> Token:
    """A :class:`Token` from Spotify's fields; :class:`UpstreamError` when they are missing or wrong."""
    access_token = payload.get("accessToken")
    expires_at = payload.get("accessTokenExpirationTimestampMs")
    client_id = payload.get("clientId", "")
    is_anonymous = payload.get("isAnonymous", True)
    source = payload.get("source")
    if not isinstance(access_token, str) or not access_token:
        raise UpstreamError(f"{what} has no access token")
    if isinstance(expires_at, bool) or not isinstance(expires_at, int):
        raise UpstreamError(f"{what} has no valid expiry")
    if not isinstance(client_id, str) or not isinstance(is_anonymous, bool):
        raise UpstreamError("Spotify sent a malformed token response")
    return Token(
        access_token, expires_at, client_id, is_anonymous, source if isinstance(source, str) else None
    )
