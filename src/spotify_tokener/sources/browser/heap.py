"""The running page's strings, read from a V8 heap snapshot: what the browser can teach when the
scripts' text cannot.

A bundle may assemble its secret at run time, where no reader of the text finds it; but the page
keeps it in memory for its next renewal. A heap snapshot lists every string the page holds. It can
be large (the real web player's runs to tens of MB), so it is read as it streams in, keeping only the
strings that could be a secret; it is taken only when the direct source asks for it, after reading
the scripts failed.

Each string is a candidate checked against one sighted six-digit code, so each is a small chance of a
false match: the fewer, the better. Most of a page's strings are the browser's own (interface and
property names), held by an empty page of the same origin too; those are left out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re

from playwright.async_api import BrowserContext, Page
from playwright.async_api import Error as PlaywrightError

from spotify_tokener.domain.bundle import MAX_CANDIDATES, MAX_LENGTH, MIN_LENGTH

log = logging.getLogger(__name__)

STRING_TABLE = '"strings":['
STRING_END = re.compile(r'(?:[^"\\]|\\.)*"', re.DOTALL)
LONGEST_LITERAL = MAX_LENGTH * 6 + 2
"""The longest literal a kept string can have: each character escaped as \\uXXXX, and its quotes."""
TOO_LONG = '"' + "x" * (LONGEST_LITERAL + 1)
SEPARATORS = re.compile(r"[,\s]*")


class StringTable:
    """Fed the snapshot's JSON in chunks; keeps the strings of its string table worth a check.

    Linear in the snapshot's size: a string too long to be a secret (a script's source, megabytes)
    is held as a short stand-in while it streams, not kept and rescanned with every chunk.
    """

    def __init__(self, known: frozenset[str] = frozenset(), cap: int = MAX_CANDIDATES) -> None:
        """``known``: strings not worth keeping (the browser's own), left out before the cap counts."""
        self.found: dict[str, None] = {}
        self._known = known
        self._cap = cap
        self.done = False
        self.truncated = False  # more strings than the cap: the first ones are kept
        self._inside = False
        self._pending = ""

    def feed(self, chunk: str) -> None:
        if self.done:
            return
        text = self._pending + chunk
        if not self._inside:
            start = text.find(STRING_TABLE)
            if start < 0:
                self._pending = text[-len(STRING_TABLE) :]
                return
            self._inside, text = True, text[start + len(STRING_TABLE) :]
        self._read(text)

    def _read(self, text: str) -> None:
        """Each string is matched once, anchored at its opening quote: never rescanned."""
        position = 0
        while len(self.found) < self._cap:
            separators = SEPARATORS.match(text, position)  # always matches: it may match nothing
            start = separators.end() if separators else position
            if start == len(text):
                self._pending = ""
                return
            if text[start] != '"':  # "]": the end of the table
                self.done = True
                return
            end = STRING_END.match(text, start + 1)
            if end is None:  # still streaming
                self._hold(text[start:])
                return
            self._keep(text[start : end.end()])
            position = end.end()
        self.done = self.truncated = True

    def _hold(self, unfinished: str) -> None:
        """Keep a string's beginning for the next chunk; one already too long, as a stand-in just as
        unfit to keep, and, like it, inside an escape or not."""
        escape = "\\" if _ends_in_escape(unfinished[1:]) else ""
        self._pending = unfinished if len(unfinished) <= LONGEST_LITERAL else TOO_LONG + escape

    def _keep(self, literal: str) -> None:
        if not MIN_LENGTH <= len(literal) - 2 <= LONGEST_LITERAL:
            return
        with contextlib.suppress(ValueError):
            value = json.loads(literal)
            if MIN_LENGTH <= len(value) <= MAX_LENGTH and value.isprintable() and value not in self._known:
                self.found[value] = None


def _ends_in_escape(text: str) -> bool:
    """Whether ``text``, read inside a string, ends halfway through an escape (an odd run of \\)."""
    return (len(text) - len(text.rstrip("\\"))) % 2 == 1


async def empty_page_strings(context: BrowserContext, url: str) -> frozenset[str] | None:
    """The browser's own strings. Served by the context itself, so nothing is sent anywhere; ``context``
    must be one of its own, so that no page of the player shares its heap."""
    try:
        await context.route(
            "**/*", lambda route: route.fulfill(status=200, content_type="text/html", body="")
        )
        page = await context.new_page()
        await page.goto(url)
    except PlaywrightError:
        return None
    strings = await page_strings(context, page)
    return frozenset(strings) if strings else None


async def page_strings(
    context: BrowserContext, page: Page, known: frozenset[str] = frozenset(), cap: int = MAX_CANDIDATES
) -> list[str]:
    """Read until the table is done (its end, or ``cap`` strings kept): the rest of a huge page's
    snapshot is not awaited."""
    table = StringTable(known, cap)
    full = asyncio.get_running_loop().create_future()

    def feed(event: dict[str, str]) -> None:
        table.feed(event["chunk"])
        if table.done and not full.done():
            full.set_result(None)

    try:
        session = await context.new_cdp_session(page)
    except PlaywrightError:
        return []
    session.on("HeapProfiler.addHeapSnapshotChunk", feed)
    snapshot = asyncio.ensure_future(session.send("HeapProfiler.takeHeapSnapshot", {"reportProgress": False}))
    snapshot.add_done_callback(lambda task: task.cancelled() or task.exception())  # its end is not awaited
    try:
        await asyncio.wait([snapshot, full], return_when=asyncio.FIRST_COMPLETED)
    finally:
        snapshot.cancel()
    with contextlib.suppress(PlaywrightError):
        await session.detach()
    if table.truncated:
        log.warning(
            "the page's memory holds more than %d strings that could be a secret; the first are read", cap
        )
    return list(table.found) if table.done else []
