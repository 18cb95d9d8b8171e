"""Signing in and out: a token or single sign-on, then the second factor where required.

Every attempt, successful or not, is a custody entry and failures are throttled per client
(and per account for second-factor codes); see :mod:`archive.identity.signin`.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import asdict
from typing import Annotated

from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
import segno
from sqlalchemy.orm import Session

from api.deps import SESSION_COOKIE, Services, ServicesDep, SessionDep, client_address, record_failure
from api.pages.base import PRESESSION_COOKIE, SIGN_IN_REASONS, Csrf, PageRoute, PendingSession, message, render, safe_next
from api.pages.i18n import error_text, language_of, ours
from archive.errors import ArchiveError, TooManyAttempts, Unauthenticated
from archive.identity import signin, sso
from archive.identity.users import authenticate
from archive.models import User

OIDC_COOKIE = "evidence_oidc"
"""State, nonce and PKCE verifier of a single sign-on under way (this browser's only)."""
router = APIRouter(include_in_schema=False, route_class=PageRoute)
NextQuery = Annotated[str | None, Query(alias="next", max_length=2000, description="The page to return to after signing in")]
NextForm = Annotated[str, Form(alias="next", max_length=2000)]
WHY = set(SIGN_IN_REASONS.values())


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next_page: NextQuery = None, why: str | None = None) -> Response:
    """The sign-in form; ``next``: the page to return to afterwards (a path of this site only),
    ``why``: why a page sent the reader here (an expired session, a disabled account)."""
    return render(request, "login.html", {"error": None, "next": safe_next(next_page) or "",
                                          "why": why if why in WHY else None})


@router.post("/login", dependencies=[Csrf])
def login(request: Request, session: SessionDep, services: ServicesDep, token: Annotated[str, Form()],
          next_page: NextForm = "") -> Response:
    """Sign in with an API token: a new session (every attempt is a custody entry); then the
    page the reader was sent from, if a path of this site, else their role's main page."""
    client = client_address(request)
    try:
        user = authenticate(session, token=token.strip())
    except Unauthenticated as exc:
        if (locked := _throttled(request, services, "login.html")) is not None:
            return locked
        signin.record_sign_in(session, user=None, client=client, method="token", outcome="failure", reason=exc.code)
        record_failure(services, client=client, session=session)
        return render(request, "login.html", {"error": message(request, "signin.invalid_token"),
                                              "next": safe_next(next_page) or ""}, status_code=401)
    return _signed_in(request, session, services, user=user, method="token", next_page=safe_next(next_page))


def home_of(user: User) -> str:
    """Where a user lands after signing in: their role's main page."""
    return {"court": "/court", "admin": "/admin", "reviewer": "/queue"}.get(user.role.value, "/cases")


