"""Web pages for reviewers and officers: the cases of their unit and one case's record.

Read-only views over the same services as the API. A browser signs in by pasting its
API token once; the token then travels in an HttpOnly, SameSite=Strict cookie, so no
other site can make the browser use it. Pages never stream evidence content (that
stays an API call and a custody entry); they show what was received, its hashes,
processing and seal state, the continuity gaps and the custody timeline, and refresh
themselves while work on the case is still running.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import select

from api.deps import ServicesDep, SessionDep, authenticated
from archive import cases as case_service
from archive.errors import ArchiveError, Unauthenticated
from archive.models import EvidenceItem, LedgerEntry, User
from archive.timefmt import gap_span, local_time
from archive.users import authenticate, load_case
from ingest import casework

COOKIE = "evidence_token"
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
router = APIRouter(include_in_schema=False)


def _size(n: int | None) -> str:
    if n is None:
        return ""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


templates.env.filters["size"] = _size
# Times in the corps' zone with the offset written (the one helper, archive.timefmt).
templates.env.filters["localtime"] = local_time
templates.env.globals["gap_span"] = gap_span
templates.env.filters["pretty"] = lambda text: ", ".join(f"{k}: {v}" for k, v in json.loads(text).items() if v not in (None, "", [], {}))


class LoginRequired(Exception):
    """The browser has no valid session cookie."""


def page_user(request: Request, services: ServicesDep, session: SessionDep) -> User:
    """The user whose token is in the session cookie; otherwise off to the sign-in page."""
    try:
        return authenticated(services, session, request.cookies.get(COOKIE))
    except Unauthenticated as exc:
        raise LoginRequired from exc


PageUser = Annotated[User, Depends(page_user)]


def install(app) -> None:  # type: ignore[no-untyped-def]
    """Add the pages and the redirect to the sign-in page."""

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, _exc: LoginRequired) -> Response:
        return RedirectResponse("/login", status_code=303)

    app.include_router(router)


@router.get("/", response_class=HTMLResponse)
def home() -> Response:
    return RedirectResponse("/cases", status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, error: str | None = None) -> Response:
    return templates.TemplateResponse(request, "login.html", {"error": error})


@router.post("/login")
def login(request: Request, session: SessionDep, token: Annotated[str, Form()]) -> Response:
    try:
        authenticate(session, token=token.strip())
    except Unauthenticated:
        return templates.TemplateResponse(request, "login.html", {"error": "That token is not valid."}, status_code=401)
    response = RedirectResponse("/cases", status_code=303)
    response.set_cookie(COOKIE, token.strip(), httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", max_age=12 * 3600)
    return response


@router.post("/logout")
def logout() -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response


@router.get("/cases", response_class=HTMLResponse)
def cases_page(request: Request, session: SessionDep, user: PageUser) -> Response:
    try:
        rows = case_service.list_cases(session, user=user, limit=500)
    except ArchiveError as exc:
        return _error(request, user, exc)
    return templates.TemplateResponse(request, "cases.html", {"user": user, "cases": rows, "zone": _zone(request)})


@router.get("/cases/{case_id}", response_class=HTMLResponse)
def case_page(case_id: str, request: Request, session: SessionDep, user: PageUser) -> Response:
    try:
        case = load_case(session, user=user, case_id=case_id)
    except ArchiveError as exc:
        return _error(request, user, exc)
    items = session.execute(
        select(EvidenceItem).where(EvidenceItem.case_id == case_id).order_by(EvidenceItem.received_at)
    ).scalars().unique().all()
    report = casework.build_report(session, case_id=case_id)
    entries = session.execute(
        select(LedgerEntry).where(LedgerEntry.case_id == case_id).order_by(LedgerEntry.seq)
    ).scalars().all()
    busy = report.pending or any(i.seal_status == "pending" for i in items)
    ids = {u for g in report.gaps for u in (g.explained_by, g.reviewed_by) if u}
    people = dict(session.execute(select(User.id, User.name).where(User.id.in_(ids))).all()) if ids else {}
    return templates.TemplateResponse(
        request, "case.html",
        {"user": user, "case": case, "items": items, "report": report, "entries": entries, "refresh": busy,
         "zone": _zone(request), "people": people},
    )


def _zone(request: Request) -> str:
    return request.app.state.services.settings.time_zone


def _error(request: Request, user: User, exc: ArchiveError) -> Response:
    return templates.TemplateResponse(
        request, "error.html", {"user": user, "error": exc}, status_code=exc.status
    )
