"""What clients of the web player's own API (pathfinder) need besides a token, read from its text.

Pathfinder takes an operation's name and the sha256 of its query, which only the player's scripts carry
and Spotify retires at its deploys: the main bundle holds some as ``"getTrack","query","<64 hex>"``,
webpack chunks the rest, named by two maps in the bundle (chunk id to name, to content hash). The app
version is base64 JSON in ``<script id="appServerConfig">``.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import orjson

MAX_CHUNKS, MAX_OPERATIONS = 400, 5000
OPERATION = re.compile(r"[A-Za-z_$][\w$]{0,99}")
SHA256 = re.compile(r"[0-9a-f]{64}")
METADATA_TYPES = {  # /api/metadata?type=, in the words of a fork of the original service
    "track": "getTrack",
    "album": "getAlbum",
    "playlist": "fetchPlaylist",
    "playlistMetadata": "fetchPlaylistMetadata",
    "artistOverview": "queryArtistOverview",
    "trackRecommender": "internalLinkRecommenderTrack",
}
_TRIPLE = re.compile(rf'"({OPERATION.pattern})"\s*,\s*"(?:query|mutation)"\s*,\s*"({SHA256.pattern})"')
_BUNDLE = re.compile(r"web-player\.[0-9a-f]{4,}\.m?js")  # the main one: not vendor~ nor encore~
_CONFIG = re.compile(r"""<script[^>]*\bid=["']?appServerConfig\b[^>]*>([A-Za-z0-9+/=\s]{1,65536})</script>""")
_MAP = re.compile(r'\{(?:\s*(?:\d+|"[\w-]+")\s*:\s*"[^"\\{}]{1,200}"\s*,?){1,5000}\s*\}')
_ENTRY = re.compile(r'"?([\w-]+)"?\s*:\s*"([^"]*)"')
_HEX = re.compile(r"[0-9a-f]{6,}")


@dataclass(frozen=True, slots=True)
class HashSet:
    """One bundle's operations; ``updated_at`` (epoch s): when the page last named that bundle."""

    bundle: str
    app_version: str | None
    operations: Mapping[str, str]
    updated_at: int

    def serves(self, sha256: str | None) -> bool:
        return sha256 in self.operations.values()


def bundle_name(url: str) -> str:
    return urlsplit(url).path.rsplit("/", 1)[-1]


def bundle_url(scripts: Iterable[str]) -> str | None:
    return next((url for url in scripts if _BUNDLE.fullmatch(bundle_name(url))), None)


def app_version(html: str) -> str | None:
    found = _CONFIG.search(html)
    try:
        config = orjson.loads(base64.b64decode("".join(found[1].split()))) if found else None
    except (binascii.Error, orjson.JSONDecodeError, ValueError):
        return None
    version = config.get("clientVersion") if isinstance(config, dict) else None
    return version if isinstance(version, str) and 0 < len(version) <= 100 else None


def chunk_urls(bundle: str, url: str) -> list[str]:
    """The chunks the bundle's maps name, beside it: a map of hexadecimal values gives hashes (unless
    a stylesheet's name is built with it), the other maps give names."""
    hashes: list[dict[str, str]] = []
    names: dict[str, str] = {}
    for found in _MAP.finditer(bundle):
        entries = dict(_ENTRY.findall(found[0]))
        if not all(_HEX.fullmatch(value) for value in entries.values()):
            names.update(entries)
        elif ".css" not in bundle[found.end() : found.end() + 40]:
            hashes.append(entries)
    chunks = [f"{names[key]}.{value}.js" for found in hashes for key, value in found.items() if key in names]
    return [urljoin(url, chunk) for chunk in dict.fromkeys(chunks) if "/" not in chunk][:MAX_CHUNKS]


def operations_in(scripts: Iterable[bytes]) -> dict[str, str]:
    """Every persisted query the scripts name, with its hash (a later script's wins)."""
    operations: dict[str, str] = {}
    for script in scripts:
        operations.update(_TRIPLE.findall(script.decode("utf-8", "replace")))
    return dict(list(operations.items())[:MAX_OPERATIONS])


def hash_record(served: HashSet) -> dict[str, Any]:
    """In the shape the hosted hash workers use (``version`` 1), with the app version."""
    return {
        "version": 1,
        "updated_at": served.updated_at,
        "bundle": served.bundle,
        "appVersion": served.app_version,
        "operations": dict(served.operations),
    }


def load_hash_record(record: object) -> HashSet | None:
    """A set's record from Redis or the state folder, if every part of it is what this service writes."""
    try:
        record = orjson.loads(record) if isinstance(record, bytes) else record
    except orjson.JSONDecodeError:
        return None
    if not isinstance(record, dict) or record.get("version") != 1:
        return None
    bundle, version, at, ops = map(record.get, ("bundle", "appVersion", "updated_at", "operations"))
    if not (
        isinstance(bundle, str)
        and _BUNDLE.fullmatch(bundle)
        and (version is None or (isinstance(version, str) and len(version) <= 100))
        and type(at) is int
        and isinstance(ops, dict)
        and 0 < len(ops) <= MAX_OPERATIONS
        and all(isinstance(d, str) and OPERATION.fullmatch(n) and SHA256.fullmatch(d) for n, d in ops.items())
    ):
        return None
    return HashSet(bundle, version, ops, at)
