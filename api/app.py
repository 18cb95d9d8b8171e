"""The FastAPI application."""

from __future__ import annotations

import logging

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api import errors, logs, pages
from api.deps import Services
from api.http import HeadLimits, RequestGuard
from api.routes import cases, continuity, evidence, exports, ledger, seals, trust, uploads, verifications
from archive.db import Database
from archive.errors import ArchiveError
from archive.settings import Settings, load_settings
from archive.storage import open_store
from workers.celery import make_celery

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API for ``settings`` (default: from the environment)."""
    settings = settings or load_settings()
    app = FastAPI(
        title="Evidence archive",
        version="0.1.0",
        description="Streamed ingest into case vaults, custody ledger, continuity and seals.",
    )
    services = Services(
        settings=settings, db=Database(settings), store=open_store(settings), celery=make_celery(settings)
    )
    app.state.services = services
    errors.install(app)
    errors.document_errors(app)
    logs.install()
    for module in (cases, evidence, ledger, continuity):
        app.include_router(module.router)
    app.include_router(seals.router)
    app.include_router(seals.checkpoints_router)
    app.include_router(trust.router)
    app.include_router(trust.tsa_router)
    app.include_router(uploads.router)
    app.include_router(exports.router)
    app.include_router(verifications.router)
    pages.install(app)
    # Requests append custody entries; a checkpoint is enqueued when enough accrued.
    app.add_middleware(seals.CheckpointTriggerMiddleware, trigger=seals.CheckpointTrigger(services))
    # Added last, so it runs first: an oversized head never reaches a route.
    app.add_middleware(RequestGuard, limits=HeadLimits.of(settings))

    @app.get("/healthz", tags=["health"])
    def healthz() -> JSONResponse:
        """Liveness and readiness: the database and the object store answer."""
        checks: dict[str, str] = {}
        ok = True
        try:
            with services.db.session() as session:
                session.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:  # noqa: BLE001 - health reports, never raises
            ok, checks["database"] = False, f"unavailable: {type(exc).__name__}"
        try:
            services.store.check()
            checks["storage"] = "ok"
        except ArchiveError as exc:
            ok, checks["storage"] = False, exc.message
        return JSONResponse({"status": "ok" if ok else "degraded", "checks": checks}, status_code=200 if ok else 503)

    return app
