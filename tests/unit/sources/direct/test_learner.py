"""The learner's state on its own: what a sighting, the page's memory, Spotify's answer and another
replica's note change, with the page's scripts served from memory and time injected."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from spotify_tokener.core.ports import NO_STATE
from spotify_tokener.domain.errors import NotReady, Rejected
from spotify_tokener.domain.proxy import Proxy
from spotify_tokener.domain.request_shape import Sighting, default_shape
from spotify_tokener.domain.totp import Secret, totp
from spotify_tokener.settings import Settings
from spotify_tokener.sources.direct.knowledge import (
    NOTE,
    NOTHING_ANYWHERE,
    NOTHING_LEARNED,
    WRONG_WINDOW_MS,
    Knowledge,
    Learner,
    Origin,
    dump_knowledge,
    knowledge_from,
    knowledge_record,
    load_knowledge,
)
from spotify_tokener.sources.direct.reader import PageText

PAGE = "https://open.spotify.com/"
SHAPE = default_shape(PAGE)
SECRET = Secret("=n:b#OuEfH\\fE])e*K", 61)
WRITTEN = json.dumps(SECRET.value)  # as a script writes it, its backslash escaped
NOW_MS = 1_800_000_000_000
WINDOW_MS = round(Settings().source_cooldown_max * 1000)  # of the unproven tries
TEACH_BACKOFF_MS = round(Settings().teach_backoff * 1000)


class Scripts:
    """The page's scripts, as a test sets them; counts the reads."""

    def __init__(self, *texts: str, urls: tuple[str, ...] = ("https://open.spotifycdn.com/a.js",)) -> None:
        self.texts, self.urls, self.reads = list(texts), urls, 0

    async def __call__(self, proxy: Proxy | None) -> PageText:
        self.reads += 1
        return PageText(self.urls, [text.encode() for text in self.texts])


class Notes:
    def __init__(self) -> None:
        self.notes: dict[str, bytes] = {}
        self.written = asyncio.Event()

    async def read_note(self, name: str) -> bytes | None:
        return self.notes.get(name)

    async def write_note(self, name: str, value: bytes) -> None:
        self.notes[name] = value
        self.written.set()


def sighting(secret: Secret = SECRET) -> Sighting:
    code = totp(secret.key, NOW_MS / 1000)
    url = f"{SHAPE.endpoint}?reason=init&totp={code}&totpServer={code}&totpVer=61"
    return Sighting(url, NOW_MS)


class Clock:
    def __init__(self) -> None:
        self.now_ms = NOW_MS

    def __call__(self) -> int:
        return self.now_ms


def learner_of(
    scripts: Scripts, *, tries: int = 2, notes: Notes | None = None, clock: Clock | None = None
) -> Learner:
    settings = Settings.build(direct_unproven_tries=tries)
    return Learner(scripts, settings, notes=notes, clock=clock or Clock(), kept=NO_STATE)


async def taught(learner: Learner, seen: Sighting) -> None:
    learning = learner.teach(seen)
    if learning is not None:
        await learning


async def test_a_versioned_candidate_is_tried_unproven_once_and_proven_by_spotify() -> None:
    learner = learner_of(Scripts(f"x={{secret:{WRITTEN},version:61}}"))
    knowledge = await learner.current(None)
    assert (knowledge.secret, knowledge.origin, knowledge.proven) == (SECRET, Origin.SCRIPTS, False)
    learner.accepted(knowledge, NOW_MS)
    assert (learner.totp_version, learner.secret_origin, learner.secret_proven) == (61, "scripts", True)


async def test_a_turned_down_candidate_is_never_sent_again_and_the_tries_run_out() -> None:
    scripts = Scripts('a={secret:"decoy-secret-two",version:63};b={secret:"decoy-secret-one",version:62}')
    learner = learner_of(scripts, tries=2)
    for version in (63, 62):
        knowledge = await learner.current(None)
        assert knowledge.secret.version == version
        learner.turned_down(knowledge, Rejected("Spotify answered the token request with HTTP 400"))
    with pytest.raises(NotReady):
        await learner.current(None)
    assert learner.trouble == NOTHING_LEARNED


async def test_a_sighting_proves_an_unversioned_string_offline_and_takes_its_shape() -> None:
    learner = learner_of(Scripts(f'const parts = [{WRITTEN}, "another-string-x"];'), tries=0)
    await taught(learner, sighting())
    assert (learner.totp_version, learner.secret_origin, learner.wants_page_strings) == (61, "page", False)


