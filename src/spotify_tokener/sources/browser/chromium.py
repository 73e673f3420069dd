"""How Chromium is found and launched (executable, flags, sandbox): decisions the manager applies."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shlex
import shutil
import stat
import tempfile
from pathlib import Path

from spotify_tokener.domain.errors import BrowserMissing
from spotify_tokener.domain.proxy import ConnectTo

NODE_CACHE_DIR = "spotify-tokener-node-compile-cache"
SHELL_MARK = "headless-shell"  # in Debian's chromium-headless-shell and Playwright's chrome-headless-shell
HEADLESS_SHELL = f"chromium-{SHELL_MARK}"
# Debian's binary, not its /usr/bin wrapper: the wrapper does not exec, so it would stay the browser's
# parent and outlive a browser that was killed.
DEBIAN_HEADLESS_SHELL = Path(f"/usr/lib/chromium/{HEADLESS_SHELL}")
FULL_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Playwright's registry on Linux: <root>/chromium-<rev>/chrome-linux64/chrome, and beside it
# <root>/chromium_headless_shell-<rev>/chrome-headless-shell-linux64/chrome-headless-shell.
PLAYWRIGHT_CHROMIUM_DIR = "chromium"
PLAYWRIGHT_SHELL_DIR = "chromium_headless_shell"
PLAYWRIGHT_SHELL = f"chrome-{SHELL_MARK}"
INSTALL_HINT = (
    "no Chromium found: run `make setup`, or `apt-get install -y chromium-headless-shell` (or "
    "chromium), or `python -m playwright install --only-shell chromium`, or set TOKENER_BROWSER_PATH"
)
NO_PLAYWRIGHT = "Playwright is not installed (pip install 'spotify-tokener[browser]')"
SANDBOX_REFUSALS = (
    "no usable sandbox",
    "failed to move to new namespace",
    "without --no-sandbox is not supported",
    "check failed: sys_chroot(",  # user namespaces allowed, but no capability left to use in them (podman)
)
BASE_ARGS = (
    # The GPU process inside the browser process: one process fewer, measured. (No
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
    """Let the Playwright driver (Node) reuse its compiled code between launches (0.29 s to start: 0.22 s),
    unless the operator set it. The folder, in the shared temporary folder, is used only if it is ours
    and closed to others, or another local user could plant code the driver would run."""
    if "NODE_COMPILE_CACHE" not in os.environ:
        folder = Path(tempfile.gettempdir()) / f"{NODE_CACHE_DIR}-{os.geteuid()}"
        if _private_folder(folder):
            os.environ["NODE_COMPILE_CACHE"] = str(folder)


def _private_folder(folder: Path) -> bool:
    """``folder`` made, or found, a real folder of this user's that no one else may enter."""
    with contextlib.suppress(FileExistsError, OSError):
        folder.mkdir(mode=0o700)
    try:
        found = folder.lstat()  # a symbolic link planted there is not followed: it is refused
    except OSError:
        return False
    private = stat.S_IMODE(found.st_mode) & 0o077 == 0
    return stat.S_ISDIR(found.st_mode) and found.st_uid == os.geteuid() and private


def chromium_args(extra: str, connect_to: ConnectTo) -> list[str]:
    """The operator's extras last: Chromium keeps the last of a repeated flag. ``TOKENER_CONNECT_TO``
    becomes resolver rules, for connections without a proxy (through one, the relay applies them).
    No ``--no-sandbox``: Playwright adds it whenever a launch asks for no sandbox."""
    rules = ", ".join(f"MAP {source.host} {target}" for source, target in connect_to.items())
    resolver = [f"--host-resolver-rules={rules}"] if rules else []
    return [*BASE_ARGS, *resolver, *shlex.split(extra)]


def wants_sandbox(mode: str, euid: int) -> bool:
    """The sandbox is the first defence against a hostile page, but Chromium refuses it to root."""
    return mode == "on" or (mode == "auto" and euid != 0)


def sandbox_refused(message: str) -> bool:
    """Whether a failed launch was Chromium unable to set up its sandbox (a container's seccomp
    profile refusing user namespaces, a kernel without them, or running as root)."""
    return any(marker in message.lower() for marker in SANDBOX_REFUSALS)


def find_executable(
    configured: Path | None, playwright_own: str, debian_shell: Path = DEBIAN_HEADLESS_SHELL
) -> Path:
    """The configured one; else a headless shell, what Playwright itself runs headless; else a full
    Chromium, which sets up a whole profile for each fresh context (slower: `make bench-browsers`)."""
    own = Path(playwright_own) if playwright_own else None
    found = configured or headless_shell(own, debian_shell) or full_chromium(own)
    if found is None or not found.is_file():
        raise BrowserMissing(missing(configured) or INSTALL_HINT)
    return found


def missing(configured: Path | None) -> str | None:
    """Why there is no Chromium to launch, asked without starting Playwright's driver: neither the
    configured one, nor one :func:`find_executable` takes besides Playwright's, nor any in Playwright's
    download folder (``PLAYWRIGHT_BROWSERS_PATH``, else its default on Linux)."""
    if configured is not None:
        return None if configured.is_file() else f"TOKENER_BROWSER_PATH does not exist: {configured}"
    root = Path(os.environ.get("PLAYWRIGHT_BROWSERS_PATH") or Path.home() / ".cache" / "ms-playwright")
    downloads = (f"{PLAYWRIGHT_SHELL_DIR}-*/*/{PLAYWRIGHT_SHELL}", f"{PLAYWRIGHT_CHROMIUM_DIR}-*/*/chrome")
    found = any(path.is_file() for pattern in downloads for path in root.glob(pattern))
    return None if found or headless_shell(None) or full_chromium(None) else INSTALL_HINT


def unavailable(configured: Path | None) -> str | None:
    """Why the browser cannot run at all, said at start without importing or launching anything."""
    try:
        playwright = importlib.util.find_spec("playwright")
    except (ImportError, ValueError):  # a broken install, or one a test has hidden
        playwright = None
    return NO_PLAYWRIGHT if playwright is None else missing(configured)


def headless_shell(playwright_own: Path | None, debian_shell: Path = DEBIAN_HEADLESS_SHELL) -> Path | None:
    own_shell = playwright_headless_shell(playwright_own) if playwright_own is not None else None
    return _first_file(own_shell, debian_shell, shutil.which(HEADLESS_SHELL))


def full_chromium(playwright_own: Path | None) -> Path | None:
    """Playwright's full Chromium, then one on PATH: where no shell is installed, and for the tests of
    what only the full browser does (it double-forks a crash handler, which the shell never starts)."""
    return _first_file(playwright_own, *(shutil.which(name) for name in FULL_BROWSERS))


def playwright_headless_shell(chromium: Path) -> Path | None:
    """The headless shell of the same revision beside Playwright's Chromium: Playwright names only its
    full Chromium (``executable_path``), which, given explicitly, it would launch."""
    build = chromium.parent.parent
    name, dash, revision = build.name.partition("-")
    if name != PLAYWRIGHT_CHROMIUM_DIR or not dash:
        return None
    shell_dir = build.parent / f"{PLAYWRIGHT_SHELL_DIR}-{revision}"
    return _first_file(*sorted(shell_dir.glob(f"{PLAYWRIGHT_SHELL}-*/{PLAYWRIGHT_SHELL}")))


def is_headless_shell(executable: Path) -> bool:
    """Asked by ``make setup``, which installs a shell where only a full Chromium is found."""
    return SHELL_MARK in executable.name


def _first_file(*candidates: Path | str | None) -> Path | None:
    return next((Path(path) for path in candidates if path is not None and Path(path).is_file()), None)
