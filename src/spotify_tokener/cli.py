"""``spotify-tokener`` / ``python -m spotify_tokener``: parse flags, read settings, serve."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys
from asyncio import AbstractEventLoop
from functools import partial
from pathlib import Path
from typing import Any

import uvloop

from spotify_tokener import __version__, check
from spotify_tokener.http.server import TokenerServer
from spotify_tokener.logs import LogFormat, configure_logging
from spotify_tokener.settings import (
    BARE,
    InvalidSettings,
    Settings,
    default,
    deprecated_names,
    forget_environment,
    requested_log_format,
    stray_variables,
    variable,
)
from spotify_tokener.sources.browser.reaper import become_subreaper, reap_forever, reap_orphans
from spotify_tokener.wiring import create_app

log = logging.getLogger(__name__)

DRIVER_GONE = "Connection closed while reading from the driver"
EXIT_CONFIG = 2
EXIT_RUNTIME = 1


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="spotify-tokener",
        description="Serve Spotify web-player access tokens over HTTP. "
        "Every setting is an environment variable; see docs/configuration.md.",
    )
    parser.add_argument("--host", help=f"address to listen on (env HOST, default {default('host')})")
    parser.add_argument("--port", type=int, help=f"port to listen on (env PORT, default {default('port')})")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    check = parser.add_subparsers(dest="command").add_parser(
        "check",
        help="try each configured source once and show Spotify's partner API each token",
        description="Exit 0: every source works; 1: some do; 2: none does. See docs/check.md.",
    )
    check.add_argument("--json", action="store_true", help="print one JSON object")
    check.add_argument("--report", action="store_true", help="print a redacted bug report to paste")
    check.add_argument("--textfile", type=Path, help="also write node_exporter textfile metrics here")
    return parser.parse_args(argv)


def load_settings(args: argparse.Namespace) -> Settings:
    overrides = {name: getattr(args, name) for name in ("host", "port") if getattr(args, name) is not None}
    return Settings.from_environment(**overrides)


def describe(error: InvalidSettings) -> str:
    """One line per bad setting, naming its variable; the offending value is not echoed."""
    lines = []
    for field, problem in error.problems.items():
        name = f"{field.upper()} (or {variable(field)})" if field in BARE else variable(field)
        # No field: a rule across settings, whose message names them.
        lines.append(f"invalid setting {name}: {problem}" if field else f"invalid settings: {problem}")
    return "\n".join(lines)


def report(message: str, log_format: LogFormat) -> None:
    """A failure that ends the process. In text its bare lines, for a person at a terminal; in JSON one
    ERROR record per line through the configured logging, for the pipeline that reads every other line."""
    if log_format == "text":
        print(message, file=sys.stderr)
        return
    for line in message.splitlines():
        log.error("%s", line)


async def _serve(settings: Settings) -> None:
    server = TokenerServer(settings, create_app(settings))
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, server.stop)
    loop.set_exception_handler(partial(_quiet_driver_death, server))
    reaping = loop.create_task(reap_forever()) if become_subreaper() else None
    gc.freeze()  # start-up objects live forever: keep the collector from rescanning them under load
    try:
        await server.run()
    finally:
        if reaping is not None:
            reaping.cancel()
        reap_orphans()


def _quiet_driver_death(server: TokenerServer, loop: AbstractEventLoop, context: dict[str, Any]) -> None:
    """Ctrl-C in a terminal reaches the whole process group, Playwright's driver included; its death
    then surfaces as an unretrieved future. While stopping that is expected, not an error."""
    if server.stopping and DRIVER_GONE in str(context.get("exception")):
        log.debug("the Playwright driver ended with the service")
        return
    loop.default_exception_handler(context)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = load_settings(args)
    except InvalidSettings as error:
        log_format = requested_log_format()
        configure_logging("ERROR", log_format)
        report(describe(error), log_format)
        return EXIT_CONFIG
    quiet = args.command == "check" and settings.log_level == "INFO"  # the table is what to read
    configure_logging("WARNING" if quiet else settings.log_level, settings.log_format)
    if deprecated := deprecated_names():
        log.warning("%s", deprecated)
    for stray in stray_variables():
        log.warning("%s", stray)
    forget_environment()
    if args.command == "check":
        findings = uvloop.run(check.run(settings))
        if args.textfile is not None:
            check.write_textfile(findings, args.textfile)
        return check.print_findings(findings, settings, args.json, args.report)
    try:
        uvloop.run(_serve(settings))
    except OSError as error:
        report(
            f"spotify-tokener: cannot serve on {settings.host}:{settings.port}: {error}", settings.log_format
        )
        return EXIT_RUNTIME
    return 0
