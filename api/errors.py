"""One error shape for every failure: ``{"error": {"code": ..., "message": ...}}``."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match

from api.deps import ContentCodingRefused, caller_refusal
from archive.db import translate_busy, unique_conflict
from archive.errors import ArchiveError, DatabaseBusy, RangeNotSatisfiable

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 409: "conflict", 411: "length_required", 413: "too_large",
    415: "unsupported_media_type", 416: "range_not_satisfiable", 422: "invalid_request",
    431: "headers_too_large",
}
_BODY_ENDED = "the request body ended before all of it arrived"


COMMON_STATUSES = {
    400: "Bad request: a malformed header, or the body ended early (`upload_incomplete`)",
    401: "Missing or invalid bearer token",
    403: "The caller's role or unit does not allow this",
    404: "Not found (or not visible to the caller)",
    409: "Conflicts with the archive's state",
    413: "Too large",
    415: "Unsupported media type",
    422: "Invalid request: schema, JSON, or a value the archive refuses",
    429: "Too many failed credentials from this client (`too_many_attempts`, with `Retry-After`)",
    431: "Request header fields too large (`headers_too_large`)",
    503: "A backing service (database, object store) is unavailable",
}
"""Statuses any operation may answer, added to every operation of /openapi.json."""
_NEEDS_TOKEN = {401, 403, 429}


def document_errors(app: FastAPI) -> None:
    """Make /openapi.json list :data:`COMMON_STATUSES` (ErrorResponse) on every operation.

    One place instead of every route's ``responses``: the route keeps only what is its own
    (206, 416, tus's 412/460...). 401, 403 and 429 go only on operations that need a token.
    """
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        ref = {"$ref": "#/components/schemas/ErrorResponse"}
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                for status, description in COMMON_STATUSES.items():
                    if status in _NEEDS_TOKEN and not operation.get("security"):
                        continue
                    entry = responses.setdefault(str(status), {"description": description})
                    entry.setdefault("content", {"application/json": {"schema": ref}})
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None,
                   extra: dict | None = None) -> JSONResponse:
    """The JSON error reply (``extra``: more fields of the error object, such as ``reasons``)."""
    return JSONResponse({"error": {"code": code, "message": message, **(extra or {})}}, status_code=status,
                        headers=headers)


def archive_error_response(exc: ArchiveError) -> JSONResponse:
    """The reply to a domain error (also for a route that adds headers of its own to it)."""
    if exc.status >= 500:
        log.error("%s: %s", exc.code, exc.message)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    if getattr(exc, "retry_after", None):
        headers = {"Retry-After": str(exc.retry_after)}
    if isinstance(exc, RangeNotSatisfiable):
        headers = {"Content-Range": f"bytes */{exc.size}"}  # RFC 9110 section 15.5.17
    if isinstance(exc, ContentCodingRefused):
        headers = {"Accept-Encoding": "identity"}  # RFC 9110 section 12.5.3
    return error_response(exc.status, exc.code, exc.message, headers, exc.extra)


def _leaf_routes(routes: Iterable[Any]) -> Iterator[Any]:
    """Every route of the app, those of included routers too (FastAPI keeps them nested)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _leaf_routes(inner.routes)
        else:
            yield route


_NOT_BEFORE_CALLER = frozenset({401, 405, 429})
"""Statuses that stand even before the caller is known: the sign-in's own, and a method the
path does not serve (routing, not validation)."""


async def _refused_caller(request: Request, status: int) -> Response | None:
    """The answer to a request whose error (``status``) came before its route established its
    caller, if the caller is refused: the caller comes first (:func:`api.deps.caller_refusal`),
    so no one without valid credentials learns what else is wrong with a request."""
    if not 400 <= status < 500 or status in _NOT_BEFORE_CALLER:
        return None
    refusal = await caller_refusal(request)
    if refusal is None:
        return None
    handlers = request.app.exception_handlers  # Exception's (below) answers any other
    handler = next(handlers[kind] for kind in type(refusal).__mro__ if kind in handlers)
    return await handler(request, refusal)


def _asks_for_a_page(request: Request) -> bool:
    """A browser asking for a page (HTML, outside the API's /api/ paths): an address no route
    serves answers with the error page, not the API's JSON."""
    return not request.url.path.startswith("/api/") and "text/html" in request.headers.get("accept", "")


async def _page(request: Request, exc: ArchiveError, headers: dict[str, str] | None = None) -> Response:
    """The error page for ``exc`` in the reader's language (see :class:`api.pages.base.PageRoute`),
    its header showing who the browser is signed in as."""
    # The pages import the API's dependencies, which import this.
    from api.pages.base import error_page, session_viewer

    if getattr(request.state, "viewer", None) is None:
        request.state.viewer = await anyio.to_thread.run_sync(session_viewer, request)
    response = error_page(request, exc)
    response.headers.update(headers or {})
    return response


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into the one shape."""

    @app.exception_handler(ArchiveError)
    async def _archive(request: Request, exc: ArchiveError) -> Response:
        return await _refused_caller(request, exc.status) or archive_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        refused = await _refused_caller(request, 422)
        if refused is not None:
            return refused
        parts = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()))
            parts.append(f"{where}: {err.get('msg')}")
        return error_response(422, "invalid_request", "; ".join(parts) or "invalid request")

    @app.exception_handler(ClientDisconnect)
    async def _disconnect(_request: Request, _exc: ClientDisconnect) -> JSONResponse:
        # Reaches the client only when it half-closed (api/http.py); otherwise no one listens.
        return error_response(400, "upload_incomplete", f"{_BODY_ENDED}; nothing was kept")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        refused = await _refused_caller(request, exc.status_code)
        if refused is not None:
            return refused
        if exc.status_code == 405:
            # Starlette's Allow names only the first route of the path; a path such as
            # /api/v1/cases has one route per method, so gather them all.
            routes = [route for route in _leaf_routes(request.app.router.routes)
                      if getattr(route, "methods", None) and route.matches(request.scope)[0] != Match.NONE]
            allowed = {"Allow": ", ".join(sorted({m for route in routes for m in route.methods}))}
            message = f"{request.method} is not allowed here"
            if any(getattr(route, "serves_pages", False) for route in routes):
                return await _page(request, ArchiveError(message, code="method_not_allowed", status=405), allowed)
            return error_response(405, "method_not_allowed", message, allowed)
        if exc.status_code == 404 and _asks_for_a_page(request):
            return await _page(request, ArchiveError(f"no page at {request.url.path}", code="not_found", status=404))
        if exc.status_code == 400 and exc.__cause__ is not None:
            # FastAPI's "error parsing the body": a body cut short, or one that is not JSON at all.
            if isinstance(exc.__cause__, ClientDisconnect):
                return error_response(400, "upload_incomplete", f"{_BODY_ENDED}; nothing was kept")
            return error_response(422, "invalid_request", f"the request body is not valid JSON: {exc.__cause__}")
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(IntegrityError)
    async def _integrity(_request: Request, exc: IntegrityError) -> JSONResponse:
        # Two requests racing to create the same row: the loser gets a conflict, not a 500.
        conflict = unique_conflict(exc)
        if conflict is None:
            log.exception("integrity error", exc_info=exc)
            return error_response(500, "internal_error", "internal error; it has been logged")
        return error_response(conflict.status, conflict.code, conflict.message)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        try:
            translate_busy(exc)  # a busy database met outside a session's own handling
        except DatabaseBusy as busy:
            return await _archive(request, busy)
        log.exception("unexpected error")
        return error_response(500, "internal_error", "internal error; it has been logged")
