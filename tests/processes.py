"""Helper daemons the tests start themselves (redis-server, tinyproxy, microsocks): started until
they answer, killed at the end, and a failed start named by the program that failed."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

START_TIMEOUT_S = 10.0


def start(command: list[str], ready: Callable[[], bool]) -> subprocess.Popen[bytes]:
    """Run ``command`` and wait until ``ready`` says it serves."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    name = Path(command[0]).name
    deadline = time.monotonic() + START_TIMEOUT_S
    while not ready():
        assert process.poll() is None, f"{name} exited at start"
        assert time.monotonic() < deadline, f"{name} did not start"
        time.sleep(0.02)
    return process


def stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is not None:
        process.kill()
        process.wait()
