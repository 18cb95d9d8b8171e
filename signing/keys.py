"""Where the e-seal key lives: a key file or a PKCS#11 token.

Both builders return a pyHanko :class:`~pyhanko.sign.signers.Signer`, which is
all the sealing code (:mod:`signing.cades`, :mod:`signing.pades`) needs; the
sealing code never opens key files itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pkcs11
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509 as pyca_x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from asn1crypto import cms
from pyhanko.sign.attributes import CMSAttributeProvider, SigningCertificateV2Provider
from pyhanko.sign.general import SigningError as PyHankoSigningError
from pyhanko.sign.pkcs11 import PKCS11Signer, open_pkcs11_session
from pyhanko.config.pkcs11 import TokenCriteria
from pyhanko.sign.signers import SimpleSigner, Signer
from pyhanko_certvalidator.registry import SimpleCertificateStore

from .certs import load_certificates, signing_certificate_attribute, to_asn1_certificate
from .errors import KeyUnavailable

__all__ = [
    "TokenSigner",
    "import_key_to_token",
    "load_private_key",
    "signer_from_files",
    "signer_from_pkcs11",
]


def _passphrase_bytes(passphrase: str | bytes | None) -> bytes | None:
    if passphrase is None:
        return None
    return passphrase.encode("utf-8") if isinstance(passphrase, str) else passphrase


def load_private_key(path: Path | str, *, passphrase: str | bytes | None = None):
    """Load a PEM or DER private key (PKCS#8, SEC1 or PKCS#1) as a cryptography key object.

    Raises :class:`KeyUnavailable` if the file is missing, unreadable or the
    passphrase is wrong.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise KeyUnavailable(f"cannot read private key {path}: {exc.strerror}") from exc
    pw = _passphrase_bytes(passphrase)
    try:
        if b"-----BEGIN" in raw:
            return serialization.load_pem_private_key(raw, password=pw)
        return serialization.load_der_private_key(raw, password=pw)
    except (ValueError, TypeError) as exc:
        raise KeyUnavailable(f"cannot load private key {path} (wrong passphrase or format)") from exc


def _same_public_key(key, cert: pyca_x509.Certificate) -> bool:
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return key.public_key().public_bytes(*fmt) == cert.public_key().public_bytes(*fmt)


def signer_from_files(
    *,
    key_path: Path | str,
    cert_path: Path | str | None = None,
    chain_paths: Sequence[Path | str] = (),
    passphrase: str | bytes | None = None,
) -> Signer:
    """Build a signer from key material in files.

    ``key_path`` is a PEM/DER private key (then ``cert_path`` is required) or a
    PKCS#12 file (``.p12``/``.pfx``; its certificate and chain are used and
    ``cert_path`` is optional). ``chain_paths`` are PEM bundles of further
    certificates to embed (intermediates, root). Raises
    :class:`KeyUnavailable` when anything cannot be loaded or the key does
    not match the certificate.
    """
    key_path = Path(key_path)
    extra: list[pyca_x509.Certificate] = []
    for p in chain_paths:
        extra.extend(load_certificates(p))
    if key_path.suffix.lower() in (".p12", ".pfx"):
        try:
            bundle = pkcs12.load_pkcs12(key_path.read_bytes(), _passphrase_bytes(passphrase))
        except OSError as exc:
            raise KeyUnavailable(f"cannot read PKCS#12 file {key_path}: {exc.strerror}") from exc
        except (ValueError, TypeError) as exc:
            raise KeyUnavailable(f"cannot open PKCS#12 file {key_path} (wrong passphrase or format)") from exc
        if bundle.key is None or (bundle.cert is None and cert_path is None):
            raise KeyUnavailable(f"PKCS#12 file {key_path} lacks a key or a certificate")
        key = bundle.key
        cert = load_certificates(cert_path)[0] if cert_path else bundle.cert.certificate
        extra.extend(c.certificate for c in bundle.additional_certs)
    else:
        if cert_path is None:
            raise KeyUnavailable("a certificate path is needed with a PEM/DER private key")
        key = load_private_key(key_path, passphrase=passphrase)
        cert = load_certificates(cert_path)[0]
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        raise KeyUnavailable(f"{key_path}: only EC and RSA e-seal keys are supported")
    if not _same_public_key(key, cert):
        raise KeyUnavailable(f"private key {key_path} does not belong to certificate {cert.subject.rfc4514_string()}")
    key_info = asn1_keys.PrivateKeyInfo.load(
        key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    registry = SimpleCertificateStore.from_certs([to_asn1_certificate(c) for c in extra])
    return FileSigner(
        signing_cert=to_asn1_certificate(cert),
        signing_key=key_info,
        cert_registry=registry,
    )


class _SigningCertificate(CMSAttributeProvider):
    """pyHanko's signing-certificate-v2 provider, with the attribute encoded once per certificate."""

    attribute_type = "signing_certificate_v2"

    def __init__(self, provider: SigningCertificateV2Provider):
        self._cert = provider.signing_cert

    async def get_attribute(self, dry_run: bool = False) -> cms.CMSAttribute:
        return signing_certificate_attribute(self._cert)


class _EncodesSigningCertificateOnce:
    """Mixed into our pyHanko signers (pyHanko 0.36's provider hook, ``_signed_attr_providers``):
    every signed attribute is pyHanko's own, the signing certificate's encoded once."""

    def _signed_attr_providers(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        for provider in super()._signed_attr_providers(*args, **kwargs):  # type: ignore[misc]
            yield _SigningCertificate(provider) if isinstance(provider, SigningCertificateV2Provider) else provider


class FileSigner(_EncodesSigningCertificateOnce, SimpleSigner):
    """A signer with its key in a file (PEM, DER or PKCS#12)."""


class TokenSigner(_EncodesSigningCertificateOnce, PKCS11Signer):
    """A PKCS#11 signer that owns its session; close it (or use ``with``) when done."""

    def close(self) -> None:
        """Close the PKCS#11 session. Idempotent."""
        session = self.pkcs11_session
        if session is not None:
            self.pkcs11_session = None
            try:
                session.close()
            except pkcs11.PKCS11Error:
                # A session the token already dropped needs no closing.
                pass

    def __enter__(self) -> "TokenSigner":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def signer_from_pkcs11(
    *,
    module_path: Path | str,
    token_label: str,
    pin: str,
    key_label: str,
    cert_label: str | None = None,
    cert_path: Path | str | None = None,
    chain_paths: Sequence[Path | str] = (),
) -> TokenSigner:
    """Open a session on a PKCS#11 token and return a signer using a key on it.

    The certificate comes from ``cert_path`` when given, otherwise from the
    token object labelled ``cert_label`` (default: ``key_label``). The key and
    certificate are looked up immediately, so a wrong label or PIN raises
    :class:`KeyUnavailable` here, not at the first seal.
    """
    signing_cert = to_asn1_certificate(load_certificates(cert_path)[0]) if cert_path else None
    chain = [to_asn1_certificate(c) for p in chain_paths for c in load_certificates(p)]
    try:
        session = open_pkcs11_session(
            str(module_path), token_criteria=TokenCriteria(label=token_label), user_pin=pin
        )
    except (pkcs11.PKCS11Error, PyHankoSigningError, OSError, RuntimeError) as exc:
        raise KeyUnavailable(
            f"cannot open PKCS#11 token {token_label!r} via {module_path}: {type(exc).__name__} {exc}"
        ) from exc
    signer = TokenSigner(
        session,
        cert_label=None if signing_cert is not None else (cert_label or key_label),
        signing_cert=signing_cert,
        ca_chain=chain,
        key_label=key_label,
        # No other certificates are pulled from the token: the chain comes
        # from files, so a token holding stray certificates cannot inject them.
        other_certs_to_pull=(),
        # SoftHSM2 (and many HSMs) only offer raw CKM_ECDSA; hashing on the
        # host is what the hash-and-sign mechanisms would do anyway.
        use_raw_mechanism=True,
    )
    try:
        cert = signer.signing_cert  # loads the certificate and the key handle now
    except (pkcs11.PKCS11Error, PyHankoSigningError) as exc:
        signer.close()
        raise KeyUnavailable(
            f"key {key_label!r} or its certificate not found on token {token_label!r}: {exc}"
        ) from exc
    if cert is None:
        signer.close()
        raise KeyUnavailable(f"no certificate for key {key_label!r} on token {token_label!r}")
    return signer


def import_key_to_token(
    *,
    module_path: Path | str,
    token_label: str,
    pin: str,
    key_path: Path | str,
    cert_path: Path | str,
    label: str,
    object_id: bytes = b"\x01",
    passphrase: str | bytes | None = None,
) -> None:
    """Import a private key and its certificate into an initialised PKCS#11 token.

    For administrators and tests moving a file key onto a token (SoftHSM2 in
    development). The key is stored sensitive and non-extractable; the
    certificate gets the same label and id, so :func:`signer_from_pkcs11`
    finds both by ``label``. Raises :class:`KeyUnavailable` on any failure.
    """
    key = load_private_key(key_path, passphrase=passphrase)
    cert = load_certificates(cert_path)[0]
    if not _same_public_key(key, cert):
        raise KeyUnavailable(f"private key {key_path} does not belong to certificate {cert_path}")
    from pkcs11 import Attribute, CertificateType, KeyType, ObjectClass
    from pkcs11.util.ec import encode_named_curve_parameters
    from pkcs11.util.rsa import decode_rsa_private_key

    common = {
        Attribute.TOKEN: True,
        Attribute.PRIVATE: True,
        Attribute.SENSITIVE: True,
        Attribute.EXTRACTABLE: False,
        Attribute.SIGN: True,
        Attribute.LABEL: label,
        Attribute.ID: object_id,
    }
    if isinstance(key, ec.EllipticCurvePrivateKey):
        spki = asn1_keys.PublicKeyInfo.load(
            key.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        key_size = (key.curve.key_size + 7) // 8
        key_attrs = {
            Attribute.CLASS: ObjectClass.PRIVATE_KEY,
            Attribute.KEY_TYPE: KeyType.EC,
            Attribute.EC_PARAMS: encode_named_curve_parameters(spki["algorithm"]["parameters"].chosen.dotted),
            Attribute.VALUE: key.private_numbers().private_value.to_bytes(key_size, "big"),
        }
    elif isinstance(key, rsa.RSAPrivateKey):
        key_attrs = decode_rsa_private_key(
            key.private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
    else:
        raise KeyUnavailable(f"{key_path}: only EC and RSA keys can be imported")
    key_attrs.update(common)
    cert_der = cert.public_bytes(serialization.Encoding.DER)
    asn1_cert = asn1_x509.Certificate.load(cert_der)
    cert_attrs = {
        Attribute.CLASS: ObjectClass.CERTIFICATE,
        Attribute.CERTIFICATE_TYPE: CertificateType.X_509,
        Attribute.TOKEN: True,
        Attribute.PRIVATE: False,
        Attribute.LABEL: label,
        Attribute.ID: object_id,
        Attribute.SUBJECT: asn1_cert.subject.dump(),
        Attribute.ISSUER: asn1_cert.issuer.dump(),
        Attribute.SERIAL_NUMBER: asn1_cert["tbs_certificate"]["serial_number"].dump(),
        Attribute.VALUE: cert_der,
    }
    try:
        token = pkcs11.lib(str(module_path)).get_token(token_label=token_label)
        # Object creation needs a read-write session; signing sessions stay read-only.
        session = token.open(rw=True, user_pin=pin)
    except (pkcs11.PKCS11Error, OSError, RuntimeError) as exc:
        raise KeyUnavailable(f"cannot open PKCS#11 token {token_label!r}: {type(exc).__name__} {exc}") from exc
    try:
        session.create_object(key_attrs)
        session.create_object(cert_attrs)
    except pkcs11.PKCS11Error as exc:
        raise KeyUnavailable(f"token {token_label!r} refused the key or certificate: {type(exc).__name__} {exc}") from exc
    finally:
        session.close()
