"""Pure cryptography: e-seals, time-stamps, PAdES, SM2/SM3 and their verification.

This package imports nothing else of ours. Main entry points are re-exported
here; see each module for details.
"""

from __future__ import annotations

from evidence_verify.lazy import lazy_names

# Loaded when first asked for (PEP 562): a process that only reads seals' metadata (the API)
# does not pull in pyHanko and its certificate validation until it verifies or seals.
_WHERE = {
    "SealReport": "cades", "extract_timestamp_token": "cades", "seal_detached": "cades", "verify_detached": "cades",
    "DevPKI": "devpki", "create_dev_pki": "devpki", "ensure_dev_pki": "devpki", "load_dev_pki": "devpki",
    "rotate_seal_key": "devpki",
    "KeyUnavailable": "errors", "SealFailed": "errors", "SigningError": "errors", "TimestampFailed": "errors",
    "VerificationError": "errors",
    "sm3_hex": "hashing",
    "signer_from_files": "keys", "signer_from_pkcs11": "keys",
    "PdfSealReport": "pades", "seal_pdf": "pades", "verify_pdf": "pades",
    "Sm2Report": "sm2", "sm2_seal": "sm2", "verify_sm2": "sm2",
    "TimeStampAuthority": "tsa", "http_timestamper": "tsa", "local_timestamper": "tsa",
}

__all__ = sorted(_WHERE)


__getattr__ = lazy_names(__name__, _WHERE, globals())
