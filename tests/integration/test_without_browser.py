"""The service whose configuration, or whose steady state, does not use the browser: Playwright is
never imported, nor anything else the configuration leaves unused (``python -X importtime`` tells
every import as it happens)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from spotify_tokener.settings import Settings
from tests.conftest import free_port
from tests.fake_spotify import FakeSpotify

DEFAULT = Settings().sources
UNUSED = {
    "playwright": "the browser source, until its first attempt",
    "cryptography": "Chromium's trust store (TOKENER_CA_FILE), built at the browser's first launch",
    "python_socks": "the browser's relay to a proxy",
    "redis": "TOKENER_REDIS_URL",
    "swagger_ui": "its files are served from disk, found without importing it",
    "jinja2": "swagger_ui's import",
    "difflib": "the closest setting to a misspelled TOKENER_ variable",
}


@pytest.mark.parametrize("sources", ["direct,embed", DEFAULT])
def test_a_service_that_does_not_use_the_browser_imports_nothing_it_leaves_unused(
    fake: FakeSpotify, tmp_path: Path, sources: str
) -> None:
    port, log = free_port(), tmp_path / "imports.log"
    environment = {
        **{name: value for name, value in os.environ.items() if not name.startswith("TOKENER_")},
        "PYTHONPROFILEIMPORTTIME": "1",  # every import, as it happens, on stderr: python -X importtime
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "TOKENER_CA_FILE": str(fake.ca_file),
        "TOKENER_CONNECT_TO": fake.connect_to,
        "TOKENER_SOURCES": sources,
        "TOKENER_STATE_DIR": "",  # a cold start each time, and not the user's own state folder
    }
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "spotify_tokener"], env=environment, stdout=output, stderr=output
        )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                answers = [httpx.get(f"{url}/api/token", params=query) for query in ({}, {"force": "1"})]
                break
            time.sleep(0.05)
        shown = httpx.get(f"{url}/health").json()
    finally:
        process.terminate()
        process.wait(timeout=15)
    lines = log.read_text().splitlines()
    imported = {line.split("|")[-1].strip() for line in lines if line.startswith("import time:")}
    assert [answer.status_code for answer in answers] == [200, 200]
    assert shown["browser"]["launches"] == 0
    assert {"spotify_tokener.wiring", "spotify_tokener.sources.direct.source"} <= imported
    assert {name.split(".")[0] for name in imported} & UNUSED.keys() == set()
