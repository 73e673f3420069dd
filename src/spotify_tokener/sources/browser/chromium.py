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
HEADLESS_SHELL = "chromium-headless-shell"
# Debian's binary, not its /usr/bin wrapper: the wrapper does not exec, so it would stay the browser's
# parent and outlive a browser that was killed.
DEBIAN_HEADLESS_SHELL = Path("/usr/lib/chromium/chromium-headless-shell")
FULL_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL_HINT = (
    "no Chromium found: run `make setup`, or `apt-get install -y chromium-headless-shell` (or "
    "chromium), or `python -m playwright install chromium`, or set TOKENER_BROWSER_PATH"
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


def find_executable(
    configured: Path | None, playwright_own: str, debian_shell: Path = DEBIAN_HEADLESS_SHELL
) -> Path:
    """The browser to launch: the configured one; else a headless shell, Playwright's then the
    system's; else a full Chromium, Playwright's then one on PATH.

    The headless shell is what Playwright itself runs headless: a full Chromium sets up a whole
    browser profile for each fresh context, which makes every fetch slower and costlier
    (BENCHMARKS.md, "The headless shell").
    """
    if configured is not None:
        if not configured.is_file():
            raise BrowserMissing(f"TOKENER_BROWSER_PATH does not exist: {configured}")
        return configured
    own = Path(playwright_own) if playwright_own else None
    candidates = [
        playwright_headless_shell(own) if own is not None else None,
        debian_shell,
        _on_path(HEADLESS_SHELL),
        own,
        *(_on_path(name) for name in FULL_BROWSERS),
    ]
    for candidate in candidates:
        if candidate is not None and candidate.is_file():
            return candidate
    raise BrowserMissing(INSTALL_HINT)


def playwright_headless_shell(chromium: Path) -> Path | None:
    """The headless shell ``playwright install chromium`` puts beside its Chromium, of the same
    revision: ``<root>/chromium-<rev>/chrome-<platform>/chrome`` has its shell in
    ``<root>/chromium_headless_shell-<rev>/chrome-headless-shell-<platform>/chrome-headless-shell``."""
    build = chromium.parent.parent
    name, dash, revision = build.name.partition("-")
    if name != "chromium" or not dash:
        return None
    shells = sorted(
        (build.parent / f"chromium_headless_shell-{revision}").glob(
            "chrome-headless-shell-*/chrome-headless-shell"
        )
    )
    return shells[0] if shells else None


def is_headless_shell(executable: Path) -> bool:
    """Asked by ``make setup``, which installs a shell where only a full Chromium is found."""
    return "headless-shell" in executable.name


def _on_path(name: str) -> Path | None:
    found = shutil.which(name)
    return Path(found) if found else None
