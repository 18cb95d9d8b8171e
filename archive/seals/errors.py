"""Errors of the seals domain: a seal could not be made, or not yet."""

from __future__ import annotations

from archive.errors import ArchiveError


class SealingFailed(ArchiveError):
    """A seal could not be made (key unavailable, token error, unreadable PDF...)."""

    code = "seal_failed"
    status = 503


class TimestampUnavailable(SealingFailed):
    """The time-stamping authority refused or could not be reached."""

    code = "timestamp_unavailable"
    transient = True


class SealNotReady(ArchiveError):
    """The item cannot be sealed yet (its SM3 hash is not known, or it changed meanwhile)."""

    code = "seal_not_ready"
    status = 409
    transient = True
