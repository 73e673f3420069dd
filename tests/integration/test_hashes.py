"""The persisted-query hashes against the fake web player: every operation of the bundle and its
chunks, the metadata answers, stale reports, deploys, outages, the API key, and bodies too large."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from spotify_tokener.settings import Settings
from tests.conftest import Running, running_server
from tests.fake_spotify import FakeSpotify
from tests.fake_spotify.server import UPSTREAM_SECRET_MARKER
from tests.redis_server import RedisServer

pytestmark = pytest.mark.asyncio

SettingsMaker = Callable[..., Settings]
NEW_VERSION = "1.2.61.7.gffffffff"


def direct(make_settings: SettingsMaker, **overrides: Any) -> Settings:
    """No browser: the hashes never need one."""
    return make_settings(**{"sources": "direct", "hashes_min_interval": 0, **overrides})


async def hashes(running: Running, query: str = "") -> dict[str, Any]:
    answer = await running.client.get("/api/hashes" + query)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def settled(*replicas: Running) -> None:
    """Each replica's first token is in: its token path visits the page no more (by itself)."""
    for running in replicas:
        assert (await running.client.get("/api/token")).status_code == 200


async def until_hashes(running: Running, operations: dict[str, str]) -> dict[str, Any]:
    async with asyncio.timeout(10):
        while (body := await hashes(running))["operations"] != operations:  # noqa: ASYNC110 - over HTTP
            await asyncio.sleep(0.02)
    return body


async def test_every_operation_of_the_bundle_and_its_chunks_is_served_exactly(
    make_settings: SettingsMaker, fake: FakeSpotify
) -> None:
    async with running_server(direct(make_settings)) as running:
        body = await hashes(running)
        again = await hashes(running)
        health = (await running.client.get("/health")).json()
    pathfinder = fake.state.pathfinder
    assert body["operations"] == pathfinder.operations()
    assert body["appVersion"] == pathfinder.app_version
    assert body["bundle"] == fake.state.bundle_path.rsplit("/", 1)[1]
    assert body["version"] == 1 and body["lastError"] is None and 0 <= body["age"] <= 2
    assert abs(body["updated_at"] - time.time()) < 5
    assert again["operations"] == body["operations"]
    assert fake.count("chunk") == 4  # each chunk read once; the css map named none
    assert health["browser"]["launches"] == 0


async def test_the_metadata_answers(make_settings: SettingsMaker, fake: FakeSpotify) -> None:
    async with running_server(direct(make_settings)) as running:
        typed = (await running.client.get("/api/metadata?type=album")).json()
        named = (await running.client.get("/api/metadata?operation=searchDesktop")).json()
        unknown_type = await running.client.get("/api/metadata?type=lyrics")
        unknown_operation = await running.client.get("/api/metadata?operation=getLyrics")
        neither = await running.client.get("/api/metadata")
    pathfinder = fake.state.pathfinder
    assert typed["operationName"] == "getAlbum"
    assert typed["hash"] == pathfinder.sha256("getAlbum")
    assert typed["spotifyAppVersion"] == pathfinder.app_version
    assert named["hash"] == pathfinder.sha256("searchDesktop")
    assert (unknown_type.status_code, unknown_operation.status_code, neither.status_code) == (404, 404, 404)
    assert "error" in unknown_type.json() and "error" in unknown_operation.json()


async def test_a_stale_report_picks_up_rotated_hashes_and_a_flood_costs_one_reading(
    make_settings: SettingsMaker, fake: FakeSpotify
) -> None:
    async with running_server(direct(make_settings)) as running:
        await settled(running)
        old = (await hashes(running))["operations"]["getTrack"]
        fake.deploy(NEW_VERSION)
        pages, bundles = fake.count("page"), fake.count("bundle")
        reports = await asyncio.gather(*(hashes(running, f"?stale={old}") for _ in range(50)))
        late = await asyncio.gather(*(hashes(running, f"?stale={old}") for _ in range(50)))
        metrics = (await running.client.get("/metrics")).text
    for body in [*reports, *late]:
        assert body["operations"] == fake.state.pathfinder.operations()
        assert body["appVersion"] == NEW_VERSION
    assert fake.count("page") - pages == 1
    assert fake.count("bundle") - bundles == 1
    assert 'tokener_hashes_relearns_total{outcome="learned"} 2.0' in metrics
    assert "tokener_hashes_stale_reports_total 100.0" in metrics


async def test_reports_within_the_minimum_interval_cost_nothing(
    make_settings: SettingsMaker, fake: FakeSpotify
) -> None:
    async with running_server(direct(make_settings, hashes_min_interval=3600)) as running:
        await settled(running)
        served = (await hashes(running))["operations"]["getTrack"]
        pages = fake.count("page")
        await asyncio.gather(*(hashes(running, f"?stale={served}") for _ in range(20)))
    assert fake.count("page") == pages


async def test_an_outage_keeps_the_last_set_served(make_settings: SettingsMaker, fake: FakeSpotify) -> None:
    async with running_server(direct(make_settings)) as running:
        known = await hashes(running)
        fake.deploy()
        fake.state.page_status = 503
        during = await hashes(running, f"?stale={known['operations']['getTrack']}")
        metrics = (await running.client.get("/metrics")).text
    assert during["operations"] == known["operations"]
    assert during["bundle"] == known["bundle"]
    assert "503" in during["lastError"]
    assert UPSTREAM_SECRET_MARKER not in str(during)
    assert 'tokener_hashes_relearns_total{outcome="failed"} 1.0' in metrics
    assert "tokener_hashes_age_seconds" in metrics


