"""The one wall clock. Token expiries are epoch milliseconds, so freshness is judged against it."""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], int]


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000
