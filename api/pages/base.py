"""What every page shares: the templates, rendering in the reader's language and zone,
the CSRF check of forms, and the signed-in user.

A browser signs in by pasting its API token once (or through single sign-on); it then
holds a short-lived server-side session (archive/identity/signin.py) in an HttpOnly,
SameSite=Strict cookie, Secure over TLS. Every form carries the session's CSRF token in a
hidden field and every POST checks it (403 without); scripts on the pages send the same
token in ``X-CSRF-Token`` to the API, which accepts the session cookie. A user who must
give a second factor reaches nothing before giving it.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit
from types import SimpleNamespace
from typing import Annotated, Any

from fastapi import Depends, Form, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates

from api.deps import SESSION_COOKIE, Services, ServicesDep, SessionDep, attach, caller_checked, signs_in
from api.pages.i18n import (LANG_COOKIE, details_text, enum_label, error_text, gap_cause_html, language_of, move_reason,
                            processing_reason, receipt_detail, sentence, translate, translator)
from archive.errors import ArchiveError, InvalidInput, Unauthenticated
from archive.i18n import gap_cause
from archive.identity import signin, sso
from archive.models import Role, User, WebSession
from archive.timefmt import gap_span, local_time

PRESESSION_COOKIE = "evidence_presession"
"""Random value that keys the sign-in form's CSRF token before there is a session."""
templates = Jinja2Templates(directory=str(Path(__file__).parent.parent / "templates"))


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
templates.env.filters["pretty"] = lambda text: ", ".join(
    f"{k}: {v}" for k, v in json.loads(text).items() if v not in (None, "", [], {})
)


class LoginRequired(Exception):
    """The browser has no valid session cookie (or must give its second factor: ``to``);
    ``why``: a reason the sign-in page says (:data:`SIGN_IN_REASONS`)."""

    def __init__(self, to: str = "/login", *, why: str | None = None):
        super().__init__(to)
        self.to = to
        self.why = why


SIGN_IN_REASONS = {"session_expired": "expired", "user_disabled": "disabled"}
"""Why a page sent its reader to sign in, by the refusal's code, as the sign-in page's ``why``
says it (``signin.why_<why>``): a session that lapsed or an account disabled mid-work is not a
silent return to the sign-in form."""


def safe_next(value: str | None) -> str | None:
    """``value`` if it is a path of this site to return to after signing in: one leading "/"
    (never "//" or a backslash, which browsers read as another host), no scheme, host or control
    character, and not a sign-in page itself; None otherwise (never an open redirect)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return None
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or parts.path.startswith(("/login", "/logout", "/account/totp")):
        return None
    return value


def _return_path(request: Request) -> str | None:
    """The page a reader sent to sign in was on: the page an htmx request refreshes, the page a
    browser opened (a GET asking for HTML: not a script or a fragment), the page a form was posted
    from."""
    if request.headers.get("hx-request"):
        current = urlsplit(request.headers.get("hx-current-url", ""))
        if current.netloc != request.url.netloc:
            return None
        return current.path + (f"?{current.query}" if current.query else "")
    if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
        return request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return _form_page(request)


def sign_in_url(request: Request, exc: LoginRequired) -> str:
    """Where a reader who must sign in (or give the second factor) is sent: the page they were on
    to return to after it (``next``), and why they were sent (``why``), when known."""
    params = {"next": safe_next(_return_path(request)), "why": exc.why}
    query = urlencode({k: v for k, v in params.items() if v})
    return exc.to + (f"?{query}" if query else "")


class CsrfFailed(Exception):
    """A form was posted without its session's CSRF token."""


def cookie_secret(request: Request) -> str | None:
    """The value the page's CSRF token is derived from: the session's, else the pre-session's."""
    return request.cookies.get(SESSION_COOKIE) or request.cookies.get(PRESESSION_COOKIE)


