"""Reading persisted-query hashes, chunk names and the app version from the web player's text, and
reading their records back defensively."""

from __future__ import annotations

import base64
import json

import pytest

from spotify_tokener.domain.hashes import (
    HashSet,
    app_version,
    bundle_url,
    chunk_urls,
    hash_record,
    load_hash_record,
    operations_in,
)

CDN = "https://open.spotifycdn.com/cdn/build/web-player/"
BUNDLE = f"{CDN}web-player.0a1b2c3d.js"
A, B = "a" * 64, "b" * 64


def config(payload: object) -> str:
    encoded = base64.b64encode(json.dumps(payload).encode()).decode()
    return f'<html><script id="appServerConfig" type="text/plain">\n{encoded}\n</script></html>'


def test_the_main_bundle_is_the_one_named_web_player() -> None:
    scripts = [f"{CDN}vendor~web-player.1234abcd.js", f"{CDN}encore~web-player.99aa.js", BUNDLE]
    assert bundle_url(scripts) == BUNDLE
    assert bundle_url([f"{CDN}vendor~web-player.1234abcd.js"]) is None


def test_the_app_version_is_read_from_the_base64_config() -> None:
    assert app_version(config({"clientVersion": "1.2.60.123.gabc", "other": 1})) == "1.2.60.123.gabc"
    assert app_version(config({"clientVersion": 5})) is None
    assert app_version(config(["clientVersion"])) is None
    assert app_version('<script id="appServerConfig">not base64!</script>') is None
    assert app_version("<html></html>") is None


def test_queries_and_mutations_are_read_and_a_later_script_wins() -> None:
    scripts = [
        f'x=new l("getTrack","query","{A}",null);y=["addToPlaylist", "mutation", "{B}"]'.encode(),
        f'["getTrack","query","{B}"] ["bad name","query","{A}"] ["short","query","abc"]'.encode(),
    ]
    assert operations_in(scripts) == {"getTrack": B, "addToPlaylist": B}


def test_chunks_pair_the_name_map_with_the_hash_map_whichever_comes_first() -> None:
    names = '{12:"xpui-routes-search",34:"xpui-routes-album",56:"no-hash"}'
    hashes = '{12:"0a1b2c3d",34:"9f8e7d6c",78:"deadbeef"}'
    css = '{12:"ffffffff"}'
    for bundle in (
        f'u=e=>({names}[e]||e)+"."+{hashes}[e]+".js";c=e=>{names}[e]+"."+{css}[e]+".css"',
        f'v=e=>({hashes}[e])+{names}[e]+".js"',
    ):
        assert chunk_urls(bundle, BUNDLE) == [
            f"{CDN}xpui-routes-search.0a1b2c3d.js",
            f"{CDN}xpui-routes-album.9f8e7d6c.js",
        ]


def test_a_chunk_name_cannot_leave_the_bundles_folder() -> None:
    bundle = '{1:"../../evil",2:"ok"} {1:"0a1b2c3d",2:"0a1b2c3e"}'
    assert chunk_urls(bundle, BUNDLE) == [f"{CDN}ok.0a1b2c3e.js"]


def test_a_record_reads_back_as_written() -> None:
    served = HashSet("web-player.0a1b2c3d.js", "1.2.3", {"getTrack": A}, 1_800_000_000)
    assert load_hash_record(json.loads(json.dumps(hash_record(served)))) == served


@pytest.mark.parametrize(
    "change",
    [
        {"version": 2},
        {"bundle": "../web-player.0a1b2c3d.js"},
        {"appVersion": 7},
        {"updated_at": "soon"},
        {"updated_at": True},
        {"operations": {}},
        {"operations": {"getTrack": "not a hash"}},
        {"operations": {"bad name": A}},
        {"operations": ["getTrack"]},
    ],
)
def test_a_record_that_is_not_ours_is_refused(change: dict[str, object]) -> None:
    served = HashSet("web-player.0a1b2c3d.js", "1.2.3", {"getTrack": A}, 1_800_000_000)
    assert load_hash_record({**hash_record(served), **change}) is None
    assert load_hash_record("text") is None
