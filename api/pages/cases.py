"""The officer's and reviewer's case pages: the case list (and a new case), one case's
record with its upload area, live item rows, gaps and their explanations, custody.

Pages never stream evidence content themselves: the player and the links use the API
(each read a custody entry). Forms post here and come back (post/redirect/get); every
change goes through the same domain functions as the API, so it is a custody entry too.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.deps import LedgerSettled, ServicesDep, SessionDep
from api.pages.i18n import error_explanations, language_of
from api.pages.life import closing_view, life_view
from api.pages.timeline import Timeline, build_timeline, placed_recordings, play_point
from api.pages.base import FormUser, PageUser, PageRoute, back_to, render
from api.pages.views import ActionRow, CaseRow, CourtRequestRow, ReceiptRow, EntryRow, ExportRow, GapRow, ItemRow, clips_of
from archive.cases import receipts, stages
from archive.cases import service as case_service
from archive import work
from archive.continuity import devices as device_service
from archive.continuity import gaps as gap_service
from archive.continuity.report import CaseContinuity, build_report
from archive.custody import ledger
from archive.errors import InvalidInput
from archive.evidence import items as evidence_service
from archive.exports import court_requests
from archive.exports import access as export_access
from archive.exports.models import CourtRequestStatus
from archive.records import holds
from archive.identity.users import load_case, user_names
from archive.models import Case, EvidenceItem, EvidenceKind, LedgerEntry, Role, User
from archive.timefmt import check_zone

router = APIRouter(include_in_schema=False, route_class=PageRoute)
ItemsPageNumber = Annotated[int | None, Query(ge=1, le=1_000_000, description="Which page of the case's items (from 1)")]
CUSTODY_PAGE = 200
"""Custody entries shown at once (newest first); the filters narrow the rest."""
ITEMS_PAGE = 500
"""Items shown at once (oldest first), as the API's list gives them by default: a case of
thousands (a month of body-camera segments) is read a page at a time, its page and the rows
refreshed while work is running costing what they show, not what the case holds."""


@router.get("/", response_class=HTMLResponse)
def home(user: PageUser) -> Response:
    """Each role's main page."""
    return RedirectResponse({"court": "/court", "admin": "/admin", "reviewer": "/queue"}.get(user.role.value, "/cases"),
                            status_code=303)


@router.get("/cases", response_class=HTMLResponse)
def cases_page(request: Request, session: SessionDep, user: PageUser, notice: str | None = None,
               mine: bool = False) -> Response:
    """My unit's cases (every case for an administrator; ``mine``: those I opened), each with
    its gaps still to explain. A court user's are on their own page: this list linked each case
    to a page their role may not open (403)."""
    if user.role == Role.court:
        return RedirectResponse("/court", status_code=303)
    cases = case_service.list_cases(session, user=user, limit=500)
    zone = request.app.state.services.settings.time_zone
    counts = gap_service.open_gap_counts(session, case_ids=[c.id for c in cases])
    held = holds.active_holds(session, [c.id for c in cases])
    rows = [CaseRow.of(c, zone=zone, open_gaps=counts.get(c.id, 0), reader_id=user.id, held=c.id in held)
            for c in cases]
    if mine:
        rows = [r for r in rows if r.mine]
    return render(request, "cases.html", {"user": user, "cases": rows, "notice": notice, "mine": mine,
                                          "may_create": user.role in (Role.officer, Role.admin), "error": None})


@router.post("/cases")
def create_case(request: Request, session: SessionDep, services: ServicesDep, user: FormUser,
                case_number: Annotated[str, Form()], title: Annotated[str, Form()]) -> Response:
    """A new case in the officer's unit, then its page."""
    case = case_service.create_case(session, store=services.store, user=user, case_number=case_number,
                                    title=title)
    return back_to(f"/cases/{case.id}", notice="case_created")


@dataclass(frozen=True)
class ItemsPage:
    """Which page of a case's items is shown: ``number`` of ``pages`` (from 1), the first and
    last item's places in the case (from 1; none when it holds none), of ``total``."""

    number: int
    pages: int
    total: int

    @property
    def first(self) -> int:
        return min(self.total, (self.number - 1) * ITEMS_PAGE + 1)

    @property
    def last(self) -> int:
        return min(self.total, self.number * ITEMS_PAGE)


