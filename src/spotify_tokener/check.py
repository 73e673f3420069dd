"""``spotify-tokener check``: does it work from here, and if not, what exactly fails.

Each configured source is tried once, in order, on its own (no cool-down or fall-through applies), and
each token is shown to the web player's own API, pathfinder, in one read-only ``getTrack`` with the
hash the page's scripts name: a source is ``ok`` only when Spotify takes its token there, as LavaSrc
will. Built from the service's settings and code, beside a running service: no port, no Redis, no
state folder (it learns as a first start would). What it prints is written here: never an upstream
body, a token or a cookie.
"""

from __future__ import annotations

import asyncio
import os
import platform
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from spotify_tokener import __version__
from spotify_tokener.core.hashes import LEARNING_TIMEOUT_S
from spotify_tokener.core.ports import TokenSource
from spotify_tokener.domain.clock import wall_clock_ms
from spotify_tokener.domain.errors import TokenError
from spotify_tokener.domain.hashes import HashSet
from spotify_tokener.domain.proxy import Proxy, parse_proxies
from spotify_tokener.domain.token import ANONYMOUS, HTTP_OK, Token
from spotify_tokener.settings import FIELDS, Hidden, Settings, default, variable
from spotify_tokener.wiring import standalone_sources

if TYPE_CHECKING:
    from spotify_tokener.sources.direct.reader import WebPlayer

PARTNER_URL = "https://api-partner.spotify.com/pathfinder/v2/query"
OPERATION = "getTrack"
TRACK = "spotify:track:11dFghVXANMlKmJXsNCbNl"  # public: the embed source's default entity
PARTNER_CALL = {
    "Accept": "application/json",
    "App-Platform": "WebPlayer",
    "Content-Type": "application/json;charset=UTF-8",
    "Sec-Fetch-Dest": "empty",
    "Sec-Fetch-Mode": "cors",
    "Sec-Fetch-Site": "same-site",
}
NOT_FOUND = "PersistedQueryNotFound"
CREDENTIALS = re.compile(r"://[^/@\s]*@")
COLUMNS = ("source", "ok", "validated", "token ms", "partner ms", "expires in s", "error")

Findings = dict[str, Any]


async def run(settings: Settings) -> Findings:
    """What ``--json`` prints: every source's result, what was learned, the versions, the timings."""
    started = time.perf_counter()
    sources, web = standalone_sources(settings)
    try:
        tried = [await _token(named.name, named.source) for named in sources.chain.sources]
        proxy = next(iter(sources.proxies.order(ANONYMOUS)), None) if sources.proxies else None
        hashes, hashes_error, hashes_ms = await _hashes(web, proxy)
        for row, token in tried:
            if token is not None:
                await _validate(row, token, web, hashes or hashes_error, proxy)
        browser = sources.browser.version if sources.browser else None
        pool = sources.proxies.states() if sources.proxies else None
    finally:
        await sources.close()
    results = [row for row, _ in tried]
    unavailable = sources.browser.unavailable if sources.browser else None
    if unavailable and "browser" not in [one["source"] for one in results]:
        results.append(_row("browser", error=f"not run: {unavailable}", skipped=True))
    learner = sources.direct.learner if sources.direct else None
    working = [one["ok"] for one in results if not one["skipped"]]
    return {
        "ok": all(working),
        "working": f"{sum(working)} of {len(working)}",
        "version": __version__,
        "browser": f"Chromium {browser}" if browser else None,
        "impersonates": f"Chrome {web.client.chrome_version}",
        "learned": {
            "secretVersion": learner.totp_version if learner else None,
            "secretOrigin": learner.secret_origin if learner else None,
            "bundle": hashes.bundle if hashes else learner.bundle if learner else None,
            "appVersion": hashes.app_version if hashes else None,
            "operations": len(hashes.operations) if hashes else None,
            "hashesMs": hashes_ms,
            "hashesError": hashes_error,
        },
        "sources": results,
        "proxies": None
        if pool is None
        else [{"proxy": one.proxy.label, "lastError": one.last_error} for one in pool],
        "ms": _ms_since(started),
        "checkedAt": wall_clock_ms(),
    }


