"""Leaving through real proxies (tinyproxy with basic auth, microsocks with a password), in front of
the fake Spotify: which proxy carried a call is the fake's word (each proxy leaves from its own
127.0.0.x address), not the service's."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import trustme

from spotify_tokener.domain.proxy import credentials_refused
from spotify_tokener.settings import Settings
from tests.conftest import Running, Serve, free_port, running_server, status_of
from tests.fake_spotify import FakeSpotify
from tests.fake_spotify.server import Answer
from tests.prometheus import Scrape
from tests.proxies import PASSWORD, Microsocks, ProxyProcess, Tinyproxy, TlsFront, started

# Not about the browser's own lifecycle: one warm browser for the module (tests/conftest.py).
pytestmark = pytest.mark.asyncio(loop_scope="module")

SettingsMaker = Callable[..., Settings]
ACCOUNT = "AQProxied-session-cookie_0123456789abcdef"
HTTP_EXIT, SOCKS_EXIT = "127.0.0.2", "127.0.0.3"  # where each proxy leaves from


@pytest.fixture
def tinyproxy(tmp_path: Path) -> Iterator[Tinyproxy]:
    with started(Tinyproxy(free_port(), HTTP_EXIT, tmp_path)) as proxy:
        yield proxy


@pytest.fixture
def microsocks(tmp_path: Path) -> Iterator[Microsocks]:
    with started(Microsocks(free_port(), SOCKS_EXIT, tmp_path)) as proxy:
        yield proxy


@pytest.fixture(params=["http", "https", "socks5"])
def proxy(request: pytest.FixtureRequest, tmp_path: Path, fake: FakeSpotify) -> Iterator[ProxyProcess]:
    """Each kind of proxy in turn; the https one's certificate is trusted through TOKENER_CA_FILE."""
    if request.param == "socks5":
        with started(Microsocks(free_port(), SOCKS_EXIT, tmp_path)) as socks:
            yield socks
        return
    with started(Tinyproxy(free_port(), HTTP_EXIT, tmp_path)) as plain:
        if request.param == "http":
            yield plain
            return
        with started(TlsFront(free_port(), plain, fake.authority.issue_cert("127.0.0.1"))) as front:
            yield front


