"""``evidence-verify``: check a certified export, or a sealed case archive record, on a
machine with nothing else installed.

A directory or ZIP holding ``record.json`` (and no ``bagit.txt``), or a ``.json`` file, is
checked as a case archive record (:mod:`.case_archive`); anything else as an export.

Exit codes: 0 every check held; 1 a check failed (each failing member is named on
standard error); 2 bad usage, or the export or a trust file cannot be read at all.
Warnings (a bag directory renamed since it was sealed) are ``WARNING`` lines on standard
error and leave the exit code as it is.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from rich.markup import escape

from .case_archive import CaseArchiveReport, check_case_archive, is_case_archive
from .check import check_export
from .errors import SigningError
from .report import ExportReport, Findings, summarise


def _console(out: TextIO):  # type: ignore[no-untyped-def]
    from rich.console import Console

    return Console(file=out, highlight=False, soft_wrap=True)


def _findings(report: Findings, *, show_all: bool, out: TextIO, err: TextIO, verified: str) -> int:
    """Print the failures (or every finding) as a table, and the verdict; return the exit code, 0 or 1."""
    from rich.table import Table

    console = _console(out)
    rows = report.findings if show_all else report.failures
    if rows:
        detail = Table(title="Every check" if show_all else "Failures")
        for column in ("result", "check", "member", "detail"):
            detail.add_column(column, overflow="fold")
        for f in rows:
            detail.add_row("[green]ok[/]" if f.ok else "[red]FAIL[/]", f.check, escape(f.member or "(bag)"),
                           escape(f.detail))
        console.print(detail)
    for f in report.warnings:
        print(f"WARNING {f.check}: {f.member or '(bag)'}: {f.detail}", file=err)
    if not report.ok:
        for f in report.failures:
            print(f"FAILED {f.check}: {f.member or '(bag)'}: {f.detail}", file=err)
        return 1
    head, _, rest = verified.partition(":")
    console.print(f"[green]{head}[/]:{escape(rest)}")
    return 0


def render(report: ExportReport, *, show_all: bool, out: TextIO, err: TextIO) -> int:
    """Print what ``report`` found (failures also on ``err``); return the exit code, 0 or 1."""
    from rich.table import Table

    console = _console(out)
    console.print(f"Export [bold]{escape(report.export_id or '?')}[/] of case "
                  f"[bold]{escape(report.case_number or '?')}[/] ({escape(report.bag)}): {report.files} files, "
                  f"{report.payload_bytes:,} payload bytes, ledger checkpoint {report.checkpoint_tree_size}, "
                  f"sealed {report.sealed_at or '?'}")
    table = Table(title="Checks")
    for column in ("check", "passed", "failed"):
        table.add_column(column)
    for check, passed, failed in summarise(report):
        table.add_row(check, str(passed), f"[red]{failed}[/]" if failed else "0")
    console.print(table)
    return _findings(report, show_all=show_all, out=out, err=err,
                     verified="EXPORT VERIFIED: every file, seal, time-stamp and ledger proof holds.")


def render_case_archive(report: CaseArchiveReport, *, show_all: bool, out: TextIO, err: TextIO) -> int:
    """Print what a case archive record check found (failures also on ``err``); return 0 or 1."""
    _console(out).print(
        f"Case archive record [bold]{escape(report.archive_id or '?')}[/] of case "
        f"[bold]{escape(report.case_number or '?')}[/] ({escape(str(report.source))}): "
        f"ledger checkpoint {report.checkpoint_tree_size}, sealed {report.sealed_at or '?'}")
    return _findings(report, show_all=show_all, out=out, err=err,
                     verified="CASE ARCHIVE RECORD VERIFIED: its seals, every review's seals and every ledger "
                              "proof hold.")


def verify_and_render(
    export: Path, *, trust: Sequence[Path], tsa_trust: Sequence[Path] = (), sm2_keys: Sequence[Path] = (),
    show_all: bool = False, out: TextIO | None = None, err: TextIO | None = None,
) -> int:
    """Check ``export`` and print the result; return 0 or 1.

    Raises :class:`~.errors.SigningError` or :class:`OSError` when the export or a trust
    file cannot be read at all (the caller chooses how to say so).
    """
    if is_case_archive(export):
        record = check_case_archive(export, trust=trust, tsa_trust=tsa_trust or None, sm2_keys=sm2_keys or None)
        return render_case_archive(record, show_all=show_all, out=out or sys.stdout, err=err or sys.stderr)
    report = check_export(export, trust=trust, tsa_trust=tsa_trust or None, sm2_keys=sm2_keys or None)
    return render(report, show_all=show_all, out=out or sys.stdout, err=err or sys.stderr)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evidence-verify",
        description="Verify a certified export (its ZIP, the unpacked directory, or '.' inside it), or a case "
                    "archive record (a directory or ZIP with record.json and its seals), offline; "
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
