"""A development PKI: root CA, e-seal certificate, TSA certificate and an SM2 key.

This is for the embedded default and for tests. It is NOT a production PKI:
keys are unencrypted PEM files (mode 0600) and the root CA key sits next to
the certificates it issued. Production uses a real CA, an external TSA and a
PKCS#11 token for the e-seal key.

Directory layout (all PEM)::

    root.pem  root-key.pem        self-signed root CA (EC P-256)
    seal.pem  seal-key.pem        current e-seal certificate and key
    tsa.pem   tsa-key.pem         time-stamping certificate (EKU timeStamping, critical)
    sm2-key.pem sm2-public.pem    SM2 key pair (curve 1.2.156.10197.1.301)
    chain.pem                     root, current e-seal, TSA
    seal-certs/seal-<serial>.pem  every e-seal certificate ever issued, kept forever

Key rotation (:func:`rotate_seal_key`) issues a new e-seal key and certificate
under the same root, overwrites ``seal-key.pem`` (the retired private key is
destroyed so it can no longer seal) and keeps the retired certificate in
``seal-certs/``. Seals made before the rotation carry their own certificate
inside the CMS and chain to the unchanged root, so they still verify; the kept
copies let an auditor list every key that ever sealed for the organisation.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .errors import PkiError
from . import sm2

# A little backdating so a freshly created PKI verifies on machines whose
# clock is slightly behind the one that made it.
_BACKDATE = timedelta(minutes=5)
_ROOT_LIFETIME = timedelta(days=20 * 365)
_SEAL_LIFETIME = timedelta(days=5 * 365)
_TSA_LIFETIME = timedelta(days=10 * 365)


@dataclass(frozen=True)
class DevPKI:
    """Paths of the files making up a development PKI."""

    directory: Path
    """The directory holding everything below."""
    root_cert: Path
    """Self-signed root CA certificate; the trust anchor verifiers are given."""
    root_key: Path
    """Root CA private key (needed only to issue or rotate certificates)."""
    seal_cert: Path
    """Current e-seal certificate (keyUsage digitalSignature+nonRepudiation, critical; no EKU)."""
    seal_key: Path
    """Current e-seal private key."""
    tsa_cert: Path
    """TSA certificate (extendedKeyUsage timeStamping, critical)."""
    tsa_key: Path
    """TSA private key."""
    sm2_key: Path
    """SM2 private key, PKCS#8 PEM with the SM2 curve OID."""
    sm2_public: Path
    """SM2 public key, SubjectPublicKeyInfo PEM."""
    chain: Path
    """PEM bundle: root, current e-seal, TSA."""
    seal_certs_dir: Path
    """Every e-seal certificate ever issued here, current one included."""


def _paths(directory: Path) -> DevPKI:
    d = Path(directory)
    return DevPKI(
        directory=d,
        root_cert=d / "root.pem",
        root_key=d / "root-key.pem",
        seal_cert=d / "seal.pem",
        seal_key=d / "seal-key.pem",
        tsa_cert=d / "tsa.pem",
        tsa_key=d / "tsa-key.pem",
        sm2_key=d / "sm2-key.pem",
        sm2_public=d / "sm2-public.pem",
        chain=d / "chain.pem",
        seal_certs_dir=d / "seal-certs",
    )


def _file_fields(pki: DevPKI) -> list[Path]:
    return [
        pki.root_cert, pki.root_key, pki.seal_cert, pki.seal_key, pki.tsa_cert,
        pki.tsa_key, pki.sm2_key, pki.sm2_public, pki.chain,
    ]


