"""Errors of resumable uploads, each with its tus status code."""

from __future__ import annotations

from ingest.errors import IngestError


class ChecksumMismatch(IngestError):
    """A PATCH body does not have the checksum its ``Upload-Checksum`` declared (tus: 460)."""

    code = "checksum_mismatch"
    status = 460


class UploadGone(IngestError):
    """The upload expired or failed; it can no longer be resumed (410)."""

    code = "upload_gone"
    status = 410


class UploadBusy(IngestError):
    """Another request of this process is writing the same upload (423)."""

    code = "upload_locked"
    status = 423
