"""Certificates between cryptography and asn1crypto: defined in the offline verifier.

Reading certificates is the same on a court's machine as here, so it lives once, in
:mod:`evidence_verify.certs`; this module keeps the names importable from :mod:`signing`.
"""

from collections.abc import Iterable

from asn1crypto import pem as asn1_pem
from evidence_verify.certs import (
    AnyCertificate,
    load_certificates,
    sha256_fingerprint,
    subject_text,
    to_asn1_certificate,
    to_asn1_certificates,
)

__all__ = [
    "AnyCertificate", "load_certificates", "pem_bundle", "sha256_fingerprint", "subject_text", "to_asn1_certificate",
    "to_asn1_certificates", "to_pem",
]


def to_pem(cert: AnyCertificate) -> str:
    """The certificate as one PEM block."""
    return asn1_pem.armor("CERTIFICATE", to_asn1_certificate(cert).dump()).decode("ascii")


def pem_bundle(certs: Iterable[AnyCertificate]) -> bytes:
    """A PEM bundle of ``certs`` in the order given, each certificate once."""
    seen: set[str] = set()
    out = []
    for cert in certs:
        fp = sha256_fingerprint(cert)
        if fp not in seen:
            seen.add(fp)
            out.append(to_pem(cert))
    return "".join(out).encode("ascii")
