from __future__ import annotations

import base64
import hashlib
import ssl
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from spotify_tokener.sources.browser.chromium import BASE_ARGS, chromium_args
from spotify_tokener.sources.trust import spki_pins, tls_context


def test_each_certificate_is_pinned_by_the_hash_of_its_public_key(tmp_path: Path) -> None:
    authority = trustme.CA()
    leaf = authority.issue_cert("open.spotify.com")
    pem = tmp_path / "extra.pem"
    pem.write_bytes(leaf.cert_chain_pems[0].bytes() + authority.cert_pem.bytes())
    key = x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes()).public_key()
    leaf_pin = base64.b64encode(
        hashlib.sha256(key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)).digest()
    )
    pins = spki_pins(pem)
    assert len(pins) == 2
    assert pins[0] == leaf_pin.decode()
    assert (
        chromium_args("", {}, pins)[len(BASE_ARGS)]
        == f"--ignore-certificate-errors-spki-list={','.join(pins)}"
    )


def test_nothing_extra_is_trusted_without_a_file() -> None:
    assert spki_pins(None) == []
    assert not any("spki" in arg for arg in chromium_args("", {}, spki_pins(None)))


def test_the_extra_authorities_join_the_systems(tmp_path: Path) -> None:
    authority = trustme.CA()
    pem = tmp_path / "ca.pem"
    pem.write_bytes(authority.cert_pem.bytes())
    plain, extra = tls_context(None), tls_context(pem)
    assert extra.verify_mode == ssl.CERT_REQUIRED
    assert extra.check_hostname
    assert len(extra.get_ca_certs()) == len(plain.get_ca_certs()) + 1
