"""How ``status`` shows what is known of a proxy or a token source that can cool down."""

from __future__ import annotations

from spotify_tokener.core.standing import Standing
from spotify_tokener.http.schemas import StandingFields


def standing_fields(standing: Standing, now_ms: int) -> StandingFields:
    usable = standing.usable(now_ms)
    return {
        "usable": usable,
        "retryAt": None if usable else standing.retry_at_ms,
        "consecutiveFailures": standing.failures,
        "lastError": standing.last_error,
        "lastFailureAt": standing.last_failure_ms,
        "lastSuccessAt": standing.last_success_ms,
    }
