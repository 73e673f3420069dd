"""Renewal failing while a token is cached: callers keep the old token, nothing hammers Spotify, and
the service heals by itself once the fault is gone."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from spotify_tokener.settings import Settings
from tests.conftest import Serve, status_of, wait_for_status
from tests.fake_spotify import Answer, FakeSpotify
from tests.fake_spotify.server import UPSTREAM_SECRET_MARKER
from tests.integration.fault_cases import HANG_TIMEOUT_S, HEALING_FAULTS

# Not about the browser's own lifecycle: one warm browser for the module (tests/conftest.py).
pytestmark = pytest.mark.asyncio(loop_scope="module")

SettingsMaker = Callable[..., Settings]


# Tokens of 91 s against a 90 s buffer: fresh for a second, then due for renewal and still
# usable for a minute. A buffer above 60 s also makes the fake's "short" (60 s) token too short.
STALE_SETTINGS: dict[str, Any] = {
    "expiry_buffer": 90,
    "refresh_window": 90,
    "stale_margin": 30,
    "retries": 0,
    "fetch_timeout": HANG_TIMEOUT_S,
    # A cool-down of exactly 1 s after a failure: long enough that the test removes the fault before the
    # next renewal (a shorter one could meet the fault again: a second hang, 5 s more), short to heal.
    "retry_base_delay": 1,
    "retry_jitter": 0,
    "cooldown_max": 1,
}


@pytest.mark.parametrize(("answer", "status", "cause"), HEALING_FAULTS)
async def test_each_fault_keeps_the_old_token_for_callers_and_heals_by_itself(
    make_settings: SettingsMaker, fake: FakeSpotify, serve: Serve, *, answer: Answer, status: int, cause: str
) -> None:
    fake.answer_with(Answer(life_s=91), then=answer)
    async with serve(make_settings(**STALE_SETTINGS)) as running:
        good = (await running.client.get("/api/token")).json()
        await wait_for_status(running, lambda state: not state["isValid"], within_s=5)
        # Together: while a renewal hangs, both wait on that one (a forced call after it would start
        # a second hang); once it has failed, the reader gets the old token and the forced call tries.
        served, forced = await asyncio.gather(
            running.client.get("/api/token"), running.client.get("/api/token?force=1")
        )
        failing = await status_of(running)
        fake.reset()  # the fault is gone; nobody forces from here on
        await wait_for_status(running, lambda state: state["isValid"], within_s=20)
        healed = await running.client.get("/api/token")
    assert served.status_code == 200
    assert served.json()["accessToken"] == good["accessToken"]
    assert served.json()["cached"] is True
    assert forced.status_code == status
    assert set(forced.json()) == {"success", "error", "timestamp"}
    assert cause in forced.json()["error"]
    assert UPSTREAM_SECRET_MARKER not in forced.text
    assert cause in failing["lastError"]
    assert healed.status_code == 200
    assert healed.json()["accessToken"] != good["accessToken"]
    assert healed.json()["accessToken"] in fake.issued_tokens()
