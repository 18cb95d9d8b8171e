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

__all__ = ["KeyUnavailable", "PkiError", "SealFailed", "SigningError", "TimestampFailed", "VerificationError"]


class SealFailed(SigningError):
    """Producing a seal (CMS, PDF or SM2 signature) failed."""


class TimestampFailed(SigningError):
    """A time-stamp could not be obtained or was refused by the TSA."""


class PkiError(SigningError):
    """The development PKI could not be created or loaded."""
