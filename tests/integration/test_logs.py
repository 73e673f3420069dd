"""The service's own process: with TOKENER_LOG_FORMAT=json every line it writes is one JSON object, and
no secret reaches its output or the environment of the processes it starts."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
from collections.abc import Callable

import httpx
import orjson
import psutil

from tests.fake_spotify import Answer, FakeSpotify
from tests.fake_spotify.server import SECRET

COOKIE = "AQLogs-session-cookie_0123456789abcdef"
StartService = Callable[..., tuple[subprocess.Popen[str], str]]


def inherited_environments(pid: int) -> list[dict[str, str]]:
    """The environment of every live process the service started, a browser's among them.

    Chromium's helpers come and go: one listed can be gone, or a zombie, when it is read.
    """
    environments, browsers = [], 0
    for child in psutil.Process(pid).children(recursive=True):
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            environments.append(child.environ())
            browsers += "chrom" in child.name().lower()
    assert browsers, "no browser among the service's processes"
    return environments


async def test_json_lines_parse_and_carry_no_secret(fake: FakeSpotify, service_process: StartService) -> None:
    fake.add_account(COOKIE, "logs")
    process, url = service_process(TOKENER_LOG_FORMAT="json", TOKENER_LOG_LEVEL="DEBUG")
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        assert (await client.get("/api/token")).status_code == 200
        assert (await client.get("/api/token", headers={"Cookie": f"sp_dc={COOKIE}"})).status_code == 200
        fake.answer_with(Answer("status", status=500))
        assert (await client.post("/api/token/refresh")).status_code == 502
        assert (await client.get("/nope")).status_code == 404
    process.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(process.wait, 15) == 0
    output = process.stdout.read() if process.stdout else ""
    entries = [orjson.loads(line) for line in output.splitlines()]
    assert all({"time", "level", "logger", "message"} <= set(entry) for entry in entries), output
    messages = " | ".join(entry["message"] for entry in entries)
    expected_lines = ("listening on", "browser started", "token attempt 1/1 ok", "token attempt 1/1 failed")
    for expected in (*expected_lines, "stopped"):
        assert expected in messages
    assert not any("/nope" in entry["message"] for entry in entries)  # no access log
    for token in fake.issued_tokens():
        assert token not in output
    assert COOKIE not in output


async def test_the_direct_sources_lines_never_show_a_secret(
    fake: FakeSpotify, service_process: StartService
) -> None:
    fake.add_account(COOKIE, "logs")
    pinned = "pinned-but-stale-secret-Qx7"
    process, url = service_process(
        TOKENER_SOURCES="direct,browser",
        TOKENER_TOTP_SECRET=pinned,
        TOKENER_TOTP_VERSION="60",
        TOKENER_LOG_LEVEL="DEBUG",
    )
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        assert (await client.get("/api/token")).status_code == 200  # turned down, then the browser
        state = (await client.get("/api/token/status")).json()["status"]
        assert (await client.get("/api/token", headers={"Cookie": f"sp_dc={COOKIE}"})).status_code == 200
    environments = inherited_environments(process.pid)
    process.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(process.wait, 15) == 0
    output = process.stdout.read() if process.stdout else ""
    for environment in environments:  # the driver's and Chromium's: the settings stay with the service
        assert not [name for name in environment if name.startswith("TOKENER_")]
        assert pinned not in str(environment)
    assert "relearning" in output
    assert "direct source: TOTP version 61, from the page" in output
    for secret in (pinned, SECRET, COOKIE, *fake.issued_tokens()):
        assert secret not in output
    assert pinned not in str(state) and SECRET not in str(state)
