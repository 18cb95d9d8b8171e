"""SM2 signatures with SM3 (GB/T 32918.2, GM/T 0009) over arbitrary bytes.

An SM2 seal is a plain SM2 signature over the bytes given (in
practice a manifest), computed as e = SM3(Z_A || M) with the standard Z_A value
(ENTL || ID || a || b || x_G || y_G || x_A || y_A) and the default
distinguishing identifier ``1234567812345678``. The signature is DER
``SEQUENCE { r INTEGER, s INTEGER }`` (GM/T 0009), so OpenSSL 3 verifies it with::

    openssl pkeyutl -verify -rawin -digest sm3 -pkeyopt distid:1234567812345678 \
        -pubin -inkey pub.pem -in data -sigfile sig.der

Keys are PEM: PKCS#8 / SubjectPublicKeyInfo with id-ecPublicKey and the SM2
curve OID 1.2.156.10197.1.301, as OpenSSL 3 writes them.

What it does NOT do: GB/T 38540 (信息安全技术 安全电子签章密码技术规范) defines the
electronic seal structures ``SESeal`` (the seal: picture, validity, maker's
signature) and ``SES_Signature`` (the signed document digest, the seal, a
time-stamp, the signer certificate). None of those ASN.1 structures are built or
parsed here, there is no seal picture, no seal-maker signature and no SM2
time-stamp. The result is a JSON-able record carrying a bare SM2 signature,
the public key and optionally a certificate (carried for information; its chain
is not validated here because the dev PKI has no SM2 CA). It is offered beside
the CAdES seal so an export carries a national-algorithm signature too.

The elliptic-curve arithmetic comes from gmssl (pure Python). gmssl is used
only for the point operations: hashing uses OpenSSL's SM3 (``hashlib``), the
nonce comes from :mod:`secrets` (gmssl's own uses :mod:`random`), and the
public key is set directly because gmssl's constructor mangles keys that
begin with the hex digits 0 or 4.

When tongsuopy is installed (pyca/cryptography's interface on Tongsuo, OpenSSL's fork with
the Chinese national algorithms; the verifier's ``fast`` extra, and always on the server), a
seal with the default distinguishing ID is checked by OpenSSL's SM2 instead, in about 0.3 ms
rather than 30: it computes the same Z_A (GB/T 32918.2) from that ID. The result is the same;
a seal with another ID, or no tongsuopy, takes the pure-Python path.

This module verifies; the server signs with :mod:`signing.sm2`, on the same curve
arithmetic and the same Z_A, defined here once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from asn1crypto import algos as asn1_algos
from asn1crypto import keys as asn1_keys
from asn1crypto import pem as asn1_pem
from gmssl import sm2 as gm_sm2

from .errors import KeyUnavailable, VerificationError

try:
    from tongsuopy.crypto import hashes as native_hashes
    from tongsuopy.crypto.asymciphers import ec as native_ec
    from tongsuopy.crypto.exceptions import InvalidSignature as NativeInvalidSignature
except ImportError:  # the pure-Python path below does the same check, slower
    native_ec = None

SM2_CURVE_OID = "1.2.156.10197.1.301"
"""OID of the SM2 prime curve (sm2p256v1)."""
ALGORITHM = "SM2-with-SM3"
"""Value of the ``algorithm`` field of an SM2 seal record."""
DEFAULT_DISTINGUISHING_ID = "1234567812345678"
"""The default signer ID of GM/T 0009 (and OpenSSL's ``distid``)."""

CURVE_TABLE = gm_sm2.default_ecc_table
"""gmssl's table of the SM2 curve (hex p, a, b, n and G)."""
_P = int(CURVE_TABLE["p"], 16)
ORDER = int(CURVE_TABLE["n"], 16)
"""n, the order of the base point G."""
_A = int(CURVE_TABLE["a"], 16)
_B = int(CURVE_TABLE["b"], 16)
_GX = int(CURVE_TABLE["g"][:64], 16)
_GY = int(CURVE_TABLE["g"][64:], 16)

if SM2_CURVE_OID not in asn1_keys.NamedCurve._map:
    asn1_keys.NamedCurve.register("sm2p256v1", SM2_CURVE_OID, 32)


def _on_curve(x: int, y: int) -> bool:
    return 0 <= x < _P and 0 <= y < _P and (y * y - (x * x * x + _A * x + _B)) % _P == 0


def curve_params() -> asn1_keys.ECDomainParameters:
    """The named SM2 curve as asn1crypto domain parameters (for SPKI and PKCS#8)."""
    return asn1_keys.ECDomainParameters(name="named", value="sm2p256v1")


@dataclass(frozen=True)
class Sm2PublicKey:
    """An SM2 public key (an affine point on the SM2 curve)."""

    x: int
    """Affine x coordinate."""
    y: int
    """Affine y coordinate."""

    def __post_init__(self) -> None:
        if not _on_curve(self.x, self.y):
            raise ValueError("point is not on the SM2 curve")

    def point_hex(self) -> str:
        """x || y as 128 hex digits (gmssl's representation)."""
        return f"{self.x:064x}{self.y:064x}"

    def spki_der(self) -> bytes:
        """DER SubjectPublicKeyInfo (id-ecPublicKey, SM2 curve)."""
        return asn1_keys.PublicKeyInfo(
            {
                "algorithm": asn1_keys.PublicKeyAlgorithm(
                    {"algorithm": "ec", "parameters": curve_params()}
                ),
                "public_key": b"\x04" + bytes.fromhex(self.point_hex()),
            }
        ).dump()

    def public_pem(self) -> bytes:
        """PEM SubjectPublicKeyInfo, readable by ``openssl pkey -pubin``."""
        return asn1_pem.armor("PUBLIC KEY", self.spki_der())

    def fingerprint(self) -> str:
        """Hex SHA-256 of the DER SubjectPublicKeyInfo."""
        return hashlib.sha256(self.spki_der()).hexdigest()


def der_from_pem(raw: bytes, kind: str) -> bytes:
    """DER of ``raw``, unarmoured when it is PEM (``kind`` names what it should be)."""
    if asn1_pem.detect(raw):
        _, _, raw = asn1_pem.unarmor(raw)
    return raw


def check_curve(params: Any, what: str) -> None:
    """Raise :class:`KeyUnavailable` unless ``params`` name the SM2 curve."""
    if params is None or params.name != "named" or params.chosen.dotted != SM2_CURVE_OID:
        raise KeyUnavailable(f"{what} is not on the SM2 curve ({SM2_CURVE_OID})")


def load_sm2_public_key(source: Union[Path, str, bytes]) -> Sm2PublicKey:
    """Load an SM2 public key from SubjectPublicKeyInfo PEM/DER (bytes, or a Path/str naming a file).

    A ``str`` that contains ``BEGIN`` is taken as PEM text, not a path.
    """
    if isinstance(source, str) and "BEGIN" in source:
        raw = source.encode("ascii")
    elif isinstance(source, (str, Path)):
        raw = Path(source).read_bytes()
    else:
        raw = bytes(source)
    try:
        info = asn1_keys.PublicKeyInfo.load(der_from_pem(raw, "public key"))
        if info["algorithm"]["algorithm"].native != "ec":
            raise KeyUnavailable("public key is not an elliptic-curve key")
        check_curve(info["algorithm"]["parameters"], "public key")
        point = bytes(info["public_key"])
        if len(point) != 65 or point[0] != 4:
            raise KeyUnavailable("SM2 public key is not an uncompressed point")
        return Sm2PublicKey(x=int.from_bytes(point[1:33], "big"), y=int.from_bytes(point[33:], "big"))
    except (ValueError, TypeError, KeyError) as exc:
        raise KeyUnavailable(f"cannot parse the SM2 public key: {exc}") from exc


def _z_value(public_key: Sm2PublicKey, distinguishing_id: bytes) -> bytes:
    entl = (len(distinguishing_id) * 8).to_bytes(2, "big")
    material = b"".join(
        [entl, distinguishing_id]
        + [v.to_bytes(32, "big") for v in (_A, _B, _GX, _GY, public_key.x, public_key.y)]
    )
    return hashlib.new("sm3", material).digest()


def e_value(data: bytes, public_key: Sm2PublicKey, distinguishing_id: bytes) -> bytes:
    """e = SM3(Z_A || data), the value an SM2 signature signs."""
    h = hashlib.new("sm3")
    h.update(_z_value(public_key, distinguishing_id))
    h.update(data)
    return h.digest()


def encode_id(distinguishing_id: str) -> bytes:
    """The distinguishing id as bytes; ValueError unless ASCII and short enough for ENTL."""
    try:
        encoded = distinguishing_id.encode("ascii")
    except UnicodeEncodeError as exc:
        raise ValueError("distinguishing id must be ASCII") from exc
    if len(encoded) >= 8192:
        raise ValueError("distinguishing id is too long (ENTL is 16 bits of bit length)")
    return encoded


@dataclass(frozen=True)
class Sm2Report:
    """What :func:`verify_sm2` established."""

    algorithm: str
    """Always ``SM2-with-SM3``."""
    public_key_fingerprint: str
    """Hex SHA-256 of the signer's DER SubjectPublicKeyInfo."""
    distinguishing_id: str
    """Signer ID that entered Z_A."""
    data_sm3: str
    """Hex SM3 of the verified data (without Z_A), for cross-checking manifests."""
    trusted_by: str
    """``expected-key`` when the key matched the caller's, else ``unsafe-embedded-key``."""


class UnsafeTrustEmbeddedKey:
    """Pass as ``expected_public_key`` to accept whatever key the seal carries.

    This proves only that the data was not changed since someone holding that
    key signed it; it says nothing about who that was.
    """


def verify_sm2(
    *,
    data: bytes,
    seal: dict[str, Any],
    expected_public_key: Union[Sm2PublicKey, bytes, str, Path, UnsafeTrustEmbeddedKey],
) -> Sm2Report:
    """Verify an SM2 seal record produced by :func:`sm2_seal`.

    ``expected_public_key`` is the key the caller trusts (object, PEM/DER
    bytes, PEM text or a file path); the seal's own key must equal it. Use an
    :class:`UnsafeTrustEmbeddedKey` instance to skip that check knowingly.
    Raises :class:`VerificationError` naming what failed.
    """
    if not isinstance(seal, dict):
        raise VerificationError("SM2 seal is not a JSON object")
    if seal.get("algorithm") != ALGORITHM:
        raise VerificationError(f"SM2 seal algorithm is {seal.get('algorithm')!r}, expected {ALGORITHM!r}")
    dist_id = seal.get("distinguishing_id", DEFAULT_DISTINGUISHING_ID)
    try:
        id_bytes = encode_id(str(dist_id))
    except ValueError as exc:
        raise VerificationError(f"SM2 seal distinguishing id is unusable: {exc}") from exc
    try:
        public_key = load_sm2_public_key(str(seal.get("public_key", "")).encode("ascii"))
    except (KeyUnavailable, UnicodeEncodeError) as exc:
        raise VerificationError("SM2 seal public key is not a valid SM2 public key") from exc

    if isinstance(expected_public_key, UnsafeTrustEmbeddedKey):
        trusted_by = "unsafe-embedded-key"
    else:
        try:
            expected = (
                expected_public_key
                if isinstance(expected_public_key, Sm2PublicKey)
                else load_sm2_public_key(expected_public_key)
            )
        except (KeyUnavailable, OSError) as exc:
            raise VerificationError("expected SM2 public key cannot be read") from exc
        if expected != public_key:
            raise VerificationError(
                "SM2 seal was made with a different key than the expected one "
                f"(seal key {public_key.fingerprint()[:16]}…, expected {expected.fingerprint()[:16]}…)"
            )
        trusted_by = "expected-key"

    try:
        sig_der = base64.b64decode(str(seal.get("signature", "")), validate=True)
        sig = asn1_algos.DSASignature.load(sig_der, strict=True)
        r, s = sig["r"].native, sig["s"].native
    except (ValueError, TypeError, binascii.Error) as exc:
        raise VerificationError("SM2 signature is not base64 DER SEQUENCE {r, s}") from exc
    if sig.dump() != sig_der:
        raise VerificationError("SM2 signature is not in canonical DER")
    if not (1 <= r < ORDER and 1 <= s < ORDER):
        raise VerificationError("SM2 signature values r, s are out of range")

    if native_ec is not None and str(dist_id) == DEFAULT_DISTINGUISHING_ID:
        ok = _native_verify(public_key, sig_der, data)
    else:
        e = e_value(data, public_key, id_bytes)
        engine = gm_sm2.CryptSM2(private_key=None, public_key="")
        engine.public_key = public_key.point_hex()
        try:
            ok = engine.verify(f"{r:064x}{s:064x}", e)
        except (ValueError, TypeError) as exc:
            raise VerificationError("SM2 signature could not be checked") from exc
    if not ok:
        raise VerificationError("SM2 signature does not match the data (data or signature altered)")
    return Sm2Report(
        algorithm=ALGORITHM,
        public_key_fingerprint=public_key.fingerprint(),
        distinguishing_id=str(dist_id),
        data_sm3=hashlib.new("sm3", data).hexdigest(),
        trusted_by=trusted_by,
    )


def _native_verify(public_key: Sm2PublicKey, sig_der: bytes, data: bytes) -> bool:
    """OpenSSL's SM2/SM3 check (Z_A of the default ID) of a canonical DER signature."""
    key = native_ec.EllipticCurvePublicNumbers(public_key.x, public_key.y, native_ec.SM2()).public_key()
    try:
        key.verify(sig_der, data, native_ec.ECDSA(native_hashes.SM3()))
    except NativeInvalidSignature:
        return False
    return True
