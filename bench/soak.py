"""`make soak`: hundreds of forced refreshes with random faults, and proof that nothing piles up.

Starts the real service (``python -m spotify_tokener``) against the local fake Spotify, then forces
refreshes back to back (``TOKENER_FORCE_MIN_INTERVAL=0``), injecting a random fault into most of them:
upstream 500, 429 with and without ``Retry-After``, a hang cut off by a short ``TOKENER_FETCH_TIMEOUT``,
malformed and truncated JSON, an ``error`` body, expired and short-lived tokens, a broken page, a
rotation of the TOTP secret, a new parameter the token call then needs, and now and then a SIGKILL
of a Chromium process (the browser or a renderer, idle or mid-fetch; with the default sources the
browser is often not running, and the fault then falls on the direct source's call).
Meanwhile plain readers call ``GET /api/token`` without pause, and a sampler records, every second,
the process count, open files and resident memory of the whole service tree.

It exits non-zero if, from the first to the last quartile of the run, any of those grows beyond its
tolerance (``TOLERANCES``), if a reader ever got anything but a token while a valid one was cached,
if a forced refresh got anything but a token or a 502/503/504, if the service logged a bug, if a
zombie outlived the reaper, or if SIGTERM did not stop everything cleanly.

Then a hostile upstream (issue 24), against a service of its own with the direct source alone (a
browser would prove the real secret at once, and no guessed one would ever be tried): once a token is
cached, the secret rotates behind 100k newer, versioned decoys, and each new build's bundle is either
over the 10 MB a script may have or just under it with junk slow to parse, read by a forced refresh
and by ``/api/hashes`` (a hash reported stale). With ``redis-server`` on the PATH, the service shares
through a Redis whose records are rewritten with garbage every 50 ms from halfway: a token expiring
in 10 years, a failure waiting ``"nan"`` seconds, a proven-looking secret the fake never accepts. It
fails unless cached reads stayed fast (``READ_P99_MAX_MS``, ``READ_MAX_MS``; the readers in a process
of their own), the tree's memory ended within ``RSS_GROWTH_MAX_MB`` of where it began, no client was
served the planted token, and no build got more wrong TOTPs at the fake than the budget.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import multiprocessing
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as EventType
from pathlib import Path

import httpx
import psutil
from redis.asyncio import Redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import free_port  # noqa: E402
from tests.fake_spotify import Answer, FakeSpotify  # noqa: E402
from tests.fake_spotify.totp import accepts  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402

from bench.measure import MB, percentile, service_env, tree_sum, wait_for  # noqa: E402
from bench.run import machine  # noqa: E402
from spotify_tokener.domain.request_shape import default_shape  # noqa: E402
from spotify_tokener.domain.token import ANONYMOUS  # noqa: E402
from spotify_tokener.domain.totp import Secret  # noqa: E402
from spotify_tokener.settings import Settings  # noqa: E402
from spotify_tokener.sources.direct.knowledge import NOTE, Knowledge, Origin, dump_knowledge  # noqa: E402

RESULTS = ROOT / "bench" / "results"
REFRESHES = 300
READERS = 4
READER_PAUSE_S = 0.05  # four readers: about 80 requests a second, leaving the browser its CPU
SAMPLE_EVERY_S = 1.0
STALE_MARGIN_S = 10.0
REAP_GRACE_S = 5.0  # the service reaps Chromium's orphans every 2 s
SERVICE_ENV = {
    "TOKENER_FORCE_MIN_INTERVAL": "0",
    "TOKENER_FETCH_TIMEOUT": "2",
    "TOKENER_RETRIES": "1",
    "TOKENER_RETRY_BASE_DELAY": "0.1",
    "TOKENER_RETRY_AFTER_MAX": "1",
    "TOKENER_COOLDOWN_MAX": "1",
    "TOKENER_STALE_MARGIN": str(STALE_MARGIN_S),
    "TOKENER_DIRECT_TIMEOUT": "2",
    "TOKENER_SOURCE_COOLDOWN": "1",  # a rotation's cool-down ends soon: the direct source is tried again
    "TOKENER_LOG_LEVEL": "WARNING",
}
ROTATED = ("soak-rotated-secret-Vb71", 62)
NEW_PARAMETER = ("buildVer", "web-player_soak")
# fault: (weight, answers the fake gives). Two bad answers defeat the one retry: a 5xx for the caller.
UPSTREAM_FAULTS: dict[str, Answer] = {
    "500": Answer("status", status=500),
    "429 Retry-After": Answer("rate_limited", retry_after="1"),
    "429": Answer("rate_limited"),
    "hang": Answer("hang"),
    "malformed": Answer("malformed"),
    "truncated": Answer("truncated"),
    "error body": Answer("error_body"),
    "expired token": Answer("expired"),
    "short token": Answer("short"),
}
FAULT_WEIGHTS = {
    "none": 20,
    **dict.fromkeys(UPSTREAM_FAULTS, 7),
    "page 503": 4,
    "rotation": 4,  # a new secret (the next forced refresh's reset rotates it back: a second one)
    "new parameter": 3,
    "kill browser idle": 3,
    "kill browser mid-fetch": 3,
    "kill renderer mid-fetch": 3,
}
# metric: (allowed growth from the first quartile's median to the last quartile's, absolute).
TOLERANCES = {
    "processes": 2,  # a Chromium being relaunched, or a renderer of a context being closed
    "open files": 40,  # the same, in pipes and sockets
    "rss MB": 150.0,  # summed, so shared pages count once per process: noisy as Chromium relaunches
    "uss MB": 60.0,  # pages no other process maps: what a leak grows (PSS would move with other
    # Chromiums on the machine, which share this one's library pages)
    "service open files": 5,
    "service rss MB": 15.0,
}
FORCED_OK = {200, 502, 503, 504}
HOSTILE_S = 60.0
HOSTILE_ENV = {
    **SERVICE_ENV,
    "TOKENER_SOURCES": "direct",
    "TOKENER_DIRECT_TIMEOUT": "10",  # long enough to read and parse the scripts to their caps
    "TOKENER_FETCH_TIMEOUT": "15",
    "TOKENER_HASHES_MIN_INTERVAL": "0",
    "TOKENER_REDIS_PREFIX": "soak:",
}
REDIS_PREFIX = HOSTILE_ENV["TOKENER_REDIS_PREFIX"]
DECOYS = [(f"soak-decoy-secret-{n:06}", 1000 + n) for n in range(100_000, 0, -1)]  # about 5 MB
HOSTILE_PADDINGS = (40 << 20, 4 << 20)  # over the 10 MB a script may have; under it with the decoys
READ_P99_MAX_MS = 100.0
READ_MAX_MS = 1000.0
RSS_GROWTH_MAX_MB = 150.0  # two learnings at their 32 MB caps at once, and their parses
SETTLE_S = 3.0
READERS_STOP_S = 60.0  # a reader's request times out after 30 s
COOLDOWNS_S = 1.1  # the longest cool-down, of the attempts and of the direct source (HOSTILE_ENV)
PLANTED_ACCESS = "BQ-planted-by-a-hostile-redis-record"
WRONG_TOTP_BUDGET = Settings().direct_unproven_tries + 1  # per build, per hour
BUG_MARKERS = ("unhandled", "crashed: ", "unexpected error", "Traceback")  # how bugs are logged


@dataclass
class Sample:
    at_s: float
    processes: int
    zombies: int
    open_files: int
    rss_mb: float
    uss_mb: float
    service_open_files: int
    service_rss_mb: float


@dataclass
class Run:
    forced: Counter[int] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    fault_seconds: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    reads: int = 0
    read_latencies_ms: list[float] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    valid_until_ms: int = 0  # the latest expiry any client was handed; the service holds at least that

    def saw(self, response: httpx.Response) -> None:
        if response.status_code == 200:
            body = response.json()
            self.valid_until_ms = max(self.valid_until_ms, int(body["accessTokenExpirationTimestampMs"]))
            if body["accessToken"] == PLANTED_ACCESS:
                self.violations.append("a client was served the token a hostile Redis record planted")


@dataclass
class Hostile:
    run: Run = field(default_factory=Run)
    rss_before_mb: float = 0.0
    rss_after_mb: float = 0.0
    wrong_totps: int = 0
    most_wrong_per_build: int = 0
    token_calls: int = 0
    refreshes: int = 0
    redis: bool = False
    planted_after_s: float | None = None  # the garbage Redis records, from halfway: a planted proven
    # secret stops the direct source reading new builds, which the first half is for
    stale_hash: str = ""


def sample(pid: int, started: float) -> Sample:
    root = psutil.Process(pid)
    processes = [root, *root.children(recursive=True)]
    zombies = 0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            zombies += process.status() == psutil.STATUS_ZOMBIE
    return Sample(
        at_s=round(time.monotonic() - started, 1),
        processes=len(processes),
        zombies=zombies,
        open_files=int(tree_sum(pid, lambda process: process.num_fds())),
        rss_mb=round(tree_sum(pid, lambda process: process.memory_info().rss) / MB, 1),
        uss_mb=round(tree_sum(pid, lambda process: process.memory_full_info().uss) / MB, 1),
        service_open_files=root.num_fds(),
        service_rss_mb=round(root.memory_info().rss / MB, 1),
    )


def chromium(pid: int, match: Callable[[str], bool]) -> list[psutil.Process]:
    found = []
    for process in psutil.Process(pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "chrom" in process.name() and match(" ".join(process.cmdline())):
                found.append(process)
    return found


def is_browser(command: str) -> bool:
    return "--type=" not in command and "crashpad" not in command


def is_renderer(command: str) -> bool:
    return "--type=renderer" in command


def kill_one(pid: int, match: Callable[[str], bool], rng: random.Random) -> bool:
    victims = chromium(pid, match)
    if not victims:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(rng.choice(victims).pid, signal.SIGKILL)
    return True


async def wait_for_token_call(fake: FakeSpotify, count: int, timeout_s: float = 10) -> bool:
    deadline = time.monotonic() + timeout_s
    while fake.token_requests < count:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def forced_refresh(
    client: httpx.AsyncClient, fake: FakeSpotify, pid: int, fault: str, rng: random.Random
) -> int:
    fake.reset()
    if fault in UPSTREAM_FAULTS:
        fake.answer_with(*[UPSTREAM_FAULTS[fault]] * rng.choice((1, 2)))
    elif fault == "page 503":
        fake.state.page_status = 503
    elif fault == "rotation":
        fake.rotate(*ROTATED)
    elif fault == "new parameter":
        fake.require(*NEW_PARAMETER)
    elif fault == "kill browser idle":
        kill_one(pid, is_browser, rng)
    elif fault.endswith("mid-fetch"):
        fake.answer_with(Answer("slow", delay_s=1.5))
    sent = fake.token_requests
    forced = asyncio.create_task(client.get("/api/token?force=1"))
    if fault.endswith("mid-fetch") and await wait_for_token_call(fake, sent + 1):
        kill_one(pid, is_renderer if "renderer" in fault else is_browser, rng)
    response = await forced
    fake.reset()  # releases a hanging answer
    return response.status_code


async def reader(client: httpx.AsyncClient, run: Run, stop: asyncio.Event) -> None:
    while not stop.is_set():
        asked_at_ms = time.time() * 1000
        started = time.perf_counter()
        response = await client.get("/api/token")
        run.read_latencies_ms.append((time.perf_counter() - started) * 1000)
        run.reads += 1
        run.saw(response)
        valid_left_s = (run.valid_until_ms - asked_at_ms) / 1000
        if response.status_code != 200 and valid_left_s > STALE_MARGIN_S + 1:
            run.violations.append(
                f"reader got {response.status_code} {response.text[:120]} "
                f"while a token was valid for {valid_left_s:.0f} s more"
            )
        await asyncio.sleep(READER_PAUSE_S)


async def sampler(pid: int, run: Run, stop: asyncio.Event, started: float) -> None:
    while not stop.is_set():
        run.samples.append(await asyncio.to_thread(sample, pid, started))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), SAMPLE_EVERY_S)


async def soak(url: str, fake: FakeSpotify, pid: int, refreshes: int, seed: int) -> Run:
    rng = random.Random(seed)
    run = Run()
    limits = httpx.Limits(max_connections=READERS + 2)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        first = await client.get("/api/token")
        run.saw(first)
        if first.status_code != 200:
            run.violations.append(f"no first token: {first.status_code}")
            return run
        stop = asyncio.Event()
        started = time.monotonic()
        background = [asyncio.create_task(reader(client, run, stop)) for _ in range(READERS)]
        background.append(asyncio.create_task(sampler(pid, run, stop, started)))
        faults, weights = zip(*FAULT_WEIGHTS.items(), strict=True)
        for number in range(refreshes):
            fault = rng.choices(faults, weights)[0]
            began = time.monotonic()
            status = await forced_refresh(client, fake, pid, fault, rng)
            run.fault_seconds[fault] += time.monotonic() - began
            run.faults[fault] += 1
            run.forced[status] += 1
            if status not in FORCED_OK:
                run.violations.append(f"forced refresh #{number} ({fault}) got {status}")
            if number % 50 == 49:
                print(f"  {number + 1}/{refreshes} forced refreshes, {run.reads} reads", flush=True)
        await asyncio.sleep(REAP_GRACE_S)  # let the last orphans be reaped before the last samples
        stop.set()
        await asyncio.gather(*background)
    return run


async def plant_garbage(redis: Redis, prefix: str) -> None:
    """What a hostile or broken replica could write, rewritten newer than anything read, until cancelled."""
    now_ms = int(time.time() * 1000)
    token = {
        "accessToken": PLANTED_ACCESS,
        "accessTokenExpirationTimestampMs": now_ms + 10 * 365 * 86_400_000,
        "clientId": "0" * 32,
        "isAnonymous": True,
        "fetchedAtMs": now_ms,
    }
    failure = {"error": "RateLimitedError", "message": "planted", "retryAfter": "nan"}
    url = Settings().spotify_url
    secret = Knowledge(Secret("soak-planted-secret", 9_999_999), default_shape(url), Origin.PAGE, True)
    for n in itertools.count():
        await redis.set(f"{prefix}token:{ANONYMOUS}", json.dumps(token))
        await redis.set(f"{prefix}failure:{ANONYMOUS}", json.dumps(failure))
        await redis.set(f"{prefix}note:{NOTE}", dump_knowledge(secret, 4_000_000_000_000 + n))
        await asyncio.sleep(0.05)


def wrong_totps(fake: FakeSpotify, since: int) -> tuple[int, int]:
    """Token calls at the fake from the ``since``-th on, and how many of them its secret refuses."""
    calls = fake.state.calls[since:]
    return len(calls), sum(not accepts(fake.key, call.query.get("totp", [""])[0], call.at) for call in calls)


async def hostile_round(client: httpx.AsyncClient, fake: FakeSpotify, result: Hostile) -> None:
    """A new build (the budget of wrong TOTPs starts again), a forced refresh and a hash read of it."""
    fake.deploy()
    fake.pad_bundle(HOSTILE_PADDINGS[result.refreshes % len(HOSTILE_PADDINGS)])
    since = len(fake.state.calls)
    for path in ("/api/token?force=1", f"/api/hashes?stale={result.stale_hash}"):
        response = await client.get(path)
        if response.status_code == 200 and "operations" in response.json():
            result.stale_hash = response.json()["operations"]["getTrack"]  # read the scripts again
        result.run.forced[response.status_code] += 1
        if response.status_code not in FORCED_OK:
            result.run.violations.append(f"hostile phase: {path} got {response.status_code}")
        if response.status_code != 200 and path.startswith("/api/token"):
            await asyncio.sleep(COOLDOWNS_S)  # or the next build's refresh gets this one's error
    calls, wrong = wrong_totps(fake, since)
    result.refreshes += 1
    result.token_calls += calls
    result.wrong_totps += wrong
    result.most_wrong_per_build = max(result.most_wrong_per_build, wrong)


def read_apart(url: str, stop: EventType, results: Connection) -> None:
    """The readers, in a process of their own: the fake, in the soak's, holds the GIL while it renders
    megabytes of bundle, which would be counted as the service's slowness."""

    async def reading() -> Run:
        run, stopping = Run(), asyncio.Event()
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            readers = [asyncio.create_task(reader(client, run, stopping)) for _ in range(READERS)]
            while not stop.is_set():  # noqa: ASYNC110 - another process's event
                await asyncio.sleep(0.1)
            stopping.set()
            await asyncio.gather(*readers)
        return run

    run = asyncio.run(reading())
    results.send((run.reads, run.read_latencies_ms, run.violations))


