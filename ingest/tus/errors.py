"""Errors of resumable uploads, each with its tus status code."""

from __future__ import annotations

from archive.errors import ArchiveError


class ChecksumMismatch(ArchiveError):
    """A PATCH body does not have the checksum its ``Upload-Checksum`` declared (tus: 460)."""

    code = "checksum_mismatch"
    status = 460


class UploadGone(ArchiveError):
    """The upload expired or failed; it can no longer be resumed (410)."""

    code = "upload_gone"
    status = 410


class UploadBusy(ArchiveError):
    """Another request of this process is writing the same upload (423)."""

    code = "upload_locked"
    status = 423