def _items_page(session: Session, case_id: str, *, number: int | None, holding: str | None) -> ItemsPage:
    """Page ``number`` of the case's items, else the one ``holding`` an item (the custody
    filter's item, so its row is on the page), else the first; one past the last is the last."""
    total = evidence_service.count_case_items(session, case_id=case_id)
    pages = max(1, -(-total // ITEMS_PAGE))
    if number is None and holding is not None:
        place = evidence_service.place_in_case(session, case_id=case_id, item_id=holding)
        number = 1 if place is None else place // ITEMS_PAGE + 1
    return ItemsPage(min(max(1, number or 1), pages), pages, total)


def _item_rows(session: Session, case_id: str, zone: str, page: ItemsPage) -> list[ItemRow]:
    items = evidence_service.case_items(session, case_id=case_id, listing=True, limit=ITEMS_PAGE,
                                        offset=(page.number - 1) * ITEMS_PAGE)
    return [ItemRow.of(i, zone=zone) for i in items]


def _gap_rows(session: Session, case_id: str, zone: str, *, timeline: bool = True
              ) -> tuple[CaseContinuity, list[GapRow], Timeline | None]:
    """The continuity report, its gaps as rows (each with where to play it) and the timeline
    (None without ``timeline``: then only the recordings the gaps name are read)."""
    report = build_report(session, case_id=case_id)
    named = {i for g in report.gaps for i in (g.item_id, g.previous_item_id) if i}
    # Past a few thousand names, one read of the case is as cheap as a list of ids that long.
    placed = placed_recordings(session, case_id=case_id, only=None if timeline or len(named) > 2000 else named)
    starts = {p.item_id: p.start for p in placed}
    clips = clips_of(session, list(named), zone=zone)
    rows = [GapRow.of(g, zone=zone, people=report.people, play=play_point(g, starts), clips=clips)
            for g in report.gaps]
    drawn = build_timeline(placed, report.gaps, zone=zone, action_devices={a.id: a.devices for a in report.actions}) \
        if timeline else None
    return report, rows, drawn


def continuity_state(report: CaseContinuity) -> str:
    """A short fingerprint of what the continuity report says (pending or not, the last
    analysis, what is outstanding, each gap's status): the gaps section carries it, and the
    timeline and closing gates the one they were drawn from, so the page redraws them when
    it changes (workspace.js)."""
    said = [str(report.pending), str(report.analysed_at), *(f"{o['what']}:{o['subject']}:{o['reason']}" for o in report.outstanding),
            *(f"{g.id}={g.status.value}" for g in report.gaps)]
    return hashlib.sha256("\n".join(said).encode()).hexdigest()[:16]


def _entries(session: Session, case_id: str, zone: str, *, item: str | None, actor: str | None,
             action: str | None) -> tuple[list[EntryRow], list[str], list[str]]:
    """The case's custody entries (newest first, filtered), and the actors and actions to filter by."""
    query = select(LedgerEntry).where(LedgerEntry.case_id == case_id)
    if item:
        query = query.where(LedgerEntry.item_id == item)
    if actor:
        query = query.where(LedgerEntry.actor == actor)
    if action:
        query = query.where(LedgerEntry.action == action)
    rows = session.execute(query.order_by(LedgerEntry.seq.desc()).limit(CUSTODY_PAGE)).scalars()
    actors, actions = ledger.case_facets(session, case_id=case_id)
    return [EntryRow.of(e, zone=zone) for e in rows], actors, actions


def case_view(session: Session, *, user: User, case: Case, zone: str, item: str | None = None,
              actor: str | None = None, action: str | None = None, items_page: int | None = None) -> dict[str, object]:
    """Everything the case page shows (also what the bench measures)."""
    page = _items_page(session, case.id, number=items_page, holding=item)
    items = _item_rows(session, case.id, zone, page)
    report, gaps, timeline = _gap_rows(session, case.id, zone)
    entries, actors, actions = _entries(session, case.id, zone, item=item, actor=actor, action=action)
    return {
        "user": user, "case": case, "items": items, "items_page": page, "report": report, "gaps": gaps, "entries": entries,
        "actors": actors, "actions": actions, "filters": {"item": item or "", "actor": actor or "", "action": action or ""},
        "exports": export_rows(session, user=user, case_id=case.id, zone=zone),
        "kinds": [k.value for k in EvidenceKind], "items_busy": any(i.busy for i in items),
        "gaps_busy": report.pending, "continuity_state": continuity_state(report), "custody_page": CUSTODY_PAGE,
        "timeline": timeline,
        "receipts": receipt_rows(session, user=user, case_id=case.id, zone=zone),
        "court_requests": court_request_rows(session, user=user, zone=zone, case_id=case.id)
        if user.role in (Role.reviewer, Role.admin) else [],
    }


EXPORTS_MOVING = frozenset({"approved", "waiting", "building"})
"""Export states the worker moves on without anyone's action: the list refreshes itself."""


def export_rows(session: Session, *, user: User, case_id: str, zone: str) -> list[ExportRow]:
    """The case's exports ``user`` may see, newest first, as rows."""
    exports = export_access.list_exports(session, user=user, case_id=case_id)
    people = user_names(session, {p for e in exports for p in (e.requested_by, e.recipient_id, e.approved_by) if p})
    return [ExportRow.of(e, zone=zone, people=people) for e in exports]


def court_request_rows(session: Session, *, user: User, zone: str, case_id: str | None = None,
                       pending_only: bool = True) -> list[CourtRequestRow]:
    """The court requests ``user`` may see (pending ones by default), as rows."""
    requests = court_requests.list_requests(session, user=user, case_id=case_id,
                                            status=CourtRequestStatus.pending if pending_only else None)
    people = user_names(session, {r.requested_by for r in requests})
    return [CourtRequestRow.of(r, zone=zone, people=people, show_case=user.role != Role.court) for r in requests]


@router.get("/cases/{case_id}", response_class=HTMLResponse)
def case_page(case_id: str, request: Request, _settled: LedgerSettled, session: SessionDep, user: PageUser, item: str | None = None,
              actor: str | None = None, action: str | None = None, notice: str | None = None,
              items_page: ItemsPageNumber = None) -> Response:
    """One case: upload, items (live, a page at a time), gaps, exports, custody filtered by
    item, actor, action."""
    case = load_case(session, user=user, case_id=case_id)
    zone = request.app.state.services.settings.time_zone
    view = case_view(session, user=user, case=case, zone=zone, item=item, actor=actor, action=action,
                     items_page=items_page)
    life = life_view(session, user=user, case=case, settings=request.app.state.services.settings,
                     continuity=view["report"])  # type: ignore[arg-type]
    return render(request, "case.html", {**view, **life, "notice": notice,
                                         "enforcement": action_rows(session, case_id=case.id, zone=zone),
                                         "upload_errors": error_explanations(language_of(request).code)})


def action_rows(session: Session, *, case_id: str, zone: str) -> list[ActionRow]:
    """The case's enforcement actions (by window start), as rows."""
    actions = device_service.actions_of(session, case_id=case_id)
    records = {a.record_item_id for a in actions if a.record_item_id}
    names = dict(session.execute(select(EvidenceItem.id, EvidenceItem.original_filename)
                                 .where(EvidenceItem.id.in_(records))).tuples().all()) if records else {}
    return [ActionRow.of(a, zone=zone, names=names) for a in actions]


def wall_time(text: str, zone: str, *, what: str) -> datetime:
    """A time typed in a ``datetime-local`` box: a wall time in the corps' zone, with the offset
    that zone had then (a time skipped by a change to summer time takes the offset from before
    it, one that happens twice the first of the two, as ``zoneinfo`` and zonetime.js read them)."""
    try:
        typed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(f"the action's {what} must be a date and time (2026-03-01T10:02)",
                           code="invalid_window") from None
    if typed.tzinfo is not None:
        return typed
    return typed.replace(tzinfo=check_zone(zone))


@router.post("/cases/{case_id}/actions")
def record_action(case_id: str, session: SessionDep, services: ServicesDep, user: FormUser,
                  kind: Annotated[str, Form()], start: Annotated[str, Form()], end: Annotated[str, Form()] = "",
                  devices: Annotated[str, Form()] = "", description: Annotated[str, Form()] = "",
                  record_item: Annotated[str, Form()] = "") -> Response:
    """Record an enforcement action whose window its devices must cover (as the API does: the
    same rules and custody entry); the case's continuity is analysed again."""
    zone = services.settings.time_zone
    action = device_service.create_action(
        session, user=user, case_id=case_id, kind=kind, start=wall_time(start, zone, what="start"),
        end=wall_time(end, zone, what="end") if end.strip() else None,
        devices=[d for d in re.split(r"[,，、\s]+", devices) if d], description=description.strip() or None,
        record_item=record_item or None)
    session.commit()
    services.enqueue(work.ANALYSE_CONTINUITY, case_id)
    return back_to(f"/cases/{case_id}#action-{action.id}", notice="action_recorded")


@router.get("/cases/{case_id}/items", response_class=HTMLResponse)
def items_fragment(case_id: str, request: Request, session: SessionDep, user: PageUser,
                   items_page: ItemsPageNumber = None) -> Response:
    """The item rows of a page alone: the case page asks for them while something is still
    processing (a fragment: an unknown case answers with the API's error, 404)."""
    case = load_case(session, user=user, case_id=case_id)
    page = _items_page(session, case.id, number=items_page, holding=None)
    items = _item_rows(session, case.id, request.app.state.services.settings.time_zone, page)
    return render(request, "_items.html", {"user": user, "case": case, "items": items, "items_page": page,
                                           "items_busy": any(i.busy for i in items)})


@router.get("/cases/{case_id}/custody", response_class=HTMLResponse)
def custody_fragment(case_id: str, request: Request, _settled: LedgerSettled, session: SessionDep, user: PageUser,
                     item: str | None = None, actor: str | None = None, action: str | None = None) -> Response:
    """The custody table alone, with the page's filters: the case page asks for it when its
    evidence table refreshes (an upload, processing), whose work writes entries."""
    case = load_case(session, user=user, case_id=case_id)
    entries, _actors, _actions = _entries(session, case.id, request.app.state.services.settings.time_zone,
                                          item=item or None, actor=actor or None, action=action or None)
    return render(request, "_custody.html", {"user": user, "case": case, "entries": entries, "custody_page": CUSTODY_PAGE,
                                             "filters": {"item": item or "", "actor": actor or "", "action": action or ""}})


@router.get("/cases/{case_id}/exports", response_class=HTMLResponse)
def exports_fragment(case_id: str, request: Request, session: SessionDep, user: PageUser) -> Response:
    """The exports list alone: the case page asks for it while an export is approved, waiting
    or being built (its status and download link follow without a reload)."""
    case = load_case(session, user=user, case_id=case_id)
    rows = export_rows(session, user=user, case_id=case.id, zone=request.app.state.services.settings.time_zone)
    return render(request, "_exports_list.html", {"user": user, "case": case, "exports": rows,
                                                  "exports_moving": EXPORTS_MOVING})


@router.get("/cases/{case_id}/gaps", response_class=HTMLResponse)
def gaps_fragment(case_id: str, request: Request, session: SessionDep, user: PageUser) -> Response:
    """The gaps alone, asked for while the continuity analysis is pending."""
    case = load_case(session, user=user, case_id=case_id)
    report, gaps, _timeline = _gap_rows(session, case.id, request.app.state.services.settings.time_zone, timeline=False)
    return render(request, "_gaps.html", {"user": user, "case": case, "report": report, "gaps": gaps,
                                          "gaps_busy": report.pending, "continuity_state": continuity_state(report)})


@router.get("/cases/{case_id}/timeline", response_class=HTMLResponse)
def timeline_fragment(case_id: str, request: Request, session: SessionDep, user: PageUser) -> Response:
    """The timeline alone: the case page asks for it when the continuity analysis has settled
    on something it was not drawn from (a new recording, a gap found or gone)."""
    case = load_case(session, user=user, case_id=case_id)
    report, _gaps, timeline = _gap_rows(session, case.id, request.app.state.services.settings.time_zone)
    return render(request, "_timeline.html", {"user": user, "case": case, "report": report, "timeline": timeline,
                                              "continuity_state": continuity_state(report)})


@router.get("/cases/{case_id}/closing", response_class=HTMLResponse)
def closing_fragment(case_id: str, request: Request, session: SessionDep, user: PageUser) -> Response:
    """The closing gates alone: the case page asks for them when its evidence table refreshes
    or the continuity analysis changes (an item sealed, a gap found, explained, accepted)."""
    case = load_case(session, user=user, case_id=case_id)
    report = build_report(session, case_id=case.id)
    handles = user.id in stages.handler_ids(session, case_id=case.id)
    life = closing_view(session, user=user, case=case, zone=request.app.state.services.settings.time_zone,
                        continuity=report, handles=handles)
    return render(request, "_closing.html", {"user": user, "case": case, "life": life,
                                             "continuity_state": continuity_state(report)})


@router.post("/gaps/{gap_id}/explain")
def explain_gap(gap_id: str, request: Request, session: SessionDep, user: FormUser,
                reason: Annotated[str, Form()]) -> Response:
    """An officer explains a gap (a custody entry)."""
    gap = gap_service.explain_gap(session, user=user, gap_id=gap_id, reason=reason)
    return back_to(f"/cases/{gap.case_id}#gap-{gap.id}", notice="gap_explained")


@router.post("/gaps/{gap_id}/review")
def review_gap(gap_id: str, request: Request, session: SessionDep, user: FormUser,
               decision: Annotated[str, Form()], comment: Annotated[str, Form()] = "") -> Response:
    """A reviewer accepts or rejects a gap's explanation (a custody entry)."""
    gap = gap_service.review_gap(session, user=user, gap_id=gap_id, accept=decision == "accept",
                                 comment=comment.strip() or None)
    return back_to(f"/cases/{gap.case_id}#gap-{gap.id}", notice="gap_reviewed")



def receipt_rows(session: Session, *, user: User, case_id: str, zone: str) -> list[ReceiptRow]:
    """The case's verification receipts (newest first, at most 5), as rows."""
    found = receipts.list_receipts(session, user=user, case_id=case_id, limit=5)
    people = user_names(session, {r.requested_by for r in found})
    clips = clips_of(session, set().union(*(ReceiptRow.items_named(r) for r in found)), zone=zone)
    return [ReceiptRow.of(r, zone=zone, people=people, clips=clips) for r in found]
