"""``GET /api/token/status`` and the proxies' part of ``/health``, built in this one place from what the
core knows: the anonymous token's state, each proxy's and each source's standing (last success, last
failure and its cause), the direct source's knowledge (never its secret, never a proxy's credentials)
and the bundle it read, whether the browser can run."""

from __future__ import annotations

from typing import Protocol

from spotify_tokener.core.chain import SourceChain
from spotify_tokener.core.proxies import ProxyPool
from spotify_tokener.core.service import TokenService
from spotify_tokener.core.standing import Standing
from spotify_tokener.http.health import BrowserInfo, browser_fields
from spotify_tokener.http.schemas import DirectFields, ProxiesHealth, StandingFields, StatusBody


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


def status_body(
    service: TokenService,
    proxies: ProxyPool | None,
    chain: SourceChain | None,
    learner: LearnerInfo | None,
    browser: BrowserInfo | None,
    *,
    now_ms: int,
) -> StatusBody:
    state = service.status()
    return {
        "success": True,
        "status": {
            "hasToken": state.has_token,
            "isValid": state.is_valid,
            "shouldProactivelyRefresh": state.should_refresh,
            "expiresAt": state.expires_at_ms,
            "isRefreshing": state.refreshing,
            "timeUntilExpiry": state.ms_until_expiry,
            "timeUntilProactiveRefresh": state.ms_until_refresh,
            "lastError": state.last_error,
            "consecutiveFailures": state.consecutive_failures,
            "lastRefreshAt": state.refreshed_at_ms,
            "accountsCached": state.accounts_cached,
            "coolingDown": state.cooling_down,
            "retryAt": state.retry_at_ms,
            "proxies": None
            if proxies is None
            else [{"proxy": one.proxy.label, **_standing(one, now_ms)} for one in proxies.states()],
            "allProxiesCoolingDown": proxies.all_cooling_down() if proxies else None,
            "tokenSource": state.token_source,
            "sources": [{"source": one.name, **_standing(one, now_ms)} for one in chain.states()]
            if chain
            else [],
            "direct": _direct(learner),
            "browser": browser_fields(browser) if browser is not None else None,
        },
        "timestamp": now_ms,
    }


def proxies_health(pool: ProxyPool | None, now_ms: int) -> ProxiesHealth | None:
    if pool is None:
        return None
    usable = sum(state.usable(now_ms) for state in pool.states())
    return {"total": len(pool.states()), "usable": usable, "allCoolingDown": usable == 0}


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


def _direct(learner: LearnerInfo | None) -> DirectFields | None:
    if learner is None:
        return None
    return {
        "totpVersion": learner.totp_version,
        "secretOrigin": learner.secret_origin,
        "secretProven": learner.secret_proven,
        "trouble": learner.trouble,
        "bundle": learner.bundle,
    }
