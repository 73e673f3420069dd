"""The state folder (``TOKENER_STATE_DIR``): what was learned, kept across restarts.

Named JSON documents, each owned by one part of the service (the direct source's learned secret, the
anonymous device, the anonymous token). Only this process's own user may read them: the folder is
0700 (an existing one of ours that is looser is tightened; one of another user is not used), each file
0600, written whole (a temporary file, fsync, rename) so a crash leaves the old file or the new one.
A file that is missing, unreadable, another user's or not JSON reads as nothing, with one warning:
the service then learns again as on a first start. Writes run in a thread, after the answer that
caused them; the last one of each document wins.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger(__name__)

FOLDER_MODE = 0o700
MAX_DOCUMENT = 1 << 20  # bytes: the documents are small; a larger file is not ours
NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}\.json")  # a document's name is its file's


class StateFolder:
    """A :class:`~spotify_tokener.core.ports.StateStore` in a folder; checked at first use."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._usable: bool | None = None
        self._pending: dict[str, bytes] = {}
        self._writer: asyncio.Task[None] | None = None
        self._warned: set[str] = set()

    def load(self, name: str) -> dict[str, Any] | None:
        """The document, or None (missing: silently; anything else wrong: one warning)."""
        if not self._ready():
            return None
        try:
            raw = _read(self._file(name))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            self._warn(name, f"{self._file(name)} is ignored: {_cause(error)}")
            return None
        document = parse_document(raw)
        if document is None:
            self._warn(
                name, f"{self._file(name)} is ignored: not a JSON object of at most {MAX_DOCUMENT} bytes"
            )
        return document

    def save(self, name: str, document: dict[str, Any]) -> None:
        """Returns at once: the write happens in a thread (at once when no event loop runs)."""
        self._file(name)  # the name is checked here, in the caller's frame
        self._pending[name] = orjson.dumps(document)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._write_pending()
            return
        if self._writer is None or self._writer.done():
            self._writer = loop.create_task(self._drain())

    async def close(self) -> None:
        """Waits for the writes under way (a shutdown must not lose what was just learned)."""
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)

    async def _drain(self) -> None:
        while self._pending:
            await asyncio.to_thread(self._write_pending)

    def _write_pending(self) -> None:
        while self._pending:
            name = next(iter(self._pending))
            self._write(name, self._pending.pop(name))

    def _write(self, name: str, raw: bytes) -> None:
        if not self._ready():
            return
        try:
            _replace(self.path, name, raw)
        except OSError as error:
            self._warn(name, f"{self._file(name)} could not be written: {_cause(error)}")
            return
        self._warned.discard(name)  # written: a later failure is news again

    def _file(self, name: str) -> Path:
        if not NAME.fullmatch(name):
            raise ValueError(f"not a state document's name: {name!r}")
        return self.path / name

    def _ready(self) -> bool:
        """Whether the folder is there, ours and ours alone (created or tightened if need be)."""
        if self._usable is None:
            problem = _prepare(self.path)
            self._usable = problem is None
            if problem is not None:
                log.warning(
                    "state folder %s is not used: %s; nothing is kept across restarts", self.path, problem
                )
        return self._usable

    def _warn(self, name: str, message: str) -> None:
        if name not in self._warned:
            self._warned.add(name)
            log.warning("state: %s", message)


def parse_document(raw: bytes) -> dict[str, Any] | None:
    """A document as read back: a JSON object within the size bound, or None."""
    if len(raw) > MAX_DOCUMENT:
        return None
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return document if isinstance(document, dict) else None


def file_refusal(mode: int, owner: int, uid: int) -> str | None:
    """Why a file found in the folder is not to be believed: not a plain file, another user's, or
    writable by others (anyone could have put it there)."""
    if not stat.S_ISREG(mode):
        return "not a regular file"
    if owner != uid:
        return f"owned by user {owner}, not this process's {uid}"
    if mode & 0o022:
        return "writable by other users"
    return None


def folder_refusal(mode: int, owner: int, uid: int) -> str | None:
    """Why the folder cannot be used as it is; a looser folder of ours is tightened instead."""
    if not stat.S_ISDIR(mode):
        return "not a folder"
    if owner != uid:
        return f"owned by user {owner}, not this process's {uid}"
    return None


def _prepare(path: Path) -> str | None:
    try:
        path.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
        found = path.stat()
        problem = folder_refusal(found.st_mode, found.st_uid, os.geteuid())
        if problem is None and stat.S_IMODE(found.st_mode) != FOLDER_MODE:
            path.chmod(FOLDER_MODE)
            log.warning("state folder %s was open to other users; now %o", path, FOLDER_MODE)
    except OSError as error:
        return _cause(error)
    return problem


def _read(file: Path) -> bytes:
    """The file's bytes, if it is a plain file of ours that no one else could have written."""
    descriptor = os.open(file, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(descriptor, "rb") as opened:
        found = os.fstat(opened.fileno())
        problem = file_refusal(found.st_mode, found.st_uid, os.geteuid())
        if problem is not None:
            raise ValueError(problem)
        return opened.read(MAX_DOCUMENT + 1)


def _replace(folder: Path, name: str, raw: bytes) -> None:
    """Written whole or not at all, 0600 (``mkstemp``'s mode), and durable before it replaces the old."""
    descriptor, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(raw)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, folder / name)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    directory = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a power cut
    finally:
        os.close(directory)


def _cause(error: Exception) -> str:
    """A short cause, without a traceback."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    return str(error)
