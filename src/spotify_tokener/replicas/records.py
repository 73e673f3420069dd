"""What replicas write to Redis for each other, and how it is read back.

Pure: the Redis coordinator does the I/O. What is read back comes from another process, maybe of
another version, maybe tampered with: anything unexpected reads as absent (a token) or as a generic
upstream failure, and a failure can only name a class that describes Spotify's behaviour.
"""

from __future__ import annotations

import math
import secrets
from urllib.parse import urlsplit

import orjson

from spotify_tokener.domain.errors import TokenError, UpstreamError, error_named, failure_of

MAX_MESSAGE = 200  # a shared failure's message goes into HTTP bodies: keep it a short cause
UNKNOWN_FAILURE = "another replica's fetch failed"


def dump_failure(error: TokenError) -> bytes:
    """A failure as waiting replicas rebuild it; the nonce tells two identical failures apart."""
    return orjson.dumps(
        {
            "error": type(error).__name__,
            "message": str(error),
            "retryAfter": error.retry_after,
            "nonce": secrets.token_hex(8),
        }
    )


def load_failure(raw: bytes | str) -> TokenError:
    try:
        record = orjson.loads(raw)
        retry_after = _seconds(record.get("retryAfter"))
        error = error_named(
            str(record["error"] if "error" in record else record["kind"]),  # "kind": written by 0.1.0
            str(record["message"])[:MAX_MESSAGE],
            retry_after,
        )
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError):
        return UpstreamError(UNKNOWN_FAILURE)
    return error if failure_of(error).shared else UpstreamError(UNKNOWN_FAILURE)


def _seconds(value: object) -> float | None:
    """A wait as replicas write it: a finite number of seconds, not negative, or none; ``"nan"``,
    ``"-inf"`` or ``true`` is a broken record (ValueError), not a wait."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError("not a wait in seconds")
    return float(value)


def redacted(url: str) -> str:
    """Where Redis is, for logs: host, port and database, never the password or the query."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or 'localhost'}:{parts.port or 6379}{parts.path}"
