"""Small helpers for moving certificates between cryptography and asn1crypto.

pyHanko speaks asn1crypto; callers are more likely to hold
``cryptography`` objects or PEM files. These helpers accept either.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterable, Union

from asn1crypto import pem as asn1_pem
from asn1crypto import x509 as asn1_x509
from cryptography import x509 as pyca_x509
from cryptography.hazmat.primitives import serialization

from .errors import KeyUnavailable

AnyCertificate = Union[pyca_x509.Certificate, asn1_x509.Certificate, bytes]
"""A certificate as a cryptography object, an asn1crypto object or DER/PEM bytes."""


def to_asn1_certificate(cert: AnyCertificate) -> asn1_x509.Certificate:
    """Return ``cert`` as an asn1crypto certificate (accepts pyca, asn1crypto, DER or PEM)."""
    if isinstance(cert, asn1_x509.Certificate):
        return cert
    if isinstance(cert, pyca_x509.Certificate):
        return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
    if isinstance(cert, (bytes, bytearray)):
        der = bytes(cert)
        if asn1_pem.detect(der):
            _, _, der = asn1_pem.unarmor(der)
        return asn1_x509.Certificate.load(der)
    raise TypeError(f"not a certificate: {type(cert).__name__}")


def to_asn1_certificates(certs: Iterable[AnyCertificate]) -> list[asn1_x509.Certificate]:
    """Convert each certificate with :func:`to_asn1_certificate`."""
    return [to_asn1_certificate(c) for c in certs]


def load_certificates(path: Path | str) -> list[pyca_x509.Certificate]:
    """Load every certificate in a PEM bundle or a single DER file.

    Raises :class:`KeyUnavailable` if the file is missing or holds no certificate.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise KeyUnavailable(f"cannot read certificate file {path}: {exc.strerror}") from exc
    try:
        if b"-----BEGIN" in raw:
            certs = pyca_x509.load_pem_x509_certificates(raw)
        else:
            certs = [pyca_x509.load_der_x509_certificate(raw)]
    except ValueError as exc:
        raise KeyUnavailable(f"{path} does not hold a readable certificate") from exc
    return certs


def sha256_fingerprint(cert: AnyCertificate) -> str:
    """Lower-case hex SHA-256 of the certificate's DER encoding."""
    return hashlib.sha256(to_asn1_certificate(cert).dump()).hexdigest()


def subject_text(cert: AnyCertificate) -> str:
    """The subject as an RFC 4514 string (as ``openssl -nameopt RFC2253`` shows it)."""
    der = to_asn1_certificate(cert).dump()
    return pyca_x509.load_der_x509_certificate(der).subject.rfc4514_string()


def load_roots(paths: Iterable[Path | str]) -> list[pyca_x509.Certificate]:
    """Every certificate of the PEM files ``paths`` (the roots a user trusts)."""
    roots: list[pyca_x509.Certificate] = []
    for path in paths:
        roots.extend(load_certificates(Path(path)))
    return roots
