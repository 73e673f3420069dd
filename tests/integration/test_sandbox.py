"""Chromium's sandbox: used when it can be, and where a container refuses it, the browser still starts.

A wrapper stands in front of the real Chromium and refuses any launch that asks for the sandbox, with
the message Chromium prints where user namespaces are refused (Docker's default seccomp profile).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from spotify_tokener.settings import Settings
from spotify_tokener.sources.browser.chromium import find_executable
from tests.conftest import running_server
from tests.fake_spotify import FakeSpotify

SettingsMaker = Callable[..., Settings]
REFUSAL = "[FATAL:zygote_host_impl_linux.cc(128)] No usable sandbox! Update your kernel or see ..."


@pytest.fixture
def no_userns_chromium(tmp_path: Path) -> tuple[Path, Path]:
    """(wrapper, the file each launch's arguments are appended to)."""
    chromium = find_executable(None, "")  # the system's browser the service would run
    launches = tmp_path / "launches"
    wrapper = tmp_path / "chromium"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {launches}\n'
        f'case " $* " in *" --no-sandbox "*) exec {chromium} "$@";; esac\n'
        f'echo "{REFUSAL}" >&2\n'
        "exit 1\n"
    )
    wrapper.chmod(0o755)
    return wrapper, launches


@pytest.fixture
def not_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the service as a non-root user would: the sandbox is wanted."""
    monkeypatch.setattr(os, "geteuid", lambda: 1000)


@pytest.mark.usefixtures("not_root")
async def test_auto_runs_without_the_sandbox_after_one_warning_where_it_is_refused(
    make_settings: SettingsMaker,
    fake: FakeSpotify,
    no_userns_chromium: tuple[Path, Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    wrapper, launches = no_userns_chromium
    caplog.set_level(logging.WARNING, logger="spotify_tokener.sources.browser.manager")
    async with running_server(make_settings(browser_path=wrapper, browser_idle=0.3)) as running:
        first = await running.client.get("/api/token")
        async with asyncio.timeout(10):
            while (await running.client.get("/health")).json()["browser"]["running"]:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        second = await running.client.get("/api/token?force=1")
    attempts = launches.read_text().splitlines()
    assert (first.status_code, second.status_code) == (200, 200)
    assert ["--no-sandbox" in args for args in attempts] == [False, True, True]  # asked once, then not
    warnings = [record.getMessage() for record in caplog.records if "sandbox" in record.getMessage()]
    assert len(warnings) == 1
    assert "TOKENER_BROWSER_SANDBOX=off" in warnings[0]


@pytest.mark.usefixtures("not_root")
async def test_on_insists_on_the_sandbox(
    make_settings: SettingsMaker, fake: FakeSpotify, no_userns_chromium: tuple[Path, Path]
) -> None:
    wrapper, launches = no_userns_chromium
    settings = make_settings(browser_path=wrapper, browser_sandbox="on", retries=0)
    async with running_server(settings) as running:
        response = await running.client.get("/api/token")
    assert response.status_code == 503
    assert response.json()["error"] == "the browser failed to start"
    assert not any("--no-sandbox" in args for args in launches.read_text().splitlines())


@pytest.mark.usefixtures("not_root")
async def test_off_never_asks_for_it(
    make_settings: SettingsMaker, fake: FakeSpotify, no_userns_chromium: tuple[Path, Path]
) -> None:
    wrapper, launches = no_userns_chromium
    async with running_server(make_settings(browser_path=wrapper, browser_sandbox="off")) as running:
        response = await running.client.get("/api/token")
    assert response.status_code == 200
    assert ["--no-sandbox" in args for args in launches.read_text().splitlines()] == [True]
