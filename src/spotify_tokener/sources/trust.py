"""Upstream TLS trusts the system's authorities plus ``TOKENER_CA_FILE``'s, in every source, so that a
mirror or a test double with its own certificate is trusted by all, through a proxy too: here for
Python's TLS (the relay's handshake with an https proxy), in ``browser/trust_store.py`` for Chromium,
in ``http_client.py`` for curl. Those two copy it into the shared temporary folder under a name that
starts with this process's id, so that what a killed process left is removed by the next one.
"""

from __future__ import annotations

import os
import shutil
import ssl
import tempfile
from pathlib import Path

import psutil


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if ca_file is not None:
        context.load_verify_locations(cafile=ca_file)
    return context


def temp_prefix(kind: str) -> str:
    return f"{kind}{os.getpid()}-"


def sweep_dead(kind: str) -> None:
    """Remove the temporary files and folders of ``kind`` whose process is gone (killed, it could
    not clean up); another user's are not ours to touch, and are skipped."""
    for path in Path(tempfile.gettempdir()).glob(f"{kind}*-*"):
        pid = path.name.removeprefix(kind).split("-", 1)[0]
        if pid.isdigit() and not psutil.pid_exists(int(pid)):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
