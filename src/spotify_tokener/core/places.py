"""Bounded work at the token source: a cap on attempts at once, a short queue, and one place kept for
the anonymous token.

Each attempt holds a browser context (tens of megabytes, a share of two cores); without a cap a burst
of accounts opened hundreds and starved every fetch, the anonymous renewal included. A queued attempt's
timeout starts once it has a place; a full queue or a spent budget refuses it with a time to come back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator

from spotify_tokener.domain.clock import Sleep
from spotify_tokener.domain.errors import Overloaded
from spotify_tokener.domain.token import Kind


class Places:
    """Places for attempts: ``places - 1`` for accounts, in turn, and one kept for the anonymous token."""

    def __init__(self, places: int, queue: int, wait_s: float, sleep: Sleep) -> None:
        self._free = places - 1
        self._queue_max = queue
        self._wait_s = wait_s
        self._sleep = sleep
        self._queue: deque[asyncio.Future[None]] = deque()

    @contextlib.asynccontextmanager
    async def place(self, kind: Kind) -> AsyncIterator[None]:
        """Hold a place for one attempt; raises :class:`Overloaded` instead of waiting past the budget."""
        if kind == "anonymous":  # its single flight is its place
            yield
            return
        await self._enter()
        try:
            yield
        finally:
            self._leave()

    async def _enter(self) -> None:
        if self._free and not self._queue:
            self._free -= 1
            return
        if len(self._queue) >= self._queue_max:
            raise self._refusal()
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(turn)
        budget = asyncio.ensure_future(self._sleep(self._wait_s))
        try:
            await asyncio.wait((turn, budget), return_when=asyncio.FIRST_COMPLETED)
            if not turn.done():
                raise self._refusal()
        except BaseException:
            self._give_up(turn)
            raise
        finally:
            budget.cancel()

    def _leave(self) -> None:
        if self._queue:  # every turn in it waits: one given up is taken out with it (_give_up)
            self._queue.popleft().set_result(None)
        else:
            self._free += 1

    def _give_up(self, turn: asyncio.Future[None]) -> None:
        """Leave the queue; a place handed over at that very moment is passed on, not lost."""
        if turn.done():
            self._leave()
        else:
            self._queue.remove(turn)  # nothing awaits it any more

    def _refusal(self) -> Overloaded:
        return Overloaded(
            "the browser is busy with other account tokens; try again shortly", retry_after=self._wait_s
        )
