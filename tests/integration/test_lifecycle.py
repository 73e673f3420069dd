"""The browser's life: one fetch for a burst, crash recovery, idle close, clean shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
import pytest

from spotify_tokener.settings import Settings
from spotify_tokener.sources.browser.chromium import find_executable, full_chromium
from spotify_tokener.sources.browser.reaper import REAP_INTERVAL_S
from tests.conftest import running_server
from tests.fake_spotify import Answer, FakeSpotify

SettingsMaker = Callable[..., Settings]
Descendants = Callable[[], set[int]]


def chromium_pids(pids: set[int]) -> set[int]:
    found = set()
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            if "chrom" in psutil.Process(pid).name().lower():
                found.add(pid)
    return found


def alive(pids: set[int]) -> set[int]:
    living = set()
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                living.add(pid)
    return living


async def test_a_cold_burst_makes_one_upstream_request(
    make_settings: SettingsMaker, fake: FakeSpotify
) -> None:
    limits = httpx.Limits(max_connections=200)
    settings = make_settings()
    async with (
        running_server(settings) as running,
        httpx.AsyncClient(base_url=str(running.client.base_url), limits=limits, timeout=30) as burst,
    ):
        responses = await asyncio.gather(*(burst.get("/api/token") for _ in range(200)))
    assert {r.status_code for r in responses} == {200}
    assert len({r.json()["accessToken"] for r in responses}) == 1
    assert fake.token_requests == 1


async def test_a_forced_burst_makes_one_upstream_request(
    make_settings: SettingsMaker, fake: FakeSpotify
) -> None:
    async with running_server(make_settings()) as running:
        await running.client.get("/api/token")
        forced = await asyncio.gather(
            *(running.client.post("/api/token/refresh") for _ in range(20)),
            *(running.client.get("/api/token?force=yes") for _ in range(20)),
        )
    assert {r.status_code for r in forced} == {200}
    assert fake.token_requests == 2


async def test_a_killed_browser_is_replaced(
    make_settings: SettingsMaker, fake: FakeSpotify, descendants: Descendants
) -> None:
    async with running_server(make_settings(browser_idle=30)) as running:
        assert (await running.client.get("/api/token")).status_code == 200
        victims = chromium_pids(descendants())
        assert victims
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(0.3)
        cached = await running.client.get("/api/token")
        forced = await running.client.get("/api/token?force=1")
        health = (await running.client.get("/health")).json()
    assert cached.json()["cached"] is True
    assert forced.status_code == 200
    assert forced.json()["cached"] is False
    assert health["browser"]["launches"] == 2


async def test_an_idle_browser_is_closed_with_its_driver(
    make_settings: SettingsMaker, fake: FakeSpotify, descendants: Descendants
) -> None:
    async with running_server(make_settings(browser_idle=1)) as running:
        assert (await running.client.get("/api/token")).status_code == 200
        spawned = descendants()
        assert chromium_pids(spawned)
        deadline = time.monotonic() + 10  # the 1 s idle time, then closing: seconds on a loaded machine
        health = (await running.client.get("/health")).json()
        while (health["browser"]["running"] or health["memory"]["browserRss"] or alive(spawned)) and (
            time.monotonic() < deadline
        ):
            await asyncio.sleep(0.05)
            health = (await running.client.get("/health")).json()
        assert health["browser"]["running"] is False
        assert health["memory"]["browserRss"] == 0
        assert alive(spawned) == set()
        again = await running.client.get("/api/token?force=1")
    assert again.status_code == 200


async def test_no_process_outlives_the_server(
    make_settings: SettingsMaker, fake: FakeSpotify, descendants: Descendants
) -> None:
    async with running_server(make_settings()) as running:
        await running.client.get("/api/token")
        spawned = descendants()
    assert chromium_pids(spawned)
    await asyncio.sleep(0.2)
    assert alive(spawned) == set()


async def test_a_missing_browser_is_named_with_its_fix(
    make_settings: SettingsMaker, fake: FakeSpotify, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.INFO)
    async with running_server(make_settings(browser_path=tmp_path / "no-chrome")) as running:
        response = await running.client.get("/api/token")
    assert response.status_code == 503
    assert "TOKENER_BROWSER_PATH does not exist" in response.json()["error"]
    failures = [r for r in caplog.records if "TOKENER_BROWSER_PATH does not exist" in r.getMessage()]
    assert 1 <= len(failures) <= 2  # the start-up fetch, then this request's; never retried


def tree(pid: int) -> set[int]:
    return {child.pid for child in psutil.Process(pid).children(recursive=True)} | {pid}


@pytest.mark.parametrize(
    ("signum", "whole_group"),
    [
        pytest.param(signal.SIGTERM, False, id="SIGTERM"),
        pytest.param(signal.SIGINT, False, id="SIGINT"),
        pytest.param(signal.SIGINT, True, id="Ctrl-C"),  # a terminal signals the driver too
    ],
)
async def test_a_signal_mid_fetch_stops_everything_within_seconds(
    fake: FakeSpotify,
    service_process: Callable[..., tuple[subprocess.Popen[str], str]],
    signum: int,
    whole_group: bool,
) -> None:
    process, url = service_process(TOKENER_FETCH_TIMEOUT="30")
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        assert (await client.get("/api/token")).status_code == 200
        fake.answer_with(Answer("hang"))
        waiting = asyncio.create_task(client.get("/api/token?force=1"))
        async with asyncio.timeout(10):
            while len(fake.state.calls) < 2:  # noqa: ASYNC110 - the fake runs in another thread
                await asyncio.sleep(0.05)
        spawned = tree(process.pid)
        assert len(chromium_pids(spawned)) > 1
        started = time.monotonic()
        if whole_group:
            os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)
        answer = await waiting
        code = await asyncio.to_thread(process.wait, 10)
        stopped_in = time.monotonic() - started
    output = process.stdout.read() if process.stdout else ""
    assert code == 0, output
    assert stopped_in < 5
    assert answer.status_code == 503
    # Ctrl-C reaches the driver and Chromium in the same instant as the service: which the service
    # notices first decides the words (the waiter is told the browser closed, or that it is stopping).
    expected = {"the service is shutting down"}
    if whole_group:
        expected.add("the browser crashed or closed during the fetch")
    assert answer.json()["error"] in expected
    assert "stopped" in output
    assert "ERROR" not in output, output
    await asyncio.sleep(0.3)
    assert alive(spawned) == set()


async def test_the_service_adopts_and_reaps_chromiums_orphans(
    fake: FakeSpotify, service_process: Callable[..., tuple[subprocess.Popen[str], str]]
) -> None:
    full = full_chromium(None)  # only the full browser double-forks a crash handler
    assert full is not None, "no full Chromium on PATH: `make test-deps` installs one"
    process, url = service_process(TOKENER_BROWSER_IDLE="1", TOKENER_BROWSER_PATH=str(full))
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        assert (await client.get("/api/token")).status_code == 200  # a full Chromium serves as well
        service = psutil.Process(process.pid)
        driver_pids = {child.pid for child in service.children() if "chrom" not in child.name()}
        adopted = [c for c in service.children() if "chrom" in c.name() and c.pid not in driver_pids]
        assert adopted, "Chromium's double-forked helpers should be re-parented to the service"
        deadline = time.monotonic() + 1 + REAP_INTERVAL_S + 1  # the idle close, then one reaping round
        while (children := service.children(recursive=True)) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        leftovers = [(c.pid, c.name(), c.status()) for c in children]
    assert leftovers == []


async def test_a_signal_during_start_up_stops_it_in_order(
    fake: FakeSpotify,
    service_process: Callable[..., tuple[subprocess.Popen[str], str]],
    tmp_path: Path,
) -> None:
    """The browser launch still under way when the signal comes is undone without being announced."""
    slow_chromium = tmp_path / "slow-chromium"
    slow_chromium.write_text(f'#!/bin/sh\nsleep 2\nexec {find_executable(None, "")} "$@"\n')
    slow_chromium.chmod(0o755)
    process, _ = service_process(TOKENER_BROWSER_PATH=str(slow_chromium))
    async with asyncio.timeout(10):  # the launch is under way once the wrapper sleeps
        while not any(psutil.Process(pid).name() == "sleep" for pid in alive(tree(process.pid))):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    spawned = tree(process.pid) - {process.pid}
    process.send_signal(signal.SIGTERM)
    code = await asyncio.to_thread(process.wait, 15)
    output = process.stdout.read() if process.stdout else ""
    assert code == 0, output
    assert "stopping" in output and "stopped" in output, output
    assert "browser started" not in output, output  # it never served: announcing it would mislead
    assert "ERROR" not in output, output
    await asyncio.sleep(0.3)
    assert alive(spawned) == set()
