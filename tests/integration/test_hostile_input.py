"""Odd and hostile requests, sent as raw bytes: each gets a clean 4xx or a normal answer, none reaches
the browser, and the service goes on serving."""

from __future__ import annotations

import asyncio
import resource
import time
from collections.abc import Callable

import orjson
import pytest

from spotify_tokener.settings import Settings
from tests.conftest import Running, Serve
from tests.fake_spotify import FakeSpotify

# Not about the browser's own lifecycle: one warm browser for the module (tests/conftest.py).
pytestmark = pytest.mark.asyncio(loop_scope="module")

SettingsMaker = Callable[..., Settings]


async def exchange(running: Running, raw: bytes, timeout_s: float = 5.0) -> tuple[int, bytes]:
    """Send ``raw`` on a fresh connection; the status and body of the answer (0 if none came)."""
    port = running.server.settings.port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout_s)
        status = int(head.split(b" ", 2)[1])
        length = next(
            (
                int(line.split(b":")[1])
                for line in head.lower().split(b"\r\n")
                if line.startswith(b"content-length:")
            ),
            0,
        )
        body = await asyncio.wait_for(reader.readexactly(length), timeout_s) if length else b""
        return status, body
    except asyncio.IncompleteReadError:
        return 0, b""
    finally:
        writer.close()


def get(target: bytes, *headers: bytes, method: bytes = b"GET") -> bytes:
    return b"".join(
        [method, b" ", target, b" HTTP/1.1\r\nHost: tokener\r\n", *(h + b"\r\n" for h in headers), b"\r\n"]
    )


CASES = [
    pytest.param(get(b"/api/token?force=\xff\xfe"), {400}, id="non-utf8-query-bytes"),
    pytest.param(get(b"/api/\xff"), {400}, id="non-utf8-path"),
    pytest.param(get(b"/api/token?force=%ff"), {400}, id="non-utf8-percent-escape"),
    pytest.param(get(b"/api/token?" + b"a=1&" * 5000), {400}, id="huge-query"),
    pytest.param(get(b"/api/token?force=1&force=0"), {400}, id="repeated-force"),
    pytest.param(get(b"/api/token?force=%00"), {400}, id="nul-force"),
    pytest.param(get(b"/api/token", b"X-Big: " + b"a" * 200_000), {200, 431}, id="huge-header"),
    pytest.param(get(b"/api/token", *[b"X-H%d: v" % i for i in range(300)]), {431}, id="too-many-headers"),
    pytest.param(get(b"/api/token", b"Cookie: sp_dc=\xff\xfe"), {400}, id="non-utf8-cookie"),
    pytest.param(get(b"/api/token", b"Cookie: sp_dc=a b c"), {400}, id="bad-cookie"),
    pytest.param(get(b"/api/token", *[b"Cookie: c%d=1" % i for i in range(50)]), {200}, id="many-cookies"),
    pytest.param(get(b"/api/token", method=b"HEAD"), {200}, id="head"),
    pytest.param(get(b"/api/token", method=b"OPTIONS"), {204}, id="options"),
    pytest.param(get(b"/api/token", method=b"DELETE"), {405}, id="delete"),
    pytest.param(get(b"/api/token/refresh", method=b"GET"), {405}, id="refresh-by-get"),
    pytest.param(b"\x00\x01\x02 nonsense\r\n\r\n", {400}, id="garbage"),
    pytest.param(get(b"/" + b"x" * 10_000), {404, 414, 400}, id="long-path"),
]


@pytest.mark.parametrize(("raw", "statuses"), CASES)
async def test_odd_requests_get_a_clean_answer_and_reach_no_browser(
    shared_service: Running, fake: FakeSpotify, raw: bytes, statuses: set[int]
) -> None:
    running = shared_service
    assert (await running.client.get("/api/token")).status_code == 200
    before = fake.token_requests
    status, body = await exchange(running, raw)
    after = fake.token_requests
    still_serving = await running.client.get("/api/token")
    assert status in statuses
    if status == 400 and body:
        assert orjson.loads(body)["error"] == "Validation error"
    assert b"Traceback" not in body
    assert after == before
    assert still_serving.status_code == 200


async def read_until_closed(reader: asyncio.StreamReader, started: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and how long after ``started`` it closed."""
    leftover = await reader.read()
    return leftover, time.monotonic() - started


async def test_a_slow_client_is_cut_off_and_others_are_served(
    make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve
) -> None:
    async with serve(make_settings(header_timeout=1)) as running:
        port = running.server.settings.port
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /api/token HTTP/1.1\r\nHost: tokener\r\n")  # and never the blank line
        await writer.drain()
        started = time.monotonic()
        # Timed on its own: the request made meanwhile may wait for a token fetch, however long.
        cut = asyncio.create_task(read_until_closed(reader, started))
        meanwhile = await running.client.get("/api/token")
        leftover, cut_after = await asyncio.wait_for(cut, timeout=5)  # the server closes on us
        writer.close()
    assert meanwhile.status_code == 200
    assert cut_after < 4
    assert b"200 OK" not in leftover


async def test_a_silent_crowd_does_not_lock_a_new_client_out(
    make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve
) -> None:
    """More connections that never send a byte than the server takes at once (its backlog, 1,024)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = 2 * 1100 + 200  # both ends of every connection live in this process
    assert hard >= needed, f"this test needs ulimit -n of at least {needed}"
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, needed), hard))
    async with serve(make_settings(header_timeout=1)) as running:
        port = running.server.settings.port
        crowd = await asyncio.gather(*(asyncio.open_connection("127.0.0.1", port) for _ in range(1100)))
        try:
            started = time.monotonic()
            status, _ = await exchange(running, get(b"/health"), timeout_s=5)  # a new connection
            waited = time.monotonic() - started
            silent_reader, _ = crowd[0]
            closed = await asyncio.wait_for(silent_reader.read(), timeout=5)  # the server hung up on it
        finally:
            for _, writer in crowd:
                writer.close()
    assert status == 200
    assert waited < 1 + 1.5  # the header timeout, and time to close the crowd
    assert closed == b""
