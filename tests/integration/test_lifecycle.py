"""The browser's life: one fetch for a burst, crash recovery, idle close, clean shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
import pytest

from spotify_tokener.settings import Settings
from spotify_tokener.sources.browser.reaper import REAP_INTERVAL_S
from tests.conftest import running_server
from tests.fake_spotify import Answer, FakeSpotify

pytestmark = pytest.mark.duration(55)  # handed out early: see tests/conftest.py

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
    assert answer.json()["error"] == "the service is shutting down"
    assert "stopped" in output
    assert "ERROR" not in output, output
    await asyncio.sleep(0.3)
    assert alive(spawned) == set()


async def test_the_service_adopts_and_reaps_chromiums_orphans(
    fake: FakeSpotify, service_process: Callable[..., tuple[subprocess.Popen[str], str]]
) -> None:
    process, url = service_process(TOKENER_BROWSER_IDLE="1")
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        assert (await client.get("/api/token")).status_code == 200
        service = psutil.Process(process.pid)
        driver_pids = {child.pid for child in service.children() if "chrom" not in child.name()}
        adopted = [c for c in service.children() if "chrom" in c.name() and c.pid not in driver_pids]
        assert adopted, "Chromium's double-forked helpers should be re-parented to the service"
        deadline = time.monotonic() + 1 + REAP_INTERVAL_S + 1  # the idle close, then one reaping round
        while (children := service.children(recursive=True)) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        leftovers = [(c.pid, c.name(), c.status()) for c in children]
    assert leftovers == []


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TOKENER_")}
    return subprocess.run(
        [sys.executable, "-m", "spotify_tokener", *args],
        env={**environment, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_cli_help_and_version() -> None:
    assert "--port" in run_cli("--help").stdout
    assert run_cli("--version").stdout.startswith("spotify-tokener ")


def json_lines(stderr: str) -> list[dict[str, str]]:
    """Every line parsed alone, as a log pipeline reads them, each in the shape of the service's own."""
    entries = [json.loads(line) for line in stderr.splitlines()]
    assert entries, "nothing on stderr"
    for entry in entries:
        assert set(entry) == {"level", "logger", "message", "time"}, entry
        assert (entry["level"], entry["logger"]) == ("ERROR", "spotify_tokener.cli")
    return entries


def test_bad_settings_exit_with_one_line_each() -> None:
    result = run_cli(TOKENER_FETCH_TIMEOUT="soon", PORT="70000")
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 2
    assert any(line.startswith("invalid setting TOKENER_FETCH_TIMEOUT: ") for line in lines)
    assert any(line.startswith("invalid setting PORT (or TOKENER_PORT): ") for line in lines)


def test_bad_settings_are_json_lines_when_json_is_asked_for() -> None:
    result = run_cli(
        TOKENER_LOG_FORMAT="json",
        TOKENER_FETCH_TIMEOUT="soon",
        PORT="70000",
        TOKENER_REDIS_URL="redis://:s3cret@cache:notaport/0",
    )
    assert result.returncode == 2
    messages = [entry["message"] for entry in json_lines(result.stderr)]
    assert len(messages) == 3
    for variable in ("TOKENER_FETCH_TIMEOUT", "PORT (or TOKENER_PORT)", "TOKENER_REDIS_URL"):
        assert any(message.startswith(f"invalid setting {variable}: ") for message in messages), variable
    assert "s3cret" not in result.stderr


def test_an_invalid_log_format_reports_in_text() -> None:
    result = run_cli(TOKENER_LOG_FORMAT="JSON", TOKENER_FETCH_TIMEOUT="soon")
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 2
    assert all(line.startswith("invalid setting TOKENER_") for line in lines)


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_busy_port_is_a_clear_error(log_format: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(
            HOST="127.0.0.1",
            PORT=str(port),
            TOKENER_BROWSER_PATH="/nonexistent",
            TOKENER_LOG_FORMAT=log_format,
        )
    assert result.returncode == 1
    expected = f"spotify-tokener: cannot serve on 127.0.0.1:{port}: "
    if log_format == "json":
        [entry] = json_lines(result.stderr)
        assert entry["message"].startswith(expected)
    else:
        assert result.stderr.startswith(expected)
        assert len(result.stderr.splitlines()) == 1
