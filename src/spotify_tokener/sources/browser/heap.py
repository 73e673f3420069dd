"""The running page's strings, read from a V8 heap snapshot: what the browser can teach when the
scripts' text cannot.

A bundle may assemble its secret at run time, where no reader of the text finds it; but the page
keeps it in memory for its next renewal. A heap snapshot lists every string the page holds. It can
be large (the real web player's runs to tens of MB), so it is read as it streams in, keeping only the
strings that could be a secret; it is taken only when the direct source asks for it, after reading
the scripts failed.
"""

from __future__ import annotations

import contextlib
import json
import re

from playwright.async_api import BrowserContext, Page
from playwright.async_api import Error as PlaywrightError

from spotify_tokener.domain.bundle import MAX_CANDIDATES, MAX_LENGTH, MIN_LENGTH

STRING_TABLE = '"strings":['
JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
SEPARATORS = ", \n\r\t"


class StringTable:
    """Fed the snapshot's JSON in chunks; keeps the strings of its string table worth a check."""

    def __init__(self) -> None:
        self.found: dict[str, None] = {}
        self.done = False
        self._inside = False
        self._pending = ""

    def feed(self, chunk: str) -> None:
        if self.done:
            return
        if not self._inside:
            text = self._pending + chunk
            start = text.find(STRING_TABLE)
            if start < 0:
                self._pending = text[-len(STRING_TABLE) :]
                return
            self._inside, self._pending, chunk = True, "", text[start + len(STRING_TABLE) :]
        self._read(self._pending + chunk)

    def _read(self, text: str) -> None:
        end = 0
        for match in JSON_STRING.finditer(text):
            if text[end : match.start()].strip(SEPARATORS):  # past the table: "]" and what follows
                break
            end = match.end()
            self._keep(match.group(0))
        rest = text[end:]
        self.done = rest.lstrip(SEPARATORS).startswith("]") or len(self.found) >= MAX_CANDIDATES
        self._pending = rest

    def _keep(self, literal: str) -> None:
        if not MIN_LENGTH <= len(literal) - 2 <= MAX_LENGTH * 6:  # an escape writes a character in up to 6
            return
        with contextlib.suppress(ValueError):
            value = json.loads(literal)
            if MIN_LENGTH <= len(value) <= MAX_LENGTH and value.isprintable():
                self.found[value] = None


async def page_strings(context: BrowserContext, page: Page) -> list[str]:
    """The strings the page holds that could be a secret (empty if the snapshot cannot be taken)."""
    table = StringTable()
    try:
        session = await context.new_cdp_session(page)
        session.on("HeapProfiler.addHeapSnapshotChunk", lambda event: table.feed(event["chunk"]))
        await session.send("HeapProfiler.takeHeapSnapshot", {"reportProgress": False})
        await session.detach()
    except PlaywrightError:
        return []
    return list(table.found)
