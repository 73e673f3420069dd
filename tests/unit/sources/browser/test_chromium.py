from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from spotify_tokener.domain.errors import BrowserMissing
from spotify_tokener.domain.proxy import parse_connect_to
from spotify_tokener.sources.browser.chromium import (
    BASE_ARGS,
    chromium_args,
    enable_node_compile_cache,
    find_executable,
    is_headless_shell,
    playwright_headless_shell,
    sandbox_refused,
    wants_sandbox,
)
from spotify_tokener.sources.user_agent import agent_for


def test_args_quiet_the_network_and_split_extras_like_a_shell() -> None:
    args = chromium_args("--a '--rules=MAP x y, MAP z w'", {})
    assert args[: len(BASE_ARGS)] == list(BASE_ARGS)
    assert "--disable-background-networking" in args
    assert args[-2:] == ["--a", "--rules=MAP x y, MAP z w"]
    assert "--no-sandbox" not in args
    assert not any(arg.startswith("--host-resolver-rules") for arg in args)


def test_connect_to_becomes_resolver_rules_that_the_operators_own_flags_follow() -> None:
    rules = parse_connect_to("open.spotify.com:443:127.0.0.1:8443, open.spotifycdn.com:443:10.0.0.2:9000")
    args = chromium_args("'--host-resolver-rules=MAP x y'", rules)
    mapped = "MAP open.spotify.com 127.0.0.1:8443, MAP open.spotifycdn.com 10.0.0.2:9000"
    assert args[len(BASE_ARGS) :] == [f"--host-resolver-rules={mapped}", "--host-resolver-rules=MAP x y"]


@pytest.mark.parametrize(
    ("mode", "euid", "sandboxed"),
    [("auto", 1000, True), ("auto", 0, False), ("on", 0, True), ("off", 1000, False)],
)
def test_the_sandbox_is_wanted_unless_root_or_turned_off(mode: str, euid: int, sandboxed: bool) -> None:
    assert wants_sandbox(mode, euid) is sandboxed


@pytest.mark.parametrize(
    ("log", "refused"),
    [
        ("[FATAL:zygote_host_impl_linux.cc(128)] No usable sandbox! If you are running on Ubuntu", True),
        ("Failed to move to new namespace: ... errno = Operation not permitted", True),
        ("Running as root without --no-sandbox is not supported. See https://crbug.com/638180.", True),
        ('Check failed: sys_chroot("/proc/self/fdinfo/") == 0', True),
        ("error while loading shared libraries: libnss3.so", False),
        ("Target page, context or browser has been closed", False),
    ],
)
def test_a_sandbox_refusal_is_told_from_other_launch_failures(log: str, refused: bool) -> None:
    assert sandbox_refused(f"BrowserType.launch: {log}") is refused


def test_user_agent_follows_the_browser_and_never_says_headless_unless_the_operator_says_so() -> None:
    agent = agent_for("", "156.0.8078.79")
    assert "Chrome/156.0.0.0" in agent
    assert "Headless" not in agent
    assert agent_for("HeadlessChrome/1", "156.0.8078.79") == "HeadlessChrome/1"


def executable(path: Path) -> Path:
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


NO_DEBIAN_SHELL = Path(os.devnull + "-missing")
CHROME = Path("chromium-1255/chrome-linux64/chrome")
SHELL = Path("chromium_headless_shell-1255/chrome-headless-shell-linux64/chrome-headless-shell")


def playwright_download(root: Path, *, chromium: bool = True, shell: Path | None = SHELL) -> Path:
    """Playwright's layout under ``root`` (``install chromium``, ``--only-shell``, ``--no-shell``):
    the path Playwright names as its Chromium, whether or not that one is installed."""
    if shell is not None:
        (root / shell).parent.mkdir(parents=True)
        executable(root / shell)
    if chromium:
        (root / CHROME).parent.mkdir(parents=True)
        executable(root / CHROME)
    return root / CHROME


def test_configured_path_comes_first(tmp_path: Path) -> None:
    configured = executable(tmp_path / "mine")
    own = playwright_download(tmp_path)
    assert find_executable(configured, str(own), NO_DEBIAN_SHELL) == configured


def test_a_missing_configured_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(BrowserMissing, match="TOKENER_BROWSER_PATH"):
        find_executable(tmp_path / "nope", "")


# Most preferred first; each case installs one and everything after it.
PREFERENCE = ("playwright-shell", "debian-shell", "bin/chromium-headless-shell", "playwright", "bin/chromium")


