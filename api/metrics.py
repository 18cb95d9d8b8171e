"""``GET /metrics`` (Prometheus text format) and the HTTP request counter.

``/metrics`` authenticates like every other endpoint: a bearer token that is either
``EVIDENCE_METRICS_TOKEN`` (what a Prometheus scraper is given: a static secret, not a
person's expiring account) or the API token of an admin. It merges the metrics of every
process sharing the metrics directory (see :mod:`archive.metrics`) and adds the ledger's
size, read from the database at scrape time.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.admission import CLIENT_GONE
from api.deps import Services, ServicesDep, caller_checked, identify
from api.schemas import ErrorResponse
from archive import metrics
from archive.custody import ledger
from archive.errors import Forbidden
from archive.models import Role

router = APIRouter(tags=["health"])
_bearer = HTTPBearer(auto_error=False, description="EVIDENCE_METRICS_TOKEN or an admin's API token")


def _authorise(services: Services, request: Request, credentials: HTTPAuthorizationCredentials | None) -> None:
    caller_checked(request)
    token = credentials.credentials if credentials and credentials.scheme.lower() == "bearer" else None
    expected = services.settings.metrics_token
    if token and expected is not None and hmac.compare_digest(token.encode(), expected.get_secret_value().encode()):
        return
    if identify(services, request, credentials).role != Role.admin:
        raise Forbidden("only an admin or the metrics token may read /metrics", code="forbidden_role")


class _LedgerSize:
    """Scrape-time gauges: the custody ledger's entries, and committed entries still waiting
    to be sequenced (a backlog that grows means no process is sequencing)."""

    def __init__(self, services: Services):
        self.services = services

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        size = GaugeMetricFamily("evidence_ledger_entries", "Entries in the custody ledger.")
        waiting = GaugeMetricFamily("evidence_ledger_waiting_entries",
                                    "Committed custody entries waiting to be sequenced into the ledger.")
        try:
            with self.services.db.read() as session:
                size.add_metric([], ledger.size(session))
                waiting.add_metric([], ledger.waiting(session))
        except Exception:  # noqa: BLE001 - a scrape reports what it can; /healthz says the database is down
            return
        yield size
        yield waiting


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text exposition"},
               **{status: {"model": ErrorResponse} for status in (401, 403)}},
)
def get_metrics(
    request: Request, services: ServicesDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Response:
    """Prometheus metrics of the API, the workers and beat (bearer: metrics token or an admin)."""
    _authorise(services, request, credentials)
    body, content_type = metrics.exposition([_LedgerSize(services)])
    return Response(body, media_type=content_type)


class HttpMetricsMiddleware:
    """Count every HTTP answer by method, route *template* and status, and time it.

    The template (``/api/v1/cases/{case_id}``), never the raw path: ids would make a
    new time series per case. Paths no route matches are counted as ``<unmatched>``.
    """

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # what the client gets when the app raises

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or "<unmatched>"
            if scope.get(CLIENT_GONE):
                status = 499  # dropped unanswered: its client left while it waited its turn
            metrics.record_http(method=scope["method"], route=route, status=status,
                                seconds=time.perf_counter() - start)


__all__ = ["HttpMetricsMiddleware", "router"]
