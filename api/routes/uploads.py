"""Resumable uploads speaking tus 1.0 at ``/api/v1/uploads`` (design in :mod:`ingest.tus`).

Standard tus clients (tuspy, tus-js-client, Uppy) work unchanged: send the bearer token
as a header and the evidence description as ``Upload-Metadata`` (``case_id``, ``kind``,
``filename``, optional ``sha256``, ``device_id``, ``recorded_start``). Every response
carries ``Tus-Resumable``; errors keep the JSON error shape with tus status codes (409
offset mismatch, 410 expired/failed, 412 protocol version, 415 content type, 423 busy,
460 checksum mismatch); a PATCH whose body ends early (dropped, or half-closed by the
client) answers 400 ``upload_incomplete`` after recording what arrived, so HEAD tells the
client where to resume. The completing PATCH answers with ``Evidence-Item-Id``; ``GET``
on an upload URL (not part of tus) shows its state as JSON.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from email.utils import format_datetime
from typing import Any

import pydantic.dataclasses
from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute

from api.deps import CurrentUserId, ServicesDep, credential_check, refuse_content_coding, refuse_repeated_header
from api.errors import archive_error_response, error_response
from api.idempotent import REPLAY_DOC, IdempotencyKeyHeader, idempotent, replayed
from api.schemas import ErrorResponse
from api.streaming import consume_body
from archive import idempotency, work
from archive.errors import ArchiveError, InvalidInput
from archive.models import User
from ingest import tus

log = logging.getLogger(__name__)

LIVE = tus.LiveUploads()
"""Running hashes and write locks of the uploads this process is receiving."""

OFFSET_STREAM = "application/offset+octet-stream"


class TusRoute(APIRoute):
    """Adds ``Tus-Resumable`` to every response, errors included."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def tus_handler(request: Request) -> Response:
            try:
                response = await handler(request)
            except ArchiveError as exc:
                headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
                if exc.status == 412:
                    headers["Tus-Version"] = tus.TUS_VERSION
                response = error_response(exc.status, exc.code, exc.message, headers)
            response.headers["Tus-Resumable"] = tus.TUS_VERSION
            return response

        return tus_handler


router = APIRouter(prefix="/api/v1/uploads", tags=["uploads"], route_class=TusRoute)
ERRORS = {s: {"model": ErrorResponse} for s in (400, 401, 403, 404, 408, 409, 410, 412, 413, 415, 423, 460)}


@pydantic.dataclasses.dataclass(frozen=True)
class UploadPublic(tus.UploadInfo):
    """An upload's state as JSON: the fields of :class:`ingest.tus.UploadInfo`."""


def _require_tus(request: Request) -> None:
    if request.headers.get("tus-resumable") != tus.TUS_VERSION:
        raise InvalidInput(
            f"Tus-Resumable: {tus.TUS_VERSION} is required", code="tus_version_unsupported", status=412
        )


def _int_header(request: Request, name: str, *, required: bool = True) -> int | None:
    code = name.lower().replace('-', '_')
    refuse_repeated_header(request, name, code=f"invalid_{code}", status=400)
    value = request.headers.get(name)
    if value is None:
        if required:
            raise InvalidInput(f"{name} header is required", code=f"missing_{code}", status=400)
        return None
    # isascii: str.isdigit() accepts digits int() refuses, like superscripts. At most 19 digits
    # (past any size a store holds): int() refuses text over 4,300 digits with a ValueError (500).
    if not (value.isascii() and value.isdigit()) or len(value) > 19:
        raise InvalidInput(f"{name} must be a non-negative integer of at most 19 digits", code=f"invalid_{code}",
                           status=400)
    return int(value)


def _header(name: str, schema: dict[str, Any], description: str, *, required: bool = True) -> dict[str, Any]:
    return {"name": name, "in": "header", "required": required, "schema": schema, "description": description}


# tus headers, read from the request by the routes (tus answers 412/400 for them, not 422),
# listed here so /openapi.json says what a client must send.
TUS_RESUMABLE = _header("Tus-Resumable", {"type": "string", "enum": [tus.TUS_VERSION]}, "tus protocol version")
_CREATE = {"parameters": [
    TUS_RESUMABLE,
    _header("Upload-Length", {"type": "integer", "minimum": 0, "maximum": tus.MAX_SIZE}, "Size of the whole upload"),
    _header("Upload-Metadata", {"type": "string"},
            "Comma-separated `key base64(value)` pairs: case_id, kind, filename, optional sha256, device_id, recorded_start"),
]}
_PATCH = {"parameters": [
    TUS_RESUMABLE,
    _header("Upload-Offset", {"type": "integer", "minimum": 0}, "Where this body starts"),
    _header("Upload-Checksum", {"type": "string"}, "`<algorithm> <base64 digest>` of this body", required=False),
], "requestBody": {"required": True, "content": {OFFSET_STREAM: {"schema": {"type": "string", "format": "binary"}}}}}
_TUS_ONLY = {"parameters": [TUS_RESUMABLE]}


