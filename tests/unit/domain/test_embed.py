"""Reading the embed page's session token: what a page holds, and each way a page can be wrong."""

from __future__ import annotations

import json

import pytest

from spotify_tokener.domain.embed import ENTITY, embed_url, parse_embed_page
from spotify_tokener.domain.errors import UpstreamError
from tests.fake_spotify.assets import render_embed

ENTITY_PATH = "track/11dFghVXANMlKmJXsNCbNl"
SESSION = {"accessToken": "BQ-embed", "accessTokenExpirationTimestampMs": 1_800_000_000_000}


def test_the_session_token_and_its_own_expiry_are_read() -> None:
    token = parse_embed_page(render_embed(ENTITY_PATH, SESSION, garbled=False))
    assert (token.access_token, token.expires_at_ms, token.is_anonymous) == (
        "BQ-embed",
        1_800_000_000_000,
        True,
    )


def test_the_script_is_found_whatever_its_attributes_order() -> None:
    data = json.dumps({"props": {"pageProps": {"state": {"settings": {"session": SESSION}}}}})
    page = f"<body><script type='application/json' id='__NEXT_DATA__' nonce=x>{data}</script></body>"
    assert parse_embed_page(page.encode()).access_token == "BQ-embed"


@pytest.mark.parametrize(
    ("page", "cause"),
    [
        (b"<html><body>Service unavailable</body></html>", "no __NEXT_DATA__"),
        (render_embed(ENTITY_PATH, SESSION, garbled=True), "garbled"),
        (render_embed(ENTITY_PATH, None, garbled=False), "no session"),
        (render_embed(ENTITY_PATH, {**SESSION, "accessToken": ""}, garbled=False), "no access token"),
        (
            render_embed(ENTITY_PATH, {**SESSION, "accessTokenExpirationTimestampMs": "soon"}, garbled=False),
            "expiry",
        ),
        (b'<script id="__NEXT_DATA__" type="application/json">[1, 2]</script>', "no session"),
    ],
)
def test_a_wrong_page_is_an_upstream_error_naming_its_cause(page: bytes, cause: str) -> None:
    with pytest.raises(UpstreamError, match=cause) as raised:
        parse_embed_page(page)
    assert raised.value.failure.next_source
    assert "BQ-embed" not in str(raised.value)


def test_entities_are_a_known_type_and_a_22_character_base62_id() -> None:
    assert ENTITY.fullmatch(ENTITY_PATH)
    assert ENTITY.fullmatch("episode/" + "A" * 22)
    for wrong in ("user/11dFghVXANMlKmJXsNCbNl", "track/11dFghVXANMlKmJXsNCb", "track/11dFghVXANMlKmJXsNC-l"):
        assert not ENTITY.fullmatch(wrong)
    assert (
        embed_url("https://open.spotify.com/", ENTITY_PATH) == f"https://open.spotify.com/embed/{ENTITY_PATH}"
    )
