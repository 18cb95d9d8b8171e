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
the same in every language. The command line speaks the report's language too: ``--help``
and usage errors, argparse's own words included (:class:`_Parser`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import tzinfo
from functools import partial
from pathlib import Path
from typing import Any, NoReturn, TextIO

from rich.cells import cell_len as _columns  # terminal columns: two for a wide (Chinese) character
from rich.markup import escape

from .case_archive import CaseArchiveReport, check_case_archive, is_case_archive
from .check import check_export
from .errors import SigningError
from .i18n import LANGS, check_name, default_lang, detail, usage, word
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


_CLOSING = frozenset("，。、；：！？）」』”》")
"""Chinese punctuation a line may not begin with: it stays with the character before it."""
_OPENING = frozenset("（「『“《")
"""Chinese punctuation a line may not end with: it stays with the character after it."""


def _wrap(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width`` columns (a longer word alone on its line),
    broken at spaces and between Chinese characters; argparse's own wrapping counts
    characters and breaks only at spaces, which puts Chinese help twice the width of the
    terminal."""
    words: list[str] = []
    space = True
    for c in text:
        if c.isspace():
            space = True
            continue
        before = words[-1][-1] if words else ""
        if not words or space or ((_columns(c) == 2 or _columns(before) == 2)
                                  and c not in _CLOSING and before not in _OPENING):
            words.append(" " + c if space and words else c)
        else:
            words[-1] += c
        space = False
    lines: list[str] = []
    for w in words:
        if lines and _columns(lines[-1] + w) <= width:
            lines[-1] += w
        else:
            lines.append(w.lstrip())
    return lines


class _Formatter(argparse.HelpFormatter):
    """argparse's help with its usage line's prefix in the reader's language, wrapped by
    the columns a line takes (see :func:`_wrap`; ``_split_lines`` and ``_fill_text`` are the
    methods argparse's own Raw*HelpFormatter classes override)."""

    def __init__(self, prog: str, *, lang: str, **kwargs: Any) -> None:
        super().__init__(prog, **kwargs)
        self._reader_lang = lang

    def add_usage(self, usage, actions, groups, prefix=None) -> None:  # type: ignore[no-untyped-def]
        super().add_usage(usage, actions, groups, word(self._reader_lang, "cli.usage") if prefix is None else prefix)

    def _split_lines(self, text: str, width: int) -> list[str]:
        return _wrap(text, width)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "\n".join(indent + line for line in _wrap(text, width - len(indent)))


class _Parser(argparse.ArgumentParser):
    """argparse speaking the reader's language: section titles, ``-h`` and the usage prefix
    by key, and each usage error through :func:`.i18n.usage` (a message no pattern knows,
    a newer argparse's, stays in English). Exit code 2, as argparse's."""

    def __init__(self, *, lang: str, **kwargs: Any) -> None:
        super().__init__(formatter_class=partial(_Formatter, lang=lang), add_help=False, **kwargs)
        self._reader_lang = lang

    def error(self, message: str) -> NoReturn:
        """Print the usage and ``message`` in the reader's language on standard error; exit 2."""
        self.print_usage(sys.stderr)
        lang = self._reader_lang
        self.exit(2, word(lang, "cli.error", prog=self.prog, message=usage(lang, message)) + "\n")


def _parser(lang: str) -> argparse.ArgumentParser:
    """The command line, its help and errors in ``lang``."""
    def say(key: str) -> str:
        return word(lang, f"cli.{key}")

    parser = _Parser(lang=lang, prog="evidence-verify", description=say("description"))
    # Groups of our own rather than argparse's, whose titles are English (theirs stay empty
    # and are not shown).
    positionals, options = parser.add_argument_group(say("positionals")), parser.add_argument_group(say("options"))
    positionals.add_argument("export", type=Path, help=say("export"))
    options.add_argument("-h", "--help", action="help", help=say("help"))
    options.add_argument("--trust", type=Path, action="append", required=True, help=say("trust"))
    options.add_argument("--tsa-trust", type=Path, action="append", default=[], help=say("tsa-trust"))
    options.add_argument("--sm2-key", type=Path, action="append", default=[], help=say("sm2-key"))
    options.add_argument("--all", dest="show_all", action="store_true", help=say("all"))
    options.add_argument("--lang", choices=LANGS, help=say("lang"))
    options.add_argument("--tz", metavar="ZONE", help=say("tz"))
    return parser


def _lang_asked(argv: Sequence[str]) -> str | None:
    """The language ``--lang`` asks for anywhere on the line (``--lang en``, ``--lang=en``, or
    argparse's abbreviations ``--la en``...; the last wins, as in argparse), read before
    parsing so that ``--help`` and usage errors speak it even when they come first or the
    rest of the line is wrong; None when it asks for none (or for no known language)."""
    asked = None
    for i, arg in enumerate(argv):
        if arg == "--":  # what follows is positional
            break
        name, equals, value = arg.partition("=")
        # "--l" is an abbreviation of --lang alone: no other option starts so.
        if len(name) >= 3 and "--lang".startswith(name):
            value = value if equals else (argv[i + 1] if i + 1 < len(argv) else "")
            asked = value if value in LANGS else asked
    return asked


def main(argv: Sequence[str] | None = None) -> int:
    """The ``evidence-verify`` command; returns its exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = _parser(_lang_asked(argv) or default_lang(os.environ))
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
