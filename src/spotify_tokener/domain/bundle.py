"""Reading the web player's page and scripts for the TOTP secret, without trusting one shape.

Every extractor tuned to one way of writing the secret has broken within months. So this module offers
many *candidates* and never decides: one becomes the secret only once it reproduces a code the page
sent, or Spotify accepts it.
"""

from __future__ import annotations

import re
import sys
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

from spotify_tokener.domain.totp import Secret

MIN_LENGTH = 8
MAX_LENGTH = 128
PRINTABLE = range(32, 127)
MAX_CANDIDATES = 50_000
"""Bounds the offline checks (a few microseconds each) a large bundle can cost."""

_STRING = r""""(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|`(?:[^`\\$]|\\.)*`"""
_CODES = r"\[\s*\d{1,3}(?:\s*,\s*\d{1,3})*\s*\]|String\.fromCharCode\(\s*\d{1,3}(?:\s*,\s*\d{1,3})*\s*\)"
_VALUE = rf"(?P<value>{_STRING}|{_CODES})"
_SECRET_FIRST = re.compile(
    rf"""["']?secret["']?\s*:\s*{_VALUE}\s*,\s*["']?version["']?\s*:\s*(?P<version>\d+)"""
)
_VERSION_FIRST = re.compile(
    rf"""["']?version["']?\s*:\s*(?P<version>\d+)\s*,\s*["']?secret["']?\s*:\s*{_VALUE}"""
)
_ANY_VALUE = re.compile(_VALUE)
_ESCAPE = re.compile(r"\\(u\{[0-9a-fA-F]+\}|u[0-9a-fA-F]{4}|x[0-9a-fA-F]{2}|.)", re.DOTALL)
_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v", "0": "\0"}


def script_urls(html: str, page_url: str) -> list[str]:
    """The page's external scripts, absolute, in document order (the bundle among them)."""
    finder = _ScriptFinder()
    finder.feed(html)
    urls = [urljoin(page_url, source) for source in finder.sources]
    return [url for url in dict.fromkeys(urls) if urlsplit(url).scheme in {"http", "https"}]


def secret_candidates(script: str) -> list[Secret]:
    """Versioned secrets (newest first), then every unversioned string worth a check, deduplicated."""
    versions: dict[str, int] = {}
    for pattern in (_SECRET_FIRST, _VERSION_FIRST):
        for match in pattern.finditer(script):
            value = _decoded(match["value"])
            if value is not None:
                versions[value] = max(versions.get(value, 0), int(match["version"]))
    newest_first = sorted(versions.items(), key=lambda item: -item[1])
    others: dict[str, None] = {}
    for match in _ANY_VALUE.finditer(script):
        value = _decoded(match["value"])
        if value is not None and value not in versions:
            others[value] = None
            if len(others) >= MAX_CANDIDATES:
                break
    return [*(Secret(value, version) for value, version in newest_first), *map(Secret, others)]


def _decoded(literal: str) -> str | None:
    """A JS string literal's value, or a list of character codes as a string, if it is a secret's length."""
    if literal[0] in "\"'`":
        value = _ESCAPE.sub(_unescape, literal[1:-1])
    else:
        codes = [int(code) for code in re.findall(r"\d+", literal)]
        value = "".join(map(chr, codes)) if all(code in PRINTABLE for code in codes) else ""
    return value if MIN_LENGTH <= len(value) <= MAX_LENGTH else None


def _unescape(match: re.Match[str]) -> str:
    escape = match[1]
    if escape[0] in "ux" and len(escape) > 1:
        code = int(escape.strip("ux{}"), 16)
        return chr(code) if code <= sys.maxunicode else ""
    return _SIMPLE_ESCAPES.get(escape, escape)


class _ScriptFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            source = dict(attrs).get("src")
            if source:
                self.sources.append(source)
