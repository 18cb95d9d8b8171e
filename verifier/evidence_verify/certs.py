"""Small helpers for moving certificates between cryptography and asn1crypto.

pyHanko speaks asn1crypto; callers are more likely to hold
``cryptography`` objects or PEM files. These helpers accept either.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any, Iterable, Union

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


NAME_PREPARATIONS_KEPT = 4096
"""Distinct name values whose prepared form :func:`memoise_name_preparation` keeps."""


def memoise_name_preparation() -> None:
    """Prepare each distinct X.509 name value for comparison once per process, not once per
    parsed name.

    asn1crypto compares names (a certificate's issuer with its issuer's subject, a seal's
    ESSCertIDv2 issuerSerial with its signer's issuer) after RFC 4518 string preparation,
    done in Python character by character and kept on the parsed name object. Every seal
    brings new objects (its certificates, its attributes, which pyHanko re-reads on each
    check), so the same few names were prepared over and over: about a fifth of a CAdES
    seal's verification (6.3 -> 5.1 ms a seal). The preparation is a function of the value
    alone, so its results are kept, for at most :data:`NAME_PREPARATIONS_KEPT` values; a
    value that cannot be a key is prepared as before. Safe to call twice.
    """
    name_value = asn1_x509.NameTypeAndValue
    prepare = name_value._ldap_string_prep
    if getattr(prepare, "memoised", False):
        return

    @functools.lru_cache(maxsize=NAME_PREPARATIONS_KEPT)
    def prepared(value: Any) -> str:
        return prepare(None, value)

    def memoised(self: asn1_x509.NameTypeAndValue, value: Any) -> str:
        try:
            return prepared(value)
        except TypeError:  # unhashable
            return prepare(self, value)

    memoised.memoised = True  # type: ignore[attr-defined]
    memoised.cache_info = prepared.cache_info  # type: ignore[attr-defined]
    memoised.__wrapped__ = prepare  # type: ignore[attr-defined]
    name_value._ldap_string_prep = memoised  # type: ignore[method-assign]
