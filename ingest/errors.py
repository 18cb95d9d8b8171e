"""Errors raised by the ingest package.

:class:`IngestError` is the package's one root; it is an :class:`~archive.errors.ArchiveError`,
so the API and the CLI answer it like every other error (a code, a status, a human message).
Each subclass carries a human explanation so a reviewer or officer can see why a file could
not be understood. Failing to understand a file never decides whether it is kept (design
invariant 5).
"""

from __future__ import annotations

from archive.errors import ArchiveError


class IngestError(ArchiveError):
    """Root of every error the ingest package raises."""

    code = "ingest_failed"
    status = 422


class ProbeFailed(IngestError):
    """A file could not be probed or parsed; ``message`` holds the tool's own words."""


class NoPackets(ProbeFailed):
    """ffprobe reads a file's audio or video streams but not one packet with a timestamp in them
    (a camera's file whose index was cut inside): it holds no recording."""


class DeriveFailed(IngestError):
    """A derived object (thumbnail strip, proxy) could not be produced."""


class BundleInvalid(IngestError):
    """A capture bundle is malformed, unsafe or incomplete."""


class StepFailed(IngestError):
    """A processing step could not do its work; the item itself is kept unchanged."""

    code = "processing_failed"
    status = 422


__all__ = ["IngestError", "ProbeFailed", "NoPackets", "DeriveFailed", "BundleInvalid", "StepFailed"]
