"""Errors raised by the signing package.

Every error raised here derives from :class:`SigningError`, so entry points can
catch one root and map it to a status or exit code. Vendor errors (pyHanko,
python-pkcs11, gmssl, OpenSSL via cryptography) are translated into these and
raised ``from`` the original, so the cause stays in the traceback.

The root, :class:`KeyUnavailable` and :class:`VerificationError` are defined once in
the offline verifier (:mod:`evidence_verify.errors`), which verifies seals on a court's
machine with the same code as here; the errors of sealing are defined below.
"""

from __future__ import annotations

from evidence_verify.errors import KeyUnavailable, SigningError, VerificationError

__all__ = ["REASONS", "KeyUnavailable", "PkiError", "SealFailed", "SigningError", "TimestampFailed",
           "VerificationError"]

REASONS: dict[str, str] = {
    "timestamp_request": "time-stamp request failed: {detail}",
    "timestamp_seal": "time-stamping the seal failed: {detail}",
    "timestamp_pdf": "time-stamping the PDF seal failed: {detail}",
    "sign_seal": "signing the seal failed: {detail}",
    "build_seal": "building the seal failed: {detail}",
    "seal_pdf": "sealing the PDF failed: {detail}",
    "not_pdf": "the source is not a PDF pyHanko can update: {detail}",
    "sm2_failed": "SM2 signing failed: {detail}",
}
"""The templates of the reasons sealing fails with most (``str.format``; ``detail`` is the
library's or the transport's own message), by code: the archive reads them back to say them in
its readers' language, so they are worded here once."""


class SealFailed(SigningError):
    """Producing a seal (CMS, PDF or SM2 signature) failed."""


class TimestampFailed(SigningError):
    """A time-stamp could not be obtained or was refused by the TSA."""


class PkiError(SigningError):
    """The development PKI could not be created or loaded."""
