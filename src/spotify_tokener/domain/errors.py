"""Failures a client may be told about, the one table of what each does (``FAILURES``), and the record
a shared one travels to other replicas in.

Every message is ours, safe for an HTTP body: no upstream body, token or cookie is ever put in one.
An error carries its kind, message and ``Retry-After``; what it does is read from ``FAILURES`` alone.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from enum import Enum
from typing import Any

import orjson


class ProxyRule(Enum):
    """What a failure through a proxy says of that proxy."""

    INNOCENT = "no"
    NEXT = "yes"
    NEXT_IF_ANONYMOUS = "anonymous token only (an account's next attempt moves on)"
    SPENT = "no: it cools down, but the attempt's time is spent"


@dataclass(frozen=True, slots=True)
class Failure:
    """What one kind of failure does. Those that end no attempt do none of it but the status."""

    when: str
    status: int  # the client's HTTP status
    retried: bool = False  # the fetch makes another attempt, after a backoff
    next_source: bool = False  # a source before the last cools down and the next one answers at once
    proxy: ProxyRule = ProxyRule.INNOCENT  # through a proxy: whether the next one is tried at once
    shared: bool = False  # about Spotify, so other replicas waiting on the same fetch take it as theirs
    cools_down: bool = True  # the slot cools down: nothing goes upstream for it until then, unless forced
    ends: str = "attempt"  # or "fetch" (before any attempt), "wait" (a caller's), "request" (before any)
    counted_as: str = ""  # the metric outcome, when not the kind itself


NEXT, SPENT, IF_ANONYMOUS = ProxyRule.NEXT, ProxyRule.SPENT, ProxyRule.NEXT_IF_ANONYMOUS

FAILURES: dict[str, Failure] = {
    "error": Failure("the base of the others, never raised", 502, ends="request"),
    "upstream": Failure("an answer not understood", 502, retried=True, next_source=True, shared=True),
    "server_error": Failure("Spotify answered 5xx", 502, retried=True, shared=True, counted_as="upstream"),
    "rejected": Failure("Spotify answered another 4xx", 502, retried=True, next_source=True, shared=True),
    "refused": Failure(
        "Spotify answered 403", 502, retried=True, next_source=True, proxy=IF_ANONYMOUS, shared=True
    ),
    "rate_limited": Failure("Spotify answered 429", 503, retried=True, proxy=IF_ANONYMOUS, shared=True),
    "unreachable": Failure("no connection", 502, retried=True, next_source=True, proxy=NEXT),
    "timeout": Failure(
        "a source or a wait ran out of time", 504, retried=True, next_source=True, proxy=SPENT
    ),
    "browser": Failure("the browser crashed", 503, retried=True, next_source=True),
    "browser_missing": Failure("no Chromium installed", 503, next_source=True),
    "not_ready": Failure("the direct source knows no secret", 503, next_source=True),
    "internal": Failure("a bug (in a source: a crash)", 500, next_source=True),
    "cookie_rejected": Failure("an anonymous token for a cookie", 401, shared=True),
    "overloaded": Failure("no place, or too many new accounts", 503, cools_down=False, ends="fetch"),
    "accounts_disabled": Failure("accounts turned off", 403, ends="request"),
    "shutting_down": Failure("the service stopped", 503, ends="wait"),
    "left": Failure("the client hung up", 499, ends="wait"),
}


_BY_NAME: dict[str, type[TokenError]] = {}  # every error class, by the name a replica's record gives it


class TokenError(Exception):
    """A token could not be obtained; ``str(self)`` is a short, client-safe cause. Each class names its
    row of ``FAILURES`` (``class X(TokenError, kind=...)``), which it reads on the class or an error."""

    kind = "error"
    failure = FAILURES[kind]
    status = failure.status  # the HTTP status the API answers with
    outcome = kind  # the metric word an attempt ended with

    def __init_subclass__(cls, kind: str, **rest: Any) -> None:
        super().__init_subclass__(**rest)
        cls.kind = kind
        cls.failure = FAILURES[kind]
        cls.status = cls.failure.status
        cls.outcome = cls.failure.counted_as or kind
        _BY_NAME[cls.__name__] = cls

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def kept(self) -> TokenError:
        """Itself without what it was raised through: a stored traceback keeps every frame's locals
        alive, such as a failed read's 10 MB body, until the next failure replaces it."""
        self.__context__ = self.__cause__ = None
        return self.with_traceback(None)


class UpstreamError(TokenError, kind="upstream"):
    """Spotify answered, but not with a usable token (bad status, bad body, short-lived token)."""


class ServerError(UpstreamError, kind="server_error"):
    """Spotify answered 5xx: its own trouble, which another source would meet as well."""


