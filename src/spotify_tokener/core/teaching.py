"""The browser teaching the direct source in the background, while another source serves clients.

When a later source (the embed page) answers for the direct one, the client gets that token at once and
the browser's attempt, which teaches the direct source, runs behind it, one at a time (the teaching
after the browser's own answer included: ``wanted`` says so). Only while the pupil says it could help:
where nothing can be learned, there is no Chromium per refresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from spotify_tokener.core.ports import OUTCOME_OK, SourceObserver, TokenSource
from spotify_tokener.domain.errors import InternalError, TokenError

log = logging.getLogger(__name__)

TEACHER = "browser"


class Teaching:
    def __init__(self, teacher: TokenSource, wanted: Callable[[], bool], observer: SourceObserver) -> None:
        """``wanted``: whether the pupil could learn from a teaching now."""
        self._teacher = teacher
        self._wanted = wanted
        self._observer = observer
        self.task: asyncio.Task[None] | None = None  # the one under way, or the last

    def offer(self, answered_by: str) -> None:
        """A source after the first answered an anonymous attempt: teach, unless the teacher itself
        answered (it taught then), a teaching runs already, or it could not help."""
        if answered_by != TEACHER and (self.task is None or self.task.done()) and self._wanted():
            self.task = asyncio.get_running_loop().create_task(self._teach())

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def _teach(self) -> None:
        log.info("the browser teaches the direct source in the background")
        outcome = OUTCOME_OK
        try:
            await self._teacher.attempt(None)
        except TokenError as error:
            outcome = error.outcome
            log.warning("the browser's teaching in the background failed: %s", error)
        except Exception as error:  # a background task: nobody else would see it; only its type
            outcome = InternalError.outcome
            log.error("the browser's teaching in the background crashed: %s", type(error).__name__)
        self._observer.source_ended(TEACHER, "anonymous", outcome)
