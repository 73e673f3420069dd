"""The service whose configuration, or whose steady state, does not use the browser: Playwright is
never imported (``python -X importtime`` tells every import as it happens)."""

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

DEFAULT = Settings.model_fields["sources"].default


@pytest.mark.parametrize("sources", ["direct,embed", DEFAULT])
def test_a_service_that_does_not_use_the_browser_never_imports_playwright(
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
    imports = log.read_text()
    assert [answer.status_code for answer in answers] == [200, 200]
    assert shown["browser"]["launches"] == 0
    assert "import time:" in imports and "spotify_tokener.wiring" in imports
    assert "playwright" not in imports
