"""``GET /api/token/status`` and ``GET /health``, built in this one place from what the core and the
sources know: never a token, the direct source's secret or a proxy's credentials."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import psutil

from spotify_tokener import __version__
from spotify_tokener.core.chain import SourceChain
from spotify_tokener.core.proxies import ProxyPool
from spotify_tokener.core.service import TokenService
from spotify_tokener.core.standing import Standing
from spotify_tokener.domain.clock import wall_clock_ms
from spotify_tokener.http.schemas import BrowserFields, HealthBody, ProxiesHealth, StandingFields, StatusBody


class BrowserInfo(Protocol):
    """What /health and the metrics show of the browser source, without depending on it."""

    @property
    def running(self) -> bool: ...
    @property
    def launches(self) -> int: ...
    @property
    def executable(self) -> Path | None: ...
    @property
    def unavailable(self) -> str | None: ...  # why the browser source cannot run here, if it cannot


class LearnerInfo(Protocol):
    """The direct source, as far as ``status`` may see it: never its secret."""

    @property
    def totp_version(self) -> int | None: ...
    @property
    def secret_origin(self) -> str | None: ...
    @property
    def secret_proven(self) -> bool | None: ...
    @property
    def trouble(self) -> str | None: ...
    @property
    def bundle(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Shown:
    """What an instance shows of itself in its status, /health and metrics, read at each request."""

    service: TokenService
    chain: SourceChain
    proxies: ProxyPool | None
    learner: LearnerInfo | None
    browser: BrowserInfo | None
    started: float = field(default_factory=time.monotonic)


def status_body(shown: Shown) -> StatusBody:
    service, proxies, learner, browser = shown.service, shown.proxies, shown.learner, shown.browser
    slot, now_ms = service.anonymous, wall_clock_ms()
    token, cached = slot.token, slot.cached
    until_refresh = max(service.renewal_due_ms() - now_ms, 0)
    return {
        "success": True,
        "status": {
            "hasToken": token is not None,
            "isValid": service.freshness.is_servable(token, now_ms),
            "shouldProactivelyRefresh": until_refresh == 0,
            "expiresAt": token.expires_at_ms if token else None,
            "isRefreshing": slot.refreshing,
            "timeUntilExpiry": token.remaining_ms(now_ms) if token else None,
            "timeUntilProactiveRefresh": until_refresh if token else None,
            "lastError": str(slot.last_error) if slot.last_error else None,
            "consecutiveFailures": slot.failures,
            "lastRefreshAt": cached.fetched_at_ms if cached else None,
            "accountsCached": service.accounts.count(),
            "coolingDown": slot.cooling_down(now_ms),
            "retryAt": slot.retry_at_ms(now_ms),
            "proxies": None
            if proxies is None
            else [{"proxy": one.proxy.label, **_standing(one, now_ms)} for one in proxies.states()],
            "allProxiesCoolingDown": proxies.all_cooling_down() if proxies else None,
            "tokenSource": token.source if token else None,
            "sources": [{"source": one.name, **_standing(one, now_ms)} for one in shown.chain.states()],
            "direct": None
            if learner is None
            else {
                "totpVersion": learner.totp_version,
                "secretOrigin": learner.secret_origin,
                "secretProven": learner.secret_proven,
                "trouble": learner.trouble,
                "bundle": learner.bundle,
            },
            "browser": browser_fields(browser) if browser is not None else None,
        },
        "timestamp": now_ms,
    }


def health_body(shown: Shown) -> HealthBody:
    me, now_ms, pool = psutil.Process(), wall_clock_ms(), shown.proxies
    own, children = me.memory_info().rss, 0
    for child in me.children(recursive=True):
        with contextlib.suppress(psutil.Error):  # one that vanished meanwhile counts as zero
            children += child.memory_info().rss
    redis = shown.service.coordinator.available
    proxies: ProxiesHealth | None = None
    if pool is not None:
        usable = sum(state.usable(now_ms) for state in pool.states())
        proxies = {"total": len(pool.states()), "usable": usable, "allCoolingDown": usable == 0}
    return {
        "status": "healthy",
        "version": __version__,
        "uptime": round(time.monotonic() - shown.started, 3),
        "memory": {"rss": own, "browserRss": children, "totalRss": own + children},
        "browser": browser_fields(shown.browser),
        "redis": None if redis is None else {"available": redis},
        "proxies": proxies,
        "timestamp": now_ms,
    }


def browser_fields(browser: BrowserInfo | None) -> BrowserFields:
    return {
        "running": browser is not None and browser.running,
        "launches": browser.launches if browser is not None else 0,
        "executable": str(browser.executable) if browser and browser.executable else None,
        "unavailable": browser.unavailable if browser is not None else None,
    }


def _standing(standing: Standing, now_ms: int) -> StandingFields:
    usable = standing.usable(now_ms)
    return {
        "usable": usable,
        "retryAt": None if usable else standing.retry_at_ms,
        "consecutiveFailures": standing.failures,
        "lastError": standing.last_error,
        "lastFailureAt": standing.last_failure_ms,
        "lastSuccessAt": standing.last_success_ms,
    }
