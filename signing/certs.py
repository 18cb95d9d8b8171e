"""Certificates between cryptography and asn1crypto: defined in the offline verifier.

Reading certificates is the same on a court's machine as here, so it lives once, in
:mod:`evidence_verify.certs`; this module keeps the names importable from :mod:`signing`.
"""

import functools
from collections.abc import Iterable

from asn1crypto import cms
from asn1crypto import pem as asn1_pem
from asn1crypto import x509 as asn1_x509
from evidence_verify.certs import (
    AnyCertificate,
    load_certificates,
    sha256_fingerprint,
    subject_text,
    to_asn1_certificate,
    to_asn1_certificates,
)

__all__ = [
    "AnyCertificate", "load_certificates", "pem_bundle", "sha256_fingerprint", "signing_certificate_attribute",
    "subject_text", "to_asn1_certificate", "to_asn1_certificates", "to_pem",
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


def signing_certificate_attribute(cert: asn1_x509.Certificate) -> cms.CMSAttribute:
    """The signing-certificate-v2 attribute (RFC 5035, SHA-256) naming ``cert``, as pyHanko
    encodes it. Encoded once per certificate: asn1crypto took some 9-13 ms to encode it afresh
    from a parsed certificate, most of a seal's or a time-stamp token's cost."""
    return cms.CMSAttribute.load(_signing_certificate_der(cert.dump()))


@functools.lru_cache(maxsize=16)
def _signing_certificate_der(cert_der: bytes) -> bytes:
    from pyhanko.sign.general import as_signing_certificate_v2, simple_cms_attribute  # when sealing: see signing

    cert = asn1_x509.Certificate.load(cert_der)
    return simple_cms_attribute("signing_certificate_v2", as_signing_certificate_v2(cert, "sha256")).dump()
