"""The fake web player's page and bundle: same shape and same token dance as the real one.

The bundle carries its secrets in one of the shapes real builds have used (``SecretShape``), the
newest version first and older ones after it, as the real list does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Literal

SecretShape = Literal["literal", "char_codes", "assembled", "key_only"]
"""literal: ``{secret: "...", version: 61}``; char_codes: the secret as a list of character codes;
assembled: built at run time from a hex string of shifted codes, which no static reader can find (the
page keeps it for its renewals, as the real player does); key_only: assembled, turned into the HMAC
key at once and dropped, so neither the text nor the page's memory holds it."""

BUNDLE_DIR = "/cdn/build/web-player/"
CSS_PATH = f"{BUNDLE_DIR}web-player.8f2c1d0e.css"
FONT_PATH = "/cdn/fonts/CircularSp-Book.woff2"
IMAGE_PATHS = tuple(f"/cdn/images/cover-{i}.jpg" for i in range(4))
BEACON_PATH = "/gabo-receiver-service/public/v3/events"
CDN = "https://open.spotifycdn.com"
SITE = "https://open.spotify.com"

HEAVY_BYTES = 256 * 1024
EMBED_PATH = "/embed/"

EMBED_TEMPLATE = """<!DOCTYPE html><html lang="en"><head><meta charSet="utf-8"/>
<title>Spotify Embed</title><script src="{cdn}/embed/_next/static/chunks/main-5a8c3f.js" defer></script>
</head><body><div id="__next"><div data-testid="embed-widget-container"></div></div>
<script id="__NEXT_DATA__" type="application/json">{data}</script></body></html>
"""

PAGE_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Spotify - Web Player</title>
<link rel="stylesheet" href="{cdn}{css}">
<link rel="preload" as="font" type="font/woff2" crossorigin href="{cdn}{font}">
<script>window.__fakeSkipToken = {skip};</script>
<script>window.__planted = Array.from({{length: {planted}}}, (_, i) => (2 ** 52 + i).toString(16));</script>
{config}
<script src="https://www.googletagmanager.com/gtm.js" async></script>
<script src="{cdn}{bundle}" defer></script>
</head><body><div id="main">{images}</div></body></html>
"""

BUNDLE_TEMPLATE = """(() => {{
  const unshift = (hex) => hex.match(/../g).map((h) => String.fromCharCode(parseInt(h, 16) - 1)).join("");
  const SECRETS = [{secrets}];
  const first = SECRETS[{current}];
  const secret = Array.isArray(first.secret) ? String.fromCharCode(...first.secret) : first.secret;
  const version = first.version;
  const keyOf = (text) => new TextEncoder().encode(
    Array.from(text).map((c, i) => c.charCodeAt(0) ^ ((i % 33) + 9)).join(""));
  {key_setup}

  async function totp(seconds) {{
    const key = {key_use};
    const counter = Math.floor(seconds / 30);
    const message = new ArrayBuffer(8);
    const view = new DataView(message);
    view.setUint32(0, Math.floor(counter / 2 ** 32));
    view.setUint32(4, counter >>> 0);
    const hmacKey = await crypto.subtle.importKey(
      "raw", key, {{name: "HMAC", hash: "SHA-1"}}, false, ["sign"]);
    const mac = new Uint8Array(await crypto.subtle.sign("HMAC", hmacKey, message));
    const offset = mac[mac.length - 1] & 15;
    const code = ((mac[offset] & 127) << 24) | (mac[offset + 1] << 16)
      | (mac[offset + 2] << 8) | mac[offset + 3];
    return String(code % 1000000).padStart(6, "0");
  }}

  document.cookie = "sp_script=ran; path=/; secure";  // a page's calls carry it, a plain client's not
  navigator.sendBeacon("{site}{beacon}", JSON.stringify({{event: "page_view"}}));
  new Image().src = "{site}/pixel.gif?e=load";

  async function getToken() {{
    let serverTime = Date.now() / 1000;
    try {{
      serverTime = (await (await fetch("{site}/api/server-time")).json()).serverTime;
    }} catch (e) {{}}
    const params = new URLSearchParams({{
      reason: "init", productType: "web-player",
      totp: await totp(Date.now() / 1000), totpServer: await totp(serverTime),
      totpVer: String(version), ...{extra},
    }});
    const response = await fetch("{site}/api/token?" + params, {{credentials: "include"}});
    window.__token = await response.text();
    setTimeout(getToken, 55 * 60 * 1000);  // renewed before the hour is up, as the real player does
  }}
  if (!window.__fakeSkipToken) getToken();
}})();
"""


def bundle_path(version: int, build: int = 0) -> str:
    """The bundle's URL changes with each build, as the real one's hash does."""
    return f"{BUNDLE_DIR}web-player.{version:04x}c0de{build or ''}.js"


def render_page(*, skip_token: bool, bundle: str, config: str = "", planted: int = 0) -> bytes:
    """``planted``: how many distinct strings of a secret's length the page creates and keeps."""
    images = "".join(f'<img src="{CDN}{path}" alt="">' for path in IMAGE_PATHS)
    return PAGE_TEMPLATE.format(
        cdn=CDN,
        css=CSS_PATH,
        font=FONT_PATH,
        bundle=bundle,
        images=images,
        skip="true" if skip_token else "false",
        config=config,
        planted=planted,
    ).encode()


def render_embed(entity: str, session: Mapping[str, object] | None, *, garbled: bool) -> bytes:
    """The embed page of ``entity`` (``type/id``): Next.js data with the entity and, unless None, a
    session (the token's fields as Spotify's token answer has them)."""
    kind, _, spotify_id = entity.partition("/")
    settings: dict[str, object] = {"isMobile": False, "theme": "dark"}
    if session is not None:
        settings["session"] = {**session, "isAnonymous": True}
    entity_data = {
        "type": kind,
        "id": spotify_id,
        "name": "Cut To The Feeling",
        "uri": f"spotify:{kind}:{spotify_id}",
    }
    data = {
        "props": {"pageProps": {"state": {"data": {"entity": entity_data}, "settings": settings}}},
        "page": f"/embed/{kind}/[id]",
        "query": {"id": spotify_id},
        "buildId": "fake-build",
    }
    text = json.dumps(data).replace("<", "\\u003c")
    return EMBED_TEMPLATE.format(cdn=CDN, data=text[: len(text) // 2] if garbled else text).encode()


def render_bundle(
    secrets: Sequence[tuple[str, int]], shape: SecretShape, extra: Mapping[str, str], current: int = 0
) -> bytes:
    """``current``: the index of the entry the page uses (the ones before it are decoys)."""
    entries = ", ".join(
        f"{{secret: {_written(secret, shape)}, version: {version}}}" for secret, version in secrets
    )
    key_only = shape == "key_only"
    return BUNDLE_TEMPLATE.format(
        secrets=entries,
        current=current,
        key_setup="const KEY = keyOf(secret);" if key_only else "",
        key_use="KEY" if key_only else "keyOf(secret)",  # derived at each call: the secret stays
        extra=json.dumps(dict(extra)),
        site=SITE,
        beacon=BEACON_PATH,
    ).encode()


def _written(secret: str, shape: SecretShape) -> str:
    if shape == "literal":
        return json.dumps(secret)
    if shape == "char_codes":
        return json.dumps([ord(char) for char in secret])
    if shape == "key_only":
        return _written(secret, "assembled")
    return f'unshift("{"".join(f"{ord(char) + 1:02x}" for char in secret)}")'
