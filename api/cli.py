"""The ``evidence`` command line.

Exit codes: 0 all held; 1 a verification failed (the message names what); 2 bad usage
or configuration; 3 not finished yet: ``verify-case`` found nothing wrong but something
is still pending (listed), ``upload`` was interrupted (run it again to resume).
"""

from __future__ import annotations

import getpass
import logging
import os
import sys
from pathlib import Path

import click

from archive.errors import ArchiveError, VerificationError
from archive.settings import Settings, load_settings
from archive.timefmt import local_time

log = logging.getLogger("evidence")


def _settings() -> Settings:
    try:
        return load_settings()
    except ArchiveError as exc:
        raise click.ClickException(exc.message) from exc
    except Exception as exc:  # pydantic validation of the environment
        raise click.ClickException(f"invalid settings: {exc}") from exc


def _cli_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # noqa: BLE001 - no login name in some containers
        return "cli:unknown"


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log at debug level.")
def main(verbose: bool) -> None:
    """Evidence archive: case vaults, custody ledger, seals and verification."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Bring the database schema to the newest revision."""
    from archive import db as archive_db

    settings = _settings()
    archive_db.upgrade(settings)
    click.echo(f"database at head: {_redact(settings.resolved_database_url)}")


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001
        return "<database>"


@main.group()
def user() -> None:
    """Users and their tokens."""


def _user_session():  # type: ignore[no-untyped-def]
    """A writing session on the configured database (migrated first on the embedded default)."""
    from archive import db as archive_db
    from archive.db import Database

    settings = _settings()
    if settings.is_embedded:
        archive_db.upgrade(settings)
    return Database(settings).session()


@user.command("add")
@click.option("--name", required=True, help="Unique user name.")
@click.option("--unit", required=True, help="Unit (enforcement team); created when new.")
@click.option("--role", required=True, type=click.Choice(["officer", "reviewer", "court", "admin"]))
@click.option("--expires-in", type=click.IntRange(min=1), default=None, help="Seconds until the token stops working.")
def user_add(name: str, unit: str, role: str, expires_in: int | None) -> None:
    """Create a user; the token is printed once, on the last line."""
    from archive.identity.users import add_user

    try:
        with _user_session() as session:
            created, token = add_user(session, name=name, unit=unit, role=role, actor=_cli_actor(), expires_in=expires_in)
            click.echo(f"created {role} {created.name} in unit {unit}; token (shown once):", err=True)
    except ArchiveError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(token)


@user.command("list")
def user_list() -> None:
    """Every user: name, role, unit, active or disabled, second factor."""
    from archive.identity.users import list_users

    with _user_session() as session:
        for u in list_users(session):
            state = "active" if u.active else "disabled"
            totp = "totp" if u.totp_enrolled_at else "-"
            click.echo(f"{u.name}\t{u.role.value}\t{u.unit.name}\t{state}\t{totp}")


def _change_user(name: str, **changes: object) -> None:
    from archive.identity.users import update_user

    try:
        with _user_session() as session:
            changed = update_user(session, name=name, actor=_cli_actor(), **changes)  # type: ignore[arg-type]
            click.echo(f"{changed.name}: {changed.role.value} in {changed.unit.name}, "
                       f"{'active' if changed.active else 'disabled'}")
    except ArchiveError as exc:
        raise click.ClickException(exc.message) from exc


@user.command("disable")
@click.argument("name")
def user_disable(name: str) -> None:
    """Disable a user: every token and session is refused from the next request on."""
    _change_user(name, active=False)


@user.command("enable")
@click.argument("name")
def user_enable(name: str) -> None:
    """Re-enable a disabled user (their unexpired, unrevoked tokens work again)."""
    _change_user(name, active=True)


@user.command("set")
@click.argument("name")
@click.option("--role", type=click.Choice(["officer", "reviewer", "court", "admin"]), default=None)
@click.option("--unit", default=None, help="Move to this unit (created when new).")
def user_set(name: str, role: str | None, unit: str | None) -> None:
    """Change a user's role or unit."""
    _change_user(name, role=role, unit=unit)


