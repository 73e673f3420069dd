"""The state folder (``TOKENER_STATE_DIR``): named JSON documents, what was learned, kept across restarts.

Only this process's user may read them: the folder is 0700 (a looser one of ours is tightened; another
user's is not used), each file 0600, written whole (a temporary file, fsync, rename) so that a crash
leaves the old file or the new one. Anything wrong reads as nothing, with one warning: the service
then learns again as on a first start.
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
    """A :class:`~spotify_tokener.core.ports.StateStore` in a folder, checked at first use."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._usable: bool | None = None
        self._pending: dict[str, bytes] = {}
        self._writer: asyncio.Task[None] | None = None
        self._warned: set[str] = set()

    def load(self, name: str) -> dict[str, Any] | None:
        """The document, or None (missing: silently; anything else wrong: one warning)."""
        file = self._file(name)
        try:
            return parse_document(_read(file)) if self._ready() else None
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            self._warn(name, f"{file} is ignored: {getattr(error, 'strerror', None) or error}")
            return None

    def save(self, name: str, document: dict[str, Any]) -> None:
        """Returns at once: the write happens in a thread."""
        self._file(name)  # a wrong name fails here, in the caller
        self._pending[name] = orjson.dumps(document)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._drain())

    async def close(self) -> None:
        """Waits for the writes under way: a shutdown must not lose what was just learned."""
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)

    async def _drain(self) -> None:
        while self._pending:  # taken on the loop, where ``save`` adds: none is left behind
            await asyncio.to_thread(self._write, *self._pending.popitem())

    def _write(self, name: str, raw: bytes) -> None:
        try:
            if self._ready():
                _replace(self._file(name), raw)
        except OSError as error:
            self._warn(name, f"{self._file(name)} could not be written: {error.strerror or error}")

    def _file(self, name: str) -> Path:
        if not NAME.fullmatch(name):
            raise ValueError(f"not a state document's name: {name!r}")
        return self.path / name

    def _ready(self) -> bool:
        """Whether the folder is there, ours and ours alone (created or tightened if need be)."""
        if self._usable is None:
            self._usable = _prepare(self.path)
        return self._usable

    def _warn(self, name: str, message: str) -> None:
        if name not in self._warned:
            self._warned.add(name)
            log.warning("state: %s", message)


def parse_document(raw: bytes) -> dict[str, Any]:
    """A document as read back: a JSON object within the size bound; else a ValueError saying why."""
    document = orjson.loads(raw) if len(raw) <= MAX_DOCUMENT else None  # garbled: orjson's ValueError
    if not isinstance(document, dict):
        raise ValueError(f"not a JSON object of at most {MAX_DOCUMENT} bytes")
    return document


def refusal(mode: int, owner: int, uid: int, *, folder: bool = False) -> str | None:
    """Why a file (or the folder) found there is not to be believed: not what it should be, another
    user's, or a file others could have written. A looser folder of ours is tightened instead."""
    if not (stat.S_ISDIR(mode) if folder else stat.S_ISREG(mode)):
        return "not a folder" if folder else "not a regular file"
    if owner != uid:
        return f"owned by user {owner}, not this process's {uid}"
    return "writable by other users" if mode & 0o022 and not folder else None


def _prepare(path: Path) -> bool:
    try:
        path.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
        found = path.stat()
        problem = refusal(found.st_mode, found.st_uid, os.geteuid(), folder=True)
        if problem is None and stat.S_IMODE(found.st_mode) != FOLDER_MODE:
            path.chmod(FOLDER_MODE)
            log.warning("state folder %s was open to other users; now %o", path, FOLDER_MODE)
    except OSError as error:
        problem = error.strerror or str(error)
    if problem is not None:
        log.warning("state folder %s is not used: %s; nothing is kept across restarts", path, problem)
    return problem is None


def _read(file: Path) -> bytes:
    """The file's bytes, if it is a plain file of ours that no one else could have written."""
    with os.fdopen(os.open(file, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK), "rb") as opened:
        found = os.fstat(opened.fileno())
        problem = refusal(found.st_mode, found.st_uid, os.geteuid())
        if problem is not None:
            raise ValueError(problem)
        return opened.read(MAX_DOCUMENT + 1)


def _replace(file: Path, raw: bytes) -> None:
    """Written whole or not at all, 0600 (``mkstemp``'s mode), on disk before it replaces the old."""
    descriptor, temporary = tempfile.mkstemp(prefix=f".{file.name}.", dir=file.parent)
    try:
        with os.fdopen(descriptor, "wb") as opened:
            opened.write(raw)
            opened.flush()
            os.fsync(opened.fileno())
        os.replace(temporary, file)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
