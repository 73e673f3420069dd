from __future__ import annotations

import pytest

from spotify_tokener.sources.browser.filters import is_token_request, should_block


@pytest.mark.parametrize(
    "url",
    [
        "https://open.spotify.com/api/token?reason=init&productType=web-player&totp=123456",
        "https://open.spotify.com/api/token",
        "https://open.spotify.com/get_access_token?reason=transport",
    ],
)
def test_the_token_call_is_recognised(url: str) -> None:
    assert is_token_request(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://open.spotify.com/api/token",
        "https://open.spotify.com.evil.example/api/token",
        "https://evil.example/open.spotify.com/api/token",
        "https://open.spotify.com/api/token/extra",
        "https://open.spotify.com/api/tokens",
        "https://spclient.wg.spotify.com/api/token",
        "https://open.spotify.com/?next=/api/token",
    ],
)
def test_lookalikes_are_not(url: str) -> None:
    assert not is_token_request(url)


@pytest.mark.parametrize("resource_type", ["image", "media", "font", "stylesheet", "ping"])
def test_heavy_resources_are_blocked(resource_type: str) -> None:
    assert should_block(resource_type, "https://open.spotifycdn.com/x")


@pytest.mark.parametrize(
    "url",
    [
        "https://open.spotify.com/gabo-receiver-service/public/v3/events",
        "https://www.google-analytics.com/g/collect?v=2",
        "https://www.googletagmanager.com/gtm.js?id=1",
    ],
)
def test_analytics_are_blocked(url: str) -> None:
    assert should_block("fetch", url)


@pytest.mark.parametrize(
    ("resource_type", "url"),
    [
        ("document", "https://open.spotify.com/"),
        ("script", "https://open.spotifycdn.com/cdn/build/web-player/web-player.abc.js"),
        ("fetch", "https://open.spotify.com/api/server-time"),
        ("fetch", "https://open.spotify.com/api/token?reason=init"),
        ("fetch", "https://api.spotify.com/v1/me/collection"),
    ],
)
def test_what_the_token_needs_is_let_through(resource_type: str, url: str) -> None:
    assert not should_block(resource_type, url)