async def refreshed(running: Running, **headers: str) -> dict[str, Any]:
    response = await running.client.post("/api/token/refresh", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def everything_shown(running: Running) -> str:
    """Every body a person or a scraper can read."""
    paths = ("/api/token/status", "/health", "/metrics")
    return "\n".join([(await running.client.get(path)).text for path in paths])


def proxy_named(status: dict[str, Any], proxy: ProxyProcess) -> dict[str, Any]:
    proxies: list[dict[str, Any]] = status["proxies"]
    return next(entry for entry in proxies if entry["proxy"] == proxy.label)


async def test_every_call_to_spotify_leaves_through_the_proxy(
    proxy: ProxyProcess,
    fake: FakeSpotify,
    make_settings: SettingsMaker,
    serve: Serve,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with serve(make_settings(proxy=proxy.url())) as running:
        body = await refreshed(running)
        shown = await everything_shown(running)
        status = await status_of(running)
    assert body["accessToken"] in fake.issued_tokens()
    assert fake.token_calls_from(proxy.leaves_from) == len(fake.state.calls) >= 1
    assert proxy_named(status, proxy)["usable"] is True
    assert proxy_named(status, proxy)["lastSuccessAt"] is not None
    plain = proxy.behind if isinstance(proxy, TlsFront) else proxy
    if isinstance(plain, Tinyproxy):
        assert f"CONNECT 127.0.0.1:{fake.port}" in plain.log  # tinyproxy's own account of it
    assert PASSWORD not in shown + caplog.text


async def test_a_proxy_killed_mid_run_is_rotated_out_with_no_client_error(
    fake: FakeSpotify,
    tinyproxy: Tinyproxy,
    microsocks: Microsocks,
    make_settings: SettingsMaker,
    serve: Serve,
) -> None:
    # No retries: the move to the other proxy happens within the attempt the kill failed.
    settings = make_settings(proxy=f"{tinyproxy.url()},{microsocks.url()}", retries=0)
    async with serve(settings) as running:
        await refreshed(running)
        before = fake.token_calls_from(HTTP_EXIT)
        assert before >= 1  # the anonymous token leaves through the first proxy...
        tinyproxy.stop()
        for _ in range(3):
            await refreshed(running)  # ...and, that one killed, through the other: no client sees it
        status = await status_of(running)
        health = (await running.client.get("/health")).json()
    assert fake.token_calls_from(HTTP_EXIT) == before
    assert fake.token_calls_from(SOCKS_EXIT) == 3
    dead = proxy_named(status, tinyproxy)
    assert dead["usable"] is False
    assert dead["lastError"] == f"the proxy {tinyproxy.label} could not be reached"
    assert health["proxies"] == {"total": 2, "usable": 1, "allCoolingDown": False}


async def test_a_429_on_one_proxy_moves_the_attempt_to_another_for_the_retry_after(
    fake: FakeSpotify,
    tinyproxy: Tinyproxy,
    microsocks: Microsocks,
    make_settings: SettingsMaker,
    serve: Serve,
) -> None:
    fake.block_peer(HTTP_EXIT, Answer("rate_limited", retry_after="120"))
    settings = make_settings(proxy=f"{tinyproxy.url()},{microsocks.url()}", retries=0)
    async with serve(settings) as running:
        body = await refreshed(running)  # the start-up fetch may have met the 429 already
        await refreshed(running)
        status = await status_of(running)
        metrics = Scrape((await running.client.get("/metrics")).text)
    assert body["accessToken"] in fake.issued_tokens()
    assert fake.token_calls_from(HTTP_EXIT) == 1  # cooling down after its one 429...
    assert fake.token_calls_from(SOCKS_EXIT) >= 2  # ...while the other carried every token
    cooling = proxy_named(status, tinyproxy)
    assert cooling["retryAt"] - cooling["lastFailureAt"] == 120_000  # the Retry-After, not 30 s
    assert status["consecutiveFailures"] == 0  # the anonymous token never failed
    assert metrics.value("tokener_proxy_tries_total", proxy=tinyproxy.label, outcome="rate_limited") == 1
    assert metrics.value("tokener_proxy_cooling_down", proxy=tinyproxy.label) == 1
    assert metrics.value("tokener_exit_benched", exit=tinyproxy.label) == 1  # deprecated, still there


async def test_an_account_stays_on_its_proxy(
    fake: FakeSpotify,
    tinyproxy: Tinyproxy,
    microsocks: Microsocks,
    make_settings: SettingsMaker,
    serve: Serve,
) -> None:
    fake.add_account(ACCOUNT, "proxied")
    async with serve(make_settings(proxy=f"{tinyproxy.url()},{microsocks.url()}")) as running:
        for _ in range(4):
            body = await refreshed(running, cookie=f"sp_dc={ACCOUNT}")
            assert body["isAnonymous"] is False
    peers = {call.peer for call in fake.state.calls if call.cookies.get("sp_dc") == ACCOUNT}
    assert len(peers) == 1
    assert peers <= {HTTP_EXIT, SOCKS_EXIT}


async def test_a_refused_password_is_named_and_never_shown(
    proxy: ProxyProcess,
    fake: FakeSpotify,
    make_settings: SettingsMaker,
    serve: Serve,
    caplog: pytest.LogCaptureFixture,
) -> None:
    wrong = "wrong-" + PASSWORD
    caplog.set_level(logging.DEBUG)
    async with serve(make_settings(proxy=proxy.url(password=wrong), retries=0)) as running:
        response = await running.client.post("/api/token/refresh")
        shown = await everything_shown(running)
        status = await status_of(running)
        health = (await running.client.get("/health")).json()
    assert response.status_code == 502
    how = "SOCKS5" if proxy.scheme == "socks5" else "HTTP 401"  # tinyproxy's answer, where most say 407
    assert response.json()["error"] == f"the proxy {proxy.label} {credentials_refused(how)}"
    assert proxy_named(status, proxy)["lastError"] == response.json()["error"]
    assert health["proxies"] == {"total": 1, "usable": 0, "allCoolingDown": True}
    assert fake.token_requests == 0
    for secret in (PASSWORD, wrong):
        assert secret not in shown + caplog.text + response.text


async def test_an_https_proxy_whose_certificate_is_not_trusted_is_cooling_down(
    fake: FakeSpotify, tinyproxy: Tinyproxy, make_settings: SettingsMaker, serve: Serve
) -> None:
    stranger = trustme.CA().issue_cert("127.0.0.1")  # not from the authority TOKENER_CA_FILE holds
    with started(TlsFront(free_port(), tinyproxy, stranger)) as front:
        async with serve(make_settings(proxy=front.url(), retries=0)) as running:
            response = await running.client.post("/api/token/refresh")
            status = await status_of(running)
    assert response.status_code == 502
    assert response.json()["error"] == f"the proxy {front.label} failed its TLS handshake"
    assert proxy_named(status, front)["usable"] is False
    assert fake.token_requests == 0


@pytest.mark.parametrize(
    ("source", "source_timeout"), [("browser", "fetch_timeout"), ("direct", "direct_timeout")]
)
async def test_a_proxy_that_never_answers_costs_the_attempt_a_second_not_the_token(
    fake: FakeSpotify, microsocks: Microsocks, make_settings: SettingsMaker, source: str, source_timeout: str
) -> None:
    # Its own browser: the relays take their connect timeout from the browser's settings. The attempt
    # has 20 s for a cold launch and a page load on a loaded machine; without the connect timeout,
    # the silent proxy alone would take all of them.
    with socket.create_server(("127.0.0.1", 0)) as black_hole:  # takes connections, never answers
        silent = f"http://127.0.0.1:{black_hole.getsockname()[1]}"
        settings = make_settings(
            sources=source,
            proxy=f"{silent},{microsocks.url()}",
            proxy_connect_timeout=1,
            retries=0,
            **{source_timeout: 20},
        )
        async with running_server(settings) as running:
            response = await running.client.post("/api/token/refresh")
            status = await status_of(running)
    assert response.status_code == 200
    assert fake.token_calls_from(SOCKS_EXIT) >= 1
    assert status["tokenSource"] == source
    assert all(entry["usable"] for entry in status["sources"])  # the proxy's fault, not the source's
    stuck = next(entry for entry in status["proxies"] if entry["proxy"] == silent)
    assert stuck["usable"] is False
    assert stuck["lastError"] == f"the proxy {silent} did not answer in time"


async def test_the_direct_source_leaves_through_each_kind_of_proxy(
    proxy: ProxyProcess, fake: FakeSpotify, make_settings: SettingsMaker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.add_account(ACCOUNT, "proxied")
    async with running_server(make_settings(sources="direct", proxy=proxy.url())) as running:
        body = await refreshed(running)
        account = await refreshed(running, Cookie=f"sp_dc={ACCOUNT}")
        status = await status_of(running)
        shown = await everything_shown(running)
    assert body["accessToken"] in fake.issued_tokens()
    assert account["success"] is True
    assert status["tokenSource"] == "direct"
    assert fake.page_token_calls() == 0
    assert fake.token_calls_from(proxy.leaves_from) == len(fake.state.calls) >= 2
    plain = proxy.behind if isinstance(proxy, TlsFront) else proxy
    if isinstance(plain, Tinyproxy):
        assert f"CONNECT 127.0.0.1:{fake.port}" in plain.log  # TOKENER_CONNECT_TO, asked of the proxy
    assert PASSWORD not in shown + caplog.text


async def test_the_direct_source_names_a_proxy_that_refuses_its_password_and_never_shows_it(
    proxy: ProxyProcess, fake: FakeSpotify, make_settings: SettingsMaker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-pass-Kd73"
    settings = make_settings(sources="direct", proxy=proxy.url(password=wrong), retries=0)
    async with running_server(settings) as running:
        answer = await running.client.post("/api/token/refresh")
        shown = await everything_shown(running)
    assert answer.status_code == 502
    assert answer.json()["error"].startswith(f"the proxy {proxy.label} refused its credentials (")
    assert fake.token_requests == 0
    for secret in (wrong, PASSWORD):
        assert secret not in shown + caplog.text + answer.text


def listening_ports() -> set[int]:
    return {c.laddr.port for c in psutil.Process().net_connections("tcp") if c.status == psutil.CONN_LISTEN}


async def test_the_relay_closes_with_the_idle_browser(
    fake: FakeSpotify, tinyproxy: Tinyproxy, make_settings: SettingsMaker
) -> None:
    """Any local process can reach a relay: it listens only while the browser that needs it runs."""
    before = listening_ports()
    settings = make_settings(sources="browser", proxy=tinyproxy.url(), browser_idle=0.5)
    async with running_server(settings) as running:
        await refreshed(running)
        relays = listening_ports() - before - {settings.port}
        assert len(relays) == 1
        async with asyncio.timeout(15):  # the browser closes after 0.5 s idle, the relay with it
            while relays & listening_ports():  # noqa: ASYNC110 - polls the process's sockets
                await asyncio.sleep(0.05)
        assert (await running.client.get("/health")).json()["browser"]["running"] is False
        assert fake.token_calls_from(HTTP_EXIT) >= 1  # the relay was the way out
        await refreshed(running)  # and it listens again for the next browser
        assert fake.token_calls_from(HTTP_EXIT) >= 2
