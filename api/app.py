"""The FastAPI application."""

from __future__ import annotations

import logging
from dataclasses import asdict

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api import errors, logs, metrics, pages
from api.admission import AdmissionGate
from api.checkpoint_trigger import CheckpointTrigger, CheckpointTriggerMiddleware
from api.deps import ONE_VALUE_PER_QUERY_PARAMETER, Services
from api.http import HeadLimits, RequestGuard
from api.list_cache import ListCache
from api.routes import (
    case_life, cases, continuity, court_requests, evidence, exports, inspections, ledger, records, seals, trust,
    uploads, users, verifications,
)
from archive import metrics as archive_metrics
from archive import heap, preflight, work
from archive.db import Database
from archive.errors import ArchiveError
from archive.settings import Settings, load_settings
from archive.storage import open_store
from archive.identity.throttle import Throttle
from archive.identity.token_cache import TokenCache
from archive.seals.sealer import SealerSource
from workers.celery import make_celery

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, *, checked: bool = False) -> FastAPI:
    """Build the API for ``settings`` (default: from the environment); ``checked``: the
    production start-up checks have passed already for these settings."""
    settings = settings or load_settings()
    heap.keep_heap_flat()
    # Production refuses bad key material, a silent TSA or a bucket without object lock
    # here, before anything is served (one ConfigurationError listing every problem).
    if not checked:
        preflight.check(settings)
    archive_metrics.configure(settings.resolved_metrics_dir)
    app = FastAPI(
        title="Evidence archive",
        version="0.1.0",
        description="Streamed ingest into case vaults, custody ledger, continuity and seals.",
    )
    services = Services(
        settings=settings, db=Database(settings), store=open_store(settings), celery=make_celery(settings),
        throttle=Throttle.from_settings(settings), sealers=SealerSource(settings),
        tokens=TokenCache(), lists=ListCache(),
    )
    work.ring_with(services.db, services.enqueue)
    app.state.services = services
    errors.install(app)
    errors.document_errors(app)
    logs.install()
    for router in (cases.router, case_life.router, evidence.router, ledger.router, continuity.router, seals.router,
                   seals.checkpoints_router, trust.router, trust.tsa_router, uploads.router, exports.router,
                   court_requests.router, verifications.router, inspections.router, users.router, records.router,
                   metrics.router):
        app.include_router(router, dependencies=ONE_VALUE_PER_QUERY_PARAMETER)
    pages.install(app)
    # Requests at work hold connections: never more of them than the pool has (api.admission).
    app.add_middleware(AdmissionGate, slots=min(settings.api_requests_at_work, settings.database_connections))
    # Requests append custody entries; a checkpoint is enqueued when enough accrued.
    app.add_middleware(CheckpointTriggerMiddleware, trigger=CheckpointTrigger(services))
    app.add_middleware(metrics.HttpMetricsMiddleware)
    # Added last, so it runs first: an oversized head never reaches a route.
    app.add_middleware(RequestGuard, limits=HeadLimits.of(settings))

    @app.get("/healthz", tags=["health"])
    def healthz() -> JSONResponse:
        """Liveness and readiness: the database and the object store answer (else 503); the
        task queue (broker) answers (else ``degraded``); background work: ``pending`` (queue
        depth), ``running``, ``stuck`` (due while no worker takes any work up, or waiting far
        longer than a backlog drains: :func:`archive.work.counts`; a backlog being worked
        through is not), ``failed`` (used up its attempts; each item says why in its
        ``processing``)."""
        checks: dict[str, str] = {}
        ok = True
        queue: dict[str, object] = {}
        try:
            with services.db.read() as session:
                session.execute(text("SELECT 1"))
                counts = work.counts(session, settings)
                queue = asdict(counts)
            checks["database"] = "ok"
        except Exception as exc:  # noqa: BLE001 - health reports, never raises
            ok, checks["database"] = False, f"unavailable: {type(exc).__name__}"
        try:
            services.store.check()
            checks["storage"] = "ok"
        except ArchiveError as exc:
            ok, checks["storage"] = False, exc.message
        # The task queue unreachable, and stuck or failed work, are reported (and degrade the
        # status) but are no reason to restart the API: uploads are still accepted and kept,
        # and the reconciler hands their work over once the queue answers.
        try:
            with services.celery.connection_for_write() as connection:
                connection.ensure_connection(max_retries=1, interval_start=0, timeout=2)
            checks["queue"] = "ok"
        except Exception as exc:  # noqa: BLE001 - health reports, never raises
            checks["queue"] = f"unavailable: {type(exc).__name__}"
        busy = queue.get("stuck") or queue.get("failed") or checks["queue"] != "ok"
        status = "ok" if ok and not busy else "degraded"
        return JSONResponse({"status": status, "checks": checks, "work": queue}, status_code=200 if ok else 503)

    return app


def server_process_app() -> FastAPI:
    """The app of one of several server processes of ``evidence serve --processes N``: the
    parent ran the production checks on the same environment before it started them (and
    uvicorn builds this app inside the running event loop, where those checks cannot run)."""
    app = create_app(load_settings(), checked=True)
    heap.freeze_startup_objects()
    return app
