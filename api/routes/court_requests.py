"""Court requests: a court user asks for a certified export by case number; the case's unit's
reviewers fulfil it (``POST /api/v1/cases/{case_id}/exports`` with ``request``) or decline it."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from api.deps import CurrentUser, SessionDep
from api.schemas import ErrorResponse
from archive.exports import court_requests
from archive.exports.models import CourtRequest
from archive.identity.users import user_name
from archive.models import Role, User

router = APIRouter(prefix="/api/v1/export-requests", tags=["exports"])
ERRORS = {s: {"model": ErrorResponse} for s in (401, 403, 404, 409, 422)}


class CourtRequestCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    case_number: str = Field(min_length=1, max_length=100, description="The case number as the court knows it.")
    unit: str | None = Field(default=None, min_length=1, max_length=200, description=(
        "The unit that numbered the case, by name (a case number is unique within its unit only); "
        "422 `unit_required` without it when more than one unit uses the number."))
    court_reference: str = Field(min_length=1, max_length=200, description="The court's own case reference.")
    legal_basis: str = Field(min_length=1, max_length=2000, description="The legal basis of the request (调取/复制).")


class CourtRequestAccepted(BaseModel):
    id: str
    status: str


class CourtRequestPublic(BaseModel):
    id: str
    case_number: str
    case_id: str | None = Field(description="Only for reviewers and admins; never shown to the court.")
    court_reference: str
    legal_basis: str
    requested_by: str | None
    created_at: datetime
    status: str
    export_id: str | None
    decided_by: str | None
    decided_at: datetime | None
    reason: str | None

    @classmethod
    def of(cls, session, request: CourtRequest, *, viewer: User) -> CourtRequestPublic:  # type: ignore[no-untyped-def]
        return cls(
            id=request.id, case_number=request.case_number,
            case_id=None if viewer.role == Role.court else request.case_id,
            court_reference=request.court_reference, legal_basis=request.legal_basis,
            requested_by=user_name(session, request.requested_by), created_at=request.created_at,
            status=request.status.value, export_id=request.export_id,
            decided_by=user_name(session, request.decided_by), decided_at=request.decided_at, reason=request.reason,
        )


class DeclineBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=2000)


@router.post("", status_code=202, response_model=CourtRequestAccepted, responses=ERRORS)
def submit_request(body: CourtRequestCreate, session: SessionDep, user: CurrentUser) -> CourtRequestAccepted:
    """A court user's request: 202 with its id whether or not the case number exists."""
    request = court_requests.submit(session, user=user, case_number=body.case_number, unit=body.unit,
                                    court_reference=body.court_reference, legal_basis=body.legal_basis)
    return CourtRequestAccepted(id=request.id, status="pending")


@router.get("", response_model=list[CourtRequestPublic], responses=ERRORS)
def list_requests(session: SessionDep, user: CurrentUser) -> list[CourtRequestPublic]:
    """A court user's own requests; a reviewer's (or admin's) those of their unit's cases."""
    return [CourtRequestPublic.of(session, r, viewer=user) for r in court_requests.list_requests(session, user=user)]


@router.post("/{request_id}/decline", response_model=CourtRequestPublic, responses=ERRORS)
def decline_request(request_id: str, body: DeclineBody, session: SessionDep, user: CurrentUser) -> CourtRequestPublic:
    """A reviewer of the case's unit declines the request, with a reason (a custody entry)."""
    request = court_requests.decline(session, user=user, request_id=request_id, reason=body.reason)
    return CourtRequestPublic.of(session, request, viewer=user)
