"""Certificates between cryptography and asn1crypto: defined in the offline verifier.

Reading certificates is the same on a court's machine as here, so it lives once, in
:mod:`evidence_verify.certs`; this module keeps the names importable from :mod:`signing`.
"""

from evidence_verify.certs import (
    AnyCertificate,
    load_certificates,
    sha256_fingerprint,
    subject_text,
    to_asn1_certificate,
    to_asn1_certificates,
)

__all__ = [
    "AnyCertificate", "load_certificates", "sha256_fingerprint", "subject_text", "to_asn1_certificate",
    "to_asn1_certificates",
]
