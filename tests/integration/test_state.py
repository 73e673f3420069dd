"""The state folder against the fake web player: a restart that loads nothing already known, a kept
secret Spotify now refuses, a folder that cannot be believed, and no account's secret on disk."""

from __future__ import annotations

import logging
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from spotify_tokener.settings import Settings
from tests.conftest import Running, running_server, status_of
from tests.fake_spotify import FakeSpotify
from tests.redis_server import RedisServer

SettingsMaker = Callable[..., Settings]
BOTH = "direct,browser"
ROTATED = ("p3!Lq9#Vw2@Xz7$Rt5%Y", 62)
LOADS = ("page", "bundle", "token", "server_time")


async def token(running: Running, **headers: str) -> dict[str, Any]:
    answer = await running.client.get("/api/token", headers=headers)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def loads(fake: FakeSpotify) -> dict[str, int]:
    return {what: fake.count(what) for what in LOADS}


def kept(folder: Path, name: str) -> dict[str, Any]:
    document: dict[str, Any] = orjson.loads((folder / name).read_bytes())
    return document


def names(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def everything_in(folder: Path) -> bytes:
    return b"".join(path.read_bytes() for path in folder.iterdir())


def warnings_about(caplog: pytest.LogCaptureFixture, words: str) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.levelno == logging.WARNING and words in record.getMessage()
    ]


async def test_after_a_restart_the_first_token_needs_no_page_no_bundle_and_no_browser(
    make_settings: SettingsMaker, fake: FakeSpotify, tmp_path: Path
) -> None:
    folder = tmp_path / "state"
    settings = make_settings(sources=BOTH, state_dir=folder)
    async with running_server(settings) as first:
        learned = await token(first)
    assert loads(fake) == {"page": 1, "bundle": 1, "token": 1, "server_time": 1}
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert {path.name: stat.S_IMODE(path.stat().st_mode) for path in folder.iterdir()} == {
        "learned.json": 0o600,
        "device.json": 0o600,
        "token.json": 0o600,
    }

    async with running_server(make_settings(sources=BOTH, state_dir=folder)) as second:
        resumed = await token(second)  # the kept token, still servable: nothing upstream at all
        assert resumed["accessToken"] == learned["accessToken"]
        assert loads(fake) == {"page": 1, "bundle": 1, "token": 1, "server_time": 1}

    (folder / "token.json").unlink()  # the token gone (expired, say): the kept secret makes one
    async with running_server(make_settings(sources=BOTH, state_dir=folder)) as third:
        started = time.perf_counter()
        fetched = await token(third)
        elapsed = time.perf_counter() - started
        state = await status_of(third)
        health = (await third.client.get("/health")).json()
    assert fetched["accessToken"] == fake.issued_tokens()[-1]
    assert loads(fake) == {"page": 1, "bundle": 1, "token": 2, "server_time": 2}
    assert (state["tokenSource"], state["direct"]["secretOrigin"]) == ("direct", "state folder")
    assert health["browser"]["launches"] == 0
    assert fake.state.calls[-1].cookies["sp_t"] == fake.state.calls[0].cookies["sp_t"]  # the kept device
    assert elapsed < 3.0  # tens of milliseconds alone; room for a machine running two suites


