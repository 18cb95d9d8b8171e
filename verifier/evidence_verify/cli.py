"""``evidence-verify``: check a certified export on a machine with nothing else installed.

Exit codes: 0 every check held; 1 a check failed (each failing member is named on
standard error); 2 bad usage, or the export or a trust file cannot be read at all.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from .check import check_export
from .errors import SigningError
from .report import ExportReport, summarise


def _table(rows: list[tuple[str, ...]], out: TextIO) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip(), file=out)
        if n == 0:
            print("  ".join("-" * width for width in widths), file=out)


def render(report: ExportReport, *, show_all: bool, out: TextIO, err: TextIO) -> int:
    """Print what ``report`` found (failures on ``err``); return the exit code, 0 or 1."""
    print(f"Export {report.export_id or '?'} of case {report.case_number or '?'} ({report.bag}): "
          f"{report.files} files, {report.payload_bytes:,} payload bytes, ledger checkpoint "
          f"{report.checkpoint_tree_size}, sealed {report.sealed_at or '?'}", file=out)
    print("\nChecks", file=out)
    _table([("check", "passed", "failed"), *((c, str(p), str(f)) for c, p, f in summarise(report))], out)
    rows = report.findings if show_all else report.failures
    if rows:
        print("\nEvery check" if show_all else "\nFailures", file=out)
        _table([("result", "check", "member", "detail"),
                *(("ok" if f.ok else "FAIL", f.check, f.member or "(bag)", f.detail) for f in rows)], out)
    if not report.ok:
        for f in report.failures:
            print(f"FAILED {f.check}: {f.member or '(bag)'}: {f.detail}", file=err)
        return 1
    print("EXPORT VERIFIED: every file, seal, time-stamp and ledger proof holds.", file=out)
    return 0


def verify_and_render(
    export: Path, *, trust: Sequence[Path], tsa_trust: Sequence[Path] = (), sm2_keys: Sequence[Path] = (),
    show_all: bool = False, out: TextIO | None = None, err: TextIO | None = None,
) -> int:
    """Check ``export`` and print the result; return 0 or 1.

    Raises :class:`~.errors.SigningError` or :class:`OSError` when the export or a trust
    file cannot be read at all (the caller chooses how to say so).
    """
    report = check_export(export, trust=trust, tsa_trust=tsa_trust or None, sm2_keys=sm2_keys or None)
    return render(report, show_all=show_all, out=out or sys.stdout, err=err or sys.stderr)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evidence-verify",
        description="Verify a certified export (its ZIP, the unpacked directory, or '.' inside it) offline; "
                    "exit 1 naming each failing member. Needs no server, no account and no settings: only "
                    "the export and the roots you trust.",
    )
    parser.add_argument("export", type=Path, help="the export's ZIP file or its unpacked directory")
    parser.add_argument("--trust", type=Path, action="append", required=True,
                        help="PEM file of the root certificate(s) you trust (repeatable)")
    parser.add_argument("--tsa-trust", type=Path, action="append", default=[],
                        help="roots for the time-stamping authority, if not the same as --trust")
    parser.add_argument("--sm2-key", type=Path, action="append", default=[],
                        help="pin the SM2 public key(s) instead of those the sealed export manifest vouches for")
    parser.add_argument("--all", dest="show_all", action="store_true",
                        help="list every check, not only the failures")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The ``evidence-verify`` command; returns its exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.export.exists():
        parser.error(f"{args.export} does not exist")
    try:
        return verify_and_render(args.export, trust=args.trust, tsa_trust=args.tsa_trust, sm2_keys=args.sm2_key,
                                 show_all=args.show_all)
    except (SigningError, OSError) as exc:
        print(f"evidence-verify: cannot verify {args.export}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