def lang_switch(request: Request, other: str) -> str:
    """The link to this page in the ``other`` language: what the address chose (my cases, a
    custody filter, a page of items) is kept; only the language changes."""
    kept = [(k, v) for k, v in request.query_params.multi_items() if k != "lang"]
    return "?" + urlencode([*kept, ("lang", other)])


def render(request: Request, name: str, context: dict[str, Any], *, status_code: int = 200) -> Response:
    """A page in the reader's language and the corps' zone, its forms carrying the CSRF token
    of the browser's (pre-)session cookie."""
    secret = cookie_secret(request)
    fresh = None
    if secret is None:
        secret = fresh = secrets.token_urlsafe(32)
    services = request.app.state.services
    lang = language_of(request)
    code = lang.code
    response = templates.TemplateResponse(
        request, name,
        {"zone": services.settings.time_zone, "user": None, **context, "csrf": signin.csrf_token(secret),
         "sso": sso.enabled(services.settings), "lang": lang, "t": translator(code),
         "lang_href": lang_switch(request, lang.other),
         "label": lambda group, value: enum_label(code, group, value),
         "details": lambda pairs: details_text(code, pairs),
         "cause": lambda text, clips=None: gap_cause_html(code, text, clips or {}),
         "cause_text": lambda text, names=None: gap_cause(code, text, clips=names),
         "reason": lambda text: processing_reason(code, text),
         "move_reason": lambda text: move_reason(code, text),
         "receipt_detail": lambda text: receipt_detail(code, text),
         "sentence": lambda text: sentence(code, text),
         "scope": lambda chosen: translate(code, "exports.scope_all") if chosen is None
         else translate(code, "exports.scope_selected", count=chosen)},
        status_code=status_code,
    )
    secure = request.url.scheme == "https"
    if fresh:
        response.set_cookie(PRESESSION_COOKIE, fresh, httponly=True, samesite="strict", secure=secure, max_age=3600)
    if lang.negotiated:
        response.headers.append("Vary", "Accept-Language")
    if lang.chosen_now:
        response.set_cookie(LANG_COOKIE, lang.code, samesite="lax", secure=secure, max_age=365 * 24 * 3600)
    return response


def error_page(request: Request, exc: ArchiveError) -> Response:
    """The error's page in the reader's language, with its status (404 for another unit's case,
    like an unknown one)."""
    text = error_text(language_of(request).code, error_code=exc.code, status=exc.status, message=exc.message,
                      fields=(exc.extra or {}).get("fields", ()))
    return render(request, "error.html", {"user": getattr(request.state, "viewer", None), "error": text,
                                          "back": _form_page(request)}, status_code=exc.status)


def _form_page(request: Request) -> str | None:
    """The page a refused form was sent from (this site's own, by its Referer), for the error
    page's way back to it: the browser's history brings the form back with what was typed."""
    if request.method != "POST":
        return None
    referer = urlsplit(request.headers.get("referer", ""))
    if referer.netloc != request.url.netloc or not referer.path.startswith("/"):
        return None
    return referer.path + (f"?{referer.query}" if referer.query else "")


def invalid_form(exc: RequestValidationError) -> InvalidInput:
    """A form or query a page route could not read (a field missing or not of its kind), as
    the error its page shows: the fields and what is wrong with each, for support."""
    named = [(str(err["loc"][-1]) if err.get("loc") else "form", err.get("msg")) for err in exc.errors()]
    error = InvalidInput("; ".join(f"{field}: {said}" for field, said in named) or "invalid request",
                         code="invalid_request")
    error.extra = {"fields": [field for field, _said in named]}
    return error