@main.group()
def token() -> None:
    """Personal access tokens."""


@token.command("create")
@click.option("--user", "user_name", required=True, help="The token's owner.")
@click.option("--name", "label", default="cli", show_default=True, help="A label saying what the token is for.")
@click.option("--expires-in", type=click.IntRange(min=1), default=None, help="Seconds until the token stops working.")
def token_create(user_name: str, label: str, expires_in: int | None) -> None:
    """Issue a token; its id goes to stderr, the token itself is the last line."""
    from archive.identity.users import find_user, issue_token

    try:
        with _user_session() as session:
            owner = find_user(session, name=user_name)
            row, secret = issue_token(session, user=owner, name=label, expires_in=expires_in, actor=_cli_actor(),
                                      totp_roles=_settings().totp_roles)
            click.echo(f"token {row.id} for {owner.name} (shown once):", err=True)
    except ArchiveError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(secret)


@token.command("list")
@click.option("--user", "user_name", default=None, help="Only this user's tokens.")
def token_list(user_name: str | None) -> None:
    """Tokens (never their secrets): id, owner, label, expiry, revocation."""
    from archive.identity.users import find_user, list_tokens

    try:
        with _user_session() as session:
            owner = find_user(session, name=user_name) if user_name else None
            for t in list_tokens(session, user=owner):
                click.echo(f"{t.id}\t{t.user.name}\t{t.name}\texpires={t.expires_at or '-'}\trevoked={t.revoked_at or '-'}")
    except ArchiveError as exc:
        raise click.ClickException(exc.message) from exc


@token.command("revoke")
@click.argument("token_id")
def token_revoke(token_id: str) -> None:
    """Revoke a token: refused from the next request on."""
    from archive.identity.users import revoke_token

    try:
        with _user_session() as session:
            row = revoke_token(session, token_id=token_id, actor=_cli_actor())
            click.echo(f"revoked {row.id} ({row.name}) of {row.user.name}")
    except ArchiveError as exc:
        raise click.ClickException(exc.message) from exc


@main.group()
def ledger() -> None:
    """The custody ledger."""


@ledger.command("verify")
def ledger_verify() -> None:
    """Recompute the ledger's chain and Merkle tree, then check every sealed checkpoint
    (CAdES and SM2 seals, sealed root vs the ledger, consistency between checkpoints);
    exit 1 naming the first failure."""
    from archive.custody import ledger as archive_ledger
    from archive.custody.checkpoints import checkpoint_sizes, verify_checkpoints
    from archive.seals.sealer import Sealer
    from archive.db import Database

    settings = _settings()
    database = Database(settings)
    try:
        with database.snapshot() as session:
            # One pass over the entries yields the roots every checkpoint is compared with.
            report = archive_ledger.verify(session, at_sizes=checkpoint_sizes(session))
            click.echo(f"ledger OK: {report.size} entries, root {report.root_hash}")
            checkpoints = verify_checkpoints(session, Sealer(settings), ledger_report=report)
    except VerificationError as exc:
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
    else:
        click.echo("checkpoints: none sealed yet")


@ledger.command("checkpoint")
def ledger_checkpoint() -> None:
    """Seal a checkpoint of the ledger now (if it grew since the last one)."""
    from archive.custody.checkpoints import create_checkpoint
    from archive.seals.sealer import Sealer
    from archive.db import Database
    from archive.storage import open_store

    settings = _settings()
    try:
        with Database(settings).session() as session:
            cp = create_checkpoint(session, Sealer(settings), store=open_store(settings))
            message = (f"checkpoint {cp.id} sealed: tree size {cp.tree_size}, root {cp.root_hash}"
                       if cp else "ledger unchanged since the last checkpoint; nothing sealed")
    except ArchiveError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(message)


@main.group()
def keys() -> None:
    """E-seal keys and certificates."""