async def test_memory_is_asked_for_once_per_set_of_scripts_that_taught_nothing() -> None:
    scripts = Scripts("nothing(here)")
    learner = learner_of(scripts)
    await taught(learner, sighting())
    assert learner.wants_page_strings
    assert learner.trouble == NOTHING_LEARNED
    await learner.teach_strings(sighting(), ["a-string-in-memory", "not-the-secret-either"])
    assert learner.trouble == NOTHING_ANYWHERE
    await taught(learner, sighting())
    assert not learner.wants_page_strings  # the same scripts: their memory was read already
    scripts.urls = ("https://open.spotifycdn.com/b.js",)
    await taught(learner, sighting())
    assert learner.wants_page_strings  # a new build: worth one more look
    await learner.teach_strings(sighting(), ["a-string-in-memory", SECRET.value])
    assert (learner.totp_version, learner.secret_origin, learner.secret_proven) == (
        61,
        "page memory",
        False,
    )
    later = Sighting(sighting().url, NOW_MS + 31_000)  # the same code, one step later: still reproduced
    await taught(learner, later)
    assert learner.secret_proven is True


async def test_a_memory_read_does_not_overrule_what_was_learned_after_its_page_was_seen() -> None:
    """The read ends after the browser's answer: a newer build may have been learned meanwhile."""
    clock, older = Clock(), Secret("an-older-builds-secret-x")
    learner = learner_of(Scripts(f'const parts = [{WRITTEN}, "another-string-x"];'), tries=0, clock=clock)
    seen_first = sighting(older)
    clock.now_ms += 1_000
    await taught(learner, Sighting(sighting().url, clock.now_ms))
    await learner.teach_strings(seen_first, [older.value])
    assert (learner.totp_version, learner.secret_origin) == (61, "page")


async def test_a_likely_secret_is_tried_within_the_budget_and_else_awaits_a_second_sighting() -> None:
    learner = learner_of(Scripts("nothing(here)"), tries=1)
    await taught(learner, sighting())
    await learner.teach_strings(sighting(), [SECRET.value])
    first = await learner.current(None)  # the one unproven try
    learner.turned_down(first, Rejected("Spotify answered the token request with HTTP 400"))
    await learner.teach_strings(sighting(), ["another-likely-string", SECRET.value])
    with pytest.raises(NotReady):  # the same secret is never sent twice, and no try is left anyway
        await learner.current(None)


async def test_a_chance_match_in_memory_turned_down_has_the_memory_read_again() -> None:
    chance = Secret("a-string-that-happened-to-match")
    learner = learner_of(Scripts("nothing(here)"))
    await taught(learner, sighting(chance))
    await learner.teach_strings(sighting(chance), [chance.value, SECRET.value])
    wrong = await learner.current(None)
    assert wrong.secret.value == chance.value
    learner.turned_down(wrong, Rejected("Spotify answered the token request with HTTP 400"))
    await taught(learner, sighting())
    assert learner.wants_page_strings  # the same scripts, but what their memory gave was refused
    await learner.teach_strings(sighting(), [chance.value, SECRET.value])
    assert (await learner.current(None)).secret == SECRET


async def test_a_string_spotify_turned_down_is_left_out_when_the_memory_is_read_again() -> None:
    chance = Secret("a-string-that-happened-to-match")
    learner = learner_of(Scripts("nothing(here)"))
    await taught(learner, sighting(chance))
    await learner.teach_strings(sighting(chance), [chance.value])
    learner.turned_down(
        await learner.current(None), Rejected("Spotify answered the token request with HTTP 400")
    )
    await taught(learner, sighting(chance))  # the same code again: only the refused string gives it
    await learner.teach_strings(sighting(chance), [chance.value])
    assert learner.trouble == NOTHING_ANYWHERE


async def test_another_replicas_newer_knowledge_is_taken_and_what_is_learned_is_shared() -> None:
    notes = Notes()
    theirs = Knowledge(Secret("their-secret-value", 62), SHAPE, Origin.PAGE, proven=True)
    notes.notes[NOTE] = dump_knowledge(theirs, NOW_MS - 1)
    learner = learner_of(Scripts(), notes=notes)
    knowledge = await learner.current(None)
    assert (knowledge.secret, knowledge.origin) == (theirs.secret, Origin.REPLICA)
    await taught(learner, sighting())  # theirs does not reproduce the page's code
    assert learner.trouble == NOTHING_LEARNED
    await learner.teach_strings(sighting(), [SECRET.value])
    assert notes.notes[NOTE] == dump_knowledge(theirs, NOW_MS - 1)  # a likely secret is not shared
    likely = await learner.current(None)
    learner.accepted(likely, NOW_MS + 1_000)  # the sighted code itself: a chance match gives it too
    assert learner.secret_proven is False
    assert notes.notes[NOTE] == dump_knowledge(theirs, NOW_MS - 1)
    learner.accepted(likely, NOW_MS + 30_000)  # a code of the next step: proven, and shared
    await asyncio.wait_for(notes.written.wait(), 5)  # by a task of the learner's
    shared = load_knowledge(notes.notes[NOTE], SHAPE.endpoint)
    assert shared is not None
    assert (shared[0].secret, shared[1]) == (SECRET, NOW_MS)
    assert learner.secret_origin == "page memory"