class Rejected(UpstreamError, kind="rejected"):
    """Spotify found the request itself wrong (a 4xx such as 400 "Invalid TOTP"): a stale secret or
    request shape, which another source, or a relearn, can get right."""


class PageUnreachable(UpstreamError, kind="unreachable"):
    """The web player did not load (a network error): Spotify's trouble, or this replica's network."""


class InternalError(TokenError, kind="internal"):
    """A bug of ours surfaced during a fetch; retrying the same code will not help."""


class RateLimited(UpstreamError, kind="rate_limited"):
    """Spotify answered 429; ``retry_after`` carries its ``Retry-After`` when it sent one."""


class Refused(UpstreamError, kind="refused"):
    """Spotify answered 403: its firewall turns some addresses and fingerprints away."""


class FetchTimeout(TokenError, kind="timeout"):
    """No token in time: a source ran out of its share of an attempt, or a replica waited out the
    fetch another one holds the lock for."""

    @classmethod
    def after(cls, seconds: float) -> FetchTimeout:
        return cls(f"no token from Spotify within {seconds:g} s")


class BrowserError(TokenError, kind="browser"):
    """The browser crashed, disconnected or failed to start; a relaunch may fix it."""


class BrowserMissing(BrowserError, kind="browser_missing"):
    """No Chromium is installed; retrying cannot help until an operator installs one."""


class NotReady(TokenError, kind="not_ready"):
    """A source that cannot try yet: the direct source with no secret it may send (nothing learned,
    or only a likely one and no unproven try left). Nothing was sent upstream."""


class ShuttingDown(TokenError, kind="shutting_down"):
    """The service is stopping and abandoned the fetch this request waited on."""


class CallerLeft(TokenError, kind="left"):
    """The caller hung up while waiting for a fetch; its answer goes nowhere (499, nginx's word)."""


class Overloaded(TokenError, kind="overloaded"):
    """Refused before any attempt: the browser's places and their queue are taken, or too many new
    accounts came at once. ``retry_after`` says when asking again is worth it."""


COOKIE_REJECTED = "sp_dc cookie was not accepted"


class CookieRejected(TokenError, kind="cookie_rejected"):
    """Spotify answered a ``sp_dc`` request with an anonymous token: the cookie is dead or wrong."""


class AccountsDisabled(TokenError, kind="accounts_disabled"):
    """The operator turned account tokens off (``TOKENER_ALLOW_ACCOUNTS=false``)."""


HTTP_SERVER_ERRORS = 500
MAX_MESSAGE = 200  # a shared failure's message goes into HTTP bodies: keep it a short cause
UNKNOWN_FAILURE = "another replica's fetch failed"


def refusal(status: int, what: str, retry_after: float | None = None) -> UpstreamError:
    """The failure a non-2xx answer from Spotify stands for; ``what`` names the request it answered."""
    if status == 429:
        return RateLimited(f"Spotify rate-limited {what} (429)", retry_after=retry_after)
    if status == 403:
        return Refused(f"Spotify refused {what} (403)")
    if status >= HTTP_SERVER_ERRORS:
        return ServerError(f"Spotify answered {what} with HTTP {status}")
    return Rejected(f"Spotify answered {what} with HTTP {status}")


def failure_record(error: TokenError) -> dict[str, Any]:
    """A failure as waiting replicas rebuild it; the nonce tells two identical failures apart."""
    return {
        "error": type(error).__name__,
        "message": str(error),
        "retryAfter": error.retry_after,
        "nonce": secrets.token_hex(8),
    }


def read_failure_record(raw: bytes | str) -> TokenError:
    """A failure another replica recorded (maybe of another version, maybe tampered with): anything
    unexpected is a generic upstream failure, and only one about Spotify (``shared``) is taken as it is."""
    try:
        record = orjson.loads(raw)
        name = str(record["error"] if "error" in record else record["kind"])  # "kind": written by 0.1.0
        kind = _BY_NAME.get(name, UpstreamError)  # a name this version does not know: an upstream error
        error = kind(str(record["message"])[:MAX_MESSAGE], retry_after=_seconds(record.get("retryAfter")))
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError):
        return UpstreamError(UNKNOWN_FAILURE)
    return error if error.failure.shared else UpstreamError(UNKNOWN_FAILURE)


def _seconds(value: object) -> float | None:
    """A wait as replicas write it, or none; anything else is a broken record (ValueError)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError("not a wait in seconds")
    return float(value)


ATTEMPT_FAILURES = tuple(kind for kind in _BY_NAME.values() if kind.failure.ends == "attempt")
"""What one attempt can end with, so that its metric series exist before the first failure."""
