"""What a client of the web player's own API needs besides a token, read from the player's text.

Pathfinder takes *persisted queries*: an operation's name and the sha256 of its query, which only the
web player's scripts carry, and which Spotify retires at its deploys. The main bundle holds some as
``"getTrack","query","<64 hex>"``; the rest sit in webpack chunks that two maps in the bundle name (a
chunk's id to its name, its id to its content hash). The page carries the app version clients send,
as base64 JSON in ``<script id="appServerConfig">``. A set is one bundle's operations; its record is
the API's answer, what replicas share and what is kept across restarts, read back like any input.
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

RECORD_VERSION = 1  # the shape's version, as the hosted hash workers write it
MAX_CHUNKS = 400
MAX_OPERATIONS = 5000
OPERATION = re.compile(r"[A-Za-z_$][\w$]{0,99}")
SHA256 = re.compile(r"[0-9a-f]{64}")
METADATA_TYPES = {
    "track": "getTrack",
    "album": "getAlbum",
    "playlist": "fetchPlaylist",
    "playlistMetadata": "fetchPlaylistMetadata",
    "artistOverview": "queryArtistOverview",
    "trackRecommender": "internalLinkRecommenderTrack",
}
"""``/api/metadata?type=``'s words, as a fork of the original service named the operations."""
_TRIPLE = re.compile(rf'"({OPERATION.pattern})"\s*,\s*"(?:query|mutation)"\s*,\s*"({SHA256.pattern})"')
_BUNDLE = re.compile(r"web-player\.[0-9a-f]{4,}\.m?js")  # the main one: not vendor~ nor encore~
_CONFIG = re.compile(r"""<script[^>]*\bid=["']?appServerConfig\b[^>]*>([A-Za-z0-9+/=\s]{1,65536})</script>""")
_MAP = re.compile(r'\{(?:\s*(?:\d+|"[\w-]+")\s*:\s*"[^"\\{}]{1,200}"\s*,?){1,5000}\s*\}')
_ENTRY = re.compile(r'"?([\w-]+)"?\s*:\s*"([^"]*)"')
_HEX = re.compile(r"[0-9a-f]{6,}")


@dataclass(frozen=True, slots=True)
class HashSet:
    """One bundle's operations; ``updated_at`` (epoch s) is when the page last showed that bundle."""

    bundle: str
    app_version: str | None
    operations: Mapping[str, str]
    updated_at: int

    def serves(self, sha256: str) -> bool:
        return sha256 in self.operations.values()


def bundle_url(scripts: Iterable[str]) -> str | None:
    """The main bundle among the page's scripts."""
    return next((url for url in scripts if _BUNDLE.fullmatch(bundle_name(url))), None)


def app_version(html: str) -> str | None:
    """``clientVersion`` of the page's ``appServerConfig``, if it reads well."""
    found = _CONFIG.search(html)
    try:
        config = orjson.loads(base64.b64decode("".join(found[1].split()))) if found else None
    except (binascii.Error, orjson.JSONDecodeError, ValueError):
        return None
    version = config.get("clientVersion") if isinstance(config, dict) else None
    return version if isinstance(version, str) and 0 < len(version) <= 100 else None


def chunk_urls(bundle: str, url: str) -> list[str]:
    """The scripts the bundle's chunk maps name, beside it: a map whose values are all hexadecimal
    gives the chunks' hashes (unless it builds a stylesheet's name), the other maps their names."""
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
    found = (match for script in scripts for match in _TRIPLE.finditer(script.decode("utf-8", "replace")))
    operations: dict[str, str] = {}
    for match in found:
        operations[match[1]] = match[2]
        if len(operations) >= MAX_OPERATIONS:
            break
    return operations


def hash_record(served: HashSet) -> dict[str, Any]:
    return {
        "version": RECORD_VERSION,
        "updated_at": served.updated_at,
        "bundle": served.bundle,
        "appVersion": served.app_version,
        "operations": dict(served.operations),
    }


def load_hash_record(record: object) -> HashSet | None:
    """A record from Redis or the state folder, if every part of it is what this service writes."""
    if not isinstance(record, dict) or record.get("version") != RECORD_VERSION:
        return None
    bundle, version, at = record.get("bundle"), record.get("appVersion"), record.get("updated_at")
    operations = record.get("operations")
    if (
        not isinstance(bundle, str)
        or not _BUNDLE.fullmatch(bundle)
        or not (version is None or (isinstance(version, str) and len(version) <= 100))
        or not isinstance(at, int)
        or isinstance(at, bool)
        or not isinstance(operations, dict)
        or not 0 < len(operations) <= MAX_OPERATIONS
    ):
        return None
    for name, digest in operations.items():
        if not OPERATION.fullmatch(name) or not isinstance(digest, str) or not SHA256.fullmatch(digest):
            return None
    return HashSet(bundle, version, operations, at)


def bundle_name(url: str) -> str:
    return urlsplit(url).path.rsplit("/", 1)[-1]
