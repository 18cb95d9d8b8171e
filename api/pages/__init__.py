"""The workspace: server-rendered pages for each role, in Chinese (default) and English.

* :mod:`api.pages.base` - templates, language and zone, CSRF, the signed-in user;
* :mod:`api.pages.signin` - token and single sign-on sign-in, second factor;
* :mod:`api.pages.cases` - case list, case page (upload, live items, gaps, custody);
* :mod:`api.pages.review` - the reviewer's queue, exports, case verification;
* :mod:`api.pages.court` - the court user's requests and exports;
* :mod:`api.pages.admin` - users, devices, keys, system health;
* :mod:`api.pages.life` - the case's legal life: stage moves, legal reviews, closing, legal
  holds and retention classes, the yearly figures;
* :mod:`api.pages.replay` - a captured web page (WACZ) replayed with ReplayWeb.page.

Browser libraries are served from ``/static/vendor`` (copied there with their licences by
``scripts/vendor-web.sh`` from ``web/package-lock.json``), so the service needs only Python.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from api.pages import admin, cases, court, life, replay, review, signin
from api.pages.base import CsrfFailed, LoginRequired, error_page, sign_in_url
from archive.errors import Forbidden

STATIC = Path(__file__).resolve().parent.parent / "static"


def install(app: FastAPI) -> None:
    """Add the pages, their static files and the redirect to the sign-in page."""

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> Response:
        to = sign_in_url(request, exc)
        if request.headers.get("hx-request"):
            # A refresh of part of a page: the whole page goes to sign in (htmx would put the
            # sign-in form inside the table it refreshes).
            return Response(status_code=200, headers={"HX-Redirect": to})
        return RedirectResponse(to, status_code=303)

    @app.exception_handler(CsrfFailed)
    async def _csrf(request: Request, _exc: CsrfFailed) -> Response:
        error = Forbidden("the form was not sent from this site's page (CSRF token missing or wrong); reload it",
                          code="csrf_failed")
        return error_page(request, error)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for module in (signin, cases, review, court, admin, life, replay):
        app.include_router(module.router)
