"""Errors raised by the ingest package.

Entry points catch only :class:`IngestError`; each subclass carries a human
explanation so a reviewer or officer can see why a file could not be understood.
Failing to understand a file never decides whether it is kept (design invariant 5).
"""

from __future__ import annotations


class IngestError(Exception):
    """Root of every error the ingest package raises."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ProbeFailed(IngestError):
    """A file could not be probed or parsed; ``message`` holds the tool's own words."""


class DeriveFailed(IngestError):
    """A derived object (thumbnail strip, proxy) could not be produced."""


class BundleInvalid(IngestError):
    """A capture bundle is malformed, unsafe or incomplete."""


__all__ = ["IngestError", "ProbeFailed", "DeriveFailed", "BundleInvalid"]
