"""The browser failing under the service: driver killed, Chromium killed mid-fetch, a page crashing.
Each time the next attempt recovers, and no process is left behind (see conftest)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable

import psutil

from spotify_tokener.settings import Settings
from tests.conftest import running_server
from tests.fake_spotify import Answer, FakeSpotify

SettingsMaker = Callable[..., Settings]


def our_processes(match: Callable[[psutil.Process], bool]) -> list[psutil.Process]:
    found = []
    for process in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if match(process):
                found.append(process)
    return found


def is_driver(process: psutil.Process) -> bool:
    return "run-driver" in " ".join(process.cmdline())


def is_browser(process: psutil.Process) -> bool:
    return "chrom" in process.name() and "--type=" not in " ".join(process.cmdline())


def is_renderer(process: psutil.Process) -> bool:
    return "--type=renderer" in " ".join(process.cmdline())


def kill(processes: list[psutil.Process]) -> None:
    assert processes
    for process in processes:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)


async def wait_for_token_call(fake: FakeSpotify, count: int) -> None:
    async with asyncio.timeout(10):
        while fake.token_requests < count:  # noqa: ASYNC110 - the fake runs in another thread
            await asyncio.sleep(0.02)


async def test_a_killed_driver_is_replaced(make_settings: SettingsMaker, fake: FakeSpotify) -> None:
    async with running_server(make_settings(browser_idle=30)) as running:
        assert (await running.client.get("/api/token")).status_code == 200
        kill(our_processes(is_driver))
        await asyncio.sleep(0.3)
        cached = await running.client.get("/api/token")
        forced = await running.client.get("/api/token?force=1")
        health = (await running.client.get("/health")).json()
    assert cached.json()["cached"] is True
    assert forced.status_code == 200
    assert forced.json()["cached"] is False
    assert health["browser"]["launches"] == 2


async def test_chromium_killed_mid_fetch_is_retried_in_a_new_one(
    make_settings: SettingsMaker, fake: FakeSpotify
) -> None:
    async with running_server(make_settings(browser_idle=30)) as running:
        assert (await running.client.get("/api/token")).status_code == 200
        fake.answer_with(Answer("slow", delay_s=3))
        forced = asyncio.create_task(running.client.get("/api/token?force=1"))
        await wait_for_token_call(fake, 2)
        kill(our_processes(is_browser))
        response = await forced
        health = (await running.client.get("/health")).json()
    assert response.status_code == 200
    assert response.json()["cached"] is False
    assert health["browser"]["launches"] == 2


async def test_the_fetch_right_after_chromium_died_gets_a_new_one(
    make_settings: SettingsMaker, fake: FakeSpotify
) -> None:
    """No retries to hide it: the fetch after the one Chromium died in must not fail too, although
    Playwright is told of the death only a moment later."""
    async with running_server(make_settings(retries=0, browser_idle=30)) as running:
        assert (await running.client.get("/api/token")).status_code == 200
        fake.answer_with(Answer("slow", delay_s=5))
        forced = asyncio.create_task(running.client.get("/api/token?force=1"))
        await wait_for_token_call(fake, 2)
        kill(our_processes(is_browser))
        broken = await forced
        right_after = await running.client.get("/api/token?force=1")
        health = (await running.client.get("/health")).json()
    assert broken.status_code == 503
    assert broken.json()["error"] == "the browser crashed or closed during the fetch"
    assert right_after.status_code == 200
    assert health["browser"]["launches"] == 2


async def test_a_crashed_page_is_retried_in_the_same_browser(
    make_settings: SettingsMaker, fake: FakeSpotify
) -> None:
    async with running_server(make_settings(browser_idle=30)) as running:
        assert (await running.client.get("/api/token")).status_code == 200
        fake.answer_with(Answer("slow", delay_s=3))
        forced = asyncio.create_task(running.client.get("/api/token?force=1"))
        await wait_for_token_call(fake, 2)
        kill(our_processes(is_renderer))
        response = await forced
        health = (await running.client.get("/health")).json()
    assert response.status_code == 200
    assert health["browser"]["launches"] == 1