def _signed_in(request: Request, session: Session, services: Services, *, user: User, method: str,
               next_page: str | None = None) -> Response:
    """Start the session of a user whose first factor held; on to the second if needed (which
    then returns to ``next_page``), else to ``next_page`` (a checked path of this site) or home."""
    second = signin.needs_second_factor(user, services.settings.totp_roles)
    ttl = services.settings.session_ttl_seconds
    secret = signin.start_session(session, user=user, ttl_seconds=ttl)
    signin.record_sign_in(session, user=user, client=client_address(request), method=method,
                          outcome="second_factor_pending" if second else "success")
    target = next_page or home_of(user)
    if second:
        target = _with_next("/login/second-factor" if user.totp_enrolled_at else "/account/totp", next_page)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(SESSION_COOKIE, secret, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", max_age=ttl)
    response.delete_cookie(PRESESSION_COOKIE)
    return response


def _with_next(path: str, next_page: str | None) -> str:
    """``path`` of a sign-in step, carrying on to the step after it the page to return to at
    the end (``next_page``, checked already by :func:`safe_next`)."""
    return path + ("?next=" + quote(next_page, safe="/") if next_page else "")


def _throttled(request: Request, services: Services, template: str, *, account: str | None = None) -> Response | None:
    """The 429 page while this client is locked out (asked when an attempt failed: a valid
    credential passes whatever its address did), or while ``account`` is (asked first: a
    second factor's code is short enough to guess); None otherwise."""
    try:
        if account is None:
            services.throttle.check(client=client_address(request))
        else:
            services.throttle.check(client=None, account=account)
    except TooManyAttempts as exc:
        response = render(request, template, {"user": None, "error": message(request, "signin.too_many")},
                          status_code=429)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    return None


def _oidc_redirect_uri(request: Request, services: Services) -> str:
    return services.settings.oidc_redirect_url or str(request.url_for("oidc_callback"))


def _no_sso(request: Request) -> Response:
    return render(request, "login.html", {"error": message(request, "signin.no_sso")}, status_code=404)


@router.get("/login/oidc")
def oidc_start(request: Request, services: ServicesDep, next_page: NextQuery = None) -> Response:
    """Off to the agency's OpenID Provider; state, nonce and PKCE verifier stay in a cookie, and
    with them ``next``, the page to return to afterwards (a path of this site only)."""
    if not sso.enabled(services.settings):
        return _no_sso(request)
    url, pending = sso.begin(services.settings, redirect_uri=_oidc_redirect_uri(request, services))
    response = RedirectResponse(url, status_code=303)
    # Lax, not Strict: the provider's redirect back is a navigation from another site.
    kept = {**asdict(pending), "next": safe_next(next_page)}
    value = base64.urlsafe_b64encode(json.dumps(kept).encode()).decode()
    response.set_cookie(OIDC_COOKIE, value, httponly=True, samesite="lax",
                        secure=request.url.scheme == "https", max_age=600, path="/login/oidc")
    return response


def _sso_refusal(request: Request, reason: str) -> str:
    """Why single sign-on refused, in the reader's language: a reason of ours said (the provider's
    own words inside it marked as the provider's), any other text kept and marked as untranslated."""
    said = ours(language_of(request).code, reason)
    if said is None:
        return message(request, "signin.sso_refused_as_written", reason=reason)
    return message(request, "signin.sso_refused", reason=said)


@router.get("/login/oidc/callback", name="oidc_callback")
def oidc_callback(request: Request, services: ServicesDep) -> Response:
    """Back from the provider: check state, code, ID token and nonce; then sign in and go on to
    the page asked for when the sign-in began (checked again: the cookie is the browser's)."""
    if not sso.enabled(services.settings):
        return _no_sso(request)
    client = client_address(request)
    next_page = None
    try:
        kept = json.loads(base64.urlsafe_b64decode(request.cookies[OIDC_COOKIE]))
        said = kept.pop("next", None)
        next_page = safe_next(said) if isinstance(said, str) else None
        pending = sso.PendingLogin(**kept)
    except (KeyError, TypeError, ValueError, AttributeError, binascii.Error):
        pending = None
    with services.db.session() as session:  # a GET holds a read session; a sign-in writes
        try:
            claims = sso.finish(services.settings, pending=pending, params=dict(request.query_params),
                                redirect_uri=_oidc_redirect_uri(request, services))
            user = sso.user_for(session, settings=services.settings, claims=claims)
        except Unauthenticated as exc:
            if (locked := _throttled(request, services, "login.html")) is not None:
                response = locked
                response.delete_cookie(OIDC_COOKIE, path="/login/oidc")
                return response
            signin.record_sign_in(session, user=None, client=client, method="oidc", outcome="failure", reason=exc.message)
            record_failure(services, client=client, session=session)
            response = render(request, "login.html", {"error": _sso_refusal(request, exc.message),
                                                      "next": next_page or ""}, status_code=401)
        else:
            response = _signed_in(request, session, services, user=user, method="oidc", next_page=next_page)
    response.delete_cookie(OIDC_COOKIE, path="/login/oidc")
    return response


@router.post("/logout", dependencies=[Csrf])
def logout(request: Request, session: SessionDep) -> Response:
    signin.end_session(session, secret=request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/login/second-factor", response_class=HTMLResponse)
def second_factor_form(request: Request, web: PendingSession, next_page: NextQuery = None) -> Response:
    if web.user.totp_enrolled_at is None:
        return RedirectResponse(_with_next("/account/totp", safe_next(next_page)), status_code=303)
    return render(request, "second_factor.html", {"user": None, "error": None, "next": safe_next(next_page) or ""})


@router.post("/login/second-factor", dependencies=[Csrf])
def second_factor(request: Request, session: SessionDep, services: ServicesDep, web: PendingSession,
                  code: Annotated[str, Form()], next_page: NextForm = "") -> Response:
    """The TOTP code or a recovery code (each works once); throttled per client and account;
    then the page the reader was sent from (a path of this site), else home."""
    client, account = client_address(request), web.user.name
    if (locked := _throttled(request, services, "second_factor.html", account=account)) is not None:
        return locked
    if signin.give_second_factor(session, web_session=web, code=code, client=client):
        return RedirectResponse(safe_next(next_page) or home_of(web.user), status_code=303)
    if (locked := _throttled(request, services, "second_factor.html")) is not None:
        return locked
    record_failure(services, client=client, account=account, session=session)
    return render(request, "second_factor.html", {"user": None, "error": message(request, "signin.invalid_code"),
                                                  "next": safe_next(next_page) or ""}, status_code=401)


@router.get("/account/totp", response_class=HTMLResponse)
def totp_form(request: Request, services: ServicesDep, web: PendingSession, next_page: NextQuery = None) -> Response:
    """Enrolment: the secret as a QR code (an SVG data URL) and as text; ``next``: the page to
    go on to once enrolled (a path of this site only)."""
    next_page = safe_next(next_page)
    if web.user.totp_enrolled_at is not None:
        if web.second_factor_at:
            return RedirectResponse(next_page or home_of(web.user), status_code=303)
        return RedirectResponse(_with_next("/login/second-factor", next_page), status_code=303)
    with services.db.session() as writing:  # a GET holds a read session; the secret is kept
        enrolment = signin.begin_totp(writing, user=writing.get(User, web.user_id))
    qr = segno.make(enrolment.uri, error="m").svg_data_uri(scale=4)
    return render(request, "totp.html", {"user": None, "secret": enrolment.secret, "qr": qr, "error": None, "codes": None,
                                         "next": next_page or ""})


@router.post("/account/totp", dependencies=[Csrf])
def totp_confirm(request: Request, session: SessionDep, web: PendingSession, code: Annotated[str, Form()],
                 next_page: NextForm = "") -> Response:
    """Confirm enrolment with a first code; shows the recovery codes once, then goes on to the
    page the reader was sent from (a path of this site), else home."""
    checked = safe_next(next_page)
    try:
        codes = signin.confirm_totp(session, user=web.user, code=code, web_session=web)
    except ArchiveError as exc:
        # In the page's language (the domain's message is English): the catalogue's sentence for the code.
        said = error_text(language_of(request).code, error_code=exc.code, status=exc.status, message=exc.message)
        return render(request, "totp.html", {"user": None, "secret": web.user.totp_secret, "qr": None,
                                             "error": said.explanation or exc.message, "codes": None,
                                             "next": checked or ""},
                      status_code=exc.status)
    return render(request, "totp.html", {"user": web.user, "secret": None, "qr": None, "error": None, "codes": codes,
                                         "onward": checked or home_of(web.user)})
