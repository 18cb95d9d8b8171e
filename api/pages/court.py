"""The court user's page: request a case's certified export by its number, follow the
requests, download the exports shared with them and verify them offline."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from api.routes.trust import verifier_package
from api.deps import SessionDep
from api.pages.base import FormUser, PageUser, PageRoute, back_to, render
from api.pages.cases import court_request_rows
from api.pages.views import ExportRow
from archive.exports import court_requests
from archive.exports import access as export_access
from archive.identity.users import require_role, user_names
from archive.cases import service as case_service
from archive.models import Role

router = APIRouter(include_in_schema=False, route_class=PageRoute)


@router.get("/court", response_class=HTMLResponse)
def court_page(request: Request, session: SessionDep, user: PageUser, notice: str | None = None) -> Response:
    """The court user's requests and the exports shared with them, each export with the court's
    own reference of the request it answers."""
    require_role(user, {Role.court}, doing="use the court page")
    zone = request.app.state.services.settings.time_zone
    exports = export_access.list_exports(session, user=user, limit=500)
    people = user_names(session, {p for e in exports for p in (e.requested_by, e.recipient_id, e.approved_by) if p})
    numbers = case_service.case_numbers(session, case_ids=(e.case_id for e in exports))
    references = court_requests.references_of(session, export_ids=(e.id for e in exports))
    return render(request, "court.html", {
        "user": user, "notice": notice,
        "requests": court_request_rows(session, user=user, zone=zone, pending_only=False),
        "exports": [(numbers.get(e.case_id, ""), ExportRow.of(e, zone=zone, people=people, references=references))
                    for e in exports],
        "verifier_file": verifier_package()[0],
    })


@router.post("/court/requests")
def send_request(request: Request, session: SessionDep, user: FormUser, case_number: Annotated[str, Form()],
                 court_reference: Annotated[str, Form()], legal_basis: Annotated[str, Form()],
                 unit: Annotated[str, Form()] = "") -> Response:
    """Send a request (the same answer whether or not the case exists)."""
    court_requests.submit(session, user=user, case_number=case_number, court_reference=court_reference,
                          legal_basis=legal_basis, unit=unit.strip() or None)
    return back_to("/court", notice="request_sent")
