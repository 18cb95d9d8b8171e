"""Certified exports: request, approve, follow, download (bearer token or signed link)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from api.conditional import NOT_MODIFIED, PreconditionsDep
from api.deps import CurrentUser, ServicesDep, SessionDep, attach, identify, caller_checked
from api.schemas import ErrorResponse
from api.streaming import DeliveredResponse, closed_on_error, content_disposition, delivered, digest_headers
from archive import work
from archive.exports import access, links
from archive.exports import service as export_service
from archive.identity.users import actor_name, user_name
from archive.errors import Unauthenticated
from archive.models import Case, ExportRequest

router = APIRouter(tags=["exports"])
ERRORS = {s: {"model": ErrorResponse} for s in (401, 403, 404, 409, 422)}


class ExportCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[str] | None = Field(default=None, description="Item ids; omit for every item of the case.")
    recipient: str | None = Field(default=None, description="User name of the court user who receives it.")
    include_derived: StrictBool = False
    request: str | None = Field(default=None, description="The court request (from /api/v1/export-requests) this export answers.")


class ExportPublic(BaseModel):
    id: str
    case_id: str
    status: str
    requested_by: str | None
    recipient: str | None
    approved_by: str | None
    approved_at: datetime | None
    items: list[str] | None
    include_derived: bool
    progress: dict[str, Any]
    size: int | None
    sha256: str | None
    error: str | None
    created_at: datetime
    finished_at: datetime | None
    download_url: str | None

    @classmethod
    def of(cls, session, export: ExportRequest) -> ExportPublic:  # type: ignore[no-untyped-def]
        return cls(
            id=export.id, case_id=export.case_id, status=export.status,
            requested_by=user_name(session, export.requested_by), recipient=user_name(session, export.recipient_id),
            approved_by=user_name(session, export.approved_by),
            approved_at=export.approved_at, items=export.items, include_derived=export.include_derived,
            progress=export.progress or {}, size=export.size, sha256=export.sha256, error=export.error,
            created_at=export.created_at, finished_at=export.finished_at,
            download_url=f"/api/v1/exports/{export.id}/download" if export.status == "ready" else None,
        )


class LinkPublic(BaseModel):
    url: str
    expires_at: datetime


@router.post("/api/v1/cases/{case_id}/exports", status_code=201, response_model=ExportPublic, responses=ERRORS)
def request_export(case_id: str, body: ExportCreate, session: SessionDep, user: CurrentUser) -> ExportPublic:
    """Request a certified export for a court recipient; another reviewer must approve it."""
    export = export_service.request_export(
        session, user=user, case_id=case_id, items=body.items, recipient=body.recipient,
        include_derived=body.include_derived, court_request=body.request,
    )
    return ExportPublic.of(session, export)


@router.get("/api/v1/cases/{case_id}/exports", response_model=list[ExportPublic], responses=ERRORS)
def list_case_exports(case_id: str, session: SessionDep, user: CurrentUser) -> list[ExportPublic]:
    """Exports of one case visible to the caller."""
    return [ExportPublic.of(session, e) for e in access.list_exports(session, user=user, case_id=case_id)]


@router.get("/api/v1/exports", response_model=list[ExportPublic], responses=ERRORS)
def list_exports(
    session: SessionDep, user: CurrentUser, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[ExportPublic]:
    """Exports visible to the caller: a court user's own; their unit's for others."""
    return [ExportPublic.of(session, e) for e in access.list_exports(session, user=user, limit=limit)]


@router.post("/api/v1/exports/{export_id}/approve", response_model=ExportPublic, responses=ERRORS)
def approve_export(export_id: str, session: SessionDep, user: CurrentUser, services: ServicesDep) -> ExportPublic:
    """Approve an export (a reviewer of the unit who did not request it); the worker then builds it."""
    export = export_service.approve_export(session, user=user, export_id=export_id)
    reply = ExportPublic.of(session, export)
    session.commit()
    services.enqueue(work.BUILD_EXPORT, export_id)
    return reply


class WithdrawBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(max_length=2000, description="Why it is withdrawn (kept in the custody ledger)")


@router.post("/api/v1/exports/{export_id}/withdraw", response_model=ExportPublic, responses=ERRORS)
def withdraw_export(export_id: str, body: WithdrawBody, session: SessionDep, user: CurrentUser) -> ExportPublic:
    """Withdraw a requested export, with a reason (its requester, or a reviewer or administrator
    of the case's unit; 409 ``export_not_pending`` once approved): it will not be built, no longer
    keeps the case from closing, and a court request it answered waits for a reviewer again."""
    export = export_service.withdraw_export(session, user=user, export_id=export_id, reason=body.reason)
    return ExportPublic.of(session, export)


@router.get("/api/v1/exports/{export_id}", response_model=ExportPublic, responses=ERRORS)
def get_export(export_id: str, session: SessionDep, user: CurrentUser) -> ExportPublic:
    """An export's status (requested, approved, building, ready, failed) and progress."""
    return ExportPublic.of(session, access.load_export(session, user=user, export_id=export_id))


@router.post("/api/v1/exports/{export_id}/link", response_model=LinkPublic, responses=ERRORS)
def make_link(export_id: str, session: SessionDep, user: CurrentUser, services: ServicesDep) -> LinkPublic:
    """A signed download URL usable without a token until it expires (settings TTL)."""
    export = access.downloadable_export(session, user=user, export_id=export_id)
    link = links.make_link(settings=services.settings, export=export, user=user)
    return LinkPublic(url=link.path, expires_at=link.expires_at)


_bearer = HTTPBearer(auto_error=False)


DOWNLOAD = {**ERRORS, 200: {"content": {"application/zip": {}}}, **NOT_MODIFIED, 412: {"model": ErrorResponse}}


@router.get("/api/v1/exports/{export_id}/download", response_class=StreamingResponse, responses=DOWNLOAD)
@router.head("/api/v1/exports/{export_id}/download", response_class=StreamingResponse, responses=DOWNLOAD)
def download_export(
    export_id: str, request: Request, session: SessionDep, services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)], conditions: PreconditionsDep,
    expires: str | None = None, user: str | None = Query(default=None, alias="user"), sig: str | None = None,
) -> Response:
    """The export's ZIP (bearer token, or a signed link); each download is a custody entry.

    If-Match and If-None-Match are checked against the ETag (the ZIP's SHA-256) once the
    caller is authorised. A HEAD, a 304 or a 412 sends no ZIP, so it records no download.
    """
    link = [part for part in (expires, user, sig) if part is not None]
    if len(link) == 3 or (link and credentials is None):
        caller_checked(request)
        # A link cut short or altered (a mail client wrapping it, a clerk copying part of it) is
        # a bad link, not a missing token, whatever part of it is wrong.
        if expires is None or user is None or sig is None or not (expires.isascii() and expires.isdigit()) \
                or len(expires) > 18:
            raise Unauthenticated("the download link is incomplete or altered (expires, user and sig must all be "
                                  "as issued); ask for a new link", code="invalid_link")
        caller = links.check_link(
            session, settings=services.settings, export_id=export_id, expires=int(expires), user_id=user, sig=sig,
        )
        via = "signed_link"
    else:
        caller = attach(session, identify(services, request, credentials))
        via = "token"
    export = access.downloadable_export(session, user=caller, export_id=export_id)
    etag = f'"{export.sha256}"'
    if conditions.not_modified(etag):
        return Response(status_code=304, headers={"ETag": etag})
    # Named by its case's number, as a clerk files it (a "/" in a number would make a folder).
    case = session.get(Case, export.case_id)  # the access check loaded it already, mostly
    assert case is not None, "an export's case is a foreign key"
    name = f"{case.case_number.replace('/', '_')}-export-{export.id[:8]}.zip"
    headers = {
        "Content-Length": str(export.size), "ETag": etag, **digest_headers(export.sha256),
        "Content-Disposition": content_disposition(name, fallback=f"export-{export.id}.zip"),
    }
    if request.method == "HEAD":
        return Response(media_type="application/zip", headers=headers)
    # Opened before the download is recorded: a store that cannot give the ZIP answers 503
    # and leaves no export_downloaded entry for a download that sent nothing.
    body = export_service.served_export(services.db, services.store, export)
    actor, case_id = actor_name(caller), export.case_id
    with closed_on_error(body):
        session.close()  # its connection goes back first: a request never holds two
        started = export_service.record_download(services.db, export=export, actor=actor, via=via,
                                                 client=request.client.host if request.client else None)
    # export_downloaded only once the whole ZIP is handed over; a download cut short (the store
    # failing part-way, the clerk's connection lost) is recorded as interrupted, with its bytes.
    return DeliveredResponse(delivered(body, on_end=lambda sent, stopped: export_service.record_download_end(
        services.db, case_id=case_id, actor=actor, details=started, sent=sent, stopped=stopped,
    )), media_type="application/zip", headers=headers)
