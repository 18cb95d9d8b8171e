"""The state of one verification run, shared by the checks (bag, seals, records)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .report import Finding, SealCache
from .sm2 import Sm2PublicKey
from .source import Source


@dataclass
class Run:
    """What one run was given, what it has read so far, and what it found."""

    source: Source
    roots: list[Any]
    """Certificates trusted for e-seals (and time-stamps unless ``tsa_roots``)."""
    tsa_roots: list[Any] | None
    sm2_pinned: list[Sm2PublicKey] | None
    """SM2 keys given by the user; None to use those the sealed export manifest vouches for."""
    cache: SealCache | None
    findings: list[Finding] = field(default_factory=list)
    digests: dict[str, dict[str, str]] = field(default_factory=dict)
    """sha256, sha512 and size of every member read."""
    tags: dict[str, bytes] = field(default_factory=dict)
    """The bytes of every tag file (everything outside data/)."""
    unreadable: set[str] = field(default_factory=set)
    warnings: list[Finding] = field(default_factory=list)
    """What is worth saying but proves nothing wrong (see :meth:`warn`)."""

    def add(self, check: str, member: str, ok: bool, detail: str) -> None:
        """Record one finding."""
        self.findings.append(Finding(check, member, ok, detail))

    def fail(self, check: str, member: str, detail: str) -> None:
        """Record a failed check on ``member``."""
        self.add(check, member, False, detail)

    def warn(self, check: str, member: str, detail: str) -> None:
        """Record something shown to the reader that does not fail the export (its content
        still holds), such as a bag directory renamed since it was sealed."""
        self.warnings.append(Finding(check, member, True, detail))
