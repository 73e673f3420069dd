from __future__ import annotations

import os
from pathlib import Path

import pytest

from spotify_tokener.browser import BASE_ARGS, chromium_args, desktop_user_agent, find_executable
from spotify_tokener.errors import BrowserMissing


def test_args_quiet_the_network_and_split_extras_like_a_shell() -> None:
    args = chromium_args("--a '--rules=MAP x y, MAP z w'", as_root=False)
    assert args[: len(BASE_ARGS)] == list(BASE_ARGS)
    assert "--disable-background-networking" in args
    assert args[-2:] == ["--a", "--rules=MAP x y, MAP z w"]
    assert "--no-sandbox" not in args


def test_root_needs_no_sandbox() -> None:
    assert "--no-sandbox" in chromium_args("", as_root=True)


def test_user_agent_follows_the_browser_and_never_says_headless() -> None:
    agent = desktop_user_agent("156.0.8078.79")
    assert "Chrome/156.0.0.0" in agent
    assert "Headless" not in agent


def executable(path: Path) -> Path:
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_configured_path_comes_first(tmp_path: Path) -> None:
    configured = executable(tmp_path / "mine")
    own = executable(tmp_path / "playwright-chrome")
    assert find_executable(configured, str(own)) == configured


def test_a_missing_configured_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(BrowserMissing, match="TOKENER_BROWSER_PATH"):
        find_executable(tmp_path / "nope", "")


def test_playwright_download_then_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    own = executable(tmp_path / "playwright-chrome")
    system = executable(tmp_path / "chromium")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_executable(None, str(own)) == own
    assert find_executable(None, str(tmp_path / "not-downloaded")) == system


def test_nothing_found_says_how_to_fix_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BrowserMissing, match="make setup"):
        find_executable(None, os.devnull + "-missing")


def test_playwrights_own_feature_list_is_not_overridden() -> None:
    assert not any(arg.startswith(("--enable-features", "--disable-features")) for arg in BASE_ARGS)
