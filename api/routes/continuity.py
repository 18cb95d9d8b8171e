"""Device clocks, enforcement actions, the continuity report and its gaps.

Every change that can move a gap requests a re-analysis in its own transaction; the
analysis task is enqueued only after that transaction commits.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import CurrentUser, ServicesDep, SessionDep
from api.schemas import (
    ActionCreate,
    ActionEnd,
    ActionPublic,
    ContinuityPublic,
    DevicePublic,
    DeviceUpdate,
    ErrorResponse,
    ExplanationCreate,
    GapPublic,
    ReviewCreate,
)
from archive import work
from archive.continuity import devices, gaps
from archive.continuity.report import continuity_report, people_of
from archive.identity.users import can_see_case
from archive.models import Case

router = APIRouter(prefix="/api/v1", tags=["continuity"])
ERRORS = {s: {"model": ErrorResponse} for s in (401, 403, 404, 409, 422)}


@router.put("/devices/{device_id}", response_model=DevicePublic, responses=ERRORS)
def put_device(
    device_id: str, body: DeviceUpdate, session: SessionDep, user: CurrentUser, services: ServicesDep
) -> DevicePublic:
    """Set a device's clock offset: S > 0 means its clock runs ahead (true = device - S)."""
    device, cases = devices.set_device_clock(
        session, user=user, device_id=device_id, offset_seconds=body.clock_offset_seconds, source=body.source,
        description=body.description,
    )
    # The reply names the cases the caller may see; all of them are analysed again.
    shown = [case_id for case_id in cases if can_see_case(user, session.get(Case, case_id))]
    reply = DevicePublic(
        id=device.id, clock_offset_seconds=device.clock_offset_seconds, source=device.offset_source,
        description=device.description, updated_at=device.updated_at, cases=shown,
    )
    session.commit()
    for case_id in cases:
        services.enqueue(work.ANALYSE_CONTINUITY, case_id)
    return reply


@router.post("/cases/{case_id}/actions", status_code=201, response_model=ActionPublic, responses=ERRORS)
def create_action(
    case_id: str, body: ActionCreate, session: SessionDep, user: CurrentUser, services: ServicesDep
) -> ActionPublic:
    """Record an enforcement action whose window its devices must cover end to end."""
    action = devices.create_action(
        session, user=user, case_id=case_id, kind=body.kind, start=body.start, end=body.end,
        devices=body.devices, description=body.description, record_item=body.record_item,
    )
    reply = ActionPublic.of(action)
    session.commit()
    services.enqueue(work.ANALYSE_CONTINUITY, case_id)
    return reply


@router.post("/actions/{action_id}/end", response_model=ActionPublic, responses=ERRORS)
def set_action_end(action_id: str, body: ActionEnd, session: SessionDep, user: CurrentUser,
                   services: ServicesDep) -> ActionPublic:
    """Give an action whose record was to end its window (and never will: it carries no signing
    time after the action's start) an end of its own, with a reason; 409 ``action_end_known``
    for a window that has one."""
    action = devices.set_action_end(session, user=user, action_id=action_id, end=body.end, reason=body.reason)
    reply = ActionPublic.of(action)
    session.commit()
    services.enqueue(work.ANALYSE_CONTINUITY, action.case_id)
    return reply


@router.get("/cases/{case_id}/actions", response_model=list[ActionPublic], responses=ERRORS)
def list_actions(case_id: str, session: SessionDep, user: CurrentUser) -> list[ActionPublic]:
    """The enforcement actions of a case."""
    return [ActionPublic.of(a) for a in devices.list_actions(session, user=user, case_id=case_id)]


@router.get("/cases/{case_id}/continuity", response_model=ContinuityPublic, responses=ERRORS)
def get_continuity(case_id: str, session: SessionDep, user: CurrentUser, history: bool = False) -> ContinuityPublic:
    """Every current gap of the case (``history=true`` adds those no longer found)."""
    report = continuity_report(session, user=user, case_id=case_id, include_history=history)
    return ContinuityPublic(
        case_id=report.case_id, complete=report.complete, pending=report.pending, analysed_at=report.analysed_at,
        summary=report.summary, gaps=[GapPublic.of(g, report.people) for g in report.gaps],
        outstanding=list(report.outstanding),
    )


@router.get("/gaps/{gap_id}", response_model=GapPublic, responses=ERRORS)
def get_gap(gap_id: str, session: SessionDep, user: CurrentUser) -> GapPublic:
    """One gap, with its explanation and review."""
    return _public(session, gaps.load_gap(session, user=user, gap_id=gap_id))


@router.post("/gaps/{gap_id}/explanation", response_model=GapPublic, responses=ERRORS)
def explain_gap(gap_id: str, body: ExplanationCreate, session: SessionDep, user: CurrentUser) -> GapPublic:
    """An officer of the case's unit explains why the record is interrupted."""
    reply = _public(session, gaps.explain_gap(session, user=user, gap_id=gap_id, reason=body.reason))
    session.commit()
    return reply


@router.post("/gaps/{gap_id}/review", response_model=GapPublic, responses=ERRORS)
def review_gap(gap_id: str, body: ReviewCreate, session: SessionDep, user: CurrentUser) -> GapPublic:
    """A reviewer of the case's unit accepts or rejects a gap's explanation."""
    reply = _public(
        session, gaps.review_gap(session, user=user, gap_id=gap_id, accept=body.accept, comment=body.comment)
    )
    session.commit()
    return reply


def _public(session: Any, gap: Any) -> GapPublic:
    return GapPublic.of(gap, people_of(session, [gap]))
