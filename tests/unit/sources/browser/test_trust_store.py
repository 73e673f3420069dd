"""Chromium's private NSS database for TOKENER_CA_FILE, made with the real certutil."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import trustme

from spotify_tokener.domain.errors import BrowserMissing
from spotify_tokener.sources.browser.trust_store import CERTUTIL_HINT, home_trusting


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
