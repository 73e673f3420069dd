"""What the direct source knows (a secret and the call's shape), and how the browser teaches it.

A sighting (the page's own call, its codes and its time) proves a candidate offline, at no cost
upstream, or corrects what is known. The page's memory is read only when the scripts teach nothing,
once per build, since it is slow and its many strings each risk a chance match. A wrong TOTP is an easy
signal to ban on: an unproven secret gets a few tries, and past a few wrong TOTPs within the hour,
whatever the secret's origin, nothing is sent until the hour passes or a new build is named.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlsplit

import orjson

from spotify_tokener.core.ports import Notes, StateStore
from spotify_tokener.domain.bundle import secret_candidates
from spotify_tokener.domain.clock import Clock
from spotify_tokener.domain.errors import NotReady, TokenError
from spotify_tokener.domain.hashes import bundle_name, bundle_url
from spotify_tokener.domain.proxy import Proxy
from spotify_tokener.domain.request_shape import (
    Param,
    RequestShape,
    Role,
    Sighting,
    default_shape,
    first_matching,
    learn_shape,
    sighted_codes,
)
from spotify_tokener.domain.totp import Secret, step_at
from spotify_tokener.settings import Settings
from spotify_tokener.sources.direct.reader import MAX_SCRIPTS, PageText, parsed

log = logging.getLogger(__name__)

HANDFUL = 8
"""Versioned candidates kept, newest first: a build names a few (the current and its elders); one
naming many more is built to make a decoy match the page's code by chance."""
TOTP_VERSION = re.compile(r"totp(?!.*server).*ver", re.IGNORECASE)
"""The parameter the page sends the secret's version in: totpVer; not totpServer, nor buildVer."""
LEARNED = "learned.json"  # in the state folder: only what was proven

NOTHING_LEARNED = "no secret learned yet: none in the page's scripts could be proven"
NOTHING_ANYWHERE = "no secret learned: none in the page's scripts nor in its memory reproduces its code"
UNPROVEN = "a likely secret awaits a second sighting: no unproven try is left"
TOO_MANY_WRONG = "sent {} wrong TOTPs within the hour: none more until it passes or new scripts are named"
WRONG_WINDOW_MS = 3_600_000
LIKELY = " (likely; to be proven)"


class Origin(Enum):
    """Where the secret in use came from; ``status`` shows it."""

    PINNED = "pinned"  # TOKENER_TOTP_SECRET
    SCRIPTS = "scripts"  # written next to its version in the page's scripts, no sighting needed
    PAGE = "page"  # in the page's scripts, and reproduces the page's own code (a sighting)
    MEMORY = "page memory"  # held by the running page (its heap), and reproduces the page's own code
    REPLICA = "replica"  # learned by another replica
    KEPT = "state folder"  # learned before a restart (TOKENER_STATE_DIR)


@dataclass(frozen=True, slots=True)
class Knowledge:
    """A versioned candidate that reproduces a sighted code is ``proven`` (a handful against a
    one-in-a-million match); one string among thousands is only likely until a code of another 30 s
    step than ``step`` (the sighting's) is reproduced or accepted."""

    secret: Secret
    shape: RequestShape
    origin: Origin
    proven: bool
    step: int | None = None


NOTE = "direct-source"  # what replicas share it under

MAX_PARAMS, MAX_TEXT = 32, 512  # a record's bounds: its parameters, the characters of each string


def knowledge_record(knowledge: Knowledge, learned_at_ms: int) -> dict[str, Any]:
    """What replicas share, and the state folder keeps: never a cookie."""
    return {
        "secret": knowledge.secret.value,
        "version": knowledge.secret.version,
        "endpoint": knowledge.shape.endpoint,
        "params": [[param.name, param.role.value, param.value] for param in knowledge.shape.params],
        "learnedAtMs": learned_at_ms,
    }


def dump_knowledge(knowledge: Knowledge, learned_at_ms: int) -> bytes:
    return orjson.dumps(knowledge_record(knowledge, learned_at_ms))


