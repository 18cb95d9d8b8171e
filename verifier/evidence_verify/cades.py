"""Verifying detached CAdES-B-T seals over arbitrary bytes (manifests).

A seal is a DER CMS ``SignedData`` without encapsulated content, carrying the
e-seal certificate, the signed attributes contentType, messageDigest,
signingTime and signingCertificateV2 (the CAdES-B-B set), and an RFC 3161
signature time-stamp token as unsigned attribute (making it B-T). A court
checks it with nothing but OpenSSL::

    openssl cms -verify -binary -inform DER -in SEAL -content MANIFEST -CAfile root.pem

The server seals with :mod:`signing.cades` and verifies with this module, as a court does.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable

from asn1crypto import cms, core, x509
from pyhanko.sign.validation import errors as validation_errors
from pyhanko.sign.validation.generic_cms import async_validate_detached_cms
from pyhanko.sign.validation.status import StandardCMSSignatureStatus
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.registry import SimpleTrustManager

from .certs import AnyCertificate, memoise_name_preparation, sha256_fingerprint, subject_text, to_asn1_certificates
from .errors import VerificationError

memoise_name_preparation()

__all__ = [
    "SealReport",
    "async_verify_detached",
    "extract_timestamp_token",
    "signature_value",
    "verify_detached",
]


_ACCEPTED_DIGESTS = frozenset({"sha256", "sha384", "sha512", "sha3_256", "sha3_384", "sha3_512"})


def _parse_signed_data(seal: bytes) -> cms.SignedData:
    """The seal's SignedData, after checking that all of it parses.

    asn1crypto parses lazily; everything is forced here, on a parse of its own, so a
    corrupted structure fails here, with this message, not deep inside validation. What is
    returned is a fresh lazy parse of the same bytes: once ``.native`` has been read from a
    value asn1crypto re-encodes it on every later ``dump()``, and pyHanko dumps the
    time-stamp token and attributes many times (that cost 0.1-0.2 s per seal).
    """
    try:
        info = cms.ContentInfo.load(bytes(seal), strict=True)
        if info["content_type"].native != "signed_data":
            raise VerificationError("seal is a CMS object but not SignedData")
        _force(info["content"])
    except VerificationError:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise VerificationError(f"seal is not well-formed DER CMS: {exc}") from exc
    return cms.ContentInfo.load(bytes(seal))["content"]


def _force(signed_data: cms.SignedData) -> None:
    """Parse every part of ``signed_data``, part by part (``signed_data.native`` in one go makes
    asn1crypto re-encode the time-stamp token nested in a SET OF over and over); each token in
    the unsigned attributes is taken as its original bytes first and checked the same way."""
    for part in ("version", "digest_algorithms"):
        signed_data[part].native
    certificates = signed_data["certificates"]
    if isinstance(certificates, cms.CertificateSet):
        for choice in certificates:
            if choice.name == "certificate":
                _parses(x509.Certificate, choice.chosen.dump())
            else:
                choice.native
    else:
        certificates.native
    encap = signed_data["encap_content_info"]
    encap["content_type"].native
    content = encap["content"]
    if isinstance(content, core.ParsableOctetString) and encap["content_type"].native == "tst_info":
        content.parsed.native
    else:
        content.native
    for signer_info in signed_data["signer_infos"]:
        unsigned = signer_info["unsigned_attrs"]
        nested = [(attr["type"].native, [value.dump() for value in attr["values"]])
                  for attr in (unsigned if unsigned.contents else ())]
        for part in ("version", "sid", "digest_algorithm", "signature_algorithm", "signature"):
            signer_info[part].native
        signed_attrs = signer_info["signed_attrs"]
        if isinstance(signed_attrs, cms.CMSAttributes):
            for attr in signed_attrs:
                _parses(cms.CMSAttribute, attr.dump())
        else:
            signed_attrs.native
        for _type, values in nested:
            for raw in values:
                token = cms.ContentInfo.load(raw, strict=True)
                token["content_type"].native
                if isinstance(token["content"], cms.SignedData):
                    _force(token["content"])
                else:
                    token["content"].native


@functools.lru_cache(maxsize=256)
def _parses(spec: type[core.Asn1Value], der: bytes) -> None:
    """Parse all of ``der`` as ``spec``, raising if any part does not parse. The same bytes
    parse the same way, so what recurs from seal to seal (the certificates, the
    signing-certificate attribute: some 5 ms of a seal's 19) is parsed once."""
    spec.load(der, strict=True).native


def extract_timestamp_token(seal_der: bytes) -> bytes:
    """Return the DER signature time-stamp token (a CMS ContentInfo) inside a seal.

    Its message imprint is over the seal's signature value, so it verifies
    with ``openssl ts -verify -token_in -in TOKEN -digest <sha256 of signature>``.
    Raises :class:`VerificationError` if the seal is malformed or carries none.
    """
    signed_data = _parse_signed_data(seal_der)
    signer_info = _single_signer(signed_data)
    tokens = _attr_values(signer_info["unsigned_attrs"], "signature_time_stamp_token")
    if len(tokens) != 1:
        raise VerificationError(f"seal carries {len(tokens)} signature time-stamp tokens, expected 1")
    return tokens[0].dump()


def _claimed_timestamp_time(signed_data: cms.SignedData) -> datetime | None:
    """genTime of the seal's time-stamp token as written, not yet verified.

    Certificates are judged at this moment: the token proves the seal existed then
    (ETSI EN 319 102-1 proof of existence), so a seal made while its certificate was
    valid still verifies years after that certificate expired. The token's own
    signature is verified at the same moment, so a forged time needs the TSA's key.
    """
    try:
        tokens = _attr_values(_single_signer(signed_data)["unsigned_attrs"], "signature_time_stamp_token")
        if len(tokens) != 1:
            return None
        token = cms.ContentInfo.load(tokens[0].dump())
        return token["content"]["encap_content_info"]["content"].parsed["gen_time"].native
    except (VerificationError, ValueError, TypeError, KeyError, AttributeError):
        return None  # verification below reports what is wrong with the token


def signature_value(seal_der: bytes) -> bytes:
    """The raw signature value of the seal's SignerInfo (what the time-stamp imprint covers)."""
    return bytes(_single_signer(_parse_signed_data(seal_der))["signature"].native)


def _single_signer(signed_data: cms.SignedData) -> cms.SignerInfo:
    infos = signed_data["signer_infos"]
    if len(infos) != 1:
        raise VerificationError(f"seal has {len(infos)} signers, expected exactly 1")
    return infos[0]


def _attr_values(attrs, name: str) -> list:
    # Not ``attrs.native``: reading it would make every later dump() of a value re-encode.
    if isinstance(attrs, core.Void) or not attrs.contents:
        return []
    return [v for a in attrs if a["type"].native == name for v in a["values"]]


@dataclass(frozen=True)
class SealReport:
    """What :func:`verify_detached` established about a detached seal."""

    signer_subject: str
    """Subject of the e-seal certificate (RFC 4514)."""
    signer_cert_sha256: str
    """Hex SHA-256 fingerprint of the e-seal certificate."""
    chain_subjects: tuple[str, ...]
    """Validated path, trust anchor first, e-seal certificate last."""
    digest_algorithm: str
    """Digest over the data, e.g. ``sha256``."""
    signature_algorithm: str
    """Signature mechanism, e.g. ``sha256_ecdsa``."""
    signing_time: datetime | None
    """Signer-claimed signingTime attribute (not trusted on its own)."""
    timestamp_time: datetime
    """genTime of the trusted signature time-stamp: the seal existed by then."""
    tsa_subject: str
    """Subject of the TSA certificate that signed the time-stamp."""
    tsa_chain_subjects: tuple[str, ...]
    """Validated TSA path, trust anchor first."""


def _path_subjects(path) -> tuple[str, ...]:
    if path is None:
        return ()
    return tuple(subject_text(c) for c in path.iter_certs(include_root=True))


def _check_status(status: StandardCMSSignatureStatus) -> None:
    _check_signature(
        status,
        altered="data does not match the seal's message digest (the data, or the seal's digest, was altered)",
        invalid="seal signature is invalid (signed attributes or signature value altered)",
        signer="e-seal certificate",
    )
    ts = status.timestamp_validity
    if ts is None:
        raise VerificationError("seal carries no signature time-stamp (CAdES-B-T required)")
    _check_signature(
        ts,
        altered="time-stamp token does not cover this seal's signature value (token or signature altered)",
        invalid="time-stamp token signature is invalid (token altered)",
        signer="time-stamping authority",
    )


def _check_signature(status: Any, *, altered: str, invalid: str, signer: str) -> None:
    """Intact, valid and trusted, in that order; each failure in the words given."""
    if not status.intact:
        raise VerificationError(altered)
    if not status.valid:
        raise VerificationError(invalid)
    if not status.trusted:
        raise VerificationError(
            f"{signer} {subject_text(status.signing_cert)!r} is not trusted: "
            f"{status.trust_problem_indic.name if status.trust_problem_indic else 'no path to a trusted root'}"
        )


def _precheck(signed_data: cms.SignedData) -> None:
    signer_info = _single_signer(signed_data)
    if signed_data["encap_content_info"]["content"].native is not None:
        raise VerificationError("seal embeds its content; a detached seal is expected")
    digest_algo = signer_info["digest_algorithm"]["algorithm"].native
    if digest_algo not in _ACCEPTED_DIGESTS:
        raise VerificationError(f"seal digest algorithm {digest_algo!r} is not accepted")
    if not _attr_values(signer_info["signed_attrs"], "signing_certificate_v2"):
        raise VerificationError("seal lacks the signingCertificateV2 attribute (not CAdES)")
    if len(_attr_values(signer_info["unsigned_attrs"], "signature_time_stamp_token")) != 1:
        raise VerificationError("seal must carry exactly one signature time-stamp token (CAdES-B-T)")


async def async_verify_detached(
    *,
    data: bytes,
    seal: bytes,
    trust_roots: Iterable[AnyCertificate],
    tsa_trust_roots: Iterable[AnyCertificate] | None = None,
    validation_time: datetime | None = None,
) -> SealReport:
    """Async form of :func:`verify_detached`."""
    roots = to_asn1_certificates(trust_roots)
    if not roots:
        raise VerificationError("no trust roots given: nothing can be trusted")
    tsa_roots = roots if tsa_trust_roots is None else to_asn1_certificates(tsa_trust_roots)
    signed_data = _parse_signed_data(seal)
    try:
        _precheck(signed_data)
    except VerificationError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise VerificationError(f"seal is structurally broken: {type(exc).__name__} {exc}") from exc

    if validation_time is None:
        validation_time = _claimed_timestamp_time(signed_data)

    def context(anchors):
        # No fetching: verification must give the same answer offline, on a
        # court's machine, as here.
        return ValidationContext(trust_manager=_trust_manager(tuple(a.dump() for a in anchors)),
                                 allow_fetching=False, moment=validation_time)

    try:
        status = await async_validate_detached_cms(
            data,
            signed_data,
            signer_validation_context=context(roots),
            ts_validation_context=context(tsa_roots),
        )
    except validation_errors.SignatureValidationError as exc:
        raise VerificationError(f"seal could not be validated: {exc.failure_message}") from exc
    except (ValueError, TypeError, KeyError, AttributeError, NotImplementedError) as exc:
        # pyHanko/asn1crypto surface corrupted OIDs and structures as any of
        # these; all mean the same thing to the caller.
        raise VerificationError(f"seal is structurally broken: {type(exc).__name__} {exc}") from exc
    _check_status(status)
    ts = status.timestamp_validity
    assert ts is not None  # _check_status guarantees it
    return SealReport(
        signer_subject=subject_text(status.signing_cert),
        signer_cert_sha256=sha256_fingerprint(status.signing_cert),
        chain_subjects=_path_subjects(status.validation_path),
        digest_algorithm=status.md_algorithm,
        signature_algorithm=status.pkcs7_signature_mechanism,
        signing_time=status.signer_reported_dt,
        timestamp_time=ts.timestamp,
        tsa_subject=subject_text(ts.signing_cert),
        tsa_chain_subjects=_path_subjects(ts.validation_path),
    )


_TRUST = threading.local()
TRUST_SETS_KEPT = 16
"""Sets of trust anchors a thread keeps built."""


def _trust_manager(roots: tuple[bytes, ...]) -> SimpleTrustManager:
    """The trust anchors of these roots (DER), built once per set and thread: building them
    prepares every root's name for comparison, a cost that each seal verified otherwise paid
    twice over. Never shared between threads: asn1crypto parses a certificate's parts when
    they are first read, and a thread reading a root another thread was parsing saw it half
    made (KeyError "No field numbered 1 is present in this PublicKeyInfo": a worker with two
    threads failed a good seal)."""
    built: dict[tuple[bytes, ...], SimpleTrustManager] = _TRUST.__dict__.setdefault("managers", {})
    manager = built.get(roots)
    if manager is None:
        if len(built) >= TRUST_SETS_KEPT:
            built.clear()
        manager = built[roots] = SimpleTrustManager.build(trust_roots=[x509.Certificate.load(der) for der in roots])
    return manager


def verify_detached(
    *,
    data: bytes,
    seal: bytes,
    trust_roots: Iterable[AnyCertificate],
    tsa_trust_roots: Iterable[AnyCertificate] | None = None,
    validation_time: datetime | None = None,
) -> SealReport:
    """Verify a detached CAdES-B-T seal over ``data``; return a report or raise.

    Raises :class:`VerificationError` naming what failed unless: the data
    matches the message digest, the signature is valid, the e-seal
    certificate chains to one of ``trust_roots`` (with keyUsage
    nonRepudiation), and exactly one signature time-stamp token is present,
    covers the signature value, and is signed by a TSA (EKU timeStamping)
    chaining to ``tsa_trust_roots`` (default: ``trust_roots``). Certificates
    are checked at ``validation_time`` (default: the time the seal's time-stamp
    proves, so expired certificates do not void old seals). No network access.
    """
    return asyncio.run(
        async_verify_detached(
            data=data, seal=seal, trust_roots=trust_roots,
            tsa_trust_roots=tsa_trust_roots, validation_time=validation_time,
        )
    )
