"""What the fake web player holds for clients of pathfinder: persisted-query hashes in the main bundle
and in webpack chunks the bundle names in two maps, and the app version in the page's config.

A deploy gives every query a new hash, and so every chunk and the bundle a new name, as Spotify's
builds do (the names are content hashes).
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass

BUNDLE_OPERATIONS = {
    "getTrack": "query",
    "fetchPlaylistMetadata": "query",
    "internalLinkRecommenderTrack": "query",
}
CHUNK_OPERATIONS = {
    "xpui-routes-search": {"searchDesktop": "query", "searchTracks": "query"},
    "xpui-routes-album": {"getAlbum": "query", "queryAlbumTracks": "query"},
    "xpui-routes-playlist": {"fetchPlaylist": "query", "addToPlaylist": "mutation"},
    "xpui-routes-artist": {"queryArtistOverview": "query", "queryArtistDiscographyAll": "query"},
}
CHUNK_IDS = {name: 1000 + 37 * index for index, name in enumerate(CHUNK_OPERATIONS)}
CHUNK_DIR = "/cdn/build/web-player/"


@dataclass
class Pathfinder:
    """``build``: bumped at each deploy; ``padding``: bytes of junk at the end of the main bundle, made
    of small maps and strings (slow to parse, as a hostile upstream would make them)."""

    build: int = 0
    app_version: str = "1.2.60.123.g0a1b2c3d"
    padding: int = 0
    retired: bool = False  # the partner API takes none of the hashes the scripts name now

    def deploy(self, app_version: str | None = None) -> None:
        """A new build: new hashes, new chunk and bundle names, maybe a new app version."""
        self.build, self.retired = self.build + 1, False
        if app_version is not None:
            self.app_version = app_version

    def accepts(self, operation: str, sha256: str) -> bool:
        """What the partner API takes: only the current build's hash of the operation."""
        return not self.retired and sha256 == self.sha256(operation)

    def sha256(self, operation: str) -> str:
        return hashlib.sha256(f"{operation}:{self.build}".encode()).hexdigest()

    def operations(self) -> dict[str, str]:
        """Every operation the scripts name, with its hash now: what ``/api/hashes`` must serve."""
        names = [*BUNDLE_OPERATIONS, *(name for chunk in CHUNK_OPERATIONS.values() for name in chunk)]
        return {name: self.sha256(name) for name in names}

    def config_script(self) -> str:
        config = {"clientVersion": self.app_version, "buildVer": self.build, "locale": "en"}
        encoded = base64.b64encode(json.dumps(config).encode()).decode()
        return f'<script id="appServerConfig" type="text/plain">{encoded}</script>'

    def bundle_section(self) -> str:
        """Appended to the main bundle: its own triples, and the chunk maps webpack's runtime reads
        (the stylesheets' map too, which names no script)."""
        names = ",".join(f'{CHUNK_IDS[name]}:"{name}"' for name in CHUNK_OPERATIONS)
        hashes = ",".join(f'{CHUNK_IDS[name]}:"{self._chunk_hash(name)}"' for name in CHUNK_OPERATIONS)
        css = ",".join(f'{CHUNK_IDS[name]}:"{self._chunk_hash(name)[::-1]}"' for name in CHUNK_OPERATIONS)
        return (
            "\n;(() => {\n"
            f"  const queries = [{self._triples(BUNDLE_OPERATIONS)}];\n"
            f'  const scriptUrl = (e) => ({{{names}}}[e] || e) + "." + {{{hashes}}}[e] + ".js";\n'
            f'  const cssUrl = (e) => ({{{names}}}[e] || e) + "." + {{{css}}}[e] + ".css";\n'
            "  return [queries, scriptUrl, cssUrl];\n"
            "})();\n"
            f"{self._junk()}"
        )

    def chunk(self, path: str) -> bytes | None:
        """The chunk at ``path``, if it is one of this build's."""
        for name in CHUNK_OPERATIONS:
            if path == f"{CHUNK_DIR}{name}.{self._chunk_hash(name)}.js":
                return self._chunk_text(name).encode()
        return None

    def _junk(self) -> str:
        piece = '{1:"ab"},"q",'
        return f"/*{piece * (self.padding // len(piece))}*/" if self.padding else ""

    def _chunk_text(self, name: str) -> str:
        chunk_id = CHUNK_IDS[name]
        return (
            f'"use strict";(self.webpackChunkweb_player=self.webpackChunkweb_player||[]).push([[{chunk_id}],'
            f"{{{chunk_id}:(e,t,n)=>{{const q=[{self._triples(CHUNK_OPERATIONS[name])}];}}}}]);\n"
        )

    def _chunk_hash(self, name: str) -> str:
        return hashlib.sha256(self._chunk_text(name).encode()).hexdigest()[:20]

    def _triples(self, operations: dict[str, str]) -> str:
        return ",".join(
            f'["{name}","{kind}","{self.sha256(name)}",null]' for name, kind in operations.items()
        )