def load_knowledge(raw: bytes | None, endpoint: str) -> tuple[Knowledge, int] | None:
    try:
        return knowledge_from(orjson.loads(raw) if raw else None, endpoint, Origin.REPLICA)
    except orjson.JSONDecodeError:
        return None


def knowledge_from(record: object, endpoint: str, origin: Origin) -> tuple[Knowledge, int] | None:
    """Read as warily as an answer from the network: a record that would send the call elsewhere than
    ``endpoint``, or with a field out of its type or bounds, is ignored."""
    try:
        if not isinstance(record, dict) or record["endpoint"] != endpoint:
            return None
        value, version, at = record["secret"], record["version"], record["learnedAtMs"]
        shape = tuple(
            Param(name, Role(role), text) for name, role, text in record["params"][: MAX_PARAMS + 1]
        )
    except (KeyError, TypeError, ValueError):
        return None
    texts = [value, *(part for param in shape for part in (param.name, param.value))]
    if len(shape) > MAX_PARAMS or not all(map(_text, texts)) or not _count(at) or not _count(version or 0):
        return None
    return Knowledge(Secret(value, version), RequestShape(endpoint, shape), origin, proven=True), at


def bundle_from(record: dict[str, Any] | None) -> tuple[str, ...]:
    urls = record.get("bundle") if record else None
    fine = isinstance(urls, list) and len(urls) <= MAX_SCRIPTS and all(map(_text, urls))
    return tuple(urls) if fine and urls else ()


def _text(value: object) -> bool:
    return isinstance(value, str) and len(value) <= MAX_TEXT and value.isprintable()


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class Candidates(NamedTuple):
    secrets: list[Secret]
    crowded: bool  # the scripts named more versioned ones than the handful kept


def knowledge_matching(
    candidates: Sequence[Secret], sighting: Sighting, origin: Origin = Origin.PAGE, crowded: bool = False
) -> Knowledge | None:
    """An unversioned candidate must reproduce every code, and is proven only if they were of two steps
    (the page's and the server's clocks either side of a step's end); a versioned one is, unless the
    scripts were ``crowded`` with them. Tens of thousands of candidates: run it in a thread."""
    versioned = [candidate for candidate in candidates if candidate.version is not None]
    unversioned = [candidate for candidate in candidates if candidate.version is None]
    two_steps = len(set(sighted_codes(sighting))) > 1  # client and server codes of different steps
    for group, proven in ((versioned, not crowded), (unversioned, two_steps)):
        candidate = first_matching(group, sighting, every_code=group is unversioned)
        if candidate is not None:
            secret = candidate if group is versioned else _versioned(candidate, sighting)
            step = step_at(sighting.at_ms)
            return Knowledge(secret, learn_shape(sighting, secret), origin, proven=proven, step=step)
    return None


def candidates_in(scripts: Sequence[bytes]) -> Candidates:
    """The :data:`HANDFUL` newest versioned ones across all scripts first: those alone may be tried
    unsighted."""
    found = [secret for script in scripts for secret in secret_candidates(script.decode("utf-8", "replace"))]
    versioned = sorted(
        (secret for secret in found if secret.version is not None), key=lambda secret: -(secret.version or 0)
    )
    unversioned = [secret for secret in found if secret.version is None]
    return Candidates([*versioned[:HANDFUL], *unversioned], len(versioned) > HANDFUL)


def _versioned(secret: Secret, sighting: Sighting) -> Secret:
    for name, value in parse_qsl(urlsplit(sighting.url).query):
        if TOTP_VERSION.fullmatch(name) and value.isdigit():
            return Secret(secret.value, int(value))
    return secret


ReadPage = Callable[[Proxy | None], Awaitable[PageText]]


