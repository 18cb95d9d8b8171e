"""Court requests: a court user asks for a certified export of a case by its number.

* **Request.** Only court users. A case number is unique within its unit only, so a court
  names the unit too (``unit``, as the decision document names it), and must when more than
  one unit uses the number (422 ``unit_required``, naming no unit). Otherwise the answer is the
  same whether or not the number (and unit) names a case (a new request id, nothing else), and
  both paths do the same work (one look-up, one row, one custody entry), so neither the reply
  nor its timing tells a court which case numbers exist. The request reaches the reviewers of
  the case's unit.
* **List.** A court user sees their own requests (never the case id); a reviewer (or an
  admin) those naming a case of their unit, with its ``case_id``.
* **Decide.** A reviewer of the case's unit fulfils a request by requesting an export for
  the court user (:func:`fulfil`, called by ``request_export``; the usual approval by a
  second reviewer follows) or declines it with a reason. Every step is a custody entry.
* **Reopen.** An export that fails, is withdrawn or is found altered puts the request it
  fulfilled back to pending (:func:`reopen`); the reconciler reopens any request an earlier
  release left fulfilled by such an export (:func:`reopen_left_fulfilled`).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from archive.cases.service import cases_numbered
from archive.custody import ledger
from archive.db import Database, lock_row
from archive.errors import Conflict, InvalidInput, NotFound
from archive.exports.models import CourtRequest, CourtRequestStatus
from archive.identity.users import actor_name, can_see_case, require_role, unit_scope, written_text
from archive.models import Case, ExportRequest, Role, User, utcnow

ENDED_UNBUILT = ("failed", "withdrawn")
"""Export states that answer no court request: a request they fulfilled waits again."""

REVIEWERS = {Role.reviewer, Role.admin}


def _text(value: str, *, name: str, limit: int) -> str:
    return written_text(value, code=f"invalid_{name}", what=name, limit=limit)


def submit(session: Session, *, user: User, case_number: str, court_reference: str, legal_basis: str,
           unit: str | None = None) -> CourtRequest:
    """Record a court user's request for the case numbered ``case_number`` in ``unit`` (the
    unit's name; may be left out while only one unit uses the number); the same reply whether
    or not the case exists."""
    require_role(user, {Role.court}, doing="request exports by case number")
    number = _text(case_number, name="case_number", limit=100)
    unit = _text(unit, name="unit", limit=200) if unit is not None else None
    cases = cases_numbered(session, case_number=number, unit=unit)
    if len(cases) > 1:
        raise InvalidInput(f"more than one unit numbers a case {number}: name the unit that numbered it (unit)",
                           code="unit_required")
    request = CourtRequest(
        case_number=number, court_reference=_text(court_reference, name="court_reference", limit=200),
        legal_basis=_text(legal_basis, name="legal_basis", limit=2000), requested_by=user.id,
        status=CourtRequestStatus.pending,
    )
    request.case_id = cases[0].id if cases else None
    session.add(request)
    session.flush()
    # Entries naming no case are read by administrators only: a court user's request for a
    # number that does not exist is recorded, not shown to anyone in a unit.
    ledger.append(
        session, actor=actor_name(user), action="court_request_received", case_id=request.case_id,
        details={"request": request.id, "case_number": number, "unit": unit, "court_reference": request.court_reference,
                 "legal_basis": request.legal_basis},
    )
    return request


def list_requests(session: Session, *, user: User, status: CourtRequestStatus | None = None,
                  case_id: str | None = None, limit: int = 200) -> list[CourtRequest]:
    """A court user's own requests; for reviewers and admins, those of their unit's cases."""
    query = select(CourtRequest).order_by(CourtRequest.created_at.desc()).limit(limit)
    if user.role == Role.court:
        query = query.where(CourtRequest.requested_by == user.id)
    else:
        require_role(user, REVIEWERS, doing="read court requests")
        query = query.join(Case, Case.id == CourtRequest.case_id).where(unit_scope(user))
    if status is not None:
        query = query.where(CourtRequest.status == status)
    if case_id is not None:
        query = query.where(CourtRequest.case_id == case_id)
    return list(session.execute(query).scalars())


def references_of(session: Session, *, export_ids: Iterable[str]) -> dict[str, str]:
    """The court's own reference (typed with its request) of each export that answers a court
    request, by export id; an export made for no request (or one whose request waits again,
    its export having failed) has none."""
    wanted = set(export_ids)
    if not wanted:
        return {}
    rows = session.execute(select(CourtRequest.export_id, CourtRequest.court_reference)
                           .where(CourtRequest.export_id.in_(wanted)))
    return {export_id: reference for export_id, reference in rows}


def _pending_for_reviewer(session: Session, *, user: User, request_id: str) -> CourtRequest:
    """The request, locked, if ``user`` reviews its case's unit and it still waits."""
    require_role(user, REVIEWERS, doing="decide court requests")
    request = lock_row(session, CourtRequest, request_id)
    case = session.get(Case, request.case_id) if request is not None and request.case_id else None
    if case is None or not can_see_case(user, case):
        raise NotFound(f"no court request {request_id} visible to you", code="court_request_not_found")
    if request.status != CourtRequestStatus.pending:
        raise Conflict(f"court request {request_id} is already {request.status.value}", code="court_request_decided")
    return request


