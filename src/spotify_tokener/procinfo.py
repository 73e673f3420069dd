"""Resident memory of the service and of the processes it spawned (Playwright driver, Chromium)."""

from __future__ import annotations

import contextlib

import psutil


def memory_rss() -> tuple[int, int]:
    """(own RSS, RSS of all descendants) in bytes; vanished children count as zero."""
    me = psutil.Process()
    children = 0
    for child in me.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            children += child.memory_info().rss
    return me.memory_info().rss, children
