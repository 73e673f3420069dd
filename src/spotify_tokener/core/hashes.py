"""The persisted-query hashes served to clients of the web player's own API.

Learned when first asked for, then when the page names another bundle (a deploy) or a client reports a
served hash refused. Every reason shares one flight and one pace (``min_interval``), so a flood of
reports costs one reading. Never on the tokens' path, never with a browser.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable

import orjson

from spotify_tokener.core.ports import Notes, StateStore
from spotify_tokener.domain.clock import Clock
from spotify_tokener.domain.errors import FetchTimeout, TokenError, UpstreamError
from spotify_tokener.domain.hashes import HashSet, bundle_name, bundle_url, hash_record, load_hash_record

log = logging.getLogger(__name__)

NOTE = "hashes"
DOCUMENT = "hashes.json"
LEARNING_TIMEOUT_S = 60.0
OUTCOMES = ("learned", "unchanged", "replica", "failed")

Learn = Callable[[HashSet | None], Awaitable[HashSet]]
"""The set the page shows now, given the one known (returned again, dated now, if nothing changed)."""


class HashKeeper:
    """What ``/api/hashes`` serves; ``relearns`` and ``stale_reports`` are read by the metrics."""

    def __init__(
        self,
        learn: Learn,
        *,
        notes: Notes,
        state: StateStore,
        clock: Clock,
        min_interval_s: float,
        max_age_s: float,
    ) -> None:
        self._learn, self._notes, self._state, self._clock = learn, notes, state, clock
        self._min_interval_ms, self._max_age_s = round(min_interval_s * 1000), max_age_s
        self.current = load_hash_record(state.load(DOCUMENT))
        self.last_error: TokenError | None = None
        self._began_ms: int | None = None  # when the last learning began
        self._flight: asyncio.Task[None] | None = None
        self.relearns: Counter[str] = Counter()
        self.stale_reports = 0

    async def get(self, stale: str | None = None) -> HashSet:
        """The set to serve: learned first if there is none yet or ``stale`` is one of its hashes,
        checked in the background once it is ``max_age`` old. Raises the last failure if none is known."""
        known = self.current
        if stale is not None:
            self.stale_reports += 1
        if known is None or (stale is not None and known.serves(stale)):
            if (flight := self._begin(stale)) is not None:
                await asyncio.shield(flight)
        elif self._clock() / 1000 - known.updated_at >= self._max_age_s:
            self._begin(None)
        if self.current is None:
            raise self.last_error or UpstreamError("the hashes could not be read yet")
        return self.current

    def seen(self, scripts: Iterable[str]) -> None:
        """The token path visited the page, which names these scripts: a deploy, if its bundle is not
        the one served (nothing is learned before a client asks)."""
        url = bundle_url(scripts)
        if self.current is not None and url is not None and bundle_name(url) != self.current.bundle:
            self._begin(None)

    async def close(self) -> None:
        if self._flight is not None:
            self._flight.cancel()
            await asyncio.gather(self._flight, return_exceptions=True)

    def _begin(self, stale: str | None) -> asyncio.Task[None] | None:
        """The learning under way, or a new one if the pace allows it (None if not)."""
        if self._flight is not None and not self._flight.done():
            return self._flight
        now = self._clock()
        if self._began_ms is not None and now - self._began_ms < self._min_interval_ms:
            return None
        self._began_ms = now
        self._flight = asyncio.get_running_loop().create_task(self._relearn(stale))
        return self._flight

    async def _relearn(self, stale: str | None) -> None:
        known = self.current
        try:
            shared = load_hash_record(await self._notes.read_note(NOTE))
            if shared is not None and _newer(shared, known, self._clock()) and not shared.serves(stale):
                await self._keep(shared, "replica")
                return
            async with asyncio.timeout(LEARNING_TIMEOUT_S):
                learned = await self._learn(known)
        except TimeoutError:
            self._failed(FetchTimeout(f"the web player's scripts were not read in {LEARNING_TIMEOUT_S:g} s"))
        except TokenError as error:
            self._failed(error)
        except Exception as error:  # a background task: nobody else would see it; only its type
            self._failed(UpstreamError(f"reading the hashes crashed ({type(error).__name__})"))
        else:
            await self._keep(learned, "unchanged" if known and learned.bundle == known.bundle else "learned")

    async def _keep(self, learned: HashSet, outcome: str) -> None:
        if outcome != "unchanged":
            log.info("hashes: %d operations of %s (%s)", len(learned.operations), learned.bundle, outcome)
        self.current, self.last_error = learned, None
        self.relearns[outcome] += 1
        self._state.save(DOCUMENT, hash_record(learned))
        if outcome != "replica":
            await self._notes.write_note(NOTE, orjson.dumps(hash_record(learned)))

    def _failed(self, error: TokenError) -> None:
        if self.last_error is None or str(error) != str(self.last_error):
            kept = "the last set is served" if self.current else "none to serve"
            log.warning("hashes: could not be read (%s); %s", error, kept)
        self.last_error = error.kept()
        self.relearns["failed"] += 1


def _newer(shared: HashSet, known: HashSet | None, now_ms: int) -> bool:
    """Whether another replica read the page since this one did (and not in the future)."""
    fresh = shared.updated_at * 1000 <= now_ms + 60_000
    return fresh and (known is None or (shared.updated_at >= known.updated_at and shared != known))
