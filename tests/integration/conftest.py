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

from spotify_tokener.sources.browser.reaper import become_subreaper, reap_orphans
from tests.conftest import free_port
from tests.fake_spotify import FakeSpotify
from tests.redis_server import RedisServer

SETTLE_S = 3.0
SESSION_VARIABLE = "SPOTIFY_TOKENER_TEST_SESSION"
# Inherited by driver and Chromium. Set, not defaulted: each pytest-xdist worker must have its own, or
# one worker would count another's browsers as its leftovers.
SESSION = os.environ[SESSION_VARIABLE] = uuid.uuid4().hex


def browser_processes() -> set[int]:
    """Chromium and Playwright-driver processes started by this test session, zombies included.

    An orphan is re-parented away from the test process, so live processes are attributed by the
    session variable they inherit. A zombie has no environment left: it is ours if its parent is this
    process (which adopts orphans) or one of ours, so other sessions' zombies on the machine are not.
    """
    live, zombies = set(), {}
    for process in psutil.process_iter(["name", "cmdline", "status", "ppid"]):
        with contextlib.suppress(psutil.Error):
            command = " ".join(process.info["cmdline"] or [])
            if "chrom" not in (process.info["name"] or "").lower() and "playwright" not in command:
                continue
            if process.info["status"] == psutil.STATUS_ZOMBIE:
                zombies[process.pid] = process.info["ppid"]
            elif process.environ().get(SESSION_VARIABLE) == SESSION:
                live.add(process.pid)
    parents = {os.getpid(), *live}
    return live | {pid for pid, parent in zombies.items() if parent in parents}


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


@pytest.fixture
def shared_redis() -> Iterator[RedisServer]:
    """A Redis for the replicas of one test. Per test, not per session: as a child of this process it
    would count among the in-process service's descendants in /health and the lifecycle tests."""
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
            "TOKENER_CA_FILE": str(fake.ca_file),
            "TOKENER_CONNECT_TO": fake.connect_to,
            "TOKENER_RETRIES": "0",
            "TOKENER_FORCE_MIN_INTERVAL": "0",  # these tests force back to back
            "TOKENER_SOURCES": "browser",  # these tests are about the browser's processes
            "TOKENER_STATE_DIR": "",  # not the user's own state folder
            **env,
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "spotify_tokener"],
            env=environment,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so a test can kill the service with its driver: os.killpg(pid)
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
