"""Every integration test must leave no browser or driver process behind, whichever way it ends."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import psutil
import pytest

SETTLE_S = 3.0


def browser_processes() -> set[int]:
    """Live Chromium and Playwright-driver processes anywhere on the machine (zombies excluded)."""
    found = set()
    for process in psutil.process_iter(["name", "cmdline", "status"]):
        with contextlib.suppress(psutil.Error):
            if process.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            command = " ".join(process.info["cmdline"] or [])
            if "chrom" in (process.info["name"] or "").lower() or "playwright" in command:
                found.add(process.pid)
    return found


@pytest.fixture(autouse=True)
def _no_leftover_processes() -> Iterator[None]:
    before = browser_processes()
    yield
    deadline = time.monotonic() + SETTLE_S
    while (leftover := browser_processes() - before) and time.monotonic() < deadline:
        time.sleep(0.1)
    described = []
    for pid in leftover:
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(pid)
            described.append(f"{pid} {process.name()} parent={process.ppid()}")
    assert not leftover, f"processes left behind: {described}"