def _upload_headers(info: tus.UploadInfo) -> dict[str, str]:
    headers = {"Upload-Offset": str(info.offset), "Upload-Length": str(info.length), "Cache-Control": "no-store"}
    if info.status == "open":
        headers["Upload-Expires"] = format_datetime(info.expires_at, usegmt=True)
    if info.item_id:
        headers["Evidence-Item-Id"] = info.item_id
    return headers


def _options() -> Response:
    return Response(status_code=204, headers={
        "Tus-Version": tus.TUS_VERSION, "Tus-Extension": ",".join(tus.EXTENSIONS),
        "Tus-Checksum-Algorithm": ",".join(tus.CHECKSUM_ALGORITHMS), "Tus-Max-Size": str(tus.MAX_SIZE),
    })


@router.options("", status_code=204)
def options_collection() -> Response:
    """tus discovery: version, extensions, checksum algorithms (no token needed)."""
    return _options()


@router.options("/{upload_id}", status_code=204)
def options_upload(upload_id: str) -> Response:
    """tus discovery on an upload URL."""
    return _options()


async def _receive(
    request: Request, services: ServicesDep, user_id: str, upload_id: str, offset: int
) -> tus.AppendResult:
    """Stream the request body into the upload at ``offset``."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != OFFSET_STREAM:
        raise InvalidInput(f"Content-Type must be {OFFSET_STREAM}", code="unsupported_media_type", status=415)
    refuse_content_coding(request)
    checksum = tus.parse_checksum(request.headers.get("upload-checksum"))
    content_length = _int_header(request, "Content-Length", required=False)

    def receive(chunks):  # type: ignore[no-untyped-def]
        return tus.append(
            db=services.db, store=services.store, live=LIVE, user_id=user_id, upload_id=upload_id, offset=offset,
            chunks=chunks, checksum=checksum, content_length=content_length,
            retention_days=services.settings.retention_days, expiry_hours=services.settings.upload_expiry_hours,
            idle_seconds=services.settings.upload_idle_seconds, still_allowed=still_allowed,
        )

    still_allowed = credential_check(services, request)
    result = await consume_body(request.stream(), receive, protocol="tus", idle=services.settings.upload_idle_seconds)
    if result.item_id:
        # After the commit inside tus.append; processing is idempotent, so a retry re-sends harmlessly.
        await run_in_threadpool(services.enqueue, work.PROCESS_ITEM, result.item_id)
    return result


@router.post("", status_code=201, responses={**ERRORS, 201: REPLAY_DOC}, openapi_extra=_CREATE)
async def create_upload(
    request: Request, services: ServicesDep, user_id: CurrentUserId, idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    """tus creation (and creation-with-upload): ``Upload-Length`` and ``Upload-Metadata``.

    With an ``Idempotency-Key``, a retried creation answers with the upload created first
    (its ``Location`` and current ``Upload-Offset``), so the client resumes it instead of
    starting a second one.
    """
    _require_tus(request)
    refuse_content_coding(request)  # before the upload is created: its body could not be kept
    if request.headers.get("upload-defer-length"):
        raise InvalidInput("Upload-Defer-Length is not supported; send Upload-Length", code="defer_length_unsupported", status=400)
    length = _int_header(request, "Upload-Length")
    # Sent once, like every tus header: fields joined by a proxy or read one by one would differ.
    refuse_repeated_header(request, "Upload-Metadata", code="invalid_metadata", status=400)
    metadata = tus.parse_metadata(request.headers.get("upload-metadata"))
    fingerprint = idempotency.fingerprint("POST", "/api/v1/uploads", {"length": length, "metadata": metadata})

    def describe(upload_id: str) -> tus.UploadInfo:
        with services.db.read() as session:
            return tus.UploadInfo.of(tus.load_upload(session, user=session.get(User, user_id), upload_id=upload_id))

    def create(held: idempotency.Claim | None) -> str:
        with services.db.session() as session:
            upload = tus.create_upload(
                session, user=session.get(User, user_id), store=services.store, length=length or 0,
                metadata=metadata, expiry_hours=services.settings.upload_expiry_hours,
            )
            if held is not None:
                # Recorded with the upload: a retry resumes this one even if the body below breaks.
                idempotency.record_reply(session, held, status=201, body=None,
                                         headers={"Location": f"/api/v1/uploads/{upload.id}"})
            return upload.id

    def complete(upload_id: str) -> None:
        item_id = tus.complete(
            db=services.db, store=services.store, live=LIVE, upload_id=upload_id,
            retention_days=services.settings.retention_days,
        )
        services.enqueue(work.PROCESS_ITEM, item_id)

    # Database work runs in threads: this route is async, and a wait on the event loop stalls all.
    async with idempotent(services.db, user_id=user_id, header=idempotency_key, fingerprint=fingerprint) as held:
        if held is not None and held.replay is not None:
            upload_id = held.replay.headers["Location"].rsplit("/", 1)[-1]
            current = _upload_headers(await run_in_threadpool(describe, upload_id))
            del current["Cache-Control"]
            return replayed(held.replay, current)
        upload_id = await run_in_threadpool(create, held)
    if length == 0:
        await run_in_threadpool(complete, upload_id)
    elif _int_header(request, "Content-Length", required=False) or request.headers.get("transfer-encoding"):
        try:
            await _receive(request, services, user_id, upload_id, 0)
        except ArchiveError as exc:
            # The upload was created: its URL goes with the error, or the client could neither
            # resume it nor terminate it (it would wait, open, until it expired).
            reply = archive_error_response(exc)
            try:
                info = await run_in_threadpool(describe, upload_id)
            except ArchiveError:
                return reply  # not resumable after all (it expired or became evidence)
            reply.headers.update({k: v for k, v in _upload_headers(info).items() if k != "Cache-Control"})
            reply.headers["Location"] = f"/api/v1/uploads/{upload_id}"
            return reply
    info = await run_in_threadpool(describe, upload_id)
    headers = _upload_headers(info)
    del headers["Cache-Control"]
    headers["Location"] = f"/api/v1/uploads/{upload_id}"
    return Response(status_code=201, headers=headers)


@router.head("/{upload_id}", responses=ERRORS, openapi_extra=_TUS_ONLY)
def head_upload(upload_id: str, request: Request, services: ServicesDep, user_id: CurrentUserId) -> Response:
    """tus core: where to resume (``Upload-Offset``) and the announced ``Upload-Length``."""
    _require_tus(request)
    with services.db.read() as session:
        info = tus.status(session, user=session.get(User, user_id), upload_id=upload_id)
    if info.status == "open" and info.offset == info.length:
        # Every byte is here, yet it is not evidence: its last PATCH's completion failed after
        # the bytes were recorded. The client, told the offset equals the length, sends
        # nothing more: the server finishes it now (a refusal for good shows as the upload's).
        try:
            item_id = tus.finish_received(db=services.db, store=services.store, live=LIVE, upload_id=upload_id,
                                          retention_days=services.settings.retention_days,
                                          idle_seconds=services.settings.upload_idle_seconds)
        except ArchiveError as exc:
            log.warning("upload %s: completion on HEAD failed (%s)", upload_id, exc.code)
            item_id = None
        if item_id:
            services.enqueue(work.PROCESS_ITEM, item_id)
        with services.db.read() as session:
            info = tus.status(session, user=session.get(User, user_id), upload_id=upload_id)
    return Response(status_code=200, headers=_upload_headers(info))


@router.patch("/{upload_id}", status_code=204, responses=ERRORS, openapi_extra=_PATCH)
async def patch_upload(upload_id: str, request: Request, services: ServicesDep, user_id: CurrentUserId) -> Response:
    """tus core: append the body at ``Upload-Offset`` (optionally checked by ``Upload-Checksum``)."""
    _require_tus(request)
    offset = _int_header(request, "Upload-Offset") or 0
    result = await _receive(request, services, user_id, upload_id, offset)
    return Response(status_code=204, headers=_upload_headers(result.upload))


@router.delete("/{upload_id}", status_code=204, responses=ERRORS, openapi_extra=_TUS_ONLY)
def delete_upload(upload_id: str, request: Request, services: ServicesDep, user_id: CurrentUserId) -> Response:
    """tus termination: drop an unfinished upload. Refused (409) once it became evidence."""
    _require_tus(request)
    tus.terminate(db=services.db, store=services.store, live=LIVE, user_id=user_id, upload_id=upload_id,
                  idle_seconds=services.settings.upload_idle_seconds)
    return Response(status_code=204)


@router.get("/{upload_id}", response_model=UploadPublic, responses=ERRORS)
def get_upload(upload_id: str, services: ServicesDep, user_id: CurrentUserId) -> UploadPublic:
    """The upload's state as JSON (not part of tus): offset, status, item id once complete."""
    with services.db.read() as session:
        upload = tus.load_upload(session, user=session.get(User, user_id), upload_id=upload_id)
        return UploadPublic.of(upload)