@keys.command("init")
def keys_init() -> None:
    """Create the development PKI (root CA, e-seal, TSA, SM2 key) if absent; print its paths."""
    from archive.seals.sealer import ensure_development_keys

    settings = _settings()
    try:
        pki, created = ensure_development_keys(settings)
    except ArchiveError as exc:
        raise click.ClickException(exc.message) from exc
    if created:
        click.secho(
            "WARNING: DEVELOPMENT PKI CREATED. Its root CA, e-seal and TSA keys are plain files on this machine;\n"
            "seals made with it prove nothing outside development and tests. Production configures the\n"
            "organisation's own keys (EVIDENCE_SEAL_KEY or EVIDENCE_PKCS11_*), roots and an external TSA.",
            fg="red", bold=True, err=True,
        )
    else:
        click.echo("development PKI already present (unchanged)", err=True)
    _record_keys(settings)
    for name in ("root_cert", "seal_cert", "seal_key", "tsa_cert", "tsa_key", "sm2_key", "sm2_public", "chain"):
        click.echo(f"{name}: {getattr(pki, name)}")


@keys.command("rotate")
def keys_rotate() -> None:
    """Issue a new development e-seal key and certificate; retired certificates are kept."""
    import signing
    from archive.seals.sealer import ensure_development_keys, keys_lock

    settings = _settings()
    if settings.pkcs11_module or settings.seal_key:
        raise click.ClickException(
            "production keys are rotated by installing the organisation's new key/certificate and pointing "
            "EVIDENCE_SEAL_* at them (keep the old certificate in EVIDENCE_PREVIOUS_SEAL_CERTS)"
        )
    try:
        pki, _ = ensure_development_keys(settings)
        _record_keys(settings)  # the retiring certificate, in case it never sealed
        with keys_lock(pki.directory):
            signing.rotate_seal_key(pki.directory)
    except signing.SigningError as exc:
        raise click.ClickException(f"rotation failed: {exc.reason}") from exc
    except ArchiveError as exc:
        raise click.ClickException(exc.message) from exc
    _record_keys(settings)
    click.echo(f"new e-seal certificate: {pki.seal_cert}")
    click.echo(f"every e-seal certificate ever issued: {pki.seal_certs_dir}")


