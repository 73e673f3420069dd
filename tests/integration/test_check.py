"""``spotify-tokener check`` run as a user runs it, against the fake web player and its partner API:
what it says of each source, its exit status, and that nothing secret reaches any of its outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fake_spotify import FakeSpotify
from tests.fake_spotify.server import SECRET, UPSTREAM_SECRET_MARKER, Answer

SECRETS = {
    "TOKENER_PROXY": "http://alice:pr0xy-pass@127.0.0.1:9",  # nothing listens: the attempt goes direct
    "TOKENER_PROXY_OPTIONAL": "true",
    "TOKENER_API_KEY": "api-key-never-shown",
    "TOKENER_REDIS_URL": "redis://:redis-pass@127.0.0.1:9/0",  # never connected to by the check
    "TOKENER_TOTP_SECRET": SECRET,
    "TOKENER_TOTP_VERSION": "61",
}


def check(fake: FakeSpotify, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {name: value for name, value in os.environ.items() if not name.startswith("TOKENER_")}
    pointed = {"TOKENER_CA_FILE": str(fake.ca_file), "TOKENER_CONNECT_TO": fake.connect_to}
    return subprocess.run(
        [sys.executable, "-m", "spotify_tokener", "check", *args],
        env={**environment, "TOKENER_STATE_DIR": "", **pointed, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def findings(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """``--json``'s stdout: exactly one JSON object."""
    found: dict[str, Any] = json.loads(result.stdout)
    assert result.stdout.count("\n") == 1
    return found


def by_source(found: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {one["source"]: one for one in found["sources"]}


def assert_nothing_secret(fake: FakeSpotify, *outputs: str) -> None:
    shown = "".join(outputs)
    secrets = [*fake.issued_tokens(), *fake.state.devices, UPSTREAM_SECRET_MARKER]
    secrets += ["pr0xy-pass", "api-key-never-shown", "redis-pass", SECRET]
    assert fake.state.devices  # there was something to leak (the tokens, where any came)
    assert [secret for secret in secrets if secret in shown] == []


def test_every_source_works_and_its_token_is_taken_by_the_partner_api(
    fake: FakeSpotify, tmp_path: Path
) -> None:
    state, metrics = tmp_path / "state", tmp_path / "check.prom"
    env = {**SECRETS, "TOKENER_STATE_DIR": str(state)}
    result = check(fake, "--json", "--textfile", str(metrics), **env)
    report = check(fake, "--report", **env)
    found = findings(result)
    assert result.returncode == 0, result.stderr
    assert [one["source"] for one in found["sources"]] == ["direct", "embed", "browser"]
    assert all(one["ok"] and one["validated"] and one["error"] is None for one in found["sources"])
    assert all(one["expiresInS"] > 2000 and one["partnerMs"] is not None for one in found["sources"])
    assert found["ok"] is True and found["browser"].startswith("Chromium ")
    learned = found["learned"]
    assert (learned["secretVersion"], learned["appVersion"]) == (61, fake.state.pathfinder.app_version)
    assert learned["bundle"] == fake.state.bundle_path.rsplit("/", 1)[-1]
    assert fake.count("pathfinder") == 6  # one call per token, in each of the two runs
    assert 'tokener_check_ok{source="browser"} 1' in metrics.read_text()
    [proxy] = found["proxies"]
    assert proxy["proxy"] == "http://127.0.0.1:9" and "could not be reached" in proxy["lastError"]
    assert report.returncode == 0
    assert "| direct | yes | yes |" in report.stdout
    assert "TOKENER_PROXY=http://127.0.0.1:9 (with credentials)" in report.stdout
    assert "TOKENER_REDIS_URL=redis://***@127.0.0.1:9/0" in report.stdout
    assert "TOKENER_API_KEY=***" in report.stdout and "TOKENER_TOTP_SECRET=***" in report.stdout
    assert not state.exists()  # nothing kept: a running service's folder is left alone
    assert_nothing_secret(fake, result.stdout, result.stderr, report.stdout, report.stderr)


def test_a_token_call_refused_with_403_is_named_and_nothing_works(fake: FakeSpotify) -> None:
    fake.answer_with(then=Answer("status", status=403))
    fake.embed_answers("status", 403)
    result = check(fake, "--json")
    found = by_source(findings(result))
    assert result.returncode == 2
    assert found["direct"]["error"] == "Spotify refused the token request (403)"
    assert found["embed"]["error"] == "Spotify refused the embed page (403)"
    assert "403" in found["browser"]["error"]
    assert not any(one["ok"] or one["validated"] for one in found.values())
    assert_nothing_secret(fake, result.stdout, result.stderr)


def test_one_source_failing_is_exit_1_and_a_browser_that_cannot_run_is_skipped(fake: FakeSpotify) -> None:
    fake.embed_answers("status", 500)
    result = check(fake, TOKENER_BROWSER_PATH="/nonexistent/chromium")
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].endswith("check: 1 of 2 sources work (exit 1)")
    assert [line.split()[:2] for line in lines[2:5]] == [
        ["direct", "yes"],
        ["embed", "no"],
        ["browser", "skipped"],
    ]
    assert "Spotify answered the embed page with HTTP 500" in lines[3]
    assert "not run: TOKENER_BROWSER_PATH does not exist" in lines[4]


@pytest.mark.parametrize(
    ("fault", "validated", "error"),
    [
        ("revoked", True, "partner API refused the token: 401"),
        ("rotated", False, "PersistedQueryNotFound: the partner API does not take the getTrack hash"),
    ],
)
def test_a_token_the_partner_api_refuses_is_not_reported_working(
    fake: FakeSpotify, fault: str, validated: bool, error: str
) -> None:
    if fault == "revoked":
        fake.partner_refuse(401)
    else:
        fake.retire_hashes()  # Spotify deployed; the page still names the old hashes
    result = check(fake, "--json", TOKENER_SOURCES="direct,embed")
    assert result.returncode == 2
    for one in findings(result)["sources"]:
        assert (one["ok"], one["validated"]) == (False, validated)
        assert one["error"].startswith(error)
        assert one["expiresInS"] > 0  # the token itself came
    assert_nothing_secret(fake, result.stdout, result.stderr)
