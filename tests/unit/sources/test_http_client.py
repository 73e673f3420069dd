"""The curl_cffi client of the browserless sources, where it touches the machine: the trust bundle."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest
import trustme

from spotify_tokener.settings import Settings
from spotify_tokener.sources.http_client import TRUST_PREFIX, Client


@pytest.fixture
def living(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A bundle left by a process killed before its close, and one of a living process (the test
    runner's parent), in a temporary folder of the test's own; the living one's path."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.Popen(["true"])
    dead.wait()
    killed = tmp_path / f"{TRUST_PREFIX}{dead.pid}-abc.pem"
    living = tmp_path / f"{TRUST_PREFIX}{os.getppid()}-def.pem"
    for left in (killed, living):
        left.write_bytes(b"certificates")
    return living


def bundles(folder: Path) -> set[Path]:
    return set(folder.glob(f"{TRUST_PREFIX}*"))


async def test_bundles_left_by_killed_processes_are_swept_at_start_and_the_living_keep_theirs(
    tmp_path: Path, living: Path
) -> None:
    pem = tmp_path / "extra.pem"
    trustme.CA().cert_pem.write_to_path(str(pem))
    client = Client(Settings.build(ca_file=pem, proxy_connect_timeout=1), timeout_s=1)
    (ours,) = bundles(tmp_path) - {living}
    await client.close()
    assert ours.name.startswith(f"{TRUST_PREFIX}{os.getpid()}-")
    assert bundles(tmp_path) == {living}  # the killed one's swept at start, ours removed by close