def _record_keys(settings: Settings) -> None:
    """Record the configuration's certificates in the database, when it is reachable."""
    from archive import db as archive_db
    from archive.seals.registry import record_sealer_certificates
    from archive.seals.sealer import Sealer
    from archive.db import Database

    try:
        if settings.is_embedded:
            archive_db.upgrade(settings)
        with Database(settings).session() as session:
            record_sealer_certificates(session, Sealer(settings))
    except Exception as exc:  # noqa: BLE001 - keys exist either way; sealing records them at first use
        click.echo(f"note: certificates not recorded in the database now ({type(exc).__name__})", err=True)


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

    settings = _settings()
    try:
        report = verify(db=Database(settings), store=open_store(settings), sealer=Sealer(settings),
                        item_id=item_id, actor=_cli_actor(), require_sealed=require_sealed)
    except VerificationError as exc:
        click.echo(f"FAILED: {exc.message}", err=True)
        sys.exit(1)
    except ArchiveError as exc:
        raise click.ClickException(exc.message) from exc
    f = report.fixity
    click.echo(f"item {report.item_id} OK: {f.size} bytes, sha256 {f.sha256}" + (f", sm3 {f.sm3}" if f.sm3 else ""))
    if report.cades is not None and report.sm2 is not None:
        c = report.cades
        click.echo(f"manifest sha256 {report.manifest_sha256}")
        click.echo(f"CAdES-B-T seal OK: {c.signer_subject}; signing time {c.signing_time}; "
                   f"time-stamp {c.timestamp_time} by {c.tsa_subject}")
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
def verify_case(case: str, as_user: str | None) -> None:
    """Verify every item, the ledger, the checkpoints and continuity of CASE (id or number), now.

    Records a verification receipt in the custody ledger. Exit 0 passed (every item sealed
    and proven in a sealed checkpoint, continuity complete); 1 failed, naming what; 3
    incomplete: nothing failed, but what is still pending is listed.
    """
    from rich.console import Console
    from rich.table import Table
    from sqlalchemy import select

    from archive.cases import receipts
    from archive.db import Database
    from archive.models import Case, Role, User
    from archive.seals.sealer import Sealer
    from archive.storage import open_store
    from archive.identity.users import add_user

    settings = _settings()
    database = Database(settings)
    try:
        with database.session() as session:
            row = session.get(Case, case) or session.execute(
                select(Case).where(Case.case_number == case)).scalar_one_or_none()
            if row is None:
                raise click.ClickException(f"no case {case!r}")
            name = as_user or "system-cli"
            user = session.execute(select(User).where(User.name == name)).scalar_one_or_none()
            if user is None and as_user is None:
                # A token-less system identity: its random token is discarded, nobody can log in as it.
                user, _ = add_user(session, name=name, unit="system", role=Role.admin, actor=_cli_actor())
            if user is None:
                raise click.ClickException(f"no user {as_user!r}")
            receipt_id = receipts.request_verification(session, user=user, case_id=row.id).id
            number = row.case_number
        receipt = receipts.run_verification(db=database, store=open_store(settings), sealer=Sealer(settings),
                                            receipt_id=receipt_id)
    except ArchiveError as exc:
        raise click.ClickException(exc.message) from exc
    console = Console(highlight=False, soft_wrap=True)
    table = Table(title=f"Verification of case {number} (receipt {receipt_id})")
    for column in ("check", "subject", "outcome", "detail"):
        table.add_column(column, overflow="fold")
    colour = {"ok": "green", "failed": "red", "pending": "yellow", "warning": "yellow"}
    for c in receipt.checks:
        table.add_row(c["what"], c["subject"], f"[{colour.get(c['outcome'], 'white')}]{c['outcome']}[/]", c["detail"] or "")
    console.print(table)
    if receipt.status == "failed":
        for c in receipt.checks:
            if c["outcome"] == "failed":
                click.echo(f"FAILED {c['what']} {c['subject']}: {c['detail']}", err=True)
        sys.exit(1)
    if receipt.status != "passed":
        for p in receipt.pending or []:
            click.echo(f"PENDING {p['reason']} {p['what']} {p['subject']}: {p['detail']}", err=True)
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
def verify_export(export: Path, trust: tuple[Path, ...], tsa_trust: tuple[Path, ...], sm2_key: tuple[Path, ...],
                  show_all: bool) -> None:
    """Verify a certified export (ZIP or unpacked directory) offline; exit 1 naming each failing member.

    Needs no server, no database and no settings: only the export and the roots you trust.
    The same check and report as the stand-alone ``evidence-verify`` command courts install.
    """
    from evidence_verify import SigningError
    from evidence_verify.cli import verify_and_render

    try:
        code = verify_and_render(export, trust=trust, tsa_trust=tsa_trust, sm2_keys=sm2_key, show_all=show_all)
    except (SigningError, OSError) as exc:
        raise click.ClickException(f"cannot verify {export}: {exc}") from exc
    if code:
        sys.exit(code)


class ConfigurationRefused(click.ClickException):
    """Bad configuration: exit status 2, the message names every problem."""

    exit_code = 2


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers/--no-workers", "with_worker", default=True,
              help="Also start a Celery worker and the beat scheduler (as supervised child processes).")
