"""The state folder: its rules on their own, and the folder itself in a temporary directory."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from pathlib import Path

import orjson
import pytest

from spotify_tokener.state import MAX_DOCUMENT, StateFolder, parse_document, refusal

ME, SOMEONE = 1000, 1001
FILE, FOLDER = stat.S_IFREG, stat.S_IFDIR


def test_a_json_object_is_a_document() -> None:
    assert parse_document(b'{"a": 1}') == {"a": 1}


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"[1, 2]", "not a JSON object"),
        (b'"text"', "not a JSON object"),
        (b"{not json", "line 1 column 2"),  # where the JSON goes wrong, as orjson says it
        (b"", "line 1 column 1"),
        (b'{"a": "' + b"x" * MAX_DOCUMENT + b'"}', f"not a JSON object of at most {MAX_DOCUMENT} bytes"),
    ],
    ids=["list", "string", "garbled", "empty", "too-large"],
)
def test_only_a_json_object_of_bounded_size_is_a_document(raw: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_document(raw)


@pytest.mark.parametrize(
    ("mode", "owner", "refused"),
    [
        (FILE | 0o600, ME, None),
        (FILE | 0o644, ME, None),  # readable by others: read, and rewritten 0600 at the next save
        (FILE | 0o620, ME, "writable by other users"),
        (FILE | 0o602, ME, "writable by other users"),
        (FILE | 0o600, SOMEONE, "owned by user 1001, not this process's 1000"),
        (FOLDER | 0o700, ME, "not a regular file"),
        (stat.S_IFIFO | 0o600, ME, "not a regular file"),
    ],
)
def test_a_file_is_believed_only_if_plain_ours_and_written_by_no_one_else(
    mode: int, owner: int, refused: str | None
) -> None:
    assert refusal(mode, owner, ME) == refused


@pytest.mark.parametrize(
    ("mode", "owner", "refused"),
    [
        (FOLDER | 0o700, ME, None),
        (FOLDER | 0o777, ME, None),  # ours: tightened, not refused
        (FOLDER | 0o700, SOMEONE, "owned by user 1001, not this process's 1000"),
        (FILE | 0o600, ME, "not a folder"),
    ],
)
def test_a_folder_is_used_only_if_ours(mode: int, owner: int, refused: str | None) -> None:
    assert refusal(mode, owner, ME, folder=True) == refused


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_a_document_is_written_whole_owner_only_and_read_back(tmp_path: Path) -> None:
    folder = StateFolder(tmp_path / "deep" / "state")
    folder.save("learned.json", {"version": 61})
    await folder.close()
    assert folder.load("learned.json") == {"version": 61}
    assert mode_of(tmp_path / "deep" / "state") == 0o700
    assert mode_of(tmp_path / "deep" / "state" / "learned.json") == 0o600
    assert os.listdir(tmp_path / "deep" / "state") == ["learned.json"]  # no temporary file left


async def test_saves_are_written_off_the_caller_and_the_last_one_wins(tmp_path: Path) -> None:
    folder = StateFolder(tmp_path)
    for version in range(5):
        folder.save("learned.json", {"version": version})
    assert not (tmp_path / "learned.json").exists()  # nothing written before the caller yields
    await folder.close()
    assert folder.load("learned.json") == {"version": 4}


def test_a_looser_folder_of_ours_is_tightened(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    folder = StateFolder(tmp_path)
    assert folder.load("token.json") is None  # missing: nothing, and no warning
    assert mode_of(tmp_path) == 0o700


def test_a_missing_file_is_nothing_without_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert StateFolder(tmp_path).load("token.json") is None
    assert not caplog.records


@pytest.mark.parametrize("damage", ["garbled", "symlink", "group-writable", "a-folder"])
def test_a_damaged_file_is_ignored_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    file = tmp_path / "token.json"
    if damage == "garbled":
        file.write_bytes(b'{"accessToken": "BQ')
    elif damage == "symlink":
        (tmp_path / "elsewhere.json").write_bytes(orjson.dumps({"a": 1}))
        file.symlink_to(tmp_path / "elsewhere.json")
    elif damage == "group-writable":
        file.write_bytes(orjson.dumps({"a": 1}))
        file.chmod(0o660)
    else:
        file.mkdir()
    folder = StateFolder(tmp_path)
    assert folder.load("token.json") is None
    assert folder.load("token.json") is None
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "token.json is ignored" in warnings[0].getMessage()


async def test_a_folder_that_cannot_be_made_is_not_used_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "a-file").write_bytes(b"")
    folder = StateFolder(tmp_path / "a-file" / "state")
    assert folder.load("token.json") is None
    folder.save("token.json", {"a": 1})
    await folder.close()
    assert folder.load("learned.json") is None
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "is not used" in warnings[0]


async def test_a_write_that_fails_warns_once_and_never_raises(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = StateFolder(tmp_path)
    assert folder.load("token.json") is None  # the folder is checked and usable
    (tmp_path / "token.json").mkdir()  # os.replace cannot put a file over a folder
    folder.save("token.json", {"a": 1})
    await folder.close()
    folder.save("token.json", {"a": 2})
    await folder.close()
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "could not be written" in warnings[0]
    assert os.listdir(tmp_path) == ["token.json"]  # no temporary file left


def test_a_name_that_is_not_a_documents_is_a_programming_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a state document's name"):
        StateFolder(tmp_path).save("../escape.json", {})


async def test_close_waits_for_writes_under_way(tmp_path: Path) -> None:
    folder = StateFolder(tmp_path)
    folder.save("token.json", {"a": 1})
    await asyncio.wait_for(folder.close(), 5)
    assert orjson.loads((tmp_path / "token.json").read_bytes()) == {"a": 1}
