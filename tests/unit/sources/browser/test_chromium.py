from __future__ import annotations

import os
from pathlib import Path

import pytest

from spotify_tokener.domain.egress import parse_connect_to
from spotify_tokener.domain.errors import BrowserMissing
from spotify_tokener.sources.browser.chromium import (
    BASE_ARGS,
    chromium_args,
    find_executable,
    is_headless_shell,
    playwright_headless_shell,
    sandbox_refused,
    wants_sandbox,
)
from spotify_tokener.sources.user_agent import desktop_user_agent


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
        ("error while loading shared libraries: libnss3.so", False),
        ("Target page, context or browser has been closed", False),
    ],
)
def test_a_sandbox_refusal_is_told_from_other_launch_failures(log: str, refused: bool) -> None:
    assert sandbox_refused(f"BrowserType.launch: {log}") is refused


def test_user_agent_follows_the_browser_and_never_says_headless() -> None:
    agent = desktop_user_agent("156.0.8078.79")
    assert "Chrome/156.0.0.0" in agent
    assert "Headless" not in agent


def executable(path: Path) -> Path:
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


NO_DEBIAN_SHELL = Path(os.devnull + "-missing")


def playwright_download(root: Path, *, with_shell: bool) -> Path:
    """Playwright's layout after ``playwright install chromium``: its Chromium and, beside it, the
    headless shell of the same revision (absent with ``--no-shell``)."""
    (root / "chromium-1255" / "chrome-linux64").mkdir(parents=True)
    if with_shell:
        shell_dir = root / "chromium_headless_shell-1255" / "chrome-headless-shell-linux64"
        shell_dir.mkdir(parents=True)
        executable(shell_dir / "chrome-headless-shell")
    return executable(root / "chromium-1255" / "chrome-linux64" / "chrome")


def test_configured_path_comes_first(tmp_path: Path) -> None:
    configured = executable(tmp_path / "mine")
    own = playwright_download(tmp_path, with_shell=True)
    assert find_executable(configured, str(own), NO_DEBIAN_SHELL) == configured


def test_a_missing_configured_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(BrowserMissing, match="TOKENER_BROWSER_PATH"):
        find_executable(tmp_path / "nope", "")


@pytest.mark.parametrize(
    ("installed", "chosen"),
    [
        ({"playwright-shell", "debian-shell", "shell-on-path", "playwright", "chromium"}, "playwright-shell"),
        ({"debian-shell", "shell-on-path", "playwright", "chromium"}, "debian-shell"),
        ({"shell-on-path", "playwright", "chromium"}, "shell-on-path"),
        ({"playwright", "chromium"}, "playwright"),
        ({"chromium"}, "chromium"),
    ],
)
def test_a_headless_shell_comes_before_a_full_chromium_and_playwrights_before_the_systems(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, installed: set[str], chosen: str
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    found = {"chromium": bin_dir / "chromium", "shell-on-path": bin_dir / "chromium-headless-shell"}
    for name in {"chromium", "shell-on-path"} & installed:
        executable(found[name])
    found["debian-shell"] = tmp_path / "debian-shell"
    if "debian-shell" in installed:
        executable(found["debian-shell"])
    own = playwright_download(tmp_path / "ms-playwright", with_shell="playwright-shell" in installed)
    found["playwright"] = own
    found["playwright-shell"] = playwright_headless_shell(own) or own
    monkeypatch.setenv("PATH", str(bin_dir))
    playwright_own = str(own) if "playwright" in installed else str(tmp_path / "not-downloaded")
    assert find_executable(None, playwright_own, found["debian-shell"]) == found[chosen]


def test_playwrights_shell_is_looked_for_only_in_its_own_layout(tmp_path: Path) -> None:
    assert playwright_headless_shell(executable(tmp_path / "chrome")) is None
    own = playwright_download(tmp_path, with_shell=True)
    shell = playwright_headless_shell(own)
    assert shell is not None and is_headless_shell(shell)
    assert not is_headless_shell(own)


def test_nothing_found_says_how_to_fix_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BrowserMissing, match="make setup"):
        find_executable(None, os.devnull + "-missing", NO_DEBIAN_SHELL)


def test_playwrights_own_feature_list_is_not_overridden() -> None:
    assert not any(arg.startswith(("--enable-features", "--disable-features")) for arg in BASE_ARGS)
