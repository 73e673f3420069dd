"""The core's services for its unit tests: stopped after each test, on real or virtual time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from spotify_tokener.core.service import TokenService
from spotify_tokener.settings import Settings
from spotify_tokener.wiring import core_config
from tests.scripted import Outcome, ScriptedSource, Unobserved
from tests.virtual_time import VirtualTime


@pytest.fixture
async def stopper() -> AsyncIterator[list[TokenService]]:
    services: list[TokenService] = []
    yield services
    for service in services:
        await service.stop()


@pytest.fixture
def time() -> VirtualTime:
    return VirtualTime()


def service_with(
    source: ScriptedSource, settings: Settings, stopper: list[TokenService], time: VirtualTime | None = None
) -> TokenService:
    """A service on real time, or on ``time``'s (then ``source`` must share it), stopped after the test."""
    observer = Unobserved()
    service = (
        TokenService(source, core_config(settings), observer=observer, clock=time.clock, sleep=time.sleep)
        if time is not None
        else TokenService(source, core_config(settings), observer=observer)
    )
    stopper.append(service)
    return service


def scripted(time: VirtualTime, *script: Outcome, **options: Any) -> ScriptedSource:
    """A scripted source on ``time``'s clock and sleep."""
    return ScriptedSource(*script, clock=time.clock, sleep=time.sleep, **options)