@pytest.mark.parametrize("chosen", PREFERENCE)
def test_a_headless_shell_comes_before_a_full_chromium_and_playwrights_before_the_systems(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chosen: str
) -> None:
    installed = PREFERENCE[PREFERENCE.index(chosen) :]
    (tmp_path / "bin").mkdir()
    for name in set(installed) & {"bin/chromium", "bin/chromium-headless-shell", "debian-shell"}:
        executable(tmp_path / name)
    root = tmp_path / "ms-playwright"
    own = playwright_download(
        root, chromium="playwright" in installed, shell=SHELL if "playwright-shell" in installed else None
    )
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    expected = {"playwright-shell": root / SHELL, "playwright": root / CHROME}.get(chosen, tmp_path / chosen)
    assert find_executable(None, str(own), tmp_path / "debian-shell") == expected


def test_playwrights_shell_alone_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    own = playwright_download(tmp_path, chromium=False)  # playwright install --only-shell chromium
    assert find_executable(None, str(own), NO_DEBIAN_SHELL) == tmp_path / SHELL


def test_without_playwrights_download_the_system_is_searched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    system = executable(tmp_path / "chromium")
    assert find_executable(None, "", NO_DEBIAN_SHELL) == system


@pytest.mark.parametrize(
    ("chromium", "shell"),
    [
        (CHROME, Path("chromium_headless_shell-1254/chrome-headless-shell-linux64/chrome-headless-shell")),
        (Path("firefox-1255/firefox/firefox"), SHELL),
    ],
    ids=["another-revision", "not-playwrights-chromium"],
)
def test_a_shell_is_taken_only_as_the_same_builds(tmp_path: Path, chromium: Path, shell: Path) -> None:
    (tmp_path / chromium).parent.mkdir(parents=True)
    own = executable(tmp_path / chromium)
    playwright_download(tmp_path, chromium=False, shell=shell)
    assert playwright_headless_shell(own) is None


def test_a_shell_is_told_from_a_full_chromium(tmp_path: Path) -> None:
    playwright_download(tmp_path)
    assert is_headless_shell(tmp_path / SHELL)
    assert is_headless_shell(Path("/usr/lib/chromium/chromium-headless-shell"))
    assert not is_headless_shell(tmp_path / CHROME)
    assert not is_headless_shell(Path("/usr/bin/chromium"))


def test_nothing_found_says_how_to_fix_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BrowserMissing, match="make setup"):
        find_executable(None, str(tmp_path / CHROME), NO_DEBIAN_SHELL)


def test_playwrights_own_feature_list_is_not_overridden() -> None:
    assert not any(arg.startswith(("--enable-features", "--disable-features")) for arg in BASE_ARGS)


@pytest.fixture
def shared_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary folder standing in for /tmp, and no NODE_COMPILE_CACHE of the operator's."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv("NODE_COMPILE_CACHE", "")  # so that whatever the test sets is undone after it
    monkeypatch.delenv("NODE_COMPILE_CACHE")
    return tmp_path


def test_the_node_compile_cache_is_a_folder_of_this_users_closed_to_others(shared_tmp: Path) -> None:
    enable_node_compile_cache()
    folder = Path(os.environ["NODE_COMPILE_CACHE"])
    assert folder.parent == shared_tmp
    assert str(os.geteuid()) in folder.name
    assert (stat.S_IMODE(folder.stat().st_mode), folder.stat().st_uid) == (0o700, os.geteuid())
    enable_node_compile_cache()  # found again, and still good
    assert os.environ["NODE_COMPILE_CACHE"] == str(folder)


def planted_open_to_all(folder: Path) -> None:
    folder.mkdir()
    folder.chmod(0o777)


def planted_link(folder: Path) -> None:
    (folder.parent / "elsewhere").mkdir(mode=0o700)
    folder.symlink_to(folder.parent / "elsewhere")


def planted_by_another_user(folder: Path) -> None:
    folder.mkdir(mode=0o700)
    os.chown(folder, 65534, 65534)  # nobody


@pytest.mark.parametrize("plant", [planted_open_to_all, planted_link, planted_by_another_user])
def test_a_node_compile_cache_folder_planted_by_someone_else_is_not_used(
    shared_tmp: Path, plant: Callable[[Path], None]
) -> None:
    if plant is planted_by_another_user and os.geteuid() != 0:
        pytest.skip("only root can give a folder to another user")
    plant(shared_tmp / f"spotify-tokener-node-compile-cache-{os.geteuid()}")
    enable_node_compile_cache()
    assert "NODE_COMPILE_CACHE" not in os.environ


def test_the_operators_own_node_compile_cache_is_left_alone(
    shared_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NODE_COMPILE_CACHE", "/var/cache/mine")
    enable_node_compile_cache()
    assert os.environ["NODE_COMPILE_CACHE"] == "/var/cache/mine"
