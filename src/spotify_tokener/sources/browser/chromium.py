"""How Chromium is found and launched: executable, flags, user agent, sandbox.

Decisions only, no browser driven here: the manager applies them at each launch.
"""

from __future__ import annotations

import os
import shlex
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from spotify_tokener.domain.egress import ConnectTo
from spotify_tokener.domain.errors import BrowserMissing

NODE_CACHE_DIR = "spotify-tokener-node-compile-cache"
SYSTEM_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL_HINT = (
    "no Chromium found: run `make setup`, or `apt-get install -y chromium`, "
    "or `python -m playwright install chromium`, or set TOKENER_BROWSER_PATH"
)
SANDBOX_REFUSALS = (
    "no usable sandbox",
    "failed to move to new namespace",
    "without --no-sandbox is not supported",
)
BASE_ARGS = (
    # The GPU process inside the browser process: one process fewer (BENCHMARKS.md). (No
    # --enable-features here: Chromium keeps only the last one, which would cancel Playwright's own.)
    "--in-process-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--disable-gpu",
)


def enable_node_compile_cache() -> None:
    """Let the Playwright driver (Node) reuse its compiled code between launches (BENCHMARKS.md).

    The driver inherits this process's environment; an operator's own setting is left alone.
    """
    os.environ.setdefault("NODE_COMPILE_CACHE", str(Path(tempfile.gettempdir()) / NODE_CACHE_DIR))


def chromium_args(extra: str, connect_to: ConnectTo, spki: Sequence[str] = ()) -> list[str]:
    """Flags for every launch: quiet networking, Docker-safe /dev/shm, the connect-to overrides, the
    extra certificates trusted (by public key), then the operator's extras (Chromium keeps the last of
    a repeated flag, so theirs win).

    No ``--no-sandbox`` here: Playwright adds it whenever a launch asks for no sandbox.
    """
    trusted = [f"--ignore-certificate-errors-spki-list={','.join(spki)}"] if spki else []
    return [*BASE_ARGS, *resolver_rules(connect_to), *trusted, *shlex.split(extra)]


def resolver_rules(connect_to: ConnectTo) -> list[str]:
    """``TOKENER_CONNECT_TO`` as Chromium's resolver rules, for connections without a proxy.

    Chromium maps a host for every port; through a proxy, the relay applies the rules instead.
    """
    if not connect_to:
        return []
    rules = ", ".join(f"MAP {source.host} {target}" for source, target in connect_to.items())
    return [f"--host-resolver-rules={rules}"]


def wants_sandbox(mode: str, euid: int) -> bool:
    """The sandbox is the first defence against a hostile page, but Chromium refuses it to root."""
    return mode == "on" or (mode == "auto" and euid != 0)


def sandbox_refused(message: str) -> bool:
    """Whether a failed launch was Chromium unable to set up its sandbox (a container's seccomp
    profile refusing user namespaces, a kernel without them, or running as root)."""
    text = message.lower()
    return any(marker in text for marker in SANDBOX_REFUSALS)


def find_executable(configured: Path | None, playwright_own: str) -> Path:
    """The browser to launch: configured path, else Playwright's download, else one on PATH."""
    if configured is not None:
        if not configured.is_file():
            raise BrowserMissing(f"TOKENER_BROWSER_PATH does not exist: {configured}")
        return configured
    if playwright_own and Path(playwright_own).is_file():
        return Path(playwright_own)
    for name in SYSTEM_BROWSERS:
        found = shutil.which(name)
        if found:
            return Path(found)
    raise BrowserMissing(INSTALL_HINT)
