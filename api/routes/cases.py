"""Cases and the evidence they hold."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select

from api.deps import MAX_DB_INT, CurrentUser, CurrentUserId, ServicesDep, SessionDep
from api.schemas import CaseCreate, CasePublic, ErrorResponse, ItemPublic
from api.streaming import consume_body
from archive import cases as case_service
from archive import evidence as evidence_service
from archive import work
from archive.errors import InvalidInput
from archive.models import EvidenceItem, EvidenceKind, User
from archive.users import load_case

router = APIRouter(prefix="/api/v1/cases", tags=["cases"])
ERRORS = {s: {"model": ErrorResponse} for s in (401, 403, 404, 409, 422)}


@router.get("", response_model=list[CasePublic], responses=ERRORS)
def list_cases(
    session: SessionDep, user: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100, offset: Annotated[int, Query(ge=0, le=MAX_DB_INT)] = 0,
) -> list[CasePublic]:
    """Cases of the caller's unit (all cases for admins), newest first."""
    return [CasePublic.of(c) for c in case_service.list_cases(session, user=user, limit=limit, offset=offset)]


@router.post("", status_code=201, response_model=CasePublic, responses=ERRORS)
def create_case(body: CaseCreate, session: SessionDep, user: CurrentUser, services: ServicesDep) -> CasePublic:
    """Open a case in the caller's unit, with its one vault."""
    case = case_service.create_case(
        session, store=services.store, user=user, case_number=body.case_number, title=body.title
    )
    return CasePublic.of(case)


@router.get("/{case_id}", response_model=CasePublic, responses=ERRORS)
def get_case(case_id: str, session: SessionDep, user: CurrentUser) -> CasePublic:
    """One case, if it is the caller's unit's."""
    return CasePublic.of(load_case(session, user=user, case_id=case_id))


@router.get("/{case_id}/evidence", response_model=list[ItemPublic], responses=ERRORS)
def list_evidence(case_id: str, session: SessionDep, user: CurrentUser) -> list[ItemPublic]:
    """Every evidence item of a case, oldest first."""
    load_case(session, user=user, case_id=case_id)
    items = session.execute(
        select(EvidenceItem).where(EvidenceItem.case_id == case_id).order_by(EvidenceItem.received_at)
    ).scalars().unique()
    return [ItemPublic.of(i) for i in items]


@router.post(
    "/{case_id}/evidence", status_code=201, response_model=ItemPublic, responses=ERRORS,
    openapi_extra={"requestBody": {"required": True, "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}},
)
async def upload_evidence(
    case_id: str,
    request: Request,
    services: ServicesDep,
    user_id: CurrentUserId,
    kind: EvidenceKind,
    filename: Annotated[str, Query(min_length=1, max_length=1000)],
    sha256: Annotated[str | None, Query(description="Declared SHA-256 (hex); a mismatch keeps nothing")] = None,
    device_id: Annotated[str | None, Query(max_length=200)] = None,
    recorded_start: Annotated[datetime | None, Query(description="ISO 8601 with zone")] = None,
) -> ItemPublic:
    """Upload one original as the raw request body; it is hashed while it streams in."""
    incoming = evidence_service.IncomingEvidence(
        case_id=case_id, kind=kind, filename=filename, declared_sha256=sha256,
        device_id=device_id, recorded_start=recorded_start,
    )
    expected = request.headers.get("content-length")
    try:
        expected_size = int(expected) if expected is not None else None
    except ValueError as exc:
        raise InvalidInput("Content-Length is not a number", code="invalid_content_length") from exc
    def check() -> None:
        with services.db.read() as session:
            evidence_service.check_incoming(session, user=session.get(User, user_id), incoming=incoming)

    # Refuse before a byte is stored when the case or the parameters are wrong. Database
    # work runs in a thread: this route is async, and a wait on the event loop stalls all.
    await run_in_threadpool(check)

    def receive(chunks):  # type: ignore[no-untyped-def]
        return evidence_service.receive_original(
            db=services.db, store=services.store, user_id=user_id, incoming=incoming, chunks=chunks,
            retention_days=services.settings.retention_days, expected_size=expected_size,
        )

    item = await consume_body(request.stream(), receive, protocol="direct")

    def reply() -> ItemPublic:
        services.enqueue(work.PROCESS_ITEM, item.id)
        with services.db.read() as session:
            return ItemPublic.of(session.get(EvidenceItem, item.id))

    return await run_in_threadpool(reply)
