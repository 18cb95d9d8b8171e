"""Web pages for reviewers and officers: the cases of their unit and one case's record.

Read-only views over the same services as the API. A browser signs in by pasting its
API token once (or through single sign-on); it then holds a short-lived server-side
session (archive/identity/signin.py) in an HttpOnly, SameSite=Strict cookie, Secure over TLS.
Every form carries the session's CSRF token in a hidden field and every POST checks it
(403 without), and the API accepts the same cookie (with the token in ``X-CSRF-Token``
for changes). A user who must give a second factor reaches nothing before giving it.
Pages never stream evidence content (that
stays an API call and a custody entry); they show what was received, its hashes,
processing and seal state, the continuity gaps and the custody timeline, and refresh
themselves while work on the case is still running.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import asdict
import secrets
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
import segno
from sqlalchemy.orm import Session

from api.deps import SESSION_COOKIE, Services, ServicesDep, SessionDep, attach, client_address, record_failure
from archive.cases import service as case_service
from archive.continuity.report import build_report
from archive.custody import ledger
from archive.evidence import items as evidence_service
from archive.identity import signin
from archive.identity import sso
from archive.errors import ArchiveError, Forbidden, TooManyAttempts, Unauthenticated
from archive.models import User, WebSession
from archive.timefmt import gap_span, local_time
from archive.identity.users import authenticate, load_case

OIDC_COOKIE = "evidence_oidc"
"""State, nonce and PKCE verifier of a single sign-on under way (this browser's only)."""
PRESESSION_COOKIE = "evidence_presession"
"""Random value that keys the sign-in form's CSRF token before there is a session."""
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
    """The browser has no valid session cookie (or must give its second factor: ``to``)."""

    def __init__(self, to: str = "/login"):
        super().__init__(to)
        self.to = to


class CsrfFailed(Exception):
    """A form was posted without its session's CSRF token."""


def _cookie_secret(request: Request) -> str | None:
    return request.cookies.get(SESSION_COOKIE) or request.cookies.get(PRESESSION_COOKIE)


def render(request: Request, name: str, context: dict, *, status_code: int = 200) -> Response:
    """A page whose forms carry the CSRF token of the browser's (pre-)session cookie."""
    secret = _cookie_secret(request)
    fresh = None
    if secret is None:
        secret = fresh = secrets.token_urlsafe(32)
    sso_offered = sso.enabled(request.app.state.services.settings)
    zone = request.app.state.services.settings.time_zone
    response = templates.TemplateResponse(
        request, name, {"zone": zone, **context, "csrf": signin.csrf_token(secret), "sso": sso_offered},
        status_code=status_code,
    )
    if fresh:
        response.set_cookie(PRESESSION_COOKIE, fresh, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https", max_age=3600)
    return response


def check_csrf(request: Request, csrf_token: Annotated[str | None, Form()] = None) -> None:
    """Every page form: the hidden ``csrf_token`` must match the browser's cookie."""
    if not signin.csrf_matches(_cookie_secret(request), csrf_token):
        raise CsrfFailed


Csrf = Depends(check_csrf)


def page_user(request: Request, session: SessionDep, services: ServicesDep) -> User:
    """The signed-in user of a session that gave every factor; otherwise off to sign in."""
    try:
        with services.db.read() as reading:
            user = signin.session_user(reading, secret=request.cookies.get(SESSION_COOKIE),
                                       totp_roles=services.settings.totp_roles)
        return attach(session, user)
    except Unauthenticated as exc:
        if exc.code == "second_factor_required":
            raise LoginRequired("/login/second-factor") from exc
        raise LoginRequired from exc


def pending_session(request: Request, session: SessionDep) -> WebSession:
    """A live session that may still owe its second factor (the second-factor pages)."""
    try:
        return signin.find_session(session, secret=request.cookies.get(SESSION_COOKIE))
    except Unauthenticated as exc:
        raise LoginRequired from exc


PageUser = Annotated[User, Depends(page_user)]
PendingSession = Annotated[WebSession, Depends(pending_session)]


def install(app) -> None:  # type: ignore[no-untyped-def]
    """Add the pages and the redirect to the sign-in page."""

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> Response:
        return RedirectResponse(exc.to, status_code=303)

    @app.exception_handler(CsrfFailed)
    async def _csrf(request: Request, _exc: CsrfFailed) -> Response:
        error = Forbidden("the form was not sent from this site's page (CSRF token missing or wrong); reload it",
                          code="csrf_failed")
        return templates.TemplateResponse(request, "error.html", {"user": None, "error": error}, status_code=403)

    app.include_router(router)


@router.get("/", response_class=HTMLResponse)
def home() -> Response:
    return RedirectResponse("/cases", status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, services: ServicesDep) -> Response:
    return render(request, "login.html", {"error": None})


@router.post("/login", dependencies=[Csrf])
def login(request: Request, session: SessionDep, services: ServicesDep, token: Annotated[str, Form()]) -> Response:
    """Sign in with an API token: a new session (every attempt is a custody entry)."""
    if (locked := _throttled(request, services, "login.html")) is not None:
        return locked
    client = client_address(request)
    try:
        user = authenticate(session, token=token.strip())
    except Unauthenticated as exc:
        signin.record_sign_in(session, user=None, client=client, method="token", outcome="failure", reason=exc.code)
        record_failure(services, client=client, session=session)
        return render(request, "login.html", {"error": "That token is not valid."}, status_code=401)
    return _signed_in(request, session, services, user=user, method="token")


def _signed_in(request: Request, session: Session, services: Services, *, user: User, method: str) -> Response:
    """Start the session of a user whose first factor held; on to the second if needed."""
    second = signin.needs_second_factor(user, services.settings.totp_roles)
    ttl = services.settings.session_ttl_seconds
    secret = signin.start_session(session, user=user, ttl_seconds=ttl)
    signin.record_sign_in(session, user=user, client=client_address(request), method=method,
                          outcome="second_factor_pending" if second else "success")
    target = "/cases"
    if second:
        target = "/login/second-factor" if user.totp_enrolled_at else "/account/totp"
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(SESSION_COOKIE, secret, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", max_age=ttl)
    response.delete_cookie(PRESESSION_COOKIE)
    return response


def _throttled(request: Request, services: Services, template: str, account: str | None = None) -> Response | None:
    """The 429 page while this client (or account) is locked out; None otherwise."""
    try:
        services.throttle.check(client=client_address(request), account=account)
    except TooManyAttempts as exc:
        response = render(request, template, {"user": None, "error": "Too many failed attempts; try again later."},
                          status_code=429)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    return None


def _oidc_redirect_uri(request: Request, services: Services) -> str:
    return services.settings.oidc_redirect_url or str(request.url_for("oidc_callback"))


def _no_sso(request: Request) -> Response:
    return render(request, "login.html", {"error": "Single sign-on is not configured here."}, status_code=404)


@router.get("/login/oidc")
def oidc_start(request: Request, services: ServicesDep) -> Response:
    """Off to the agency's OpenID Provider; state, nonce and PKCE verifier stay in a cookie."""
    if not sso.enabled(services.settings):
        return _no_sso(request)
    url, pending = sso.begin(services.settings, redirect_uri=_oidc_redirect_uri(request, services))
    response = RedirectResponse(url, status_code=303)
    # Lax, not Strict: the provider's redirect back is a navigation from another site.
    value = base64.urlsafe_b64encode(json.dumps(asdict(pending)).encode()).decode()
    response.set_cookie(OIDC_COOKIE, value, httponly=True, samesite="lax",
                        secure=request.url.scheme == "https", max_age=600, path="/login/oidc")
    return response


@router.get("/login/oidc/callback", name="oidc_callback")
def oidc_callback(request: Request, services: ServicesDep) -> Response:
    """Back from the provider: check state, code, ID token and nonce; then sign in."""
    if not sso.enabled(services.settings):
        return _no_sso(request)
    if (locked := _throttled(request, services, "login.html")) is not None:
        return locked
    client = client_address(request)
    try:
        pending = sso.PendingLogin(**json.loads(base64.urlsafe_b64decode(request.cookies[OIDC_COOKIE])))
    except (KeyError, TypeError, ValueError, binascii.Error):
        pending = None
    with services.db.session() as session:  # a GET holds a read session; a sign-in writes
        try:
            claims = sso.finish(services.settings, pending=pending, params=dict(request.query_params),
                                redirect_uri=_oidc_redirect_uri(request, services))
            user = sso.user_for(session, settings=services.settings, claims=claims)
        except Unauthenticated as exc:
            signin.record_sign_in(session, user=None, client=client, method="oidc", outcome="failure", reason=exc.message)
            record_failure(services, client=client, session=session)
            response = render(request, "login.html", {"error": f"Single sign-on was refused: {exc.message}"},
                              status_code=401)
        else:
            response = _signed_in(request, session, services, user=user, method="oidc")
    response.delete_cookie(OIDC_COOKIE, path="/login/oidc")
    return response


@router.post("/logout", dependencies=[Csrf])
def logout(request: Request, session: SessionDep) -> Response:
    signin.end_session(session, secret=request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/login/second-factor", response_class=HTMLResponse)
def second_factor_form(request: Request, web: PendingSession) -> Response:
    if web.user.totp_enrolled_at is None:
        return RedirectResponse("/account/totp", status_code=303)
    return render(request, "second_factor.html", {"user": None, "error": None})


@router.post("/login/second-factor", dependencies=[Csrf])
def second_factor(request: Request, session: SessionDep, services: ServicesDep, web: PendingSession,
                  code: Annotated[str, Form()]) -> Response:
    """The TOTP code or a recovery code (each works once); throttled per client and account."""
    client, account = client_address(request), web.user.name
    if (locked := _throttled(request, services, "second_factor.html", account)) is not None:
        return locked
    if signin.give_second_factor(session, web_session=web, code=code, client=client):
        return RedirectResponse("/cases", status_code=303)
    record_failure(services, client=client, account=account, session=session)
    return render(request, "second_factor.html", {"user": None, "error": "That code is not valid."}, status_code=401)


@router.get("/account/totp", response_class=HTMLResponse)
def totp_form(request: Request, services: ServicesDep, web: PendingSession) -> Response:
    """Enrolment: the secret as a QR code (an SVG data URL) and as text."""
    if web.user.totp_enrolled_at is not None:
        return RedirectResponse("/cases" if web.second_factor_at else "/login/second-factor", status_code=303)
    with services.db.session() as writing:  # a GET holds a read session; the secret is kept
        enrolment = signin.begin_totp(writing, user=writing.get(User, web.user_id))
    qr = segno.make(enrolment.uri, error="m").svg_data_uri(scale=4)
    return render(request, "totp.html", {"user": None, "secret": enrolment.secret, "qr": qr, "error": None, "codes": None})


@router.post("/account/totp", dependencies=[Csrf])
def totp_confirm(request: Request, session: SessionDep, web: PendingSession, code: Annotated[str, Form()]) -> Response:
    """Confirm enrolment with a first code; shows the recovery codes once."""
    try:
        codes = signin.confirm_totp(session, user=web.user, code=code, web_session=web)
    except ArchiveError as exc:
        return render(request, "totp.html", {"user": None, "secret": web.user.totp_secret, "qr": None,
                                             "error": exc.message, "codes": None}, status_code=exc.status)
    return render(request, "totp.html", {"user": web.user, "secret": None, "qr": None, "error": None, "codes": codes})



@router.get("/cases", response_class=HTMLResponse)
def cases_page(request: Request, session: SessionDep, user: PageUser) -> Response:
    try:
        rows = case_service.list_cases(session, user=user, limit=500)
    except ArchiveError as exc:
        return _error(request, user, exc)
    return render(request, "cases.html", {"user": user, "cases": rows})


@router.get("/cases/{case_id}", response_class=HTMLResponse)
def case_page(case_id: str, request: Request, session: SessionDep, user: PageUser) -> Response:
    try:
        case = load_case(session, user=user, case_id=case_id)
    except ArchiveError as exc:
        return _error(request, user, exc)
    items = evidence_service.case_items(session, case_id=case_id)
    report = build_report(session, case_id=case_id)
    entries = ledger.entries(session, case_id=case_id)
    busy = report.pending or any(i.seal_status == "pending" for i in items)
    return render(
        request, "case.html",
        {"user": user, "case": case, "items": items, "report": report, "entries": entries, "refresh": busy,
         "people": report.people},
    )


def _error(request: Request, user: User, exc: ArchiveError) -> Response:
    return render(request, "error.html", {"user": user, "error": exc}, status_code=exc.status)
