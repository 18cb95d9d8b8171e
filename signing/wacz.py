"""WACZ signing (webrecorder "WACZ Signing and Verification", as authsign does it).

The ``signedData`` of ``datapackage-digest.json``: the e-seal signs the text of the
datapackage hash (``"sha256:<hex>"``, ASCII) with ECDSA P-256/SHA-256, base64 of the DER
signature in ``signature``; an RFC 3161 time-stamp response over that base64 text is
``timeSignature``; ``domainCert`` and ``timestampCert`` are PEM chains, leaf first and
root last (each certificate signed by the next), ``domain`` the e-seal's common name.
Standard tools (``wacz validate --verify-auth``, authsign's verifier) check it once the
organisation's roots are among their trusted roots.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import Iterable
from typing import Any

from asn1crypto import cms, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from .errors import SealFailed
from .tsa import timestamp_digest

__all__ = ["order_chain", "sign_wacz_hash", "timestamp_time"]


def _pem(cert: asn1_x509.Certificate) -> str:
    return x509.load_der_x509_certificate(cert.dump()).public_bytes(Encoding.PEM).decode("ascii")


def order_chain(leaf: asn1_x509.Certificate, pool: Iterable[asn1_x509.Certificate]) -> list[asn1_x509.Certificate]:
    """``leaf`` followed by its issuers found in ``pool``, up to a self-signed root."""
    by_subject = {c.subject.dump(): c for c in pool}
    chain, current = [leaf], leaf
    while current.issuer.dump() != current.subject.dump():
        issuer = by_subject.get(current.issuer.dump())
        if issuer is None or issuer in chain:
            break
        chain.append(issuer)
        current = issuer
    return chain


def timestamp_time(response_der: bytes) -> str:
    """The ``genTime`` of an RFC 3161 time-stamp response, ISO 8601 UTC."""
    token = tsp.TimeStampResp.load(response_der)["time_stamp_token"]
    info = token["content"]["encap_content_info"]["content"].parsed
    return info["gen_time"].native.isoformat()


def sign_wacz_hash(
    *, digest: str, created: str, signer: Any, timestamper: Any, pool: Iterable[asn1_x509.Certificate],
    software: str,
) -> dict[str, Any]:
    """The ``signedData`` for ``digest`` (``"sha256:<hex>"``) created at ``created``.

    ``signer`` is a pyHanko signer holding an ECDSA P-256 e-seal (key file or token),
    ``timestamper`` a pyHanko time-stamper, ``pool`` certificates to build the chains
    from (trust roots, intermediates). Raises :class:`SealFailed`.
    """
    pool = list(pool)
    cert = signer.signing_cert
    if cert.public_key.algorithm != "ec":
        raise SealFailed("WACZ signing needs an ECDSA e-seal key (the WACZ signing spec uses ECDSA P-256)")
    try:
        raw = asyncio.run(signer.async_sign_raw(digest.encode("ascii"), "sha256"))
    except Exception as exc:  # noqa: BLE001 - pyHanko, PKCS#11 and key errors alike
        raise SealFailed(f"signing the WACZ digest failed: {exc}") from exc
    signature = base64.b64encode(raw).decode("ascii")
    token = cms.ContentInfo.load(timestamp_digest(
        timestamper, digest=hashlib.sha256(signature.encode("ascii")).digest()))
    response = tsp.TimeStampResp({"status": tsp.PKIStatusInfo({"status": "granted"}), "time_stamp_token": token})
    signed = token["content"]
    tsa_certs = [c.chosen for c in signed["certificates"] or () if c.name == "certificate"]
    sid = signed["signer_infos"][0]["sid"]
    tsa_leaf = next((c for c in tsa_certs if sid.name == "issuer_and_serial_number"
                     and c.serial_number == sid.chosen["serial_number"].native), None)
    if tsa_leaf is None:
        raise SealFailed("the time-stamp token does not carry its TSA certificate (ask with certReq)")
    registry = list(getattr(signer, "cert_registry", None) or ())
    domain_chain = order_chain(cert, [*registry, *pool])
    tsa_chain = order_chain(tsa_leaf, [*tsa_certs, *pool])
    return {
        "hash": digest, "created": created, "software": software, "version": "0.1.0",
        "signature": signature, "domain": cert.subject.native.get("common_name", ""),
        "domainCert": "".join(_pem(c) for c in domain_chain),
        "timeSignature": base64.b64encode(response.dump()).decode("ascii"),
        "timestampCert": "".join(_pem(c) for c in tsa_chain),
    }
