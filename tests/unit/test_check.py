"""The check's own rules: what a partner API answer means, the exit status, the masked settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from spotify_tokener.check import exit_status, masked_settings, verdict, write_textfile
from spotify_tokener.settings import Settings

NOT_FOUND = {"errors": [{"message": "PersistedQueryNotFound", "extensions": {"code": "NOT_FOUND"}}]}


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, {"data": {"trackUnion": {"name": "x"}}}, (True, None)),
        (401, {"error": {"message": "leaked?"}}, (True, "partner API refused the token: 401")),
        (403, b"<html>leaked?</html>", (True, "partner API refused the token: 403")),
        (200, NOT_FOUND, (False, "PersistedQueryNotFound: the partner API does not take the getTrack hash")),
        (400, NOT_FOUND, (False, "PersistedQueryNotFound: the partner API does not take the getTrack hash")),
        (429, b"", (False, "partner API answered HTTP 429")),
        (
            200,
            {"data": None, "errors": [{"message": "leaked?"}]},
            (False, "partner API answered without data"),
        ),
        (200, b"[1, 2]", (False, "partner API answered without data")),
    ],
)
def test_what_a_partner_api_answer_means(status: int, body: Any, expected: tuple[bool, str | None]) -> None:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    validated, error = verdict(status, raw)
    assert validated == expected[0]
    assert error == expected[1] or (error or "").startswith(expected[1] or "")
    assert "leaked?" not in (error or "")


@pytest.mark.parametrize(("oks", "status"), [([True, True], 0), ([True, False], 1), ([False, False], 2)])
def test_exit_status_counts_the_sources_tried(oks: list[bool], status: int) -> None:
    sources = [{"ok": ok, "skipped": False} for ok in oks] + [{"ok": False, "skipped": True}]
    assert exit_status({"sources": sources}) == status


def test_settings_are_shown_as_their_variables_with_every_secret_masked() -> None:
    settings = Settings.build(
        proxy="socks5://bob:pw1@10.0.0.1:1080,http://10.0.0.2:3128",
        redis_url="redis://user:pw2@cache:6379/0?password=pw3",
        api_key="pw4",
        totp_secret="pw5",
        totp_version=61,
        browser_args="--proxy-server=http://carol:pw6@10.0.0.3:8080",
        sources="direct",
    )
    shown = masked_settings(settings)
    assert shown["TOKENER_PROXY"] == "socks5://10.0.0.1:1080 (with credentials),http://10.0.0.2:3128"
    assert shown["TOKENER_REDIS_URL"] == "redis://***@cache:6379/0"
    assert (shown["TOKENER_API_KEY"], shown["TOKENER_TOTP_SECRET"]) == ("***", "***")
    assert shown["TOKENER_SOURCES"] == "direct"
    assert not [value for value in shown.values() if "pw" in value]
    assert "TOKENER_USER_AGENT" not in shown  # at its default


def test_the_textfile_is_replaced_whole(tmp_path: Path) -> None:
    target = tmp_path / "check.prom"
    target.write_text("old\n")
    sources = [{"source": "direct", "ok": True, "skipped": False}, {"source": "browser", "skipped": True}]
    write_textfile({"sources": sources, "checkedAt": 1_700_000_000_000}, target)
    text = target.read_text()
    assert "browser" not in text
    assert 'tokener_check_ok{source="direct"} 1\n' in text
    assert "tokener_check_timestamp_seconds 1700000000.000\n" in text
    assert [path.name for path in tmp_path.iterdir()] == ["check.prom"]
