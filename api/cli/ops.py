"""Operating the service: the database schema and ``evidence serve``."""

from __future__ import annotations

import logging
import os
import sys

import click

from api.cli.root import cli_settings, main
from archive.errors import ArchiveError
from archive.settings import Settings

log = logging.getLogger(__name__)


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Bring the database schema to the newest revision."""
    from archive import db as archive_db

    settings = cli_settings()
    archive_db.upgrade(settings)
    click.echo(f"database at head: {_redact(settings.resolved_database_url)}")


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001
        return "<database>"


def _default_processes(settings: Settings) -> int:
    """One per core where every process counts sign-in failures together (PostgreSQL and Redis)."""
    shared = not settings.resolved_database_url.startswith("sqlite") and (settings.broker_url or "").startswith("redis")
    return max(1, min(os.cpu_count() or 1, 8)) if shared else 1


RESERVED_CONNECTIONS = 10
"""PostgreSQL connections ``evidence serve`` leaves to others (the CLI, an administrator's psql)."""


def _share_connections(settings: Settings, processes: int) -> Settings:
    """On PostgreSQL, the per-process pool so that ``processes`` (API processes, the worker and
    beat) together stay within the server's ``max_connections``: past it the server refuses new
    connections and requests fail, where a full pool only makes them wait their turn. Exported
    in the environment, so every child process gets the same."""
    if settings.resolved_database_url.startswith("sqlite"):
        return settings
    from sqlalchemy import text

    from archive.db import make_engine

    engine = make_engine(settings.resolved_database_url, connections=1)
    try:
        with engine.connect() as conn:
            limit = int(conn.execute(text("SHOW max_connections")).scalar_one())
    except Exception as exc:  # noqa: BLE001 - the API's own start-up names an unreachable database
        log.warning("could not read PostgreSQL's max_connections (%s); pools keep %d connections each",
                    exc, settings.database_connections)
        return settings
    finally:
        engine.dispose()
    share = max(2, (limit - RESERVED_CONNECTIONS) // processes)
    if share >= settings.database_connections:
        return settings
    log.warning("PostgreSQL allows %d connections: each of %d processes keeps at most %d (not %d)",
                limit, processes, share, settings.database_connections)
    os.environ["EVIDENCE_DATABASE_CONNECTIONS"] = str(share)
    return settings.model_copy(update={"database_connections": share})


class ConfigurationRefused(click.ClickException):
    """Bad configuration: exit status 2, the message names every problem."""

    exit_code = 2


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers/--no-workers", "with_worker", default=True,
              help="Also start a Celery worker and the beat scheduler (as supervised child processes).")
@click.option("--processes", type=click.IntRange(1, 64), default=None,
              help="API server processes sharing the port (default EVIDENCE_API_PROCESSES, else one per core "
                   "on PostgreSQL with Redis, one on SQLite).")
def serve(host: str, port: int, with_worker: bool, processes: int | None) -> None:
    """Run the API (and a worker and beat) — on the embedded default with no server to install."""
    import uvicorn

    from api.app import create_app
    from api.http import uvicorn_config
    from archive import db as archive_db
    from archive import heap, metrics
    from workers.supervisor import Supervisor

    settings = cli_settings()
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
    processes = processes or settings.api_processes or _default_processes(settings)
    if processes > 1 and settings.resolved_database_url.startswith("sqlite"):
        raise ConfigurationRefused("SQLite has one writer: the embedded default serves with one API process "
                                   "(use PostgreSQL for several)")
    settings = _share_connections(settings, processes + (2 if with_worker else 0))
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
        if processes == 1:
            heap.freeze_startup_objects()
            uvicorn.Server(uvicorn_config(
                app, settings, host=host, port=port, log_level="info", timeout_graceful_shutdown=10,
            )).run()
        else:
            # uvicorn's supervisor: the processes share the socket, and one that dies is replaced.
            from uvicorn.supervisors import Multiprocess

            del app  # each process builds its own from the same environment
            config = uvicorn_config("api.app:server_process_app", settings, factory=True, workers=processes,
                                    host=host, port=port, log_level="info", timeout_graceful_shutdown=10)
            Multiprocess(config, sockets=[config.bind_socket()]).run()
    finally:
        if supervisor is not None:
            supervisor.stop()
