"""Collecting the processes Chromium orphans on purpose.

Chromium double-forks some helpers (zygote children, crash handlers), so when the browser exits they
are re-parented, not reaped by it. Re-parented to a real init they vanish; re-parented to a service
running as PID 1 in a container without an init, they would stay zombies forever, a few per launch.
So the service makes itself their adoptive parent (a Linux "child subreaper") and reaps them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import sys

import psutil

PR_SET_CHILD_SUBREAPER = 36
REAP_INTERVAL_S = 2.0  # a zombie holds only a PID; the event loop owns SIGCHLD, so we poll


def become_subreaper() -> bool:
    """Adopt orphaned descendants (Linux only); False where the kernel offers no such thing."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return int(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0


def reap_orphans() -> None:
    """Reap exited Chromium children; never the Playwright driver, whose exit asyncio waits for."""
    for child in psutil.Process().children():
        with contextlib.suppress(psutil.Error, ChildProcessError):
            if child.status() == psutil.STATUS_ZOMBIE and "chrom" in child.name().lower():
                os.waitpid(child.pid, os.WNOHANG)


async def reap_forever(interval_s: float = REAP_INTERVAL_S) -> None:
    while True:
        await asyncio.sleep(interval_s)
        reap_orphans()
