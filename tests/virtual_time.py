"""Time for the service under test that moves only when the test moves it.

The service takes its clock and its sleep as arguments; these are the test's. A sleeper is parked
until :meth:`VirtualTime.advance` passes its deadline, and sleepers wake in deadline order with the
event loop run to a standstill after each, so a refresher that sleeps, fetches and sleeps again does
in microseconds exactly what it would do over minutes.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools

START_MS = 1_700_000_000_000
SETTLE_STEPS = 50  # loop turns that let woken tasks run until they block again; none of ours needs more


class VirtualTime:
    def __init__(self, start_ms: int = START_MS) -> None:
        self.now_ms = start_ms
        self._sleepers: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def clock(self) -> int:
        return self.now_ms

    async def sleep(self, seconds: float) -> None:
        wake = asyncio.get_running_loop().create_future()
        deadline = self.now_ms + max(0, round(seconds * 1000))
        heapq.heappush(self._sleepers, (deadline, next(self._order), wake))
        await wake

    async def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` on, waking every sleeper whose deadline it passes, in order."""
        target = self.now_ms + round(seconds * 1000)
        await settle()
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, wake = heapq.heappop(self._sleepers)
            self.now_ms = max(self.now_ms, deadline)
            if not wake.done():
                wake.set_result(None)
            await settle()
        self.now_ms = target
        await settle()


async def settle() -> None:
    """Let every runnable task run until it waits on something (a sleep, a future, I/O)."""
    for _ in range(SETTLE_STEPS):
        await asyncio.sleep(0)
