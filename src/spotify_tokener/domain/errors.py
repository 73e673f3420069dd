"""Failures a client may be told about.

Every message here is written by us and is safe to return in an HTTP body: no upstream body,
token or cookie is ever interpolated into one. ``status`` is the HTTP status the API answers with;
``outcome`` is the word a fetch attempt that failed this way is counted under in the metrics.
"""

from __future__ import annotations


class TokenError(Exception):
    """A token could not be obtained; ``str(self)`` is a short, client-safe cause."""

    status: int = 502
    retryable: bool = True
    about_spotify: bool = True  # every replica would see it too; False: this replica's own trouble
    blames_proxy: bool = False  # the proxy may be the cause: another one may succeed
    blames_source: bool = False  # another token source may succeed where this one failed
    outcome: str = "error"

    def __init__(
        self, message: str, *, retry_after: float | None = None, blames_source: bool | None = None
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        if blames_source is not None:
            self.blames_source = blames_source


class UpstreamError(TokenError):
    """Spotify answered, but not with a usable token (bad status, bad body, short-lived token)."""

    blames_source = True  # an answer not understood: the request may be what is wrong
    outcome = "upstream"


class Rejected(UpstreamError):
    """Spotify found the request itself wrong (a 4xx such as 400 "Invalid TOTP"): a stale secret or
    request shape, which another source, or a relearn, can get right."""

    outcome = "rejected"


class PageUnreachable(UpstreamError):
    """The web player did not load (a network error): Spotify's trouble, or this replica's network."""

    about_spotify = False
    blames_proxy = True
    outcome = "unreachable"


class InternalError(TokenError):
    """A bug of ours surfaced during a fetch; retrying the same code will not help."""

    status = 500
    about_spotify = False
    retryable = False
    outcome = "internal"


class RateLimited(UpstreamError):
    """Spotify answered 429; ``retry_after`` carries its ``Retry-After`` when it sent one."""

    status = 503
    blames_proxy = True
    blames_source = False  # about the address or the pace: another source would only add calls
    outcome = "rate_limited"


class Refused(UpstreamError):
    """Spotify answered 403: its firewall turns some addresses and fingerprints away."""

    blames_proxy = True
    outcome = "refused"


class FetchTimeout(TokenError):
    """No token in time: a source ran out of its share of an attempt, or a replica waited out the
    fetch another one holds the lock for.

    Not shared with other replicas: the time also covers this replica's own browser starting.
    """

    status = 504
    about_spotify = False
    blames_proxy = True
    blames_source = True
    outcome = "timeout"

    @classmethod
    def after(cls, seconds: float) -> FetchTimeout:
        return cls(f"no token from Spotify within {seconds:g} s")


class BrowserError(TokenError):
    """The browser crashed, disconnected or failed to start; a relaunch may fix it."""

    status = 503
    about_spotify = False
    blames_source = True
    outcome = "browser"


class BrowserMissing(BrowserError):
    """No Chromium is installed; retrying cannot help until an operator installs one."""

    retryable = False
    outcome = "browser_missing"


class NotReady(TokenError):
    """A source that cannot try yet: the direct source with no secret it may send (nothing learned,
    or only a likely one and no unproven try left). Nothing was sent upstream."""

    status = 503
    about_spotify = False
    retryable = False  # nothing changes by asking again at once; the next source, or a sighting, can
    blames_source = True
    outcome = "not_ready"


class ShuttingDown(TokenError):
    """The service is stopping and abandoned the fetch this request waited on."""

    status = 503
    about_spotify = False
    retryable = False
    outcome = "shutting_down"


class CallerLeft(TokenError):
    """The caller hung up while waiting for a fetch; its answer goes nowhere (499, nginx's word)."""

    status = 499
    about_spotify = False
    retryable = False
    outcome = "left"


class Overloaded(TokenError):
    """Refused before any attempt: the browser's places and their queue are taken, or too many new
    accounts came at once. ``retry_after`` says when asking again is worth it."""

    status = 503
    about_spotify = False
    retryable = False  # a retry would queue again: the client is told when to come back instead
    outcome = "overloaded"


COOKIE_REJECTED = "sp_dc cookie was not accepted"


class CookieRejected(TokenError):
    """Spotify answered a ``sp_dc`` request with an anonymous token: the cookie is dead or wrong."""

    status = 401
    retryable = False
    outcome = "cookie_rejected"


class AccountsDisabled(TokenError):
    """The operator turned account tokens off (``TOKENER_ALLOW_ACCOUNTS=false``)."""

    status = 403
    retryable = False
    outcome = "accounts_disabled"


# What one fetch attempt can end with, so its metric series exist before the first failure. The
# others are decided before any attempt (AccountsDisabled, Overloaded) or end a wait, not an attempt
# (ShuttingDown, CallerLeft).
ATTEMPT_FAILURES: tuple[type[TokenError], ...] = (
    UpstreamError,
    Rejected,
    PageUnreachable,
    RateLimited,
    Refused,
    FetchTimeout,
    BrowserError,
    BrowserMissing,
    NotReady,
    CookieRejected,
    InternalError,
)


HTTP_FORBIDDEN = 403
HTTP_TOO_MANY_REQUESTS = 429
HTTP_SERVER_ERRORS = 500


def refusal(status: int, what: str, retry_after: float | None = None) -> UpstreamError:
    """The failure a non-2xx answer from Spotify stands for; ``what`` names the request it answered."""
    if status == HTTP_TOO_MANY_REQUESTS:
        return RateLimited(f"Spotify rate-limited {what} (429)", retry_after=retry_after)
    if status == HTTP_FORBIDDEN:
        return Refused(f"Spotify refused {what} (403)")
    if status >= HTTP_SERVER_ERRORS:  # Spotify's own trouble: every source would meet it too
        return UpstreamError(f"Spotify answered {what} with HTTP {status}", blames_source=False)
    return Rejected(f"Spotify answered {what} with HTTP {status}")


def error_named(name: str, message: str, retry_after: float | None = None) -> TokenError:
    """Rebuild a failure another replica recorded by its class name (unknown names: upstream errors)."""
    return _BY_NAME.get(name, UpstreamError)(message, retry_after=retry_after)


def _subclasses(kind: type[TokenError]) -> list[type[TokenError]]:
    return [kind, *(sub for child in kind.__subclasses__() for sub in _subclasses(child))]


_BY_NAME = {kind.__name__: kind for kind in _subclasses(TokenError)}
