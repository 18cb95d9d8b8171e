"""``evidence-verify``: check a certified export, or a sealed case archive record, on a
machine with nothing else installed.

A directory or ZIP holding ``record.json`` (and no ``bagit.txt``), or a ``.json`` file, is
checked as a case archive record (:mod:`.case_archive`); anything else as an export.

Exit codes: 0 every check held; 1 a check failed (each failing member is named on
standard error); 2 bad usage, or the export or a trust file cannot be read at all.
Warnings (a bag directory renamed since it was sealed) are ``WARNING`` lines on standard
error and leave the exit code as it is.

The report is in Chinese or English (``--lang``) with times in a time zone (``--tz``); see
:class:`Reading`. The checks themselves, their codes and :class:`~.report.ExportReport` are
the same in every language.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import tzinfo
from pathlib import Path
from typing import TextIO

from rich.markup import escape

from .case_archive import CaseArchiveReport, check_case_archive, is_case_archive
from .check import check_export
from .errors import SigningError
from .i18n import LANGS, check_name, default_lang, detail, word
from .localtime import default_zone, local_time, localise_times, zone
from .report import ExportReport, Finding, Findings, summarise


def _console(out: TextIO):  # type: ignore[no-untyped-def]
    from rich.console import Console

    return Console(file=out, highlight=False, soft_wrap=True)


@dataclass(frozen=True)
class Reading:
    """How the report reads: its language and the time zone its moments are shown in."""

    lang: str
    """``zh`` or ``en``."""
    place: tzinfo

    @classmethod
    def of(cls, lang: str | None = None, tz: str | None = None,
           environ: Mapping[str, str] | None = None) -> Reading:
        """``lang`` and ``tz`` (an IANA name) as given, else as the environment says (see
        :func:`.i18n.default_lang`, :func:`.localtime.default_zone`); :class:`ValueError`
        for a language or zone that is neither."""
        environ = os.environ if environ is None else environ
        if lang is not None and lang not in LANGS:
            raise ValueError(f"unknown language {lang!r} (expected one of {', '.join(LANGS)})")
        return cls(lang or default_lang(environ), zone(tz) if tz else default_zone(environ))

    def word(self, key: str, /, **values: object) -> str:
        """A heading or a word of the report."""
        return word(self.lang, key, **values)

    def detail(self, text: str) -> str:
        """A finding's detail (or any reason) in this language, its moments in this zone."""
        return localise_times(detail(self.lang, text), self.place)

    def time(self, moment: str | None) -> str:
        """A moment (ISO 8601) in this zone; ``?`` when unknown."""
        return local_time(moment, self.place) if moment else self.word("unknown")

    def line(self, key: str, f: Finding) -> str:
        """``FAILED <check>: <member>: <why>`` (``key`` is ``line.failed`` or ``line.warning``)."""
        return (f"{self.word(key)} {check_name(self.lang, f.check)}: {f.member or self.word('whole.bag')}: "
                f"{self.detail(f.detail)}")


def _findings(report: Findings, *, show_all: bool, out: TextIO, err: TextIO, verified: str,
              reading: Reading) -> int:
    """Print the failures (or every finding) as a table, and the verdict; return the exit code, 0 or 1."""
    from rich.table import Table

    r = reading
    console = _console(out)
    rows = report.findings if show_all else report.failures
    if rows:
        detail_table = Table(title=r.word("table.every" if show_all else "table.failures"))
        for column in ("result", "check", "member", "detail"):
            detail_table.add_column(r.word(f"column.{column}"), overflow="fold")
        for f in rows:
            detail_table.add_row(f"[green]{r.word('outcome.ok')}[/]" if f.ok else f"[red]{r.word('outcome.fail')}[/]",
                                 check_name(r.lang, f.check), escape(f.member or r.word("whole.bag")),
                                 escape(r.detail(f.detail)))
        console.print(detail_table)
    for f in report.warnings:
        print(r.line("line.warning", f), file=err)
    if not report.ok:
        for f in report.failures:
            print(r.line("line.failed", f), file=err)
        return 1
    head, colon, rest = r.word(verified).partition("：" if r.lang == "zh" else ":")
    console.print(f"[green]{head}[/]{colon}{escape(rest)}")
    return 0