def _write(path: Path, data: bytes, *, secret: bool) -> None:
    # Write to a temporary name and rename, so a crash never leaves half a key;
    # secrets are created 0600 from the start rather than chmod-ed afterwards.
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if secret else 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _name(organisation: str, common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _issue_root(organisation: str, now: datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(organisation, f"{organisation} Root CA")
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _ROOT_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _issue_leaf(
    *,
    root_cert: x509.Certificate,
    root_key: ec.EllipticCurvePrivateKey,
    subject: x509.Name,
    now: datetime,
    lifetime: timedelta,
    time_stamping: bool,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(root_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(min(now + lifetime, root_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                # The e-seal asserts the organisation's commitment; a TSA only signs.
                content_commitment=not time_stamping,
                key_encipherment=False, data_encipherment=False, key_agreement=False,
                key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()),
            critical=False,
        )
    )
    if time_stamping:
        # RFC 3161 section 2.3: the TSA certificate must carry exactly this EKU, critical.
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True
        )
    # The e-seal certificate deliberately has no EKU: openssl cms -verify's
    # default purpose (smime_sign) only checks EKU when present, and an
    # emailProtection EKU would misdescribe an organisational seal.
    return builder.sign(root_key, hashes.SHA256()), key


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"{path} is not an EC private key")
    return key


def _write_chain(pki: DevPKI) -> None:
    chain = pki.root_cert.read_bytes() + pki.seal_cert.read_bytes() + pki.tsa_cert.read_bytes()
    _write(pki.chain, chain, secret=False)


def _keep_seal_cert(pki: DevPKI, cert: x509.Certificate) -> None:
    pki.seal_certs_dir.mkdir(exist_ok=True)
    _write(pki.seal_certs_dir / f"seal-{cert.serial_number:x}.pem", _cert_pem(cert), secret=False)


def create_dev_pki(
    directory: Path,
    *,
    organisation: str = "Evidence Archive (DEVELOPMENT)",
    now: datetime | None = None,
) -> DevPKI:
    """Create a fresh development PKI in ``directory`` and return its paths.

    Existing files are overwritten; use :func:`ensure_dev_pki` to create only
    when absent. ``now`` fixes the certificates' validity start (UTC; defaults
    to the current time).
    """
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    pki = _paths(Path(directory))
    try:
        pki.directory.mkdir(parents=True, exist_ok=True)
        root_cert, root_key = _issue_root(organisation, now)
        seal_cert, seal_key = _issue_leaf(
            root_cert=root_cert, root_key=root_key,
            subject=_name(organisation, f"{organisation} e-Seal"),
            now=now, lifetime=_SEAL_LIFETIME, time_stamping=False,
        )
        tsa_cert, tsa_key = _issue_leaf(
            root_cert=root_cert, root_key=root_key,
            subject=_name(organisation, f"{organisation} Time-Stamping Authority"),
            now=now, lifetime=_TSA_LIFETIME, time_stamping=True,
        )
        sm2_private = sm2.generate_sm2_private_key()
        _write(pki.root_key, _key_pem(root_key), secret=True)
        _write(pki.root_cert, _cert_pem(root_cert), secret=False)
        _write(pki.seal_key, _key_pem(seal_key), secret=True)
        _write(pki.seal_cert, _cert_pem(seal_cert), secret=False)
        _write(pki.tsa_key, _key_pem(tsa_key), secret=True)
        _write(pki.tsa_cert, _cert_pem(tsa_cert), secret=False)
        _write(pki.sm2_key, sm2_private.private_pem(), secret=True)
        _write(pki.sm2_public, sm2_private.public_key.public_pem(), secret=False)
        _keep_seal_cert(pki, seal_cert)
        _write_chain(pki)
    except OSError as exc:
        raise PkiError(f"cannot write development PKI in {pki.directory}: {exc}") from exc
    return pki


def load_dev_pki(directory: Path) -> DevPKI:
    """Return the paths of an existing development PKI; raise :class:`PkiError` if incomplete."""
    pki = _paths(Path(directory))
    missing = [p.name for p in _file_fields(pki) if not p.is_file()]
    if missing:
        raise PkiError(f"development PKI in {pki.directory} is missing {', '.join(missing)}")
    return pki


def ensure_dev_pki(
    directory: Path,
    *,
    organisation: str = "Evidence Archive (DEVELOPMENT)",
    now: datetime | None = None,
) -> tuple[DevPKI, bool]:
    """Load the development PKI in ``directory``, creating it if absent.

    Returns ``(pki, created)``. A directory holding only part of a PKI is an
    error (:class:`PkiError`), never silently completed: new keys would orphan
    the old certificates.
    """
    pki = _paths(Path(directory))
    present = [p for p in _file_fields(pki) if p.exists()]
    if not present:
        return create_dev_pki(directory, organisation=organisation, now=now), True
    return load_dev_pki(directory), False


def rotate_seal_key(directory: Path, *, now: datetime | None = None) -> DevPKI:
    """Issue a new e-seal key and certificate, retiring the current key.

    The retired certificate stays in ``seal-certs/`` forever; the retired
    private key is overwritten. Organisation name is taken from the current
    e-seal certificate. Returns the (unchanged) paths.
    """
    pki = load_dev_pki(directory)
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    try:
        root_cert = x509.load_pem_x509_certificate(pki.root_cert.read_bytes())
        root_key = _load_key(pki.root_key)
        old_seal = x509.load_pem_x509_certificate(pki.seal_cert.read_bytes())
        # Older trees may predate seal-certs/; make sure the retiring cert is kept.
        _keep_seal_cert(pki, old_seal)
        seal_cert, seal_key = _issue_leaf(
            root_cert=root_cert, root_key=root_key, subject=old_seal.subject,
            now=now, lifetime=_SEAL_LIFETIME, time_stamping=False,
        )
        _keep_seal_cert(pki, seal_cert)
        _write(pki.seal_key, _key_pem(seal_key), secret=True)
        _write(pki.seal_cert, _cert_pem(seal_cert), secret=False)
        _write_chain(pki)
    except (OSError, ValueError) as exc:
        raise PkiError(f"cannot rotate the e-seal key in {pki.directory}: {exc}") from exc
    return pki


def seal_certificates(directory: Path) -> list[Path]:
    """Every e-seal certificate ever issued in this PKI (oldest serial order not guaranteed)."""
    return sorted(_paths(Path(directory)).seal_certs_dir.glob("seal-*.pem"))
