"""What ``status`` and ``/health`` show of the proxies: each by its label, never its credentials."""

from __future__ import annotations

from spotify_tokener.core.proxies import ProxyPool
from spotify_tokener.http.schemas import ProxiesHealth, ProxyFields
from spotify_tokener.http.standing import standing_fields


def proxy_fields(pool: ProxyPool | None, now_ms: int) -> list[ProxyFields] | None:
    if pool is None:
        return None
    return [{"proxy": state.proxy.label, **standing_fields(state, now_ms)} for state in pool.states()]


def proxies_health(pool: ProxyPool | None, now_ms: int) -> ProxiesHealth | None:
    if pool is None:
        return None
    states = pool.states()
    usable = sum(state.usable(now_ms) for state in states)
    return {"total": len(states), "usable": usable, "allCoolingDown": usable == 0}
