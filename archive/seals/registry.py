"""The certificate registry: every certificate and SM2 key that ever sealed for us.

Every certificate or SM2 key that seals or time-stamps is recorded in the
``certificates`` table at first use and kept forever, so seals made before a key
rotation still name a published certificate.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from asn1crypto import cms as asn1_cms
from asn1crypto import x509 as asn1_x509
from sqlalchemy import select
from sqlalchemy.orm import Session

import signing
from archive.db import insert_ignoring_duplicates
from archive.models import TrustedCertificate
from archive.seals.sealer import Sealer
from signing import certs as signing_certs
from signing import sm2 as signing_sm2


def _role_of(cert: asn1_x509.Certificate) -> str:
    if cert.self_signed != "no":
        return "root"
    eku = cert.extended_key_usage_value
    if eku is not None and "time_stamping" in eku.native:
        return "tsa"
    if cert.ca:
        return "ca"
    return "seal"



def certificates_in_seal(cades: bytes) -> list[tuple[str, asn1_x509.Certificate]]:
    """(role, certificate) for every certificate inside a CAdES seal and its time-stamp token."""
    found: list[tuple[str, asn1_x509.Certificate]] = []
    info = asn1_cms.ContentInfo.load(cades)
    for choice in info["content"]["certificates"] or []:
        if choice.name == "certificate":
            found.append((_role_of(choice.chosen), choice.chosen))
    token = asn1_cms.ContentInfo.load(signing.extract_timestamp_token(cades))
    for choice in token["content"]["certificates"] or []:
        if choice.name == "certificate":
            found.append((_role_of(choice.chosen), choice.chosen))
    return found


def record_certificates(session: Session, certs: Iterable[tuple[str, asn1_x509.Certificate]]) -> int:
    """Keep each certificate in the ``certificates`` table (first use; never removed). Returns how many were new.

    An upsert that skips known ones: two workers sealing at once with the same new
    certificate both succeed (a look-then-insert made one fail with a duplicate key).
    Rows go in fingerprint order, so concurrent inserts wait for each other in one order.
    """
    rows: dict[str, dict[str, Any]] = {}
    for role, shared in certs:
        # A private parse: asn1crypto parses lazily and not thread-safely, and the same
        # certificate objects may be read by several sealing threads at once.
        cert = asn1_x509.Certificate.load(shared.dump())
        fp = signing_certs.sha256_fingerprint(cert)
        if fp in rows:
            continue
        validity = cert["tbs_certificate"]["validity"]
        rows[fp] = {
            "fingerprint": fp, "role": role, "subject": signing_certs.subject_text(cert),
            "pem": signing_certs.to_pem(cert),
            "not_before": validity["not_before"].native, "not_after": validity["not_after"].native,
        }
    known = set(session.execute(
        select(TrustedCertificate.fingerprint).where(TrustedCertificate.fingerprint.in_(list(rows)))
    ).scalars()) if rows else set()
    return insert_ignoring_duplicates(session, TrustedCertificate, [rows[fp] for fp in sorted(rows) if fp not in known])


def record_sm2_key(session: Session, public_key: signing_sm2.Sm2PublicKey) -> None:
    """Keep an SM2 public key (role ``sm2``; ``pem`` is the SubjectPublicKeyInfo) forever (an upsert)."""
    fp = public_key.fingerprint()
    if session.get(TrustedCertificate, fp) is None:
        insert_ignoring_duplicates(session, TrustedCertificate, [{
            "fingerprint": fp, "role": "sm2", "subject": "SM2 public key",
            "pem": public_key.public_pem().decode("ascii"),
        }])


def record_sealer_certificates(session: Session, sealer: Sealer) -> int:
    """Record every certificate and the SM2 key of the current configuration (keys init/rotate)."""
    added = record_certificates(session, sealer.local_certificates())
    record_sm2_key(session, sealer.sm2_key.public_key)
    return added


def recorded_sm2_keys(session: Session) -> list[signing_sm2.Sm2PublicKey]:
    """Every SM2 public key that ever sealed for us."""
    rows = session.execute(select(TrustedCertificate.pem).where(TrustedCertificate.role == "sm2")).scalars()
    return [signing_sm2.load_sm2_public_key(pem.encode("ascii")) for pem in rows]


def published_chain_pem(session: Session, sealer: Sealer) -> bytes:
    """The trust chain to publish: the sealer's certificates plus every recorded one (SM2 keys excluded)."""
    local = sealer.local_certificates()
    rows = session.execute(
        select(TrustedCertificate).where(TrustedCertificate.role != "sm2").order_by(TrustedCertificate.added_at)
    ).scalars()
    recorded = [(r.role, signing_certs.to_asn1_certificate(r.pem.encode("ascii"))) for r in rows]
    order = {"root": 0, "ca": 1, "seal": 2, "tsa": 3}
    ordered = sorted([*local, *recorded], key=lambda rc: order.get(rc[0], 4))
    return signing_certs.pem_bundle(cert for _role, cert in ordered)


def sm2_keys_pem(keys: Iterable[signing_sm2.Sm2PublicKey]) -> bytes:
    """Every SM2 public key given, one PEM block each, without repeats."""
    blocks: list[bytes] = []
    for key in keys:
        pem = key.public_pem()
        if pem not in blocks:
            blocks.append(pem)
    return b"".join(blocks)
