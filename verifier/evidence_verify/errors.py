"""Errors of the verifier, shared with the server's signing package.

:class:`SigningError` is the root of every error about seals, keys and certificates; the
server's :mod:`signing` package raises these same classes (and adds its own for sealing),
so a caller catches one root whichever side raised. :class:`VerificationError` names what
failed, because a reviewer or a court has to act on it.
"""

from __future__ import annotations


class SigningError(Exception):
    """Root of every error about seals, keys and certificates.

    ``reason`` is a human sentence saying what went wrong; it is also the
    exception message.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class KeyUnavailable(SigningError):
    """A key or certificate could not be loaded (missing file, bad passphrase,
    no such object on the token, token not reachable)."""


class VerificationError(SigningError):
    """A seal, time-stamp or signature did not verify.

    The reason names what failed (for example "data does not match the seal's
    message digest"), because a reviewer or a court has to act on it.
    """


class ExportUnreadable(SigningError):
    """The export cannot be read at all: not a ZIP file nor a directory, or no trust given."""