async def hostile(url: str, fake: FakeSpotify, pid: int, redis_url: str, seconds: float) -> Hostile:
    result = Hostile(redis=bool(redis_url))
    run = result.run
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=httpx.Limits(max_connections=8)) as client:
        first = await client.get("/api/token")  # the real secret, from a plain bundle
        run.saw(first)
        if first.status_code != 200:
            run.violations.append(f"hostile phase: no first token: {first.status_code}")
            return result
        result.stale_hash = (await client.get("/api/hashes")).json()["operations"]["getTrack"]
        stop, started = asyncio.Event(), time.monotonic()
        sampling = asyncio.create_task(sampler(pid, run, stop, started))
        spawn = multiprocessing.get_context("spawn")
        stop_reading, (received, sent) = spawn.Event(), spawn.Pipe(duplex=False)
        readers = spawn.Process(target=read_apart, args=(url, stop_reading, sent))
        readers.start()
        await asyncio.sleep(SETTLE_S)
        result.rss_before_mb = statistics.median(s.rss_mb for s in run.samples)
        fake.rotate(*ROTATED)
        fake.list_decoys(*DECOYS)
        async with contextlib.AsyncExitStack() as stack:
            redis = await stack.enter_async_context(Redis.from_url(redis_url)) if redis_url else None
            began = time.monotonic()
            while (elapsed := time.monotonic() - began) < seconds:
                if redis is not None and elapsed >= seconds / 2 and result.planted_after_s is None:
                    planting = asyncio.create_task(plant_garbage(redis, REDIS_PREFIX))
                    stack.callback(planting.cancel)
                    result.planted_after_s = elapsed
                await hostile_round(client, fake, result)
        fake.pad_bundle(0)
        await asyncio.sleep(SETTLE_S)
        stop.set()
        stop_reading.set()
        await sampling
        if await asyncio.to_thread(received.poll, READERS_STOP_S):
            run.reads, run.read_latencies_ms, violations = received.recv()
            run.violations += violations
        else:
            run.violations.append(f"hostile phase: the readers did not stop within {READERS_STOP_S:g} s")
        readers.join(READERS_STOP_S)
        readers.kill()
    (RESULTS / "soak-hostile.json").write_text(json.dumps([asdict(s) for s in run.samples], indent=2))
    result.rss_after_mb = statistics.median(s.rss_mb for s in run.samples[-3:])
    return result