def render(report: ExportReport, *, show_all: bool, out: TextIO, err: TextIO, reading: Reading | None = None) -> int:
    """Print what ``report`` found (failures also on ``err``); return the exit code, 0 or 1."""
    from rich.table import Table

    r = reading or Reading.of()
    console = _console(out)
    unknown = r.word("unknown")
    console.print(r.word("export.head", export=escape(report.export_id or unknown),
                         case=escape(report.case_number or unknown), bag=escape(report.bag), files=report.files,
                         payload=f"{report.payload_bytes:,}", tree=report.checkpoint_tree_size,
                         sealed=r.time(report.sealed_at)))
    table = Table(title=r.word("table.checks"))
    for column in ("check", "passed", "failed"):
        table.add_column(r.word(f"column.{column}"))
    for check, passed, failed in summarise(report):
        table.add_row(check_name(r.lang, check), str(passed), f"[red]{failed}[/]" if failed else "0")
    console.print(table)
    return _findings(report, show_all=show_all, out=out, err=err, verified="export.verified", reading=r)


def render_case_archive(report: CaseArchiveReport, *, show_all: bool, out: TextIO, err: TextIO,
                        reading: Reading | None = None) -> int:
    """Print what a case archive record check found (failures also on ``err``); return 0 or 1."""
    r = reading or Reading.of()
    unknown = r.word("unknown")
    _console(out).print(r.word("record.head", archive=escape(report.archive_id or unknown),
                               case=escape(report.case_number or unknown), source=escape(str(report.source)),
                               tree=report.checkpoint_tree_size, sealed=r.time(report.sealed_at)))
    return _findings(report, show_all=show_all, out=out, err=err, verified="record.verified", reading=r)


def verify_and_render(
    export: Path, *, trust: Sequence[Path], tsa_trust: Sequence[Path] = (), sm2_keys: Sequence[Path] = (),
    show_all: bool = False, out: TextIO | None = None, err: TextIO | None = None, reading: Reading | None = None,
) -> int:
    """Check ``export`` and print the result (in ``reading``'s language and zone, by default
    as the environment says); return 0 or 1.

    Raises :class:`~.errors.SigningError` or :class:`OSError` when the export or a trust
    file cannot be read at all (the caller chooses how to say so).
    """
    reading = reading or Reading.of()
    if is_case_archive(export):
        record = check_case_archive(export, trust=trust, tsa_trust=tsa_trust or None, sm2_keys=sm2_keys or None)
        return render_case_archive(record, show_all=show_all, out=out or sys.stdout, err=err or sys.stderr,
                                   reading=reading)
    report = check_export(export, trust=trust, tsa_trust=tsa_trust or None, sm2_keys=sm2_keys or None)
    return render(report, show_all=show_all, out=out or sys.stdout, err=err or sys.stderr, reading=reading)


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
    parser.add_argument("--lang", choices=LANGS,
                        help="language of the report: zh (Chinese) or en (English); default from LC_ALL/LANG "
                             "when it says zh or en, else zh")
    parser.add_argument("--tz", metavar="ZONE",
                        help="IANA time zone the report's times are shown in (e.g. Asia/Shanghai, UTC); "
                             "default the zone of TZ when set, else Asia/Shanghai")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The ``evidence-verify`` command; returns its exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.export.exists():
        parser.error(f"{args.export} does not exist")
    try:
        reading = Reading.of(args.lang, args.tz)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        return verify_and_render(args.export, trust=args.trust, tsa_trust=args.tsa_trust, sm2_keys=args.sm2_key,
                                 show_all=args.show_all, reading=reading)
    except (SigningError, OSError) as exc:
        print(reading.word("cannot.verify", path=args.export, why=reading.detail(str(exc))), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
