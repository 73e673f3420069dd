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
from typing import Any

import uvloop
from pydantic import ValidationError

from spotify_tokener import __version__
from spotify_tokener.http.server import TokenerServer
from spotify_tokener.logs import LogFormat, configure_logging
from spotify_tokener.settings import (
    Settings,
    deprecated_names,
    forget_environment,
    requested_log_format,
    stray_variables,
)
from spotify_tokener.sources.browser.reaper import become_subreaper, reap_forever, reap_orphans
from spotify_tokener.wiring import create_app

log = logging.getLogger(__name__)

DRIVER_GONE = "Connection closed while reading from the driver"
PREFIX = Settings.model_config["env_prefix"]
BARE_NAMES = {"HOST", "PORT"}
"""The settings also read without the prefix (HOST, PORT), as the original project read them."""
EXIT_CONFIG = 2
EXIT_RUNTIME = 1


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="spotify-tokener",
        description="Serve Spotify web-player access tokens over HTTP. "
        "Every setting is an environment variable; see docs/configuration.md.",
    )
    fields = Settings.model_fields
    parser.add_argument("--host", help=f"address to listen on (env HOST, default {fields['host'].default})")
    parser.add_argument(
        "--port", type=int, help=f"port to listen on (env PORT, default {fields['port'].default})"
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser.parse_args(argv)


def load_settings(args: argparse.Namespace) -> Settings:
    overrides = {name: getattr(args, name) for name in ("host", "port") if getattr(args, name) is not None}
    return Settings(**overrides)


def describe(error: ValidationError) -> str:
    """One line per bad setting, naming its variable; the offending value is not echoed."""
    lines = []
    for item in error.errors():
        message = item["msg"].removeprefix("Value error, ")
        if not item["loc"]:  # a rule across settings: its message names them
            lines.append(f"invalid settings: {message}")
            continue
        field = str(item["loc"][0]).upper().removeprefix(PREFIX)
        name = f"{field} (or {PREFIX}{field})" if field in BARE_NAMES else f"{PREFIX}{field}"
        lines.append(f"invalid setting {name}: {message}")
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
    except ValidationError as error:
        log_format = requested_log_format()
        configure_logging("ERROR", log_format)
        report(describe(error), log_format)
        return EXIT_CONFIG
    configure_logging(settings.log_level, settings.log_format)
    if deprecated := deprecated_names():
        log.warning("%s", deprecated)
    for stray in stray_variables():
        log.warning("%s", stray)
    forget_environment()
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(_serve(settings))
    except OSError as error:
        report(
            f"spotify-tokener: cannot serve on {settings.host}:{settings.port}: {error}", settings.log_format
        )
        return EXIT_RUNTIME
    return 0