async def test_nothing_known_and_spotify_down_is_a_short_error(
    make_settings: SettingsMaker, fake: FakeSpotify
) -> None:
    fake.state.page_status = 500
    async with running_server(direct(make_settings, hashes_min_interval=3600)) as running:
        first = await running.client.get("/api/hashes")
        second = await running.client.get("/api/metadata?type=track")
        metrics = (await running.client.get("/metrics")).text
    assert (first.status_code, second.status_code) == (502, 502)
    assert first.json()["success"] is False and UPSTREAM_SECRET_MARKER not in first.text
    # One reading: the failure is answered again until the interval is over (the token path's own
    # visits of the page go on meanwhile, so the page's count says nothing here).
    assert 'tokener_hashes_relearns_total{outcome="failed"} 1.0' in metrics


async def test_a_deploy_seen_by_the_token_path_is_followed_without_a_report(
    make_settings: SettingsMaker, fake: FakeSpotify
) -> None:
    fake.add_account("AQB-new-account", "listener")
    async with running_server(direct(make_settings)) as running:
        await hashes(running)
        fake.deploy(NEW_VERSION)
        account = await running.client.get("/api/token", headers={"Cookie": "sp_dc=AQB-new-account"})
        assert account.status_code == 200  # a new identity: the direct source visits the page
        body = await until_hashes(running, fake.state.pathfinder.operations())
    assert body["appVersion"] == NEW_VERSION


async def test_the_api_key_applies(make_settings: SettingsMaker, fake: FakeSpotify) -> None:
    async with running_server(direct(make_settings, api_key="hash-key")) as running:
        refused = [await running.client.get(path) for path in ("/api/hashes", "/api/metadata?type=track")]
        keyed = await running.client.get("/api/hashes", headers={"Authorization": "Bearer hash-key"})
        by_query = await running.client.get("/api/metadata?type=track&key=hash-key")
    assert [answer.status_code for answer in refused] == [401, 401]
    assert (keyed.status_code, by_query.status_code) == (200, 200)


async def cached_token_latencies(running: Running, until: asyncio.Future[Any]) -> list[float]:
    latencies = []
    while not until.done():
        began = time.perf_counter()
        assert (await running.client.get("/api/token")).status_code == 200
        latencies.append(time.perf_counter() - began)
        await asyncio.sleep(0.005)
    return latencies


@pytest.mark.parametrize(("padding", "status"), [(9 << 20, 200), (50 << 20, 502)])
async def test_large_bodies_are_parsed_off_the_loop_or_cut_off(
    make_settings: SettingsMaker, fake: FakeSpotify, padding: int, status: int
) -> None:
    """A bundle of 9 MB of junk that is slow to parse (4 s on the loop) is parsed in the worker thread;
    one of 50 MB is cut off at 10 MB. Cached tokens stay fast meanwhile (the test's client, the service
    and the fake share one interpreter here, hence the loose bound)."""
    async with running_server(direct(make_settings)) as running:
        assert (await running.client.get("/api/token")).status_code == 200
        fake.pad_bundle(padding)
        learning = asyncio.ensure_future(running.client.get("/api/hashes"))
        latencies = await cached_token_latencies(running, learning)
        answer = await learning
    assert answer.status_code == status, answer.text
    if status == 200:
        assert answer.json()["operations"] == fake.state.pathfinder.operations()
    else:
        assert answer.json()["error"] == f"Spotify's answer is longer than {10 << 20} bytes"
    assert latencies and max(latencies) < 1.0, (len(latencies), sorted(latencies)[-5:])


async def test_replicas_share_what_one_read_through_redis(
    make_settings: SettingsMaker, fake: FakeSpotify, shared_redis: RedisServer, redis_prefix: str
) -> None:
    shared = {"redis_url": shared_redis.url, "redis_prefix": redis_prefix}
    async with (
        running_server(direct(make_settings, **shared)) as first,
        running_server(direct(make_settings, **shared)) as second,
    ):
        await settled(first, second)
        old = (await hashes(first))["operations"]["getTrack"]
        pages = fake.count("page")
        assert (await hashes(second))["operations"]["getTrack"] == old
        assert fake.count("page") == pages  # the other replica's set: no reading
        fake.deploy(NEW_VERSION)
        await hashes(first, f"?stale={old}")
        pages = fake.count("page")
        body = await hashes(second, f"?stale={old}")
    assert body["operations"] == fake.state.pathfinder.operations()
    assert fake.count("page") == pages


async def test_a_restart_reads_nothing_again_with_a_state_folder(
    make_settings: SettingsMaker, fake: FakeSpotify, tmp_path: Path
) -> None:
    settings = direct(make_settings, state_dir=tmp_path)
    async with running_server(settings) as running:
        known = await hashes(running)
    bundles, chunks = fake.count("bundle"), fake.count("chunk")
    async with running_server(settings) as running:
        again = await hashes(running)
    assert again["operations"] == known["operations"] and again["updated_at"] == known["updated_at"]
    assert (fake.count("bundle"), fake.count("chunk")) == (bundles, chunks)
