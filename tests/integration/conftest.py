"""Every integration test must leave no browser or driver process behind, whichever way it ends.

Also here: the service started as its own process, as a user runs it.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator

import httpx
import psutil
import pytest

from spotify_tokener.reaper import become_subreaper, reap_orphans
from tests.conftest import free_port
from tests.fake_spotify import FakeSpotify
from tests.redis_server import RedisServer

SETTLE_S = 3.0
SESSION_VARIABLE = "SPOTIFY_TOKENER_TEST_SESSION"
SESSION = os.environ.setdefault(SESSION_VARIABLE, uuid.uuid4().hex)  # inherited by driver and Chromium


def browser_processes() -> set[int]:
    """Chromium and Playwright-driver processes started by this test session, zombies included.

    An orphan is re-parented away from the test process, so processes are attributed by the session
    variable they inherit; a zombie has no environment left and counts wherever it is.
    """
    found = set()
    for process in psutil.process_iter(["name", "cmdline", "status"]):
        with contextlib.suppress(psutil.Error):
            command = " ".join(process.info["cmdline"] or [])
            if "chrom" not in (process.info["name"] or "").lower() and "playwright" not in command:
                continue
            if (
                process.info["status"] == psutil.STATUS_ZOMBIE
                or process.environ().get(SESSION_VARIABLE) == SESSION
            ):
                found.add(process.pid)
    return found


@pytest.fixture(scope="session", autouse=True)
def _adopt_orphans() -> None:
    """Like the service, adopt Chromium's orphans, so their zombies are reaped here at once."""
    become_subreaper()


@pytest.fixture(autouse=True)
def _no_leftover_processes() -> Iterator[None]:
    before = browser_processes()
    yield
    deadline = time.monotonic() + SETTLE_S
    while (leftover := browser_processes() - before) and time.monotonic() < deadline:
        reap_orphans()
        time.sleep(0.05)
    described = []
    for pid in leftover:
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(pid)
            described.append(f"{pid} {process.name()} parent={process.ppid()}")
    assert not leftover, f"processes left behind: {described}"


@pytest.fixture(scope="session")
def shared_redis() -> Iterator[RedisServer]:
    """One Redis for the session; tests keep apart by key prefix (see ``redis_settings``)."""
    server = RedisServer(free_port()).start()
    yield server
    server.stop()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A Redis of this test's own, for tests that stop it."""
    server = RedisServer(free_port()).start()
    yield server
    server.stop()


@pytest.fixture
def redis_prefix() -> str:
    return f"test-{uuid.uuid4().hex[:12]}:"


@pytest.fixture
def service_process(fake: FakeSpotify) -> Iterator[Callable[..., tuple[subprocess.Popen[str], str]]]:
    started: list[subprocess.Popen[str]] = []

    def start(**env: str) -> tuple[subprocess.Popen[str], str]:
        port = free_port()
        environment = {
            **{k: v for k, v in os.environ.items() if not k.startswith("TOKENER_")},
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "TOKENER_BROWSER_ARGS": fake.chromium_args,
            "TOKENER_RETRIES": "0",
            "TOKENER_FORCE_MIN_INTERVAL": "0",  # these tests force back to back
            **env,
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "spotify_tokener"],
            env=environment,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        started.append(process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                httpx.get(f"{url}/health")
                return process, url
            time.sleep(0.05)
        raise AssertionError("service did not start")

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()
