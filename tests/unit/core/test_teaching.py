"""The browser's teaching in the background: when it starts, one at a time, and only when wanted."""

from __future__ import annotations

import asyncio

from spotify_tokener.core.teaching import Teaching
from spotify_tokener.domain.errors import BrowserMissing
from spotify_tokener.domain.token import Kind, Token
from tests.scripted import ScriptedSource


class Recorder:
    def __init__(self) -> None:
        self.ended: list[tuple[str, Kind, str]] = []

    def source_ended(self, source: str, kind: Kind, outcome: str) -> None:
        self.ended.append((source, kind, outcome))


class Gated:
    """A teacher whose attempts wait until released."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = asyncio.Event()

    async def attempt(self, sp_dc: str | None = None) -> Token:
        self.calls += 1
        await self.release.wait()
        return Token("BQ-taught", 1_800_000_000_000, "client", True)


async def test_one_teaching_at_a_time_and_none_when_the_teacher_answered_or_it_is_not_wanted() -> None:
    teacher, recorder, wanted = Gated(), Recorder(), [True]
    teaching = Teaching(teacher, lambda: wanted[0], recorder)
    teaching.offer("embed")
    teaching.offer("embed")  # one runs already
    teaching.offer("browser")  # the teacher itself answered: it taught then
    await asyncio.sleep(0)
    assert teacher.calls == 1
    teacher.release.set()
    assert teaching.task is not None
    await teaching.task
    assert recorder.ended == [("browser", "anonymous", "ok")]
    wanted[0] = False
    teaching.offer("embed")
    await asyncio.sleep(0)
    assert teacher.calls == 1


async def test_a_failed_teaching_is_counted_and_costs_nothing_else() -> None:
    recorder = Recorder()
    teaching = Teaching(ScriptedSource(BrowserMissing("no Chromium found")), lambda: True, recorder)
    teaching.offer("embed")
    assert teaching.task is not None
    await teaching.task
    assert recorder.ended == [("browser", "anonymous", "browser_missing")]


async def test_closing_cancels_a_teaching_under_way() -> None:
    teacher = Gated()
    teaching = Teaching(teacher, lambda: True, Recorder())
    teaching.offer("embed")
    await asyncio.sleep(0)
    await teaching.close()
    assert teacher.calls == 1
    assert teaching.task is not None
    assert teaching.task.cancelled()
