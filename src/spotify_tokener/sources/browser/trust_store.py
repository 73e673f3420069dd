"""Chromium's trust for ``TOKENER_CA_FILE``: a private NSS database, in a home of its own.

Chromium on Linux trusts the authorities in ``$HOME/.pki/nssdb`` besides its own root store, with
every check kept: the name, the dates, the chain. (``--ignore-certificate-errors-spki-list`` waives
every check for any server that merely sends a pinned certificate along, and certificates are public.)
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from spotify_tokener.domain.errors import BrowserError, BrowserMissing
from spotify_tokener.sources.trust import sweep_dead, temp_prefix

CERTUTIL_HINT = (
    "TOKENER_CA_FILE needs NSS's certutil to make Chromium trust its certificates: "
    "apt-get install -y libnss3-tools"
)
HOME_PREFIX = "spotify-tokener-home-"
CA_TRUST, PEER_TRUST = "C,,", "P,,"  # a trusted authority; a trusted server certificate as it is


def home_trusting(ca_file: Path) -> Path:
    """A home of this process's whose NSS database, made by NSS's own ``certutil``, trusts every
    certificate of ``ca_file``; the caller removes it when the browser is closed for good."""
    certutil = shutil.which("certutil")
    if certutil is None:
        raise BrowserMissing(CERTUTIL_HINT)
    sweep_dead(HOME_PREFIX)
    home = Path(tempfile.mkdtemp(prefix=temp_prefix(HOME_PREFIX)))
    try:
        _fill(home, certutil, ca_file)
    except (OSError, ValueError, subprocess.SubprocessError) as error:
        shutil.rmtree(home, ignore_errors=True)
        why = _why(error)
        raise BrowserError(f"Chromium's trust store for TOKENER_CA_FILE could not be made: {why}") from None
    return home


def _fill(home: Path, certutil: str, ca_file: Path) -> None:
    database = home / ".pki" / "nssdb"  # where Chromium looks, under $HOME
    database.mkdir(parents=True)
    where = f"sql:{database}"
    _run([certutil, "-N", "--empty-password", "-d", where])
    for number, certificate in enumerate(x509.load_pem_x509_certificates(ca_file.read_bytes())):
        trust = CA_TRUST if _is_authority(certificate) else PEER_TRUST
        pem = certificate.public_bytes(Encoding.PEM)  # on certutil's standard input
        _run([certutil, "-A", "-n", f"tokener-extra-{number}", "-t", trust, "-a", "-d", where], pem)


def _is_authority(certificate: x509.Certificate) -> bool:
    """A CA by its constraints, or an old (v1) root without them: one that signed itself."""
    try:
        return certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return certificate.issuer == certificate.subject


def _run(command: list[str], given: bytes | None = None) -> None:
    subprocess.run(command, input=given, check=True, capture_output=True, timeout=30)


def _why(error: Exception) -> str:
    """certutil's own last words (they name a file or a certificate, never a secret)."""
    if isinstance(error, subprocess.CalledProcessError):
        said = (error.stderr or b"").decode(errors="replace").strip().splitlines()
        return said[-1] if said else f"certutil exited with {error.returncode}"
    return str(error) or type(error).__name__
