"""Errors raised by the signing package.

Every error raised here derives from :class:`SigningError`, so entry points can
catch one root and map it to a status or exit code. Vendor errors (pyHanko,
python-pkcs11, gmssl, OpenSSL via cryptography) are translated into these and
raised ``from`` the original, so the cause stays in the traceback.
"""

from __future__ import annotations


class SigningError(Exception):
    """Root of every error raised by :mod:`signing`.

    ``reason`` is a human sentence saying what went wrong; it is also the
    exception message.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class KeyUnavailable(SigningError):
    """A key or certificate could not be loaded (missing file, bad passphrase,
    no such object on the token, token not reachable)."""


class SealFailed(SigningError):
    """Producing a seal (CMS, PDF or SM2 signature) failed."""


class TimestampFailed(SigningError):
    """A time-stamp could not be obtained or was refused by the TSA."""


class VerificationError(SigningError):
    """A seal, time-stamp or signature did not verify.

    The reason names what failed (for example "data does not match the seal's
    message digest"), because a reviewer or a court has to act on it.
    """


class PkiError(SigningError):
    """The development PKI could not be created or loaded."""
