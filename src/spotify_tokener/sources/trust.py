"""Which certificates upstream TLS trusts: the system's, plus ``TOKENER_CA_FILE``'s.

Every source reads the same file, so a mirror or a test double with its own certificate is trusted
by all of them, through a proxy too. Python's TLS (the relay's handshake with an https proxy) takes
the certificates as authorities; Chromium takes them by public key (SPKI), which it honours for any
certificate the server presents: the server's own, or an intermediate it sends.
"""

from __future__ import annotations

import base64
import hashlib
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """A verifying client context: the system's authorities, and the extra ones if any."""
    context = ssl.create_default_context()
    if ca_file is not None:
        context.load_verify_locations(cafile=ca_file)
    return context


def spki_pins(ca_file: Path | None) -> list[str]:
    """Each certificate's public key as Chromium's ``--ignore-certificate-errors-spki-list`` wants it:
    base64 of the SHA-256 of its DER SubjectPublicKeyInfo."""
    if ca_file is None:
        return []
    pins = []
    for certificate in x509.load_pem_x509_certificates(ca_file.read_bytes()):
        der = certificate.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        pins.append(base64.b64encode(hashlib.sha256(der).digest()).decode())
    return pins
