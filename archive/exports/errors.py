"""Errors of certified exports."""

from __future__ import annotations

from typing import Any

from archive.errors import ArchiveError


class ExportFailed(ArchiveError):
    """An export could not be built; the message says what is missing or wrong."""

    code = "export_failed"
    status = 409

    def __init__(self, message: str, *, code: str | None = None, no_system_fault: bool = False):
        super().__init__(message, code=code)
        self.no_system_fault = no_system_fault


class ExportWaiting(ArchiveError):
    """Items of an approved export are still being sealed, or the case's continuity report
    is pending (processing or its analysis unfinished): it waits for them."""

    code = "export_waiting"
    status = 409

    def __init__(self, message: str, *, items: list[dict[str, str]], continuity: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.items = items
        self.continuity = continuity or []
        """What keeps the continuity report pending (the report's ``outstanding`` entries)."""
