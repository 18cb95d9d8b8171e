"""Errors of certified exports."""

from __future__ import annotations

from archive.errors import ArchiveError


class ExportFailed(ArchiveError):
    """An export could not be built; the message says what is missing or wrong."""

    code = "export_failed"
    status = 409


class ExportWaiting(ArchiveError):
    """Items of an approved export are still being processed or sealed: it waits for them."""

    code = "export_waiting"
    status = 409

    def __init__(self, message: str, *, items: list[dict[str, str]]):
        super().__init__(message)
        self.items = items