async def test_an_accepted_secret_turned_down_once_is_tried_again_before_it_is_refused() -> None:
    learner = learner_of(Scripts(f"x={{secret:{WRITTEN},version:61}}"), tries=1)
    learner.accepted(await learner.current(None), NOW_MS)
    fluke = Rejected("Spotify answered the token request with HTTP 400")
    learner.turned_down(await learner.current(None), fluke)  # a proven secret: forgotten, not refused
    again = await learner.current(None)  # the same one, read from the scripts, no new try spent
    assert (again.secret, again.proven) == (SECRET, False)
    learner.turned_down(again, fluke)  # unproven now, and turned down: never sent again
    with pytest.raises(NotReady):
        await learner.current(None)


async def test_the_unproven_tries_and_refusals_are_forgotten_after_the_window() -> None:
    clock = Clock()
    learner = learner_of(Scripts(f"x={{secret:{WRITTEN},version:61}}"), tries=1, clock=clock)
    fluke = Rejected("Spotify answered the token request with HTTP 400")
    learner.turned_down(await learner.current(None), fluke)  # refused on its one try
    clock.now_ms += WINDOW_MS - 1
    with pytest.raises(NotReady):
        await learner.current(None)
    clock.now_ms += 1  # a window later (a bench at its longest): one more try
    again = await learner.current(None)
    learner.accepted(again, clock.now_ms)
    assert learner.secret_proven is True


async def test_a_teaching_that_found_nothing_is_wanted_again_only_for_new_scripts_or_much_later() -> None:
    scripts, clock = Scripts("nothing(here)"), Clock()
    learner = learner_of(scripts, clock=clock)
    assert learner.wants_teacher  # nothing known
    with pytest.raises(NotReady):
        await learner.current(None)  # the scripts name no secret: nothing is sent
    await taught(learner, sighting())
    await learner.teach_strings(sighting(), ["a-string-in-memory"])
    assert learner.trouble == NOTHING_ANYWHERE
    assert not learner.wants_teacher
    clock.now_ms += TEACH_BACKOFF_MS
    assert learner.wants_teacher  # a long while later: worth one more look
    clock.now_ms -= TEACH_BACKOFF_MS
    scripts.urls = ("https://open.spotifycdn.com/b.js",)
    with pytest.raises(NotReady):
        await learner.current(None)  # the direct source's own try reads the page: a new build
    assert learner.wants_teacher


async def test_no_teaching_is_wanted_while_a_proven_secret_works() -> None:
    learner = learner_of(Scripts(f"x={{secret:{WRITTEN},version:61}}"))
    knowledge = await learner.current(None)
    assert learner.wants_teacher  # likely, not proven yet
    learner.accepted(knowledge, NOW_MS)
    assert not learner.wants_teacher
    learner.turned_down(
        await learner.current(None), Rejected("Spotify answered the token request with HTTP 400")
    )
    assert learner.wants_teacher


class State:
    """A state store in memory."""

    def __init__(self, **documents: dict[str, Any]) -> None:
        self.documents = {f"{name}.json": document for name, document in documents.items()}

    def load(self, name: str) -> dict[str, Any] | None:
        return self.documents.get(name)

    def save(self, name: str, document: dict[str, Any]) -> None:
        self.documents[name] = document


def kept_learner(scripts: Scripts, state: State, notes: Notes | None = None) -> Learner:
    return Learner(scripts, Settings(), notes=notes, clock=Clock(), kept=state)


async def test_what_was_proven_is_kept_with_its_bundle_and_used_after_a_restart_without_a_page() -> None:
    state, scripts = State(), Scripts("nothing(here)")
    learner = kept_learner(scripts, state)
    await taught(learner, sighting())
    await learner.teach_strings(sighting(), [SECRET.value])
    assert "learned.json" not in state.documents  # likely only: not kept
    likely = await learner.current(None)
    learner.accepted(likely, NOW_MS + 30_000)
    assert state.documents["learned.json"]["bundle"] == list(scripts.urls)
    unread = Scripts()
    restarted = kept_learner(unread, state)
    knowledge = await restarted.current(None)
    assert (knowledge.secret, knowledge.shape, knowledge.proven) == (SECRET, likely.shape, True)
    assert (restarted.secret_origin, unread.reads) == ("state folder", 0)


