"""SM2 signing with SM3 (GB/T 32918.2, GM/T 0009): keys and seals made by the server.

The format of an SM2 seal record, the curve, Z_A and verification are the offline
verifier's (:mod:`evidence_verify.sm2`, where the format is described); they are
re-exported here. Signing draws its nonce from :mod:`secrets` (gmssl's own uses
:mod:`random`).
"""

from __future__ import annotations

import base64
import binascii
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from asn1crypto import algos as asn1_algos
from asn1crypto import keys as asn1_keys
from asn1crypto import pem as asn1_pem
from evidence_verify.sm2 import (
    native_ec,
    native_hashes,
    ALGORITHM,
    CURVE_TABLE,
    DEFAULT_DISTINGUISHING_ID,
    ORDER,
    SM2_CURVE_OID,
    Sm2PublicKey,
    Sm2Report,
    UnsafeTrustEmbeddedKey,
    check_curve,
    curve_params,
    der_from_pem,
    e_value,
    encode_id,
    load_sm2_public_key,
    verify_sm2,
)
from gmssl import sm2 as gm_sm2

from .errors import REASONS, KeyUnavailable, SealFailed

__all__ = [
    "ALGORITHM", "DEFAULT_DISTINGUISHING_ID", "SM2_CURVE_OID", "Sm2PrivateKey", "Sm2PublicKey", "Sm2Report",
    "UnsafeTrustEmbeddedKey", "generate_sm2_private_key", "load_sm2_private_key", "load_sm2_public_key",
    "sm2_seal", "sm2_signature_der", "verify_sm2",
]


@dataclass(frozen=True)
class Sm2PrivateKey:
    """An SM2 private key. ``repr`` never shows the scalar."""

    d: int = field(repr=False)
    """Private scalar, 1 <= d <= n-2."""
    public_key: Sm2PublicKey
    """The matching public key d*G."""

    def private_pem(self) -> bytes:
        """Unencrypted PKCS#8 PEM (id-ecPublicKey, SM2 curve), readable by OpenSSL 3."""
        ec_key = asn1_keys.ECPrivateKey()
        ec_key.set_key_size(32)
        ec_key["version"] = "ecPrivkeyVer1"
        ec_key["private_key"] = self.d
        ec_key["public_key"] = b"\x04" + bytes.fromhex(self.public_key.point_hex())
        info = asn1_keys.PrivateKeyInfo(
            {
                "version": 0,
                "private_key_algorithm": asn1_keys.PrivateKeyAlgorithm(
                    {"algorithm": "ec", "parameters": curve_params()}
                ),
                "private_key": ec_key,
            }
        )
        return asn1_pem.armor("PRIVATE KEY", info.dump())


def _multiply_g(d: int) -> Sm2PublicKey:
    engine = gm_sm2.CryptSM2(private_key=None, public_key="")
    point = engine._kg(d, CURVE_TABLE["g"])
    return Sm2PublicKey(x=int(point[:64], 16), y=int(point[64:128], 16))


def generate_sm2_private_key() -> Sm2PrivateKey:
    """Generate a new SM2 key pair from the operating system's CSPRNG."""
    d = secrets.randbelow(ORDER - 2) + 1
    return Sm2PrivateKey(d=d, public_key=_multiply_g(d))


def load_sm2_private_key(source: Union[Path, str, bytes]) -> Sm2PrivateKey:
    """Load an SM2 private key from a PKCS#8 (or SEC1 ``EC PRIVATE KEY``) PEM/DER file or bytes."""
    raw = Path(source).read_bytes() if isinstance(source, (str, Path)) else bytes(source)
    try:
        der = der_from_pem(raw, "private key")
        if b"BEGIN EC PRIVATE KEY" in raw:
            ec_key = asn1_keys.ECPrivateKey.load(der)
            check_curve(ec_key["parameters"], "private key")
        else:
            info = asn1_keys.PrivateKeyInfo.load(der)
            if info["private_key_algorithm"]["algorithm"].native != "ec":
                raise KeyUnavailable("private key is not an elliptic-curve key")
            check_curve(info["private_key_algorithm"]["parameters"], "private key")
            ec_key = info["private_key"].parsed
        d = ec_key["private_key"].native
    except (ValueError, TypeError, KeyError) as exc:
        raise KeyUnavailable("cannot parse the SM2 private key") from exc
    if not 1 <= d <= ORDER - 2:
        raise KeyUnavailable("SM2 private scalar is out of range")
    return Sm2PrivateKey(d=d, public_key=_multiply_g(d))


def sm2_signature_der(*, data: bytes, private_key: Sm2PrivateKey,
                      distinguishing_id: str = DEFAULT_DISTINGUISHING_ID) -> bytes:
    """Sign ``data`` with SM2/SM3; return the DER ``SEQUENCE {r, s}`` signature (by OpenSSL's
    SM2 through tongsuopy for the default ID, its nonce from OpenSSL's CSPRNG; else gmssl)."""
    if native_ec is not None and distinguishing_id == DEFAULT_DISTINGUISHING_ID:
        key = native_ec.derive_private_key(private_key.d, native_ec.SM2())
        return key.sign(data, native_ec.ECDSA(native_hashes.SM3()))
    e = e_value(data, private_key.public_key, encode_id(distinguishing_id))
    engine = gm_sm2.CryptSM2(private_key=f"{private_key.d:064x}", public_key="")
    engine.public_key = private_key.public_key.point_hex()
    # gmssl returns None for the (astronomically rare) degenerate nonces; draw again.
    for _ in range(16):
        k = secrets.randbelow(ORDER - 1) + 1
        rs = engine.sign(e, f"{k:064x}")
        if rs is not None:
            r, s = int(rs[:64], 16), int(rs[64:], 16)
            return asn1_algos.DSASignature({"r": r, "s": s}).dump()
    raise SealFailed("SM2 signing produced no valid signature after 16 nonces")


def sm2_seal(
    *,
    data: bytes,
    private_key: Union[Sm2PrivateKey, Path, str],
    certificate_pem: Union[bytes, str, None] = None,
    distinguishing_id: str = DEFAULT_DISTINGUISHING_ID,
) -> dict[str, Any]:
    """Seal ``data`` with SM2/SM3 and return a JSON-able record.

    ``private_key`` is an :class:`Sm2PrivateKey` or the path of its PEM file.
    The record is ``{"algorithm", "signature" (base64 DER r,s), "public_key"
    (PEM), "distinguishing_id", "certificate" (PEM or None)}``.
    """
    key = private_key if isinstance(private_key, Sm2PrivateKey) else load_sm2_private_key(Path(private_key))
    try:
        signature = sm2_signature_der(data=data, private_key=key, distinguishing_id=distinguishing_id)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise SealFailed(REASONS["sm2_failed"].format(detail=exc)) from exc
    if isinstance(certificate_pem, bytes):
        certificate_pem = certificate_pem.decode("ascii")
    return {
        "algorithm": ALGORITHM,
        "signature": base64.b64encode(signature).decode("ascii"),
        "public_key": key.public_key.public_pem().decode("ascii"),
        "distinguishing_id": distinguishing_id,
        "certificate": certificate_pem,
    }