async def test_a_kept_secret_spotify_now_refuses_is_learned_again_as_on_a_first_start(
    make_settings: SettingsMaker, fake: FakeSpotify, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_server(make_settings(sources="direct", state_dir=tmp_path)) as first:
        await token(first)
    fake.rotate(*ROTATED)
    (tmp_path / "token.json").unlink()
    async with running_server(make_settings(sources="direct", state_dir=tmp_path)) as second:
        await token(second)  # the kept secret turned down, then the new one read from the bundle
        state = await status_of(second)
    assert warnings_about(caplog, "Spotify turned down what it knew")
    assert fake.token_requests == 3  # the first start's, the kept secret's, the new one's
    assert (state["direct"]["totpVersion"], state["direct"]["secretOrigin"]) == (ROTATED[1], "scripts")
    assert fake.count("bundle") == 2
    assert kept(tmp_path, "learned.json")["version"] == ROTATED[1]


async def test_a_garbled_file_is_ignored_with_one_warning_and_written_anew(
    make_settings: SettingsMaker, fake: FakeSpotify, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "learned.json").write_bytes(b'{"secret": "=n:b#Ou')
    (tmp_path / "learned.json").chmod(0o600)
    async with running_server(make_settings(sources="direct", state_dir=tmp_path)) as running:
        await token(running)
    assert len(warnings_about(caplog, "learned.json is ignored")) == 1
    assert kept(tmp_path, "learned.json")["version"] == 61  # learned again, and kept
    assert fake.count("bundle") == 1


@pytest.mark.skipif(os.geteuid() != 0, reason="another user's folder is made with chown, as root")
async def test_another_users_folder_is_not_used_with_one_warning(
    make_settings: SettingsMaker, fake: FakeSpotify, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    foreign = tmp_path / "state"
    foreign.mkdir()
    foreign.chmod(0o777)
    os.chown(foreign, 12345, 12345)
    async with running_server(make_settings(sources="direct", state_dir=foreign)) as running:
        await token(running)
        await running.client.get("/api/token?force=1")  # more to save: still one warning
    assert len(warnings_about(caplog, "is not used")) == 1
    assert names(foreign) == []
    assert stat.S_IMODE(foreign.stat().st_mode) == 0o777  # not ours to tighten


async def test_no_account_cookie_nor_token_is_ever_on_disk(
    make_settings: SettingsMaker, fake: FakeSpotify, tmp_path: Path
) -> None:
    cookie = "AQ-an-account-cookie-on-disk-test"
    fake.add_account(cookie, "alice")
    async with running_server(make_settings(sources="direct", state_dir=tmp_path)) as running:
        anonymous = await token(running)
        account = await token(running, Cookie=f"sp_dc={cookie}")
        await token(running, Cookie=f"sp_dc={cookie}")
    on_disk = everything_in(tmp_path)
    assert not account["isAnonymous"]
    assert cookie.encode() not in on_disk
    assert account["accessToken"].encode() not in on_disk
    assert anonymous["accessToken"].encode() in on_disk  # the one token that is kept
    account_device = next(call for call in fake.state.calls if "sp_dc" in call.cookies).cookies["sp_t"]
    assert account_device.encode() not in on_disk


async def test_an_empty_state_dir_keeps_nothing(
    make_settings: SettingsMaker, fake: FakeSpotify, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    for _ in range(2):
        async with running_server(make_settings(sources="direct", state_dir="")) as running:
            await token(running)
    assert names(tmp_path) == []
    assert fake.count("bundle") == 2  # the second start learned again


async def test_with_redis_the_token_is_left_to_redis_and_its_knowledge_goes_first(
    make_settings: SettingsMaker,
    fake: FakeSpotify,
    tmp_path: Path,
    shared_redis: RedisServer,
    redis_prefix: str,
) -> None:
    shared = {"redis_url": shared_redis.url, "redis_prefix": redis_prefix}
    async with running_server(make_settings(sources="direct", state_dir=tmp_path, **shared)) as first:
        await token(first)
    assert names(tmp_path) == ["device.json", "learned.json"]
    stale = {**kept(tmp_path, "learned.json"), "secret": "a-stale-secret", "version": 60}
    (tmp_path / "learned.json").write_bytes(orjson.dumps(stale))
    async with running_server(make_settings(sources="direct", state_dir=tmp_path, **shared)) as second:
        await token(second)  # Redis's token, adopted
        assert (await second.client.get("/api/token?force=1")).status_code == 200  # one made here
        state = await status_of(second)
    assert state["direct"]["secretOrigin"] == "replica"  # Redis's note, not the stale kept one
    assert all(call.answer.kind == "ok" for call in fake.state.calls)
