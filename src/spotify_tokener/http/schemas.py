"""The JSON bodies the API returns: typed for the handlers, and the source of the OpenAPI schemas."""

from __future__ import annotations

from typing import Literal, TypedDict


class TokenBody(TypedDict):
    success: Literal[True]
    accessToken: str
    accessTokenExpirationTimestampMs: int
    clientId: str
    isAnonymous: bool
    cached: bool
    timestamp: int


class FailureBody(TypedDict):
    """A token could not be produced; ``error`` is a short cause written by us."""

    success: Literal[False]
    error: str
    timestamp: int


class ValidationErrorBody(TypedDict):
    error: Literal["Validation error"]
    details: str
    timestamp: int


class ErrorBody(TypedDict):
    """Unknown path, wrong method, or an unexpected fault of the service itself."""

    error: str
    timestamp: int


class StatusFields(TypedDict):
    hasToken: bool
    isValid: bool
    shouldProactivelyRefresh: bool
    expiresAt: int | None
    isRefreshing: bool
    timeUntilExpiry: int | None
    timeUntilProactiveRefresh: int | None
    lastError: str | None
    consecutiveFailures: int
    lastRefreshAt: int | None
    accountsCached: int
    coolingDown: bool
    retryAt: int | None
    proxies: list[ProxyFields] | None
    allProxiesCoolingDown: bool | None
    tokenSource: str | None
    sources: list[SourceFields]
    direct: DirectFields | None
    browser: BrowserFields | None


class StandingFields(TypedDict):
    """What is known of a proxy or a source that can cool down (``core/standing.py``)."""

    usable: bool
    retryAt: int | None
    consecutiveFailures: int
    lastError: str | None
    lastFailureAt: int | None
    lastSuccessAt: int | None


class SourceFields(StandingFields):
    """One token source (``TOKENER_SOURCES``), in the order they are tried."""

    source: str


class DirectFields(TypedDict):
    """Present when the direct source is configured: what it knows (never the secret itself)."""

    totpVersion: int | None
    secretOrigin: str | None
    secretProven: bool | None
    trouble: str | None
    bundle: str | None


class ProxyFields(StandingFields):
    """One proxy (``TOKENER_PROXY``), named without its credentials."""

    proxy: str


class StatusBody(TypedDict):
    success: Literal[True]
    status: StatusFields
    timestamp: int


class MemoryFields(TypedDict):
    rss: int
    browserRss: int
    totalRss: int


class BrowserFields(TypedDict):
    running: bool
    launches: int
    executable: str | None
    unavailable: str | None  # why the browser source cannot run here (no Playwright, no Chromium)


class RedisFields(TypedDict):
    """Present when TOKENER_REDIS_URL is set: whether Redis answered the last time it was asked."""

    available: bool


class ProxiesHealth(TypedDict):
    """Present when TOKENER_PROXY is set: how many proxies are usable, and whether all cool down."""

    total: int
    usable: int
    allCoolingDown: bool


class HealthBody(TypedDict):
    status: Literal["healthy"]
    version: str
    uptime: float
    memory: MemoryFields
    browser: BrowserFields
    redis: RedisFields | None
    proxies: ProxiesHealth | None
    timestamp: int


class HashesBody(TypedDict):
    """The persisted-query hashes of the web player's current bundle, in the hosted hash workers' shape."""

    version: Literal[1]
    updated_at: int  # epoch s: when the page last showed this bundle
    bundle: str
    appVersion: str | None  # what clients send as Spotify-App-Version
    operations: dict[str, str]
    age: int  # seconds since updated_at
    lastError: str | None  # why the last reading failed, while this set is served anyway


class MetadataBody(TypedDict):
    """One operation's hash, in the shape a fork of the original service answered with."""

    success: Literal[True]
    operationName: str
    hash: str
    spotifyAppVersion: str | None
    bundle: str
    updated_at: int
    timestamp: int
