"""How ``status`` shows what is known of a proxy or a token source that can be set aside."""

from __future__ import annotations

from spotify_tokener.core.bench import Bench
from spotify_tokener.http.schemas import BenchFields


def bench_fields(bench: Bench, now_ms: int) -> BenchFields:
    usable = bench.usable(now_ms)
    return {
        "usable": usable,
        "benchedUntil": None if usable else bench.benched_until_ms,
        "consecutiveFailures": bench.failures,
        "lastError": bench.last_error,
        "lastFailureAt": bench.last_failure_ms,
        "lastSuccessAt": bench.last_success_ms,
    }