class Learner:
    """A :class:`~spotify_tokener.core.ports.Pupil`; ``status`` reads what it knows, never its secret."""

    def __init__(
        self, read_page: ReadPage, settings: Settings, *, notes: Notes | None, clock: Clock, kept: StateStore
    ) -> None:
        """``kept`` holds what was proven across restarts; a pinned secret goes before it, and
        another replica's knowledge (``notes``) after it, as soon as there is any."""
        self._read_page = read_page
        self._default = default_shape(settings.spotify_url)
        self._unproven_tries = settings.direct_unproven_tries
        self._tries_window_ms = round(settings.source_cooldown_max * 1000)
        self._teach_backoff_ms = round(settings.teach_backoff * 1000)
        self._nothing_since_ms = 0  # when a teaching last found nothing anywhere
        self._notes = notes
        self._clock = clock
        self._kept = kept
        self._bundle: tuple[str, ...] = ()  # the script URLs the page named when it was last read
        pinned = settings.pinned_secret
        pinned_knowledge = Knowledge(pinned, self._default, Origin.PINNED, proven=True) if pinned else None
        self._knowledge = pinned_knowledge or self._kept_knowledge()
        # When what is known was learned, here or by another replica; 0 for what was kept, so that
        # another replica's knowledge, where there is any, is taken over it.
        self._learned_at_ms = 0
        self._sighting: Sighting | None = None
        # Unproven secrets sent upstream, and those Spotify turned down, each with when (epoch ms):
        # within the window, the budget counts the first and a refused one is not sent again.
        self._tried: dict[str, int] = {}
        self._refused: dict[str, int] = {}
        # Every wrong TOTP Spotify turned down (epoch ms), and the scripts named then: the hard budget,
        # the unproven tries and one for a proven secret gone stale, whatever the secret's origin.
        self._wrong: list[int] = []
        self._wrong_with: tuple[str, ...] = ()
        self._choosing = asyncio.Lock()  # concurrent attempts share one choice, and one try
        self._background: set[asyncio.Task[None]] = set()  # relearning, sharing
        self._relearning: asyncio.Task[None] | None = None
        self._memory_read_for: tuple[str, ...] | None = None  # the scripts the memory was read with
        self.wants_page_strings = False
        self._proxy: Proxy | None = None  # the last attempt's, for learning in the background
        self.on_learned: Callable[[], None] = lambda: None
        self.trouble: str | None = None  # why the direct source cannot make tokens now

    @property
    def totp_version(self) -> int | None:
        return self._knowledge.secret.version if self._knowledge else None

    @property
    def secret_origin(self) -> str | None:
        return self._knowledge.origin.value if self._knowledge else None

    @property
    def secret_proven(self) -> bool | None:
        return self._knowledge.proven if self._knowledge else None

    @property
    def bundle(self) -> str | None:
        url = bundle_url(self._bundle)
        return bundle_name(url) if url is not None else None

    @property
    def wants_teacher(self) -> bool:
        """Whether a browser's teaching could help now: nothing proven is known, and no teaching
        found nothing in the scripts the page names now within the back-off."""
        if self._knowledge is not None and self._knowledge.proven and self.trouble is None:
            return False
        if self.trouble != NOTHING_ANYWHERE or self._memory_read_for != self._bundle:
            return True
        return self._clock() >= self._nothing_since_ms + self._teach_backoff_ms

    async def current(self, proxy: Proxy | None) -> Knowledge:
        """Another replica's newer knowledge, what is known, or a candidate from the scripts; an
        unproven one only while tries are left (:class:`NotReady` otherwise, with nothing sent)."""
        self._proxy = proxy
        await self._adopt_shared()
        async with self._choosing:
            if self._knowledge is None:
                self._knowledge = await self._learn_unsighted(proxy)
            knowledge = self._knowledge
            self._within_budget(knowledge)
            if not knowledge.proven:
                self._spend_try(knowledge)
            return knowledge

    def accepted(self, knowledge: Knowledge, called_at_ms: int) -> None:
        """Proof, unless the accepted code is the one sighted, which a chance match reproduces too."""
        if knowledge.proven or self._knowledge is not knowledge:
            return
        if knowledge.step is None or step_at(called_at_ms) != knowledge.step:
            self._learned(replace(knowledge, proven=True))

    def turned_down(self, knowledge: Knowledge, error: TokenError) -> None:
        """Only for a 400 such as "Invalid TOTP" (a 403 or a broken connection say nothing of the
        secret); each counts, even of attempts that ran together. The next sighting tells what is stale."""
        self._forget_wrong_of_older_builds()
        self._wrong.append(self._clock())
        if self._knowledge is not knowledge:
            return
        if knowledge.proven:
            log.warning("direct source: Spotify turned down what it knew (%s); relearning", error)
        else:
            self._refused[knowledge.secret.value] = self._clock()
        if knowledge.origin is Origin.MEMORY:  # a chance match among the page's many strings
            self._memory_read_for = None  # the next sighting's code tells them apart
        self._knowledge = None
        self.trouble = f"Spotify turned down its last call: {error}"

    def teach(self, sighting: Sighting) -> asyncio.Task[None] | None:
        self._sighting = sighting
        known = self._knowledge
        if known is not None and first_matching([known.secret], sighting) is not None:
            proven = known.proven or known.step is None or known.step != step_at(sighting.at_ms)
            shape = learn_shape(sighting, known.secret)
            if shape != known.shape or proven != known.proven or self.trouble:
                self._learned(Knowledge(known.secret, shape, known.origin, proven, known.step))
            return None
        if self._relearning is None or self._relearning.done():
            self._relearning = self._in_background(self._relearn(sighting))
        return self._relearning

    def teach_strings(self, sighting: Sighting, strings: list[str]) -> asyncio.Task[None]:
        self.wants_page_strings, self._memory_read_for = False, self._bundle
        return self._in_background(self._learn_from_memory(sighting, strings))

    async def close(self) -> None:
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)

    def _spend_try(self, knowledge: Knowledge) -> None:
        """Attempts that run together share one try."""
        value = knowledge.secret.value
        tried, refused = self._recent(self._tried), self._recent(self._refused)
        if value in tried and value not in refused:
            return
        if value in refused or len(tried) >= self._unproven_tries:
            self.trouble = UNPROVEN if knowledge.step is not None else NOTHING_LEARNED
            raise NotReady(f"the direct source has {self.trouble}")
        self._tried[value] = self._clock()

    def _within_budget(self, knowledge: Knowledge) -> None:
        """Past the budget, a likely secret is let go, so that the next attempt reads the page again
        and sees a new build."""
        since = self._clock() - WRONG_WINDOW_MS
        self._forget_wrong_of_older_builds()
        self._wrong = [at for at in self._wrong if at > since]
        if len(self._wrong) > self._unproven_tries:
            if not knowledge.proven:
                self._knowledge = None
            self.trouble = TOO_MANY_WRONG.format(len(self._wrong))
            raise NotReady(f"the direct source {self.trouble}")

    def _forget_wrong_of_older_builds(self) -> None:
        """A new build's secret has yet to be tried; the first scripts read are no new build."""
        if self._wrong_with and self._bundle != self._wrong_with:
            self._wrong = []
        self._wrong_with = self._bundle or self._wrong_with

    def _recent(self, when: dict[str, int]) -> set[str]:
        since = self._clock() - self._tries_window_ms
        for value in [value for value, at in when.items() if at <= since]:
            del when[value]
        return set(when)

    async def _candidates(self, proxy: Proxy | None) -> Candidates:
        page = await self._read_page(proxy)
        self._bundle = page.urls
        return await parsed(candidates_in, page.scripts)

    async def _learn_unsighted(self, proxy: Proxy | None) -> Knowledge:
        candidates, crowded = await self._candidates(proxy)
        if self._sighting is not None:
            knowledge = await parsed(knowledge_matching, candidates, self._sighting, Origin.PAGE, crowded)
            if knowledge is not None:
                self._learned(knowledge)
                return knowledge
        refused = self._recent(self._refused)  # one once accepted may be tried again: a fluke 400
        fresh = [
            secret for secret in candidates if secret.version is not None and secret.value not in refused
        ]
        if not fresh:
            if self.trouble != NOTHING_ANYWHERE:
                self.trouble = NOTHING_LEARNED
            raise NotReady(f"the direct source has {self.trouble}")
        return Knowledge(fresh[0], self._default, Origin.SCRIPTS, proven=False)

    async def _relearn(self, sighting: Sighting) -> None:
        """After a sighting that what is known does not reproduce."""
        try:
            candidates, crowded = await self._candidates(self._proxy)
            knowledge = await parsed(knowledge_matching, candidates, sighting, Origin.PAGE, crowded)
        except TokenError as error:
            self._troubled(f"could not read the web player's scripts: {error}")
            return
        except Exception as error:  # a background task: nobody else would see it; only its type
            self._troubled(f"learning crashed ({type(error).__name__})")
            return
        memory_read = self._bundle == self._memory_read_for
        self.wants_page_strings = knowledge is None and not memory_read
        self._learned_or_troubled(knowledge, NOTHING_ANYWHERE if memory_read else NOTHING_LEARNED)

    async def _learn_from_memory(self, sighting: Sighting, strings: list[str]) -> None:
        refused = self._recent(self._refused)
        candidates = [Secret(value) for value in strings if value not in refused]
        knowledge = await parsed(knowledge_matching, candidates, sighting, Origin.MEMORY)
        if self._learned_at_ms > sighting.at_ms:  # the read ends after the answer: its page may be old news
            return
        self._learned_or_troubled(knowledge, NOTHING_ANYWHERE)

    def _learned_or_troubled(self, knowledge: Knowledge | None, why_not: str) -> None:
        if knowledge is None:
            self._troubled(why_not)
        else:
            self._learned(knowledge)

    async def _adopt_shared(self) -> None:
        """Take what another replica proved after what is known here: one browser teaches all."""
        if self._notes is None:
            return
        shared = load_knowledge(await self._notes.read_note(NOTE), self._default.endpoint)
        if shared is not None and shared[1] > self._learned_at_ms:
            self._knowledge, self._learned_at_ms = shared
            self.trouble = None
            self._keep(*shared)
            _tell(shared[0], "from another replica")

    def _learned(self, knowledge: Knowledge) -> None:
        self._knowledge, self.trouble, self.wants_page_strings = knowledge, None, False
        self._learned_at_ms = self._clock()
        _tell(knowledge, f"from the {knowledge.origin.value}{'' if knowledge.proven else LIKELY}")
        if knowledge.proven and knowledge.origin is not Origin.PINNED:
            self._keep(knowledge, self._learned_at_ms)
            if self._notes is not None:
                record = dump_knowledge(knowledge, self._learned_at_ms)
                self._in_background(self._notes.write_note(NOTE, record))
        self.on_learned()

    def _keep(self, knowledge: Knowledge, learned_at_ms: int) -> None:
        self._kept.save(LEARNED, {**knowledge_record(knowledge, learned_at_ms), "bundle": list(self._bundle)})

    def _kept_knowledge(self) -> Knowledge | None:
        """So that the first token after a restart needs neither page nor bundle."""
        record = self._kept.load(LEARNED)
        kept = knowledge_from(record, self._default.endpoint, Origin.KEPT)
        if kept is None:
            return None
        self._bundle = bundle_from(record)
        _tell(kept[0], "kept from before the restart")
        return kept[0]

    def _troubled(self, why: str) -> None:
        if why == NOTHING_ANYWHERE:
            self._nothing_since_ms = self._clock()
        if why != self.trouble:  # said once, not at every browser attempt while it lasts
            log.warning("direct source: %s; the browser source carries on alone", why)
        self.trouble = why

    def _in_background(self, work: Coroutine[None, None, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task


def _tell(knowledge: Knowledge, whence: str) -> None:
    log.info("direct source: TOTP version %s, %s", knowledge.secret.version, whence)