def serve(host: str, port: int, with_worker: bool) -> None:
    """Run the API (and a worker and beat) — on the embedded default with no server to install."""
    import uvicorn

    from api.app import create_app
    from api.http import uvicorn_config
    from archive import db as archive_db
    from archive import metrics
    from workers.supervisor import Supervisor

    settings = _settings()
    logging.getLogger().setLevel(settings.log_level)
    if settings.is_embedded:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        click.secho(
            f"EMBEDDED DEFAULT: SQLite, local object directory and local queue under {settings.data_dir.resolve()}.\n"
            "For one machine and for trying the service; production uses PostgreSQL, MinIO and Redis "
            "(see docker-compose.yml).", fg="yellow", err=True,
        )
        archive_db.upgrade(settings)
    if settings.mode == "development" and not (settings.seal_key or settings.pkcs11_module):
        from archive.seals.sealer import ensure_development_keys

        pki, created = ensure_development_keys(settings)
        click.secho(
            f"DEVELOPMENT PKI {'CREATED' if created else 'in use'} at {pki.directory}: seals and time-stamps "
            "made with it are for development only.", fg="red", bold=True, err=True,
        )
    if with_worker:
        # This process starts every writer of the metrics directory: start it empty.
        metrics.configure(settings.resolved_metrics_dir, fresh=True)
    try:
        app = create_app(settings)  # in production: refuses bad material before any child starts
    except ArchiveError as exc:
        raise ConfigurationRefused(exc.message) from exc
    supervisor = None
    if with_worker:
        celery = [sys.executable, "-m", "celery", "-A", "workers.app"]
        supervisor = Supervisor(
            {
                "worker": [*celery, "worker", "--pool", "threads", "--concurrency", "2", "--loglevel", "INFO",
                           "-n", f"embedded-{os.getpid()}@%h"],
                # Beat (timed checkpoints, fixity audits, upload expiry) is a child of its own, not
                # `worker -B`, whose beat process was left running when the worker was killed.
                "beat": [*celery, "beat", "--loglevel", "INFO",
                         "--schedule", str((settings.data_dir / "beat-schedule").resolve())],
            },
            env=dict(os.environ, EVIDENCE_DATA_DIR=str(settings.data_dir.resolve())),
        )
        supervisor.start()
    try:
        uvicorn.Server(uvicorn_config(
            app, settings, host=host, port=port, log_level="info", timeout_graceful_shutdown=10,
        )).run()
    finally:
        if supervisor is not None:
            supervisor.stop()


@main.command("upload")
@click.argument("case_id")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--kind", required=True, type=click.Choice(["bodycam_video", "interview_video", "document", "remote_capture", "other"]))
@click.option("--device-id", default=None, help="Recording device (camera, room).")
@click.option("--recorded-start", default=None, help="Declared recording start, ISO 8601 with zone.")
@click.option("--url", default="http://127.0.0.1:8000", show_default=True, envvar="EVIDENCE_URL", help="API base URL.")
@click.option("--token", envvar="EVIDENCE_TOKEN", required=True, help="API token (or EVIDENCE_TOKEN).")
@click.option("--chunk-size", default=8, show_default=True, type=click.IntRange(1, 1024), help="MiB per request.")
def upload(case_id: str, files: tuple[Path, ...], kind: str, device_id: str | None, recorded_start: str | None,
           url: str, token: str, chunk_size: int) -> None:
    """Upload files resumably (tus); each file's item id is printed on its last line.

    Run the same command again after an interruption and it resumes where it stopped.
    """
    from rich.console import Console

    from api import tus_client

    console = Console(stderr=True)
    state = tus_client.UploadState(tus_client.state_path())
    for path in files:
        request = tus_client.UploadRequest(
            case_id=case_id, path=path, kind=kind, device_id=device_id, recorded_start=recorded_start
        )
        try:
            item_id = tus_client.upload_file(
                request, base_url=url, token=token, chunk_size=chunk_size * 1024 * 1024, console=console,
                state=state,
            )
        except tus_client.Interrupted as exc:
            click.echo(f"{path.name}: {exc}; run the same command again to resume", err=True)
            sys.exit(3)
        except tus_client.UploadError as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"{path.name}: sha256 verified by the server", err=True)
        click.echo(item_id)


if __name__ == "__main__":
    main()
