"""Small measuring tools: process-tree memory, waiting for a port, wrk's figures."""

from __future__ import annotations

import contextlib
import os
import re
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import psutil
from tests.fake_spotify import FakeSpotify

MB = 1024 * 1024
UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def service_env(fake: FakeSpotify, port: int, **settings: str) -> dict[str, str]:
    """Environment for a service under measurement, pointed at the fake: this one's, minus any
    ``TOKENER_*``, ``HOST`` or ``PORT`` of the developer's, which would skew the figures.

    Chromium is told to ignore certificate errors rather than given ``TOKENER_CA_FILE``: the figures
    are those of the default set-up, and the CA file's trust store loads cryptography (BENCHMARKS.md).
    The browser source alone, unless ``settings`` say otherwise: the direct source would need the CA.
    """
    own = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("TOKENER_") and name not in {"HOST", "PORT"}
    }
    return {
        **own,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "TOKENER_CONNECT_TO": fake.connect_to,
        "TOKENER_BROWSER_ARGS": "--ignore-certificate-errors",
        "TOKENER_SOURCES": "browser",  # the browser's figures; bench/sources.py compares the sources
        "TOKENER_STATE_DIR": "",  # every start a cold one, unless a bench keeps a folder on purpose
        **settings,
    }


def tree_sum(pid: int, read: Callable[[psutil.Process], float]) -> float:
    """``read`` summed over a process and all its descendants (driver, every Chromium process)."""
    root = psutil.Process(pid)
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += read(process)
    return total


def tree_rss_mb(pid: int) -> float:
    return tree_sum(pid, lambda process: process.memory_info().rss) / MB


def tree_pss_mb(pid: int) -> float:
    """Shared pages split among their users, so nothing counts twice (unlike summed RSS)."""
    return tree_sum(pid, lambda process: process.memory_full_info().pss) / MB


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of the tree so far."""
    return tree_sum(pid, lambda process: process.cpu_times().user + process.cpu_times().system)


def wait_for(url: str, timeout_s: float, interval_s: float = 0.002) -> float:
    """Poll until ``url`` answers; returns the monotonic time it first did."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            httpx.get(url, timeout=1)
            return time.monotonic()
        time.sleep(interval_s)
    raise TimeoutError(f"{url} did not answer within {timeout_s} s")


@dataclass(frozen=True)
class LoadResult:
    rps: float
    p99_ms: float
    cpu_us_per_request: float


def wrk(url: str, seconds: int, server_pid: int, threads: int = 2, connections: int = 64) -> LoadResult:
    """wrk's rate and p99, plus the server's CPU time per request (steadier than the rate here)."""
    cpu_before = cpu_seconds(server_pid)
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    cpu = cpu_seconds(server_pid) - cpu_before
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p99 = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
    total = re.search(r"(\d+) requests in", output)
    if rps is None or p99 is None or total is None:
        raise RuntimeError(f"unexpected wrk output:\n{output}")
    cpu_us = cpu / int(total.group(1)) * 1e6
    return LoadResult(float(rps.group(1)), float(p99.group(1)) * UNITS_MS[p99.group(2)], cpu_us)


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]