async def test_a_kept_secret_turned_down_is_learned_again_as_on_a_first_start() -> None:
    stale = Knowledge(Secret("a-stale-secret", 60), SHAPE, Origin.PAGE, proven=True)
    state, scripts = (
        State(learned=knowledge_record(stale, NOW_MS)),
        Scripts(f"x={{secret:{WRITTEN},version:61}}"),
    )
    learner = kept_learner(scripts, state)
    kept = await learner.current(None)
    learner.turned_down(kept, Rejected("Spotify answered the token request with HTTP 400"))
    again = await learner.current(None)
    assert (again.secret, again.origin, scripts.reads) == (SECRET, Origin.SCRIPTS, 1)


async def test_another_replicas_knowledge_goes_before_what_was_kept() -> None:
    notes = Notes()
    theirs = Knowledge(Secret("their-secret-value", 62), SHAPE, Origin.PAGE, proven=True)
    notes.notes[NOTE] = dump_knowledge(theirs, NOW_MS - 10 * WINDOW_MS)  # older than the kept one
    state = State(learned=knowledge_record(Knowledge(SECRET, SHAPE, Origin.PAGE, True), NOW_MS))
    learner = kept_learner(Scripts(), state, notes)
    assert learner.secret_origin == "state folder"
    assert (await learner.current(None)).secret == theirs.secret


@pytest.mark.parametrize(
    "change",
    [
        {"secret": "x" * 1000},
        {"secret": 61},
        {"version": -1},
        {"version": True},
        {"learnedAtMs": "1"},
        {"params": [["a", "fixed"]]},
        {"params": [["a", "fixed", "b"]] * 40},
        {"params": [["a", "fixed", "\x00"]]},
        {"endpoint": "https://evil.example/api/token"},
    ],
)
def test_kept_knowledge_is_read_as_warily_as_a_network_answer(change: dict[str, Any]) -> None:
    record = {**knowledge_record(Knowledge(SECRET, SHAPE, Origin.PAGE, True), NOW_MS), **change}
    assert knowledge_from(record, SHAPE.endpoint, Origin.KEPT) is None
    assert kept_learner(Scripts(), State(learned=record)).secret_origin is None


INVALID_TOTP = Rejected("Spotify answered the token request with HTTP 400")


async def test_a_match_among_a_crowd_of_versioned_candidates_is_neither_shared_nor_kept() -> None:
    notes, state = Notes(), State()
    decoys = ";".join(f'x={{secret:"decoy-secret-{n:04}",version:{n}}}' for n in range(100, 120))
    learner = kept_learner(Scripts(f"{decoys};y={{secret:{WRITTEN},version:999}}"), state, notes)
    await taught(learner, sighting())
    assert (learner.secret_origin, learner.secret_proven) == ("page", False)
    assert (notes.notes, state.documents) == ({}, {})


def rewritten(notes: Notes, clock: Clock) -> None:
    """A hostile record in Redis, newer at each read."""
    wrong = Knowledge(Secret("a-planted-secret", 70), SHAPE, Origin.PAGE, proven=True)
    notes.notes[NOTE] = dump_knowledge(wrong, clock.now_ms)


async def test_wrong_totps_of_any_origin_stop_at_the_budget_until_the_hour_passes_or_new_scripts() -> None:
    notes, clock, scripts = Notes(), Clock(), Scripts("nothing(here)")
    learner = learner_of(scripts, tries=2, notes=notes, clock=clock)
    for _ in range(3):  # the two unproven tries, and one for a proven secret gone stale
        clock.now_ms += 1
        rewritten(notes, clock)
        learner.turned_down(await learner.current(None), INVALID_TOTP)
    clock.now_ms += 1
    rewritten(notes, clock)
    with pytest.raises(NotReady, match="3 wrong TOTPs"):
        await learner.current(None)
    clock.now_ms += WRONG_WINDOW_MS - 4
    with pytest.raises(NotReady):
        await learner.current(None)
    clock.now_ms += 1  # the first one is an hour old
    assert (await learner.current(None)).secret.value == "a-planted-secret"


async def test_concurrent_wrong_totps_all_count_and_new_scripts_start_a_new_budget() -> None:
    clock, scripts = Clock(), Scripts(f"x={{secret:{WRITTEN},version:61}}")
    pinned = Settings.build(direct_unproven_tries=1, totp_secret="a-pinned-secret", totp_version=70)
    learner = Learner(scripts, pinned, notes=None, clock=clock, kept=NO_STATE)
    together = [await learner.current(None) for _ in range(2)]  # two attempts with what was pinned
    for knowledge in together:
        learner.turned_down(knowledge, INVALID_TOTP)
    with pytest.raises(NotReady, match="2 wrong TOTPs"):
        await learner.current(None)
    with pytest.raises(NotReady, match="2 wrong TOTPs"):  # the page read again: the same build
        await learner.current(None)
    scripts.urls = ("https://open.spotifycdn.com/b.js",)
    knowledge = await learner.current(None)  # a new build
    assert (knowledge.secret, scripts.reads) == (SECRET, 3)
