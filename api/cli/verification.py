"""The custody ledger, its checkpoints, and verifying items, cases and exports."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import NoReturn

import click

from api.cli.root import cli_actor, cli_settings, main
from archive.errors import ArchiveError, VerificationFailed
from archive.i18n import translate
from archive.i18n.messages import MESSAGES
from archive.timefmt import local_time, shown
from evidence_verify.i18n import LANGS, default_lang


SYSTEM_CLI = "system-cli"
"""The identity ``verify-case`` records its verification under, without ``--as``."""
UNCHECKED = 4
"""Exit status of ``verify-item`` and ``verify-case`` when a server they need (the object
store, the TSA) did not answer: nothing was checked to the end, so nothing was found."""


def _unchecked(error: ArchiveError, *, subject: str, receipt: str | None = None) -> NoReturn:
    """Say (in the locale's language, Chinese unless it says English) that ``subject`` could
    not be verified because of ``error``, a server not answering, which is no finding; exit
    :data:`UNCHECKED`. ``receipt``: the verification receipt recorded incomplete."""
    lang = default_lang(os.environ)
    key = f"pending_reason.{error.code}"
    click.echo(translate(
        lang, "cli.unchecked", subject=subject, reason=translate(lang, key) if key in MESSAGES else error.code,
        detail=error.message, receipt=translate(lang, "cli.unchecked_receipt", receipt=receipt) if receipt else "",
    ), err=True)
    sys.exit(UNCHECKED)


@main.group()
def ledger() -> None:
    """The custody ledger."""


@ledger.command("verify")
def ledger_verify() -> None:
    """Recompute the ledger's chain and Merkle tree, then check every sealed checkpoint
    (CAdES and SM2 seals, sealed root vs the ledger, consistency between checkpoints) and
    its copies in every vault it was written to; exit 1 naming the first failure, or every
    missing or altered copy."""
    from archive.cases.vault_copies import CopiesAltered, verify_ledger_copies
    from archive.custody import ledger as archive_ledger
    from archive.custody.checkpoints import checkpoint_sizes, verify_checkpoints
    from archive.seals.sealer import Sealer
    from archive.db import Database
    from archive.storage import open_store

    settings = cli_settings()
    database = Database(settings)
    try:
        with database.snapshot() as session:
            # One pass over the entries yields the roots every checkpoint is compared with.
            report = archive_ledger.verify(session, at_sizes=checkpoint_sizes(session))
            click.echo(f"ledger OK: {report.size} entries, root {report.root_hash}")
            if waiting := archive_ledger.waiting(session):
                click.echo(f"{waiting} committed entries wait to be sequenced (the next append or checkpoint does it)")
            checkpoints = verify_checkpoints(session, Sealer(settings), ledger_report=report)
            copies = verify_ledger_copies(session, open_store(settings))
    except CopiesAltered as exc:
        for fault in exc.faults:
            click.echo(f"FAILED checkpoint copy {fault.describe()}", err=True)
        sys.exit(1)
    except VerificationFailed as exc:
        click.echo(f"FAILED: {exc.message}", err=True)
        sys.exit(1)
    except ArchiveError as exc:
        raise click.ClickException(exc.message) from exc
    if checkpoints.count:
        click.echo(
            f"checkpoints OK: {checkpoints.count} sealed and consistent; latest tree size "
            f"{checkpoints.latest_tree_size}, root {checkpoints.latest_root_hash}, "
            f"time-stamped {local_time(checkpoints.latest_timestamp_time, settings.time_zone)}"
        )
        click.echo(f"vault copies OK: {copies.records} copies of checkpoints ({copies.objects} objects) "
                   "equal their rows")
    else:
        click.echo("checkpoints: none sealed yet")


@ledger.command("checkpoint")
def ledger_checkpoint() -> None:
    """Seal a checkpoint of the ledger now (if it grew since the last one)."""
    from archive.custody.checkpoints import seal_checkpoint
    from archive.seals.sealer import Sealer
    from archive.db import Database
    from archive.storage import open_store

    settings = cli_settings()
    try:
        cp = seal_checkpoint(Database(settings), Sealer(settings), store=open_store(settings))
        message = (f"checkpoint {cp.id} sealed: tree size {cp.tree_size}, root {cp.root_hash}"
                   if cp else "ledger unchanged since the last checkpoint (or another run sealed it); nothing sealed")
    except ArchiveError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(message)


@main.command("verify-item")
@click.argument("item_id")
@click.option("--require-sealed", is_flag=True, help="Fail when the item is not sealed or not yet in a checkpoint.")
def verify_item(item_id: str, require_sealed: bool) -> None:
    """Verify an item: re-hash the original, then its manifest, CAdES and SM2 seals, PAdES copy,
    and its custody entry's inclusion in the latest sealed checkpoint; exit 1 naming what failed."""
    from archive.seals.sealer import Sealer
    from archive.db import Database
    from archive.storage import open_store
    from archive.cases.verification import verify_item as verify

    settings = cli_settings()
    try:
        report = verify(db=Database(settings), store=open_store(settings), sealer=Sealer(settings),
                        item_id=item_id, actor=cli_actor(), require_sealed=require_sealed)
    except VerificationFailed as exc:
        click.echo(f"FAILED: {exc.message}", err=True)
        sys.exit(1)
    except ArchiveError as exc:
        if exc.transient:
            _unchecked(exc, subject=translate(default_lang(os.environ), "cli.subject_item", item=item_id))
        raise click.ClickException(exc.message) from exc
    f = report.fixity
    click.echo(f"item {report.item_id} OK: {f.size} bytes, sha256 {f.sha256}" + (f", sm3 {f.sm3}" if f.sm3 else ""))
    if report.cades is not None and report.sm2 is not None:
        c = report.cades
        click.echo(f"manifest sha256 {report.manifest_sha256}")
        zone = settings.time_zone
        click.echo(f"CAdES-B-T seal OK: {c.signer_subject}; signing time {shown(c.signing_time, zone)}; "
                   f"time-stamp {shown(c.timestamp_time, zone)} by {c.tsa_subject}")
        click.echo(f"SM2 seal OK: key {report.sm2.public_key_fingerprint[:16]}…, id {report.sm2.distinguishing_id}")
    if report.pades is not None:
        click.echo(f"PAdES copy OK: time-stamp {report.pades.timestamp_time}, coverage {report.pades.coverage}")
    if report.checkpoint_id is not None:
        click.echo(f"custody entry {report.received_seq} included in sealed checkpoint {report.checkpoint_id} "
                   f"(tree size {report.checkpoint_tree_size}, time-stamped {report.checkpoint_time})")
    for what in report.pending:
        click.echo(f"PENDING (not yet made, not a failure): {what}")


@main.command("verify-case")
@click.argument("case")
@click.option("--as", "as_user", default=None, help="Reviewer or admin to record as requester (default: a system user).")
@click.option("--unit", default=None, help="The unit whose case number CASE is (needed when several units use it).")
def verify_case(case: str, as_user: str | None, unit: str | None) -> None:
    """Verify every item, the ledger, the checkpoints and continuity of CASE (id, or number
    within --unit; a number several units use, without --unit, is refused naming them), now.

    Records a verification receipt in the custody ledger. Exit 0 passed (every item sealed
    and proven in a sealed checkpoint, continuity complete); 1 failed, naming what; 3
    incomplete: nothing failed, but what is still pending is listed; 4 incomplete because a
    server it needs (the object store, the TSA) did not answer: nothing was found, run it again.
    """
    from rich.console import Console
    from rich.table import Table
    from sqlalchemy import select

    from archive.cases import receipts
    from archive.cases.service import cases_numbered
    from archive.db import Database
    from archive.models import Case, Role, User
    from archive.seals.sealer import Sealer
    from archive.storage import open_store
    from archive.identity.users import add_user

    settings = cli_settings()
    database = Database(settings)
    try:
        with database.session() as session:
            row = session.get(Case, case) if unit is None else None
            if row is None:
                numbered = cases_numbered(session, case_number=case, unit=unit)
                if len(numbered) > 1:
                    units = ", ".join(c.unit.name for c in numbered)
                    raise click.ClickException(f"case number {case!r} is used by units {units}: give --unit")
                row = numbered[0] if numbered else None
            if row is None:
                raise click.ClickException(f"no case {case!r}" + (f" in unit {unit!r}" if unit else ""))
            name = as_user or SYSTEM_CLI
            user = session.execute(select(User).where(User.name == name)).scalar_one_or_none()
            if user is None and as_user is None:
                # The archive's own identity (User.system): no token, cannot sign in, no
                # administrator the last-administrator rule counts, not listed among users.
                user, _ = add_user(session, name=name, unit="system", role=Role.admin, actor=cli_actor(), system=True)
            if user is None:
                raise click.ClickException(f"no user {as_user!r}")
            if as_user is None and not user.system:
                raise click.ClickException(f"a user called {name!r} is someone's account: give --as REVIEWER")
            receipt_id = receipts.request_verification(session, user=user, case_id=row.id).id
            number = row.case_number
        try:
            receipt = receipts.run_verification(db=database, store=open_store(settings), sealer=Sealer(settings),
                                                receipt_id=receipt_id, settings=settings)
        except ArchiveError as exc:
            if not exc.transient:
                raise
            # The receipt said "running" until a worker, later, carried it out again.
            ended = receipts.end_unchecked(db=database, receipt_id=receipt_id, error=exc)
            _unchecked(exc, subject=translate(default_lang(os.environ), "cli.subject_case", case=number),
                       receipt=receipt_id if ended is not None and ended.status == "incomplete" else None)
    except ArchiveError as exc:
        raise click.ClickException(exc.message) from exc
    console = Console(highlight=False, soft_wrap=True)
    table = Table(title=f"Verification of case {number} (receipt {receipt_id})")
    for column in ("check", "subject", "outcome", "detail"):
        table.add_column(column, overflow="fold")
    colour = {"ok": "green", "failed": "red", "pending": "yellow", "warning": "yellow"}
    for c in receipt.checks:
        table.add_row(c["what"], c["subject"], f"[{colour.get(c['outcome'], 'white')}]{c['outcome']}[/]",
                      shown(c["detail"] or "", settings.time_zone))
    console.print(table)
    if receipt.status == "failed":
        for c in receipt.checks:
            if c["outcome"] == "failed":
                click.echo(f"FAILED {c['what']} {c['subject']}: {shown(c['detail'], settings.time_zone)}", err=True)
        sys.exit(1)
    if receipt.status != "passed":
        for p in receipt.pending or []:
            click.echo(f"PENDING {p['reason']} {p['what']} {p['subject']}: {shown(p['detail'], settings.time_zone)}",
                       err=True)
        click.echo(f"INCOMPLETE: case {number} is not yet fully verifiable ({len(receipt.pending or [])} pending)",
                   err=True)
        sys.exit(3)
    console.print(f"[green]case {number} verified[/]")


@main.command("verify-export")
@click.argument("export", type=click.Path(exists=True, path_type=Path))
@click.option("--trust", "trust", multiple=True, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="PEM file of the root certificate(s) you trust (repeatable).")
@click.option("--tsa-trust", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Roots for the time-stamping authority, if not the same as --trust.")
@click.option("--sm2-key", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Pin the SM2 public key(s) instead of those the sealed export manifest vouches for.")
@click.option("--all", "show_all", is_flag=True, help="List every check, not only the failures.")
@click.option("--lang", type=click.Choice(LANGS),
              help="Language of the report: zh or en; default from LC_ALL/LANG when it says zh or en, else zh.")
@click.option("--tz", metavar="ZONE",
              help="IANA time zone of the times shown; default the zone of TZ when set, else Asia/Shanghai.")
def verify_export(export: Path, trust: tuple[Path, ...], tsa_trust: tuple[Path, ...], sm2_key: tuple[Path, ...],
                  show_all: bool, lang: str | None, tz: str | None) -> None:
    """Verify a certified export (ZIP or unpacked directory) offline; exit 1 naming each failing member.

    Needs no server, no database and no settings: only the export and the roots you trust.
    The same check and report as the stand-alone ``evidence-verify`` command courts install
    (and so the same language and zone: not the server's settings).
    """
    from evidence_verify import SigningError
    from evidence_verify.cli import Reading, verify_and_render

    try:
        reading = Reading.of(lang, tz)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--tz") from exc
    try:
        code = verify_and_render(export, trust=trust, tsa_trust=tsa_trust, sm2_keys=sm2_key, show_all=show_all,
                                 reading=reading)
    except (SigningError, OSError) as exc:
        raise click.ClickException(f"cannot verify {export}: {exc}") from exc
    if code:
        sys.exit(code)
