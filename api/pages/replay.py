"""Replay of a captured web page: a WACZ shown as it was captured, in the reviewer's browser.

The player is ReplayWeb.page (npm ``replaywebpage``, AGPL-3.0-or-later), vendored unmodified
by ``scripts/vendor-web.sh``. Its ``<replay-web-page>`` element registers its service worker
at ``replayBase + "sw.js"`` with the scope ``replayBase`` and loads the replay frame from
``replayBase`` (whose page asks for ``replayBase + "ui.js"``), so both scripts are served
here under :data:`REPLAY_BASE`, on the archive's own origin. The worker reads the WACZ from
the item's content endpoint with HTTP range requests; each is a read of evidence and so a
custody entry, as every read is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from api.deps import SessionDep
from api.pages.base import PageRoute, PageUser, render
from api.pages.views import ReplayView
from archive.errors import NotFound
from archive.evidence import items as evidence_service

router = APIRouter(include_in_schema=False, route_class=PageRoute)

REPLAY_BASE = "/replay/"
"""Where the player's scripts are served and the scope of its service worker."""
SCRIPTS = Path(__file__).resolve().parent.parent / "static" / "vendor" / "replaywebpage"
SCRIPT_NAMES = frozenset({"sw.js", "ui.js"})
FRAME = ('<!doctype html>\n<html><head><meta charset="utf-8"><script src="./ui.js"></script></head>\n'
         '<body><replay-app-main></replay-app-main></body></html>\n')
"""The player's frame page, as its service worker serves it once active (``serveIndex``); the
first frame is often asked for before the worker controls it, so the archive answers too."""


@router.get("/evidence/{item_id}/replay", response_class=HTMLResponse)
def replay_page(item_id: str, request: Request, session: SessionDep, user: PageUser,
                url: Annotated[str | None, Query(max_length=2000)] = None) -> Response:
    """A WACZ replayed in the page (for those who may read its case: 404 for anyone else, as
    for the case page); ``url`` picks the captured page shown first."""
    item = evidence_service.load_item(session, user=user, item_id=item_id)
    if not evidence_service.is_wacz(item):
        raise NotFound(f"item {item_id} is not a web archive package (WACZ)", code="not_replayable")
    view = ReplayView.of(item, zone=request.app.state.services.settings.time_zone, url=url)
    return render(request, "replay.html", {"user": user, "replay": view, "replay_base": REPLAY_BASE})


@router.get(REPLAY_BASE, response_class=HTMLResponse)
@router.get(REPLAY_BASE + "index.html", response_class=HTMLResponse)
def replay_frame(_user: PageUser) -> Response:
    """The player's frame page (its interface, ``ui.js``, then reads the WACZ through the worker)."""
    return HTMLResponse(FRAME, headers={"Cache-Control": "no-cache"})


@router.get(REPLAY_BASE + "{name}")
def replay_script(name: str, _user: PageUser) -> Response:
    """The player's service worker (``sw.js``) and interface (``ui.js``), to signed-in users
    (like every page: anyone else is sent to sign in, which a worker's registration refuses).

    ``Service-Worker-Allowed`` states the scope the worker may take (its own folder, which is
    also the default); ``no-cache`` makes browsers check for a new vendored version."""
    if name not in SCRIPT_NAMES:
        raise NotFound(f"no {REPLAY_BASE}{name}", code="not_found")
    return FileResponse(SCRIPTS / name, media_type="text/javascript", headers={
        "Service-Worker-Allowed": REPLAY_BASE, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff",
    })