def judge_hostile(result: Hostile) -> None:
    run, latencies = result.run, result.run.read_latencies_ms or [0.0]
    if percentile(latencies, 0.99) > READ_P99_MAX_MS or max(latencies) > READ_MAX_MS:
        run.violations.append(
            f"hostile phase: cached reads p99 {percentile(latencies, 0.99):.0f} ms, max "
            f"{max(latencies):.0f} ms (at most {READ_P99_MAX_MS:g} and {READ_MAX_MS:g})"
        )
    if result.rss_after_mb - result.rss_before_mb > RSS_GROWTH_MAX_MB:
        run.violations.append(
            f"hostile phase: tree RSS grew from {result.rss_before_mb:g} to {result.rss_after_mb:g} MB"
        )
    if result.most_wrong_per_build > WRONG_TOTP_BUDGET:
        run.violations.append(
            f"hostile phase: {result.most_wrong_per_build} wrong TOTPs for one build "
            f"(budget {WRONG_TOTP_BUDGET})"
        )


def quartiles(values: list[float]) -> tuple[float, float, float]:
    quarter = max(1, len(values) // 4)
    return statistics.median(values[:quarter]), statistics.median(values[-quarter:]), max(values)


METRICS: dict[str, Callable[[Sample], float]] = {
    "processes": lambda s: s.processes,
    "open files": lambda s: s.open_files,
    "rss MB": lambda s: s.rss_mb,
    "uss MB": lambda s: s.uss_mb,
    "service open files": lambda s: s.service_open_files,
    "service rss MB": lambda s: s.service_rss_mb,
}


@dataclass(frozen=True)
class Row:
    metric: str
    first: float
    last: float
    peak: float
    tolerance: float

    @property
    def growth(self) -> float:
        return self.last - self.first

    @property
    def ok(self) -> bool:
        return self.growth <= self.tolerance


def flatness(run: Run) -> list[Row]:
    return [
        Row(name, *quartiles([read(s) for s in run.samples]), TOLERANCES[name])
        for name, read in METRICS.items()
    ]


def table(rows: list[Row]) -> str:
    lines = [
        "| whole service tree | first quartile (median) | last quartile (median) | max | growth | tolerance "
        "| ok |",
        "| --- | ---: | ---: | ---: | ---: | ---: | :---: |",
    ]
    for row in rows:
        cells = (row.metric, f"{row.first:g}", f"{row.last:g}", f"{row.peak:g}", f"{row.growth:+g}")
        lines.append(f"| {' | '.join(cells)} | {row.tolerance:g} | {'yes' if row.ok else 'NO'} |")
    return "\n".join(lines)


@contextlib.contextmanager
def service(
    fake: FakeSpotify, log_path: Path, settings: dict[str, str]
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    env = service_env(fake, port, **settings)
    env["TOKENER_CA_FILE"] = str(fake.ca_file)  # the direct source checks the fake's certificate
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "spotify_tokener"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_for(url + "/health", timeout_s=30)
            yield process, url
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def stop_cleanly(process: subprocess.Popen[bytes], run: Run) -> float:
    """SIGTERM, then check that the service and every process it started are gone."""
    tree = {process.pid} | {child.pid for child in psutil.Process(process.pid).children(recursive=True)}
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        run.violations.append("the service did not stop within 30 s of SIGTERM")
        return time.monotonic() - started
    stopped_in = time.monotonic() - started
    if code != 0:
        run.violations.append(f"the service exited with {code} on SIGTERM")
    time.sleep(0.5)
    leftover = [pid for pid in tree if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
    if leftover:
        run.violations.append(f"processes left after SIGTERM: {leftover}")
    return stopped_in


def check_log(log_path: Path, run: Run) -> None:
    for line in log_path.read_text(errors="replace").splitlines():
        if any(marker in line for marker in BUG_MARKERS):
            run.violations.append(f"the service logged a bug: {line[:160]}")


def faults_phase(args: argparse.Namespace) -> list[str]:
    log_path = RESULTS / "soak-service.log"
    fake = FakeSpotify().start()
    began = time.monotonic()
    try:
        with service(fake, log_path, {**SERVICE_ENV, "TOKENER_SOURCES": args.sources}) as (process, url):
            run = asyncio.run(soak(url, fake, process.pid, args.refreshes, args.seed))
            if run.samples and run.samples[-1].zombies:
                run.violations.append(f"{run.samples[-1].zombies} zombies at the end")
            stopped_in = stop_cleanly(process, run)
    finally:
        fake.stop()
    check_log(log_path, run)
    rows = flatness(run) if run.samples else []
    run.violations += [
        f"{r.metric} grew by {r.growth:g} (tolerance {r.tolerance:g})" for r in rows if not r.ok
    ]
    duration = time.monotonic() - began
    print(f"duration: {duration:.0f} s, {len(run.samples)} samples, SIGTERM to exit {stopped_in:.1f} s\n")
    print(table(rows))
    print(f"\nforced refreshes by status: {dict(sorted(run.forced.items()))}")
    print("faults injected (count, mean seconds per forced refresh):")
    for fault, count in run.faults.most_common():
        print(f"  {fault}: {count}, {run.fault_seconds[fault] / count:.2f} s")
    latencies = run.read_latencies_ms or [0.0]
    print(
        f"reader requests: {run.reads}, p50 {percentile(latencies, 0.5):.1f} ms, "
        f"p99 {percentile(latencies, 0.99):.1f} ms, max {max(latencies):.0f} ms"
    )
    print(f"zombies seen (max of samples): {max((s.zombies for s in run.samples), default=0)}")
    summary = {
        "machine": machine(),
        "refreshes": args.refreshes,
        "seed": args.seed,
        "sources": args.sources,
        "duration_s": round(duration),
        "forced": dict(run.forced),
        "faults": dict(run.faults),
        "reads": run.reads,
        "flatness": [{**asdict(r), "growth": r.growth, "ok": r.ok} for r in rows],
        "violations": run.violations,
        "samples": [asdict(s) for s in run.samples],
    }
    (RESULTS / "soak.json").write_text(json.dumps(summary, indent=2))
    return run.violations


def hostile_phase(seconds: float) -> list[str]:
    log_path = RESULTS / "soak-hostile-service.log"
    fake = FakeSpotify().start()
    redis = RedisServer(free_port()).start() if shutil.which("redis-server") else None
    settings = {**HOSTILE_ENV, "TOKENER_REDIS_URL": redis.url if redis else ""}
    began = time.monotonic()
    try:
        with service(fake, log_path, settings) as (process, url):
            result = asyncio.run(hostile(url, fake, process.pid, redis.url if redis else "", seconds))
            stopped_in = stop_cleanly(process, result.run)
    finally:
        fake.stop()
        if redis:
            redis.stop()
    check_log(log_path, result.run)
    judge_hostile(result)
    run, latencies = result.run, result.run.read_latencies_ms or [0.0]
    planted = (
        f"garbage Redis records rewritten every 50 ms from {result.planted_after_s:.0f} s"
        if result.planted_after_s is not None
        else "no garbage Redis records (no redis-server)"
    )
    print(
        f"\nhostile upstream: {time.monotonic() - began:.0f} s, {result.refreshes} builds, each with a "
        f"forced refresh and a hash read; {len(DECOYS):,} decoys, bundles padded by "
        f"{HOSTILE_PADDINGS} bytes in turn; {planted}; {fake.count('bundle')} bundle reads"
    )
    print(f"  forced refreshes and hash reads by status: {dict(sorted(run.forced.items()))}")
    print(
        f"  cached reads: {run.reads}, p50 {percentile(latencies, 0.5):.1f} ms, p99 "
        f"{percentile(latencies, 0.99):.1f} ms (at most {READ_P99_MAX_MS:g}), max {max(latencies):.0f} ms "
        f"(at most {READ_MAX_MS:g})"
    )
    peak = max((s.rss_mb for s in run.samples), default=0.0)
    print(
        f"  tree RSS: {result.rss_before_mb:g} MB before, {result.rss_after_mb:g} MB after (growth at "
        f"most {RSS_GROWTH_MAX_MB:g}), peak {peak:g} MB"
    )
    print(
        f"  token calls at the fake: {result.token_calls}, wrong TOTPs {result.wrong_totps}, at most "
        f"{result.most_wrong_per_build} for one build (budget {WRONG_TOTP_BUDGET}); SIGTERM to exit "
        f"{stopped_in:.1f} s"
    )
    return run.violations


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--refreshes", type=int, default=REFRESHES, help="0: no fault phase")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--sources", default="direct,browser", help="TOKENER_SOURCES (the default's)")
    parser.add_argument("--hostile-seconds", type=float, default=HOSTILE_S, help="0: no hostile phase")
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    print(f"machine: {machine()}")
    command = (
        f"bench/soak.py --refreshes {args.refreshes} --seed {args.seed} --sources {args.sources} "
        f"--hostile-seconds {args.hostile_seconds:g}"
    )
    print(f"command: make soak ({command})")
    violations = faults_phase(args) if args.refreshes else []
    if args.hostile_seconds:
        violations += hostile_phase(args.hostile_seconds)
    if violations:
        print("\nFAILED:\n  " + "\n  ".join(violations[:20]))
        return 1
    print(
        "\nok: nothing grew beyond its tolerance, no reader saw an error while a token was valid, "
        "the hostile upstream kept within every bound"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