def exit_status(findings: Findings) -> int:
    """0: every source tried works; 1: some do; 2: none does."""
    working = [one["ok"] for one in findings["sources"] if not one["skipped"]]
    return 0 if all(working) else 1 if any(working) else 2


def verdict(status: int, body: bytes) -> tuple[bool, str | None]:
    """(whether the partner API judged the token, why it is not ok): in our words, never its body."""
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        answer = None
    answer = answer if isinstance(answer, dict) else {}
    errors = answer.get("errors")
    errors = errors if isinstance(errors, list) else []
    if any(isinstance(error, dict) and error.get("message") == NOT_FOUND for error in errors):
        return False, f"{NOT_FOUND}: the partner API does not take the {OPERATION} hash the page names"
    if status in (401, 403):
        return True, f"partner API refused the token: {status}"
    if status != HTTP_OK:
        return False, f"partner API answered HTTP {status}"
    if errors or not isinstance(answer.get("data"), dict):
        return False, "partner API answered without data"
    return True, None


def _row(source: str, **fields: Any) -> dict[str, Any]:
    row = {"source": source, "ok": False, "validated": False, "ms": 0, "partnerMs": None}
    return {**row, "expiresInS": None, "error": None, "skipped": False, **fields}


async def _token(name: str, source: TokenSource) -> tuple[dict[str, Any], Token | None]:
    started = time.perf_counter()
    try:
        token = await source.attempt()
    except Exception as error:  # a crash is a finding too
        cause = str(error) if isinstance(error, TokenError) else f"crashed ({type(error).__name__})"
        return _row(name, ms=_ms_since(started), error=cause), None
    return _row(name, ms=_ms_since(started), expiresInS=token.remaining_ms(wall_clock_ms()) // 1000), token


async def _hashes(web: WebPlayer, proxy: Proxy | None) -> tuple[HashSet | None, str | None, int]:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(LEARNING_TIMEOUT_S):
            return await web.hashes(None, proxy, wall_clock_ms() // 1000), None, _ms_since(started)
    except TimeoutError:
        cause = f"the web player's scripts were not read in {LEARNING_TIMEOUT_S:g} s"
    except TokenError as error:
        cause = str(error)
    return None, cause, _ms_since(started)


async def _validate(
    row: dict[str, Any], token: Token, web: WebPlayer, hashes: HashSet | str | None, proxy: Proxy | None
) -> None:
    """One read-only pathfinder call with the token (``hashes``: the page's, or why there are none);
    ``row`` says what Spotify made of it."""
    sha = hashes.operations.get(OPERATION) if isinstance(hashes, HashSet) else None
    if not isinstance(hashes, HashSet) or sha is None:
        row["error"] = f"not validated: {hashes or f'the scripts name no {OPERATION} hash'}"
        return
    query = {"operationName": OPERATION, "variables": {"uri": TRACK}}
    query["extensions"] = {"persistedQuery": {"version": 1, "sha256Hash": sha}}
    headers = {**web.headers(PARTNER_CALL), "Authorization": f"Bearer {token.access_token}"}
    if hashes.app_version:
        headers["Spotify-App-Version"] = hashes.app_version
    started = time.perf_counter()
    try:
        reply = await web.client.get(
            PARTNER_URL, cookies={}, headers=headers, proxy=proxy, post=orjson.dumps(query)
        )
    except TokenError as failure:
        row.update(partnerMs=_ms_since(started), error=f"partner API: {failure}")
        return
    validated, cause = verdict(reply.status, reply.body)
    row.update(ok=cause is None, validated=validated, partnerMs=_ms_since(started), error=cause)


def _ms_since(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


def table(findings: Findings, markdown: bool = False) -> str:
    """The sources' results as aligned text, or as a Markdown table."""
    rows = [COLUMNS] + [_cells(one) for one in findings["sources"]]
    if markdown:
        rows.insert(1, ("---",) * len(COLUMNS))
        return "\n".join(f"| {' | '.join(row)} |" for row in rows)
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows)
    return "\n".join(line.rstrip() for line in lines)


def _cells(one: dict[str, Any]) -> tuple[str, ...]:
    said = "skipped" if one["skipped"] else "yes" if one["ok"] else "no"
    numbers = [one["ms"], one["partnerMs"], one["expiresInS"]]
    shown = ["" if one["skipped"] or number is None else str(number) for number in numbers]
    return (one["source"], said, "yes" if one["validated"] else "no", *shown, one["error"] or "")


def summary(findings: Findings) -> str:
    learned = findings["learned"]
    secret = (
        f"v{learned['secretVersion']} ({learned['secretOrigin']})" if learned["secretVersion"] else "none"
    )
    hashes = f"{learned['operations']} hashes" if learned["operations"] else learned["hashesError"]
    return (
        f"spotify-tokener {findings['version']} check: {findings['working']} sources work "
        f"(exit {exit_status(findings)})\n{table(findings)}\n"
        f"secret {secret}; bundle {learned['bundle'] or 'unknown'}; "
        f"app version {learned['appVersion'] or 'unknown'}; {hashes}; "
        f"{findings['browser'] or 'no browser run'}; curl_cffi as {findings['impersonates']}"
    )


def report(findings: Findings, settings: Settings) -> str:
    """A bug report to paste into an issue: versions, platform, settings with secrets masked, results."""
    shown = "\n".join(f"    {name}={value}" for name, value in masked_settings(settings).items())
    return (
        f"### spotify-tokener check\n\n"
        f"- spotify-tokener {findings['version']}, Python {platform.python_version()}, "
        f"{platform.platform()}\n"
        f"- {findings['browser'] or 'no browser run'}; curl_cffi as {findings['impersonates']}\n"
        f"- {findings['working']} sources work (exit {exit_status(findings)}), in {findings['ms']} ms\n"
        f"- learned: `{orjson.dumps(findings['learned']).decode()}`\n"
        f"- proxies: `{orjson.dumps(findings['proxies']).decode()}`\n\n"
        f"{table(findings, markdown=True)}\n\n"
        f"Settings not at their defaults (secrets masked):\n\n{shown or '    (none)'}\n"
    )


def masked_settings(settings: Settings) -> dict[str, str]:
    """Each setting not at its default, by its variable's name; no password, key or secret."""
    values = {name: getattr(settings, name) for name in FIELDS}
    return {variable(name): _masked(name, value) for name, value in values.items() if value != default(name)}


def _masked(name: str, value: object) -> str:
    shown = value.get_secret_value() if isinstance(value, Hidden) else str(value)
    if name == "proxy":
        proxies = parse_proxies(shown)
        return ",".join(f"{one.label}{' (with credentials)' if one.username else ''}" for one in proxies)
    if name == "redis_url":
        return CREDENTIALS.sub("://***@", shown).split("?")[0]
    return "***" if isinstance(value, Hidden) else CREDENTIALS.sub("://***@", shown)


def write_textfile(findings: Findings, path: Path) -> None:
    """node_exporter's textfile collector format, replaced whole (a scrape never reads half a file);
    a skipped source has no series, so that an alert on a 0 means a source that stopped working."""
    tried = [one for one in findings["sources"] if not one["skipped"]]
    lines = [
        "# HELP tokener_check_ok Whether the source's token was taken by the partner API in the last check.",
        "# TYPE tokener_check_ok gauge",
        *(f'tokener_check_ok{{source="{one["source"]}"}} {int(one["ok"])}' for one in tried),
        "# HELP tokener_check_timestamp_seconds When the last check ended.",
        "# TYPE tokener_check_timestamp_seconds gauge",
        f"tokener_check_timestamp_seconds {findings['checkedAt'] / 1000:.3f}",
    ]
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text("\n".join(lines) + "\n")
    temporary.replace(path)


def print_findings(findings: Findings, settings: Settings, as_json: bool, as_report: bool) -> int:
    if as_json:
        sys.stdout.write(orjson.dumps(findings).decode() + "\n")
    else:
        print(report(findings, settings) if as_report else summary(findings))
    return exit_status(findings)