class PageRoute(APIRoute):
    """A page route: an :class:`ArchiveError` a domain raises, and a form or query it cannot
    read, become the error page in the reader's language (after the request's session rolled
    back), never the API's JSON error."""

    serves_pages = True
    """A path of a page: a method it does not take answers with the error page (api/errors.py)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except ArchiveError as exc:
                return error_page(request, exc)
            except RequestValidationError as exc:
                return error_page(request, invalid_form(exc))

        return page_handler


@dataclass(frozen=True)
class Viewer:
    """Who is signed in, as the page header shows them (kept for an error page, which is
    rendered after the request's session closed)."""

    name: str
    role: Role
    unit: SimpleNamespace

    @classmethod
    def of(cls, user: User) -> Viewer:
        return cls(name=user.name, role=user.role, unit=SimpleNamespace(name=user.unit.name))


def back_to(url: str, *, notice: str | None = None) -> Response:
    """Post/redirect/get: back to ``url`` (303), with a notice key shown there (in the query,
    before any ``#fragment``, so the page receives it)."""
    if notice:
        path, hash_, fragment = url.partition("#")
        url = path + ("&" if "?" in path else "?") + f"notice={notice}" + hash_ + fragment
    return RedirectResponse(url, status_code=303)


def message(request: Request, key: str, **values: object) -> str:
    """A message in the reader's language (for texts built outside templates)."""
    return translate(language_of(request).code, key, **values)


def check_csrf(request: Request, csrf_token: Annotated[str | None, Form()] = None) -> None:
    """Every page form: the hidden ``csrf_token`` must match the browser's cookie."""
    if not signin.csrf_matches(cookie_secret(request), csrf_token):
        raise CsrfFailed


Csrf = Depends(check_csrf)


def session_viewer(request: Request) -> Viewer | None:
    """Who the browser's session is signed in as, for an error page no page route answered
    (an address no page has, a method a page does not take): its header shows them signed
    in, as every other page does. None without a session that gave every factor."""
    secret = request.cookies.get(SESSION_COOKIE)
    if not secret:
        return None
    services: Services = request.app.state.services
    try:
        with services.db.read() as reading:
            user = signin.session_user(reading, secret=secret, totp_roles=services.settings.totp_roles)
            return Viewer.of(user)
    except Unauthenticated:
        return None


def _signed_in(request: Request, services: Services) -> User:
    """The user of the browser's session (read in a session of its own), if it gave every
    factor; otherwise off to sign in."""
    caller_checked(request)
    try:
        with services.db.read() as reading:
            user = signin.session_user(reading, secret=request.cookies.get(SESSION_COOKIE),
                                       totp_roles=services.settings.totp_roles)
    except Unauthenticated as exc:
        if exc.code == "second_factor_required":
            raise LoginRequired("/login/second-factor") from exc
        raise LoginRequired(why=SIGN_IN_REASONS.get(exc.code)) from exc
    request.state.viewer = Viewer.of(user)
    return user


@signs_in(_signed_in)
def page_user(request: Request, session: SessionDep, services: ServicesDep) -> User:
    """The signed-in user of a session that gave every factor; otherwise off to sign in."""
    return attach(session, _signed_in(request, services))


def pending_session(request: Request, session: SessionDep) -> WebSession:
    """A live session that may still owe its second factor (the second-factor pages)."""
    try:
        return signin.find_session(session, secret=request.cookies.get(SESSION_COOKIE))
    except Unauthenticated as exc:
        raise LoginRequired(why=SIGN_IN_REASONS.get(exc.code)) from exc


PageUser = Annotated[User, Depends(page_user)]


def form_user(request: Request, user: PageUser, csrf_token: Annotated[str | None, Form()] = None) -> User:
    """The signed-in user of a posted form whose CSRF token holds (the user first: one who
    still owes the second factor is sent there, whatever the form)."""
    check_csrf(request, csrf_token)
    return user


FormUser = Annotated[User, Depends(form_user)]
PendingSession = Annotated[WebSession, Depends(pending_session)]


@signs_in(_signed_in)
def form_user_id(request: Request, services: ServicesDep, csrf_token: Annotated[str | None, Form()] = None) -> str:
    """The signed-in user's id for a posted form whose CSRF token holds, without the request's
    session: for forms whose domain call runs its own transactions around a network call
    (sealing with a time-stamp), as the API's routes do with ``CurrentUserId``."""
    user = _signed_in(request, services)
    check_csrf(request, csrf_token)
    return user.id


FormUserId = Annotated[str, Depends(form_user_id)]
