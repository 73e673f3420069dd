"""Which certificates Python's upstream TLS trusts: the system's, plus ``TOKENER_CA_FILE``'s.

Every source reads the same file, so a mirror or a test double with its own certificate is trusted
by all of them, through a proxy too: here for Python's TLS (the relay's handshake with an https
proxy), in ``browser/trust_store.py`` for Chromium.
"""

from __future__ import annotations

import ssl
from pathlib import Path


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """A verifying client context: the system's authorities, and the extra ones if any."""
    context = ssl.create_default_context()
    if ca_file is not None:
        context.load_verify_locations(cafile=ca_file)
    return context
