"""Chromium's trust for ``TOKENER_CA_FILE``: a private NSS database, in a home of its own.

Chromium on Linux trusts the authorities in ``$HOME/.pki/nssdb`` besides its own root store, with
every check kept: the name, the dates, the chain. (Its ``--ignore-certificate-errors-spki-list``
would be simpler, but it waives every check for any server that merely sends a pinned certificate
along, and certificates are public.) So each launch gets a fresh home holding a database with the
file's certificates, made by NSS's own ``certutil``; the real home is left alone.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from spotify_tokener.domain.errors import BrowserMissing

CERTUTIL_HINT = (
    "TOKENER_CA_FILE needs NSS's certutil to make Chromium trust its certificates: "
    "apt-get install -y libnss3-tools"
)
CA_TRUST, PEER_TRUST = "C,,", "P,,"  # a trusted authority; a trusted server certificate as it is


def home_trusting(ca_file: Path) -> Path:
    """A new home directory whose NSS database trusts every certificate of ``ca_file``.

    The caller removes it (with :func:`shutil.rmtree`) when the browser is closed.
    """
    certutil = shutil.which("certutil")
    if certutil is None:
        raise BrowserMissing(CERTUTIL_HINT)
    home = Path(tempfile.mkdtemp(prefix="spotify-tokener-home-"))
    database = home / ".pki" / "nssdb"
    database.mkdir(parents=True)
    where = f"sql:{database}"
    _run([certutil, "-N", "--empty-password", "-d", where])
    for number, certificate in enumerate(x509.load_pem_x509_certificates(ca_file.read_bytes())):
        trust = CA_TRUST if _is_authority(certificate) else PEER_TRUST
        pem = home / f"extra-{number}.pem"
        pem.write_bytes(certificate.public_bytes(Encoding.PEM))
        _run([certutil, "-A", "-n", f"tokener-extra-{number}", "-t", trust, "-i", str(pem), "-d", where])
    return home


def _is_authority(certificate: x509.Certificate) -> bool:
    try:
        return certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _run(command: list[str]) -> None:
    subprocess.run(command, check=True, capture_output=True, timeout=30)
