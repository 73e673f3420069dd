"""Spotify's embed page (``/embed/<type>/<id>``) and the anonymous token its Next.js data carries: a
player for one public entity, whose ``__NEXT_DATA__`` holds a session token from a pool Spotify keeps
(no TOTP involved).
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from spotify_tokener.domain.errors import UpstreamError
from spotify_tokener.domain.token import Token, token_from_payload

ENTITY_TYPES = ("track", "album", "playlist", "artist", "episode")
ENTITY = re.compile(rf"({'|'.join(ENTITY_TYPES)})/([0-9A-Za-z]{{22}})")
"""What the embed page can show: a type, and a Spotify id (22 base-62 characters)."""
NEXT_DATA = re.compile(rb"<script\b[^>]*\bid=[\"']?__NEXT_DATA__[\"']?[^>]*>(.*?)</script>", re.DOTALL)
SESSION_PATH = ("props", "pageProps", "state", "settings", "session")


def embed_url(spotify_url: str, entity: str) -> str:
    return f"{spotify_url.rstrip('/')}/embed/{entity}"


def parse_embed_page(body: bytes) -> Token:
    """The session token of an embed page, or a client-safe :class:`UpstreamError` naming what is wrong."""
    found = NEXT_DATA.search(body)
    if found is None:
        raise UpstreamError("the embed page has no __NEXT_DATA__ script")
    try:
        data: Any = orjson.loads(found.group(1))
    except orjson.JSONDecodeError:
        raise UpstreamError("the embed page's __NEXT_DATA__ is garbled (not JSON)") from None
    for key in SESSION_PATH:
        data = data.get(key) if isinstance(data, dict) else None
    if not isinstance(data, dict):
        raise UpstreamError("the embed page holds no session")
    client_id = data.get("clientId")
    session = {**data, "clientId": client_id if isinstance(client_id, str) else "", "source": None}
    return token_from_payload({**session, "isAnonymous": True}, "the embed page's session")
