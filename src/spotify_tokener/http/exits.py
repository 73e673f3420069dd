"""What ``status`` and ``/health`` show of the proxies: each by its label, never its credentials."""

from __future__ import annotations

from spotify_tokener.core.exits import ExitPool
from spotify_tokener.http.bench import bench_fields
from spotify_tokener.http.schemas import ExitFields, ExitsHealth


def exit_fields(pool: ExitPool | None, now_ms: int) -> list[ExitFields] | None:
    if pool is None:
        return None
    return [{"exit": state.proxy.label, **bench_fields(state, now_ms)} for state in pool.states()]


def exits_health(pool: ExitPool | None, now_ms: int) -> ExitsHealth | None:
    if pool is None:
        return None
    states = pool.states()
    usable = sum(state.usable(now_ms) for state in states)
    return {"total": len(states), "usable": usable, "allBenched": usable == 0}
