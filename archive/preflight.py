"""Production start-up checks: refuse to start on key material, secrets or servers that
would only fail later, at the first seal, the first export link or the first upload.

:class:`~archive.settings.Settings` already refuses *missing* production settings; this
module checks that what is given *works*: key files parse and match their certificates
(e-seal, SM2, the built-in TSA's), the e-seal certificate chains to the trust roots
(path validation by pyhanko-certvalidator, no fetching), the export link secret is long
enough, the TSA answers a test time-stamp whose certificate chains to the trust roots,
the PKCS#11 token opens and holds the key, and the S3 bucket answers and has object lock.

Every check runs, so one :class:`ConfigurationError` lists every problem at once. The
entry points that start in production call :func:`check`: ``create_app`` (so ``evidence
serve`` and any ASGI server), and the Celery worker and beat (``workers.app``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import cms
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import serialization

import signing
from archive.errors import ArchiveError, ConfigurationError
from archive.settings import Settings
from signing import certs as signing_certs
from signing import sm2 as signing_sm2

log = logging.getLogger(__name__)

MIN_SECRET_BYTES = 32
"""Shortest HMAC key (export link secret, metrics token) accepted in production."""


@dataclass(frozen=True)
class PreflightReport:
    """What the start-up checks found."""

    passed: tuple[str, ...]
    """Names of the checks that held."""
    problems: tuple[str, ...]
    """One sentence per problem, naming the setting and what is wrong with it."""

    @property
    def ok(self) -> bool:
        return not self.problems


def _spki(key) -> bytes:  # type: ignore[no-untyped-def]
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _validate_path(
    cert: asn1_x509.Certificate, *, intermediates: Iterable[asn1_x509.Certificate], roots: list[asn1_x509.Certificate]
) -> None:
    """Raise ValueError unless ``cert`` chains (through ``intermediates``) to one of ``roots`` now."""
    from pyhanko_certvalidator import CertificateValidator, ValidationContext
    from pyhanko_certvalidator.errors import PathBuildingError, PathValidationError

    context = ValidationContext(trust_roots=roots, allow_fetching=False)
    validator = CertificateValidator(cert, intermediate_certs=list(intermediates), validation_context=context)
    try:
        asyncio.run(validator.async_validate_path())
    except (PathBuildingError, PathValidationError) as exc:
        raise ValueError(str(exc)) from exc


def _roots(settings: Settings) -> list[asn1_x509.Certificate]:
    assert settings.trust_roots is not None  # Settings refuses production without them
    return signing_certs.to_asn1_certificates(signing_certs.load_certificates(settings.trust_roots))


def _chain(settings: Settings) -> list[asn1_x509.Certificate]:
    if not settings.seal_chain:
        return []
    return signing_certs.to_asn1_certificates(signing_certs.load_certificates(settings.seal_chain))


def _seal_certificate(settings: Settings) -> asn1_x509.Certificate:
    """Open the e-seal key (file or token), check it matches its certificate, return the certificate."""
    if settings.pkcs11_module:
        signer = signing.signer_from_pkcs11(
            module_path=settings.pkcs11_module, token_label=settings.pkcs11_token_label or "",
            pin=settings.pkcs11_pin.get_secret_value() if settings.pkcs11_pin else "",
            key_label=settings.pkcs11_key_label or "", cert_path=settings.seal_cert,
        )
        try:
            return signer.signing_cert
        finally:
            signer.close()
    signer = signing.signer_from_files(
        key_path=settings.seal_key, cert_path=settings.seal_cert,  # type: ignore[arg-type]
        passphrase=settings.seal_key_passphrase.get_secret_value() if settings.seal_key_passphrase else None,
    )
    return signer.signing_cert


def _check_seal(settings: Settings) -> list[str]:
    where = (f"EVIDENCE_PKCS11_* (token {settings.pkcs11_token_label!r}, key {settings.pkcs11_key_label!r})"
             if settings.pkcs11_module else f"EVIDENCE_SEAL_KEY {settings.seal_key}")
    try:
        cert = _seal_certificate(settings)
    except signing.SigningError as exc:
        return [f"e-seal key unusable ({where}): {exc.reason}"]
    try:
        roots, chain = _roots(settings), _chain(settings)
    except signing.SigningError as exc:
        return [f"EVIDENCE_TRUST_ROOTS / EVIDENCE_SEAL_CHAIN unreadable: {exc.reason}"]
    try:
        _validate_path(cert, intermediates=chain, roots=roots)
    except ValueError as exc:
        return [f"e-seal certificate {signing_certs.subject_text(cert)} does not chain to EVIDENCE_TRUST_ROOTS "
                f"through EVIDENCE_SEAL_CHAIN: {exc}"]
    return []


def _check_sm2(settings: Settings) -> list[str]:
    try:
        key = signing_sm2.load_sm2_private_key(Path(settings.sm2_key))  # type: ignore[arg-type]
    except (signing.SigningError, OSError) as exc:
        return [f"EVIDENCE_SM2_KEY {settings.sm2_key} unusable: {exc}"]
    if settings.sm2_cert:
        try:
            cert = signing_certs.to_asn1_certificate(Path(settings.sm2_cert).read_bytes())
            if cert.public_key["public_key"].native != b"\x04" + bytes.fromhex(key.public_key.point_hex()):
                return [f"EVIDENCE_SM2_KEY {settings.sm2_key} does not match EVIDENCE_SM2_CERT {settings.sm2_cert}"]
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            return [f"EVIDENCE_SM2_CERT {settings.sm2_cert} unusable: {exc}"]
    return []


def _check_builtin_tsa(settings: Settings) -> list[str]:
    if not settings.serve_tsa:
        return []
    try:
        key = signing.keys.load_private_key(settings.tsa_key)  # type: ignore[arg-type]
        cert = signing_certs.load_certificates(settings.tsa_cert)[0]  # type: ignore[arg-type]
        signing.TimeStampAuthority(cert=cert, key=key)
    except signing.SigningError as exc:
        return [f"built-in TSA (EVIDENCE_TSA_KEY / EVIDENCE_TSA_CERT) unusable: {exc.reason}"]
    if _spki(key.public_key()) != _spki(cert.public_key()):
        return [f"EVIDENCE_TSA_KEY {settings.tsa_key} does not match EVIDENCE_TSA_CERT {settings.tsa_cert}"]
    try:
        _validate_path(signing_certs.to_asn1_certificate(cert), intermediates=_chain(settings), roots=_roots(settings))
    except (ValueError, signing.SigningError) as exc:
        return [f"EVIDENCE_TSA_CERT {settings.tsa_cert} does not chain to EVIDENCE_TRUST_ROOTS: {exc}"]
    return []


def _tsa_certificate(token: bytes) -> tuple[asn1_x509.Certificate, list[asn1_x509.Certificate]]:
    """The certificate that signed a time-stamp token, and the others it carries."""
    signed = cms.ContentInfo.load(token)["content"]
    carried = [c.chosen for c in signed["certificates"] or [] if isinstance(c.chosen, asn1_x509.Certificate)]
    sid = signed["signer_infos"][0]["sid"].chosen
    for cert in carried:
        if isinstance(sid, cms.IssuerAndSerialNumber):
            if cert.issuer == sid["issuer"] and cert.serial_number == sid["serial_number"].native:
                return cert, carried
        elif cert.key_identifier == sid.native:
            return cert, carried
    raise ValueError("the time-stamp token does not carry its TSA's certificate")


def _check_tsa(settings: Settings) -> list[str]:
    url = settings.tsa_url or ""
    timestamper = signing.http_timestamper(url, timeout=settings.preflight_timeout_seconds)
    try:
        token = signing.tsa.timestamp_digest(timestamper, digest=hashlib.sha256(b"evidence preflight").digest())
    except signing.SigningError as exc:
        return [f"EVIDENCE_TSA_URL {url} did not answer a test time-stamp within "
                f"{settings.preflight_timeout_seconds:g} s: {exc.reason}"]
    try:
        cert, carried = _tsa_certificate(token)
        _validate_path(cert, intermediates=carried + _chain(settings), roots=_roots(settings))
    except (ValueError, KeyError, TypeError, signing.SigningError) as exc:
        return [f"EVIDENCE_TSA_URL {url} answered, but its time-stamps would not verify against "
                f"EVIDENCE_TRUST_ROOTS: {exc}"]
    return []


def _check_secrets(settings: Settings) -> list[str]:
    problems = []
    for name, secret in (("EVIDENCE_EXPORT_LINK_SECRET", settings.export_link_secret),
                         ("EVIDENCE_METRICS_TOKEN", settings.metrics_token)):
        if secret is not None and len(secret.get_secret_value().encode()) < MIN_SECRET_BYTES:
            problems.append(f"{name} is shorter than {MIN_SECRET_BYTES} bytes (use e.g. `openssl rand -hex 32`)")
    return problems


def _check_s3(settings: Settings) -> list[str]:
    from archive.storage.s3 import S3Store

    try:
        S3Store.from_settings(settings, timeout=settings.preflight_timeout_seconds).check()
    except ArchiveError as exc:
        return [f"S3 store (EVIDENCE_S3_ENDPOINT {settings.s3_endpoint}, bucket {settings.s3_bucket}): {exc.message}"]
    return []


CHECKS: tuple[tuple[str, Callable[[Settings], list[str]]], ...] = (
    ("e-seal key, certificate and chain", _check_seal),
    ("SM2 key", _check_sm2),
    ("built-in TSA key and certificate", _check_builtin_tsa),
    ("secrets", _check_secrets),
    ("time-stamping authority", _check_tsa),
    ("S3 bucket with object lock", _check_s3),
)


def run(settings: Settings) -> PreflightReport:
    """Run every production check; never raises (a check that crashes is a problem too)."""
    passed: list[str] = []
    problems: list[str] = []
    for name, check in CHECKS:
        try:
            found = check(settings)
        except Exception as exc:  # noqa: BLE001 - reported with the others, not a traceback
            found = [f"{name}: check failed unexpectedly ({type(exc).__name__}: {exc})"]
        if found:
            problems.extend(found)
        else:
            passed.append(name)
    return PreflightReport(passed=tuple(passed), problems=tuple(problems))


def check(settings: Settings) -> PreflightReport:
    """In production, run every check and raise one ConfigurationError listing all problems.

    Outside production it checks nothing (the development PKI and built-in TSA are
    made on first use) and returns an empty report.
    """
    if settings.mode != "production":
        return PreflightReport(passed=(), problems=())
    report = run(settings)
    if not report.ok:
        raise ConfigurationError(
            f"production start-up refused, {len(report.problems)} problem(s):\n"
            + "\n".join(f"  - {p}" for p in report.problems)
        )
    log.info("production start-up checks passed: %s", ", ".join(report.passed))
    return report
