"""What the verifier found: findings, the report, and the error raised when a check fails."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .errors import VerificationError

CHECKS = ("bag", "manifest", "tagmanifest", "export-manifest", "cades", "sm2", "item", "ledger", "pdf")
"""Every kind of check, in the order they are reported."""


@dataclass(frozen=True)
class Finding:
    """One check on one member of the export."""

    check: str
    """What was checked: bag, manifest, tagmanifest, export-manifest, cades, sm2, item, ledger, pdf."""
    member: str
    """Path inside the bag ('' for the bag as a whole)."""
    ok: bool
    detail: str


class Findings:
    """What every report has: its ``findings``, whether all held, the failures, and
    ``warnings`` (shown, never a failure)."""

    findings: tuple[Finding, ...]
    warnings: tuple[Finding, ...] = ()

    @property
    def ok(self) -> bool:
        """True when there was something to check and every check held."""
        return bool(self.findings) and all(f.ok for f in self.findings)

    @property
    def failures(self) -> tuple[Finding, ...]:
        """The findings that did not hold."""
        return tuple(f for f in self.findings if not f.ok)


@dataclass(frozen=True)
class ExportReport(Findings):
    """Everything the verifier found about one export."""

    source: str
    bag: str
    """Name of the bag's top directory."""
    files: int
    payload_bytes: int
    findings: tuple[Finding, ...]
    case_number: str | None = None
    export_id: str | None = None
    checkpoint_tree_size: int | None = None
    sealed_at: str | None = None
    """Time-stamp time of the export manifest's CAdES seal."""
    warnings: tuple[Finding, ...] = ()
    """What does not fail the export but is worth saying (a renamed bag directory)."""


class ExportInvalid(VerificationError):
    """The export does not verify; ``report`` holds every finding, ``failures`` the bad ones."""

    def __init__(self, report: ExportReport):
        self.report = report
        names = sorted({f.member or "(bag)" for f in report.failures})
        super().__init__(f"{len(report.failures)} check(s) failed on: {', '.join(names)}")


@dataclass
class SealCache:
    """Remembers seal verifications by the digests of data and seal (same trust, same run).

    Only for callers that verify many near-identical exports in one process (tests);
    a verification result is reused only for byte-identical data and seal.
    """

    results: dict[tuple[str, ...], Any] = field(default_factory=dict)


def summarise(report: ExportReport) -> Iterator[tuple[str, int, int]]:
    """(check, passed, failed) per kind of check, in a fixed order."""
    for check in CHECKS:
        passed = sum(1 for f in report.findings if f.check == check and f.ok)
        failed = sum(1 for f in report.findings if f.check == check and not f.ok)
        if passed or failed:
            yield check, passed, failed
