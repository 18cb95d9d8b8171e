"""Remote online inspections: an officer asks for one; anyone who may read the case follows it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.deps import CurrentUser, ServicesDep, SessionDep
from api.schemas import ErrorResponse
from archive import work
from archive.inspections import service
from archive.inspections.models import Inspection
from ingest.capture.browser import CAPTURE_PROBLEMS

router = APIRouter(prefix="/api/v1", tags=["inspections"])
ERRORS = {s: {"model": ErrorResponse} for s in (401, 403, 404, 409, 422)}


class CookieIn(BaseModel):
    name: str
    value: str
    domain: str | None = None
    path: str | None = None


class InspectionCreate(BaseModel):
    url: str = Field(description="The http(s) address to inspect, or an HLS (.m3u8) / HTTP-FLV (.flv) livestream "
                                 "(otherwise 422 invalid_url)")
    device_id: str = Field(description="The capture workstation: the capture window counts as its recording "
                                       "(1-200 printable characters, otherwise 422 invalid_device_id)")
    seconds: int = Field(description="How long to record: a page is watched this long after it has loaded, "
                                     "a stream's media is recorded this long; 1 to the settings' "
                                     "capture_max_seconds, otherwise 422 invalid_seconds", strict=True)
    note: str | None = None
    cookies: list[CookieIn] = Field(default_factory=list,
                                    description="A login session for the site; used once, never shown again")
    mode: str | None = Field(None, description="page or stream (default: stream for .m3u8/.flv addresses)")


class InspectionPublic(BaseModel):
    id: str
    case_id: str
    url: str
    device_id: str
    seconds: int
    note: str | None
    mode: str
    status: str
    """queued, capturing, sealing, done or failed (see ``error``)."""
    error: str | None
    error_code: str | None = None
    """What ``error`` says, as ``<family>.<code>`` of the sentence it is (e.g.
    ``inspection_problem.record_missing``: the bundle ``item`` is kept, its record is not made;
    ``capture_problem.navigation_failed``), or None for an error worded otherwise."""
    item: str | None
    """The WACZ item (its members: screenshots, screen recording, environment JSON)."""
    record: str | None
    """The PAdES-sealed inspection record PDF (远程勘验笔录)."""
    replay: str | None = None
    """The workspace page that replays the WACZ in a browser, once there is one."""
    summary: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, row: Inspection) -> InspectionPublic:
        return cls(id=row.id, case_id=row.case_id, url=row.url, device_id=row.device_id, seconds=row.seconds,
                   note=row.note, mode=row.mode, status=row.status.value, error=row.error,
                   error_code=_error_code(row.error), item=row.item_id,
                   record=row.record_item_id, replay=f"/evidence/{row.item_id}/replay" if row.item_id else None,
                   summary=row.summary or {}, created_at=row.created_at,
                   started_at=row.started_at, finished_at=row.finished_at)


def _error_code(error: str | None) -> str | None:
    for table in (service.INSPECTION_PROBLEMS, CAPTURE_PROBLEMS, work.STEP_REASONS):
        found = table.read(error) if error else None
        if found is not None:
            return f"{table.family}.{found[0]}"
    return None


@router.post("/cases/{case_id}/inspections", status_code=202, response_model=InspectionPublic, responses=ERRORS)
def request_inspection(case_id: str, body: InspectionCreate, session: SessionDep, user: CurrentUser,
                       services: ServicesDep) -> InspectionPublic:
    """Ask the archive to inspect a website or livestream for the case; a worker captures it."""
    row = service.request_inspection(
        session, user=user, case_id=case_id, url=body.url, device_id=body.device_id, seconds=body.seconds,
        note=body.note, settings=services.settings, mode=body.mode,
        cookies=[c.model_dump(exclude_none=True) for c in body.cookies])
    reply = InspectionPublic.of(row)
    session.commit()
    return reply


@router.get("/cases/{case_id}/inspections", response_model=list[InspectionPublic], responses=ERRORS)
def list_inspections(case_id: str, session: SessionDep, user: CurrentUser) -> list[InspectionPublic]:
    """The case's inspections, newest first."""
    return [InspectionPublic.of(r) for r in service.list_inspections(session, user=user, case_id=case_id)]


@router.get("/inspections/{inspection_id}", response_model=InspectionPublic, responses=ERRORS)
def get_inspection(inspection_id: str, session: SessionDep, user: CurrentUser) -> InspectionPublic:
    """An inspection's state and, when done, its WACZ item and record."""
    return InspectionPublic.of(service.get_inspection(session, user=user, inspection_id=inspection_id))
