"""Fixtures shared by every test: a clean environment, the fake Spotify, and running servers."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import httpx
import psutil
import pytest
import pytest_asyncio

from spotify_tokener.domain.errors import BrowserError
from spotify_tokener.http.app import App
from spotify_tokener.http.server import TokenerServer
from spotify_tokener.settings import Settings
from spotify_tokener.sources.browser.manager import BrowserManager
from spotify_tokener.wiring import create_app
from tests.fake_spotify import FakeSpotify

pytest_plugins = ["tests.durations"]  # the order of the suite

# Whatever a test or a service it starts leaves in the default state folder lands here, never in the
# user's own (~/.local/state/spotify-tokener): a service started without TOKENER_STATE_DIR keeps state.
os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(prefix="spotify-tokener-tests-state-")
atexit.register(shutil.rmtree, os.environ["XDG_STATE_HOME"], ignore_errors=True)

FAST: dict[str, Any] = {
    "host": "127.0.0.1",
    "sources": "browser",  # the browser source's own tests; tests of the direct source name theirs
    "retry_base_delay": 0.05,
    "fetch_timeout": 20.0,  # the default: several cold launches at once on a machine running two suites
    "shutdown_timeout": 3.0,
    "force_min_interval": 0.0,  # tests force back to back; the limit has tests of its own
    "state_dir": "",  # nothing kept between tests; tests of the state folder give their own
}


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read the environment; a developer's own TOKENER_* must not steer the tests."""
    for name in list(os.environ):
        if name.startswith("TOKENER_") or name in {"HOST", "PORT"}:
            monkeypatch.delenv(name)
    monkeypatch.setenv("TOKENER_STATE_DIR", "")  # not the user's own state folder


@pytest.fixture(scope="session")
def fake_spotify_server() -> Iterator[FakeSpotify]:
    fake = FakeSpotify().start()
    yield fake
    fake.stop()


@pytest.fixture
def fake(fake_spotify_server: FakeSpotify) -> Iterator[FakeSpotify]:
    fake_spotify_server.reset()
    yield fake_spotify_server
    fake_spotify_server.reset()


def pointed_at(fake: FakeSpotify) -> dict[str, Any]:
    """The settings that send every call for Spotify to ``fake`` and trust its certificate."""
    return {"connect_to": fake.connect_to, "ca_file": fake.ca_file}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def make_settings(fake: FakeSpotify) -> Callable[..., Settings]:
    """Settings that point the browser at the fake, with test-sized delays; override any field."""

    def make(**overrides: Any) -> Settings:
        values = {**FAST, "port": free_port(), **pointed_at(fake), **overrides}
        return Settings.build(**values)

    return make


@dataclass
class Running:
    server: TokenerServer
    client: httpx.AsyncClient

    @property
    def app(self) -> App:
        return self.server.app


async def _wait_until_serving(client: httpx.AsyncClient) -> None:
    async with asyncio.timeout(10):
        while True:
            with contextlib.suppress(httpx.TransportError):
                await client.get("/health")
                return
            await asyncio.sleep(0.02)


async def status_of(running: Running) -> dict[str, Any]:
    state: dict[str, Any] = (await running.client.get("/api/token/status")).json()["status"]
    return state


async def wait_for_status(running: Running, check: Callable[[dict[str, Any]], bool], within_s: float) -> None:
    async with asyncio.timeout(within_s):
        while not check(await status_of(running)):  # noqa: ASYNC110 - polls the service over HTTP
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def running_server(settings: Settings, app: App | None = None) -> AsyncIterator[Running]:
    server = TokenerServer(settings, app if app is not None else create_app(settings))
    task = asyncio.create_task(server.run())
    base = f"http://{settings.host}:{settings.port}"
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        try:
            await _wait_until_serving(client)
            yield Running(server, client)
        finally:
            server.stop()
            await asyncio.wait_for(task, timeout=15)


@pytest.fixture
def descendants() -> Callable[[], set[int]]:
    """PIDs of every live process this test process spawned (Playwright driver, Chromium...)."""

    def live() -> set[int]:
        found = set()
        for child in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if child.status() != psutil.STATUS_ZOMBIE:
                    found.add(child.pid)
        return found

    return live


Serve = Callable[[Settings], AbstractAsyncContextManager[Running]]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def warm_browser(fake_spotify_server: FakeSpotify) -> AsyncIterator[BrowserManager]:
    """One Chromium for a module's tests that are not about the browser's own lifecycle.

    A launch costs about a second of both cores; most tests only need a page. It is launched before
    the module's first test counts processes, and closed after its last. A module that uses it runs
    its tests on one event loop: ``pytestmark = pytest.mark.asyncio(loop_scope="module")``.
    """
    settings = Settings.build(**pointed_at(fake_spotify_server), browser_idle=3600, **FAST)
    manager = BrowserManager(settings)
    try:
        await _launched(manager)
        yield manager
    finally:
        await manager.close()


async def _launched(manager: BrowserManager) -> None:
    """Open and close a context, so the browser runs. Chromium now and then dies of a SIGSEGV while
    starting; the service answers that by launching again on its next attempt, and so does this."""
    try:
        async with manager.context():
            return
    except BrowserError:
        pass
    async with manager.context():
        return


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_service(
    fake_spotify_server: FakeSpotify, warm_browser: BrowserManager
) -> AsyncIterator[Running]:
    """One running service for a module whose tests each make a request or two and need no settings
    of their own: a service start is a token fetch, and most such tests only watch what follows it."""
    settings = Settings.build(**FAST, port=free_port(), **pointed_at(fake_spotify_server))
    async with running_server(settings, create_app(settings, browser=warm_browser)) as running:
        assert (await running.client.get("/api/token")).status_code == 200  # its start-up fetch is over
        yield running


@pytest.fixture
def serve(warm_browser: BrowserManager) -> Serve:
    """Like :func:`running_server`, with the module's warm browser lent to the service."""

    def start(settings: Settings) -> AbstractAsyncContextManager[Running]:
        return running_server(settings, create_app(settings, browser=warm_browser))

    return start
