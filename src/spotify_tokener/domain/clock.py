"""Time, injected (the wall clock in epoch ms, and the sleep the service waits with), so tests check
rules about minutes and hours without waiting for them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

Clock = Callable[[], int]
Sleep = Callable[[float], Awaitable[None]]
real_sleep: Sleep = asyncio.sleep


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000
