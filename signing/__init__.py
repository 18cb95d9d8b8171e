"""Pure cryptography: e-seals, time-stamps, PAdES, SM2/SM3 and their verification.

This package imports nothing else of ours. Main entry points are re-exported
here; see each module for details.
"""

from .cades import SealReport, extract_timestamp_token, seal_detached, verify_detached
from .devpki import DevPKI, create_dev_pki, ensure_dev_pki, load_dev_pki, rotate_seal_key
from .errors import KeyUnavailable, SealFailed, SigningError, TimestampFailed, VerificationError
from .hashing import sm3_hex
from .keys import signer_from_files, signer_from_pkcs11
from .pades import PdfSealReport, seal_pdf, verify_pdf
from .sm2 import Sm2Report, sm2_seal, verify_sm2
from .tsa import TimeStampAuthority, http_timestamper, local_timestamper

__all__ = [
    "DevPKI", "KeyUnavailable", "PdfSealReport", "SealFailed", "SealReport",
    "SigningError", "Sm2Report", "TimeStampAuthority", "TimestampFailed", "VerificationError",
    "create_dev_pki", "ensure_dev_pki", "extract_timestamp_token", "http_timestamper",
    "load_dev_pki", "local_timestamper", "rotate_seal_key", "seal_detached", "seal_pdf",
    "signer_from_files", "signer_from_pkcs11", "sm2_seal", "sm3_hex", "verify_detached",
    "verify_pdf", "verify_sm2",
]
