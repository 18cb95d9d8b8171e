"""The reviewer's pages: the queue of what waits for them, and the forms that request and
approve exports and decline court requests. Each goes through the exports domain, so the
rules (a second reviewer approves, unit scope) and the custody entries are the API's."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from api.deps import ServicesDep, SessionDep
from api.pages.base import FormUser, PageUser, PageRoute, back_to, render
from api.pages.cases import court_request_rows, receipt_rows
from api.pages.views import ExportRow, GapRow

from archive import work
from archive.cases import receipts, reviews
from archive.cases import service as case_service
from archive.continuity import gaps as gap_service
from archive.exports import court_requests
from archive.exports import access as export_access
from archive.exports import service as export_service
from archive.identity.users import require_role, user_names
from archive.models import Role

router = APIRouter(include_in_schema=False, route_class=PageRoute)


@router.get("/queue", response_class=HTMLResponse)
def queue_page(request: Request, session: SessionDep, user: PageUser, notice: str | None = None) -> Response:
    """Gap explanations to review, exports to approve (not one's own), court requests, legal
    reviews due (cases of the unit the reviewer does not handle)."""
    require_role(user, {Role.reviewer, Role.admin}, doing="work the review queue")
    zone = request.app.state.services.settings.time_zone
    gaps = gap_service.gaps_awaiting_review(session, user=user)
    numbers = case_service.case_numbers(session, case_ids=(g.case_id for g in gaps))
    people = user_names(session, {g.explained_by for g in gaps if g.explained_by})
    exports = [e for e in export_access.list_exports(session, user=user, limit=500)
               if e.status == "requested" and e.requested_by != user.id]
    export_people = user_names(session, {p for e in exports for p in (e.requested_by, e.recipient_id) if p})
    export_numbers = case_service.case_numbers(session, case_ids=(e.case_id for e in exports))
    return render(request, "queue.html", {
        "user": user, "notice": notice,
        # The queue shows no causes: no clips to name.
        "gaps": [(numbers.get(g.case_id, ""), g.case_id, GapRow.of(g, zone=zone, people=people, play=(None, None), clips={}))
                 for g in gaps],
        "exports": [(export_numbers.get(e.case_id, ""), ExportRow.of(e, zone=zone, people=export_people)) for e in exports],
        "requests": court_request_rows(session, user=user, zone=zone),
        "reviews_due": [{"id": c.id, "number": c.case_number, "title": c.title, "stage": c.stage.value,
                         "checkpoints": [cp.value for cp in due]} for c, due in reviews.reviews_due(session, user=user)],
    })


@router.post("/cases/{case_id}/exports")
def request_export(case_id: str, request: Request, session: SessionDep, user: FormUser,
                   recipient: Annotated[str, Form()] = "", court_request: Annotated[str, Form(alias="request")] = "",
                   items: Annotated[list[str] | None, Form()] = None) -> Response:
    """A reviewer requests an export for a court user (answering a court request, if chosen) of
    the whole case, or of the items chosen."""
    export_service.request_export(session, user=user, case_id=case_id, items=items or None,
                                  recipient=recipient.strip() or None, court_request=court_request or None)
    return back_to(f"/cases/{case_id}#exports", notice="export_requested")


@router.post("/exports/{export_id}/approve")
def approve_export(export_id: str, request: Request, session: SessionDep, services: ServicesDep,
                   user: FormUser) -> Response:
    """A second reviewer approves; the worker builds the export."""
    export = export_service.approve_export(session, user=user, export_id=export_id)
    case_id = export.case_id
    session.commit()
    services.enqueue(work.BUILD_EXPORT, export_id)
    return back_to(f"/cases/{case_id}#exports", notice="export_approved")


@router.post("/exports/{export_id}/withdraw")
def withdraw_export(export_id: str, request: Request, session: SessionDep, user: FormUser,
                    reason: Annotated[str, Form()] = "") -> Response:
    """The requester, or a reviewer of the unit, withdraws a requested export with a reason."""
    export = export_service.withdraw_export(session, user=user, export_id=export_id, reason=reason)
    return back_to(f"/cases/{export.case_id}#exports", notice="export_withdrawn")


@router.post("/export-requests/{request_id}/decline")
def decline_request(request_id: str, request: Request, session: SessionDep, user: FormUser,
                    reason: Annotated[str, Form()]) -> Response:
    """A reviewer declines a court request, with a reason."""
    court_requests.decline(session, user=user, request_id=request_id, reason=reason)
    return back_to("/queue", notice="request_declined")


@router.post("/cases/{case_id}/verify")
def verify_case(case_id: str, session: SessionDep, services: ServicesDep, user: FormUser) -> Response:
    """Queue a verification of the whole case; its receipt shows on the case page."""
    receipt = receipts.request_verification(session, user=user, case_id=case_id)
    receipt_id = receipt.id
    session.commit()
    services.enqueue(work.VERIFY_CASE, receipt_id)
    return back_to(f"/cases/{case_id}#verification", notice="verification_requested")


@router.get("/cases/{case_id}/verifications", response_class=HTMLResponse)
def verifications_fragment(case_id: str, request: Request, session: SessionDep, user: PageUser) -> Response:
    """The receipts alone, asked for while a verification runs."""
    zone = request.app.state.services.settings.time_zone
    found = receipt_rows(session, user=user, case_id=case_id, zone=zone)
    return render(request, "_verify.html", {"user": user, "case_id": case_id, "receipts": found})