def decline(session: Session, *, user: User, request_id: str, reason: str) -> CourtRequest:
    """A reviewer of the case's unit declines a court request, saying why."""
    request = _pending_for_reviewer(session, user=user, request_id=request_id)
    request.reason = _text(reason, name="reason", limit=2000)
    request.status = CourtRequestStatus.declined
    request.decided_by, request.decided_at = user.id, utcnow()
    ledger.append(
        session, actor=actor_name(user), action="court_request_declined", case_id=request.case_id,
        details={"request": request.id, "reason": request.reason},
    )
    return request


def check_fulfilment(session: Session, *, user: User, request_id: str, case_id: str) -> CourtRequest:
    """The pending request an export of ``case_id`` answers (for its requester only)."""
    request = _pending_for_reviewer(session, user=user, request_id=request_id)
    if request.case_id != case_id:
        raise InvalidInput(f"court request {request_id} is not for this case", code="court_request_other_case")
    return request


def fulfil(session: Session, *, user: User, request: CourtRequest, export: ExportRequest) -> None:
    """Mark ``request`` answered by ``export`` (requested in the same transaction)."""
    request.status = CourtRequestStatus.fulfilled
    request.export_id = export.id
    request.decided_by, request.decided_at = user.id, utcnow()
    ledger.append(
        session, actor=actor_name(user), action="court_request_fulfilled", case_id=request.case_id,
        details={"request": request.id, "export": export.id},
    )


def reopen(session: Session, *, export: ExportRequest, actor: str) -> int:
    """``export`` failed (or its ZIP was found altered): a court request it fulfilled waits
    again for a reviewer of the case's unit, who fulfils it anew or declines it. A
    ``court_request_reopened`` custody entry names the failed export and its reason.
    Returns how many requests were reopened."""
    requests = session.execute(select(CourtRequest).where(
        CourtRequest.export_id == export.id, CourtRequest.status == CourtRequestStatus.fulfilled,
    ).with_for_update()).scalars().all()
    for request in requests:
        request.status = CourtRequestStatus.pending
        request.export_id = request.decided_by = request.decided_at = None
        ledger.append(
            session, actor=actor, action="court_request_reopened", case_id=request.case_id,
            details={"request": request.id, "export": export.id, "reason": export.error},
        )
    return len(requests)


def left_fulfilled(session: Session, *, limit: int = 100) -> list[str]:
    """Ids of exports that ended unbuilt (:data:`ENDED_UNBUILT`) while a court request is still
    marked fulfilled by them: requests left so by releases that did not yet :func:`reopen`
    them when their export failed, which nothing else would ever move again."""
    return list(session.execute(
        select(ExportRequest.id).join(CourtRequest, CourtRequest.export_id == ExportRequest.id)
        .where(CourtRequest.status == CourtRequestStatus.fulfilled, ExportRequest.status.in_(ENDED_UNBUILT))
        .distinct().limit(limit)
    ).scalars())


def reopen_left_fulfilled(db: Database, *, actor: str) -> int:
    """:func:`reopen` the court requests still fulfilled by an export that ended unbuilt (see
    :func:`left_fulfilled`), with the same ``court_request_reopened`` entry a failing export
    writes; returns how many were reopened. Looks first without the write lock, so the usual
    call, with nothing to reopen, writes nothing. Safe to run twice and by several workers at
    once: :func:`reopen` takes each request under its row lock only while it is still
    fulfilled, so one reopened by another transaction meanwhile is left alone."""
    with db.read() as session:
        export_ids = left_fulfilled(session)
    if not export_ids:
        return 0
    reopened = 0
    with db.session() as session:
        for export_id in export_ids:
            export = session.get(ExportRequest, export_id)
            if export is not None and export.status in ENDED_UNBUILT:
                reopened += reopen(session, export=export, actor=actor)
    return reopened
