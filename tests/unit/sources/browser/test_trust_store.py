"""Chromium's private NSS database for TOKENER_CA_FILE, made with the real certutil."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import trustme

from spotify_tokener.domain.errors import BrowserError, BrowserMissing
from spotify_tokener.sources.browser import trust_store
from spotify_tokener.sources.browser.trust_store import CERTUTIL_HINT, HOME_PREFIX, home_trusting


def listed(home: Path) -> dict[str, str]:
    """Nickname -> trust flags, as certutil lists the database."""
    out = subprocess.run(
        ["certutil", "-L", "-d", f"sql:{home / '.pki' / 'nssdb'}"], capture_output=True, text=True, check=True
    ).stdout
    rows = [line.rsplit(None, 1) for line in out.splitlines()[4:] if line.strip()]
    return {name.strip(): flags for name, flags in rows}


def test_authorities_and_server_certificates_are_trusted_as_what_they_are(tmp_path: Path) -> None:
    authority = trustme.CA()
    server = trustme.CA().issue_cert("mirror.example")
    pem = tmp_path / "extra.pem"
    pem.write_bytes(authority.cert_pem.bytes() + server.cert_chain_pems[0].bytes())
    home = home_trusting(pem)
    try:
        assert listed(home) == {"tokener-extra-0": "C,,", "tokener-extra-1": "P,,"}
    finally:
        shutil.rmtree(home)


def test_without_certutil_the_operator_is_told_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pem = tmp_path / "ca.pem"
    pem.write_bytes(trustme.CA().cert_pem.bytes())
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(BrowserMissing, match="libnss3-tools") as caught:
        home_trusting(pem)
    assert str(caught.value) == CERTUTIL_HINT


def test_a_failed_build_says_why_and_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pem = tmp_path / "ca.pem"
    pem.write_bytes(trustme.CA().cert_pem.bytes())
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    def refuse(command: list[str]) -> None:
        raise subprocess.CalledProcessError(
            255, command, stderr=b"certutil: function failed: SEC_ERROR_BAD_DATABASE"
        )

    monkeypatch.setattr(trust_store, "_run", refuse)
    with pytest.raises(BrowserError, match="SEC_ERROR_BAD_DATABASE"):
        home_trusting(pem)
    assert not list(tmp_path.glob(f"{HOME_PREFIX}*"))


def test_homes_left_by_dead_processes_are_removed_and_the_living_keep_theirs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pem = tmp_path / "ca.pem"
    pem.write_bytes(trustme.CA().cert_pem.bytes())
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.Popen(["true"])
    dead.wait()
    (tmp_path / f"{HOME_PREFIX}{dead.pid}-abc").mkdir()
    (tmp_path / f"{HOME_PREFIX}{os.getppid()}-def").mkdir()
    home = home_trusting(pem)
    another = home_trusting(pem)  # a second browser in this process keeps a home of its own
    assert home != another
    assert home.name.startswith(f"{HOME_PREFIX}{os.getpid()}-")
    assert sorted(path.name for path in tmp_path.glob(f"{HOME_PREFIX}*")) == sorted(
        [home.name, another.name, f"{HOME_PREFIX}{os.getppid()}-def"]
    )
