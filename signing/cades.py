"""Making detached CAdES-B-T seals over arbitrary bytes (manifests).

The seal's structure, and how a court checks it with OpenSSL, are described with its
verification in the offline verifier (:mod:`evidence_verify.cades`), the same code a
court runs; its names are re-exported here.
"""

from __future__ import annotations

import asyncio

from evidence_verify.cades import (
    SealReport,
    async_verify_detached,
    extract_timestamp_token,
    signature_value,
    verify_detached,
)
from pyhanko.sign.general import SigningError as PyHankoSigningError
from pyhanko.sign.signers import Signer
from pyhanko.sign.timestamps import TimeStamper

from .errors import REASONS, SealFailed, TimestampFailed

__all__ = [
    "SealReport",
    "async_seal_detached",
    "async_verify_detached",
    "extract_timestamp_token",
    "seal_detached",
    "signature_value",
    "verify_detached",
]


async def async_seal_detached(
    *,
    data: bytes,
    signer: Signer,
    timestamper: TimeStamper | None,
    digest_algorithm: str = "sha256",
) -> bytes:
    """Async form of :func:`seal_detached`, for callers already inside an event loop."""
    from pkcs11 import PKCS11Error  # a token's failures; imported to seal, not to verify

    try:
        content = await signer.async_sign_general_data(
            data,
            digest_algorithm,
            detached=True,
            use_cades=True,
            timestamper=timestamper,
        )
    except (PKCS11Error, PyHankoSigningError) as exc:
        raise SealFailed(REASONS["sign_seal"].format(detail=f"{type(exc).__name__} {exc}")) from exc
    except OSError as exc:
        # pyHanko reports TSA refusals and transport failures as IOError.
        raise TimestampFailed(REASONS["timestamp_seal"].format(detail=exc)) from exc
    except ValueError as exc:
        raise SealFailed(REASONS["build_seal"].format(detail=exc)) from exc
    return content.dump()


def seal_detached(
    *,
    data: bytes,
    signer: Signer,
    timestamper: TimeStamper | None,
    digest_algorithm: str = "sha256",
) -> bytes:
    """Seal ``data`` and return a DER detached CAdES CMS signature.

    With a ``timestamper`` the seal is CAdES-B-T (a signature time-stamp token
    over the signature value). ``timestamper=None`` gives CAdES-B-B, which
    :func:`verify_detached` refuses; it exists for benchmarks and for callers
    that time-stamp later. Raises :class:`SealFailed` or :class:`TimestampFailed`.
    """
    return asyncio.run(
        async_seal_detached(data=data, signer=signer, timestamper=timestamper, digest_algorithm=digest_algorithm)
    )
