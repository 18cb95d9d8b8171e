"""The case's legal life on the pages: its stage and moves, the stage-move form of its handlers,
the legal-review form of the unit's reviewers, the closing gates and the close button, the case
archive record once closed, legal holds and retention classes (administrators), and the yearly
figures (reviewers and administrators).

Every form posts here and calls the same domain function as the API (archive.cases.stages,
reviews, closing; archive.records), so the same rules, seals and custody entries apply.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.deps import ServicesDep, SessionDep
from api.pages.base import FormUser, FormUserId, PageRoute, PageUser, back_to, render
from api.pages.views import clips_of
from archive.cases import closing, documents, reviews, stages
from archive.cases.models import CaseArchive, LegalReview, StageDocument, StageDocumentRole
from archive.continuity.models import Gap
from archive.continuity.report import CaseContinuity
from archive.errors import NotFound
from archive.identity.users import require_role, user_names
from archive.models import Case, CaseStage, Role, User, utcnow
from archive.records import disposal, figures, holds, outcomes, retention
from archive.records.common import local_year
from archive.records.models import CaseOutcome
from archive.settings import Settings
from archive.timefmt import gap_span, local_date, local_time

router = APIRouter(include_in_schema=False, route_class=PageRoute)
ASPECTS = reviews.ASPECTS


@dataclass(frozen=True)
class MoveRow:
    """One stage move: from, to, who, when, why."""

    from_stage: str
    to_stage: str
    who: str
    at: str
    reason: str


@dataclass(frozen=True)
class GapAbout:
    """Which gap a closing gate is about, in words for any language: its level (a code the
    page labels), its span in the corps' zone, and where it was recorded (device, file); the
    stored cause says it when neither is known (an action's window)."""

    level: str
    start: str
    end: str
    duration: str
    where: str
    cause: str


@dataclass(frozen=True)
class GateRow:
    """One reason the case cannot close yet (archive.cases.closing.closing_gates)."""

    code: str
    message: str
    """The archive's explanation, in English (:data:`archive.cases.closing.GATES`,
    :data:`archive.cases.stages.REVIEW_GATES`), which the page says in its language."""
    subject: str
    gap: GapAbout | None = None
    file: str = ""
    """The file name of the item a gate names only by its id (one still being processed)."""


def _gate_rows(session: Session, *, case: Case, continuity: CaseContinuity | None, zone: str) -> list[GateRow]:
    """The closing gates, those about a gap saying which gap."""
    gates = closing.closing_gates(session, case=case, continuity=continuity)
    wanted = {g["gap"] for g in gates if g.get("gap")}
    gaps = {gap.id: gap for gap in session.execute(select(Gap).where(Gap.id.in_(wanted))).scalars()} if wanted else {}
    files = clips_of(session, [gap.item_id for gap in gaps.values()], zone=zone)
    rows = []
    for g in gates:
        gap, about = gaps.get(g.get("gap") or ""), None
        if gap is not None:
            start, end, duration = gap_span(gap.start, gap.end, zone)
            clip = files.get(gap.item_id or "")
            where = ", ".join(filter(None, (gap.device, clip.name if clip else None)))
            about = GapAbout(level=gap.level, start=start, end=end, duration=duration, where=where, cause=gap.cause)
        rows.append(GateRow(code=g["code"], message=g["message"], subject=g["subject"], gap=about,
                            file=g["subject"] if g["code"] == "processing" else ""))
    return rows


@dataclass(frozen=True)
class DocumentRow:
    """One evidence item linked to a stage as one of its documents."""

    stage: str
    role: str
    item_id: str
    filename: str
    who: str
    at: str
    note: str


def _document_rows(session: Session, links: list[StageDocument], zone: str,
                   people: dict[str, str]) -> list[DocumentRow]:
    clips = clips_of(session, [d.item_id for d in links], zone=zone)
    return [DocumentRow(stage=d.stage.value, role=d.role.value, item_id=d.item_id,
                        filename=clips[d.item_id].name if d.item_id in clips else "",
                        who=people.get(d.linked_by, d.linked_by), at=local_time(d.at, zone), note=d.note or "")
            for d in links]


@dataclass(frozen=True)
class ReviewRow:
    """One sealed legal review."""

    id: str
    checkpoint: str
    stage: str
    decision: str
    opinion: str
    aspects: tuple[tuple[str, bool, str], ...]
    """(aspect, ok, comment) in the order of :data:`archive.cases.reviews.ASPECTS`."""
    minutes: str | None
    reviewer: str
    at: str
    sealed_at: str
    """The RFC 3161 time-stamp's time of its CAdES seal."""
    record_sha256: str

    @classmethod
    def of(cls, review: LegalReview, *, zone: str, people: dict[str, str]) -> ReviewRow:
        aspects = review.aspects or {}
        return cls(
            id=review.id, checkpoint=review.checkpoint.value, stage=review.stage.value, decision=review.decision,
            opinion=review.opinion, minutes=review.discussion_minutes,
            aspects=tuple((n, bool(aspects.get(n, {}).get("ok")), aspects.get(n, {}).get("comment", "")) for n in ASPECTS),
            reviewer=people.get(review.reviewer_id, review.reviewer_id), at=local_time(review.created_at, zone),
            sealed_at=local_time(review.timestamp_time, zone), record_sha256=review.record_sha256,
        )


@dataclass(frozen=True)
class HoldView:
    """The legal hold in force on a case."""

    reason: str
    placed_by: str
    placed_at: str


def _archive(session: Session, case: Case, zone: str) -> dict[str, str] | None:
    """The case archive record written when the case closed (links to it and its seals)."""
    if case.stage != CaseStage.closed:
        return None
    try:
        row: CaseArchive = closing.latest_archive(session, case_id=case.id)
    except NotFound:
        return None
    base = f"/api/v1/cases/{case.id}/archive"
    return {"id": row.id, "sha256": row.sha256, "created": local_time(row.created_at, zone),
            "sealed_at": local_time(row.timestamp_time, zone), "record_url": base, "seal_url": f"{base}/seal",
            "sm2_url": f"{base}/sm2"}


def _hold(session: Session, case_id: str, zone: str) -> HoldView | None:
    hold = holds.active_holds(session, [case_id]).get(case_id)
    if hold is None:
        return None
    people = user_names(session, {hold.placed_by})
    return HoldView(reason=hold.reason, placed_by=people.get(hold.placed_by, hold.placed_by),
                    placed_at=local_time(hold.placed_at, zone))


def _outcome(case: Case, row: CaseOutcome | None, zone: str, people: dict[str, str]) -> dict[str, str]:
    """The case's outcome as the figures count it, and who recorded it, when and why."""
    shown = {"outcome": outcomes.outcome_of(case.stage, row.outcome if row else None)}
    if row is not None:
        shown |= {"reason": row.reason, "who": people.get(row.recorded_by, row.recorded_by),
                  "at": local_time(row.recorded_at, zone)}
    return shown


def closing_view(session: Session, *, user: User, case: Case, zone: str, continuity: CaseContinuity | None,
                 handles: bool) -> dict[str, Any]:
    """What the closing section shows: the stage, the gates (none once closed), whether the
    reader may close (``handles``: the reader handles the case), the archive record once closed."""
    closed = case.stage == CaseStage.closed
    return {"stage": case.stage.value,
            "gates": [] if closed else _gate_rows(session, case=case, continuity=continuity, zone=zone),
            "may_close": (handles or user.role == Role.admin) and not closed,
            "archive": _archive(session, case, zone)}


def life_view(session: Session, *, user: User, case: Case, settings: Settings,
              continuity: CaseContinuity | None = None) -> dict[str, Any]:
    """What the case page shows of the case's legal life, and which of its forms the reader gets
    (``continuity``: the case's report, when the page built it already)."""
    zone = settings.time_zone
    moves = stages.moves_of(session, case_id=case.id)
    found = reviews.reviews_of(session, case_id=case.id)
    handler_ids = stages.handler_ids(session, case_id=case.id)
    links = documents.documents_of(session, case_id=case.id)
    outcome = session.get(CaseOutcome, case.id)
    people = user_names(session, {*handler_ids, *(m.actor_id for m in moves if m.actor_id),
                                  *(r.reviewer_id for r in found), *(d.linked_by for d in links),
                                  *([outcome.recorded_by] if outcome else [])})
    handles = user.id in handler_ids
    may_review = user.role == Role.reviewer and not handles
    in_stage = [c for c, where in stages.REVIEW_STAGES.items() if case.stage in where]
    offered = closing.reviewable_checkpoints(session, case=case, user=user) if may_review else []
    due = stages.due_checkpoints(session, case=case)
    closed = case.stage == CaseStage.closed
    return {
        "life": {
            "handlers": [people.get(i, i) for i in handler_ids],
            "moves": [MoveRow(from_stage=m.from_stage.value, to_stage=m.to_stage.value,
                              who=people.get(m.actor_id, m.actor_id) if m.actor_id else "system",
                              at=local_time(m.at, zone), reason=m.reason or "") for m in moves],
            "may_move": (handles or user.role == Role.admin) and not closed,
            "may_reopen": closed and may_review,
            "documents": _document_rows(session, links, zone, people),
            "document_roles": [r.value for r in StageDocumentRole],
            "outcome": _outcome(case, outcome, zone, people),
            "may_outcome": (handles or user.role == Role.admin) and case.stage in outcomes.DECIDED_STAGES,
            "outcomes": list(outcomes.OUTCOMES),
            "reopen_to": stages.REOPEN_TO.value,
            "targets": [s.value for s in stages.allowed_moves(case)] if not closed else [],
            "may_review": may_review,
            "checkpoints": [c.value for c in offered],
            "again": [c.value for c in offered if c not in due],
            "min_reviews": closing.MIN_APPROVING_REVIEWS,
            "stage_reviewed": bool(in_stage) and not due,
            "due": [c.value for c in due],
            "done": [c.value for c in stages.approved_checkpoints(session, case=case)],
            "aspects": ASPECTS,
            "reviews": [ReviewRow.of(r, zone=zone, people=people) for r in found],
            **closing_view(session, user=user, case=case, zone=zone, continuity=continuity, handles=handles),
            "hold": _hold(session, case.id, zone),
            "retention_class": retention.classes_of(session, settings=settings, case_ids=[case.id])[case.id],
        },
    }


@router.post("/cases/{case_id}/stage")
def move_stage(case_id: str, session: SessionDep, user: FormUser, to: Annotated[str, Form()],
               reason: Annotated[str, Form()] = "") -> Response:
    """A handler moves the case to another stage, with a reason (a custody entry)."""
    stages.move(session, user=user, case_id=case_id, to=to, reason=reason)
    return back_to(f"/cases/{case_id}#life", notice="stage_moved")


async def review_form(request: Request) -> dict[str, str]:
    """The review form's fields (the five aspects each send an ``ok`` box and a comment)."""
    return {k: v for k, v in (await request.form()).items() if isinstance(v, str)}


@router.post("/cases/{case_id}/reviews")
def record_review(case_id: str, services: ServicesDep, user_id: FormUserId,
                  form: Annotated[dict[str, str], Depends(review_form)]) -> Response:
    """A reviewer records a legal review: sealed (CAdES-B-T + SM2) and a custody entry."""
    aspects = {name: {"ok": form.get(f"aspect_{name}_ok") == "on", "comment": form.get(f"aspect_{name}_comment", "")}
               for name in ASPECTS}
    minutes = form.get("discussion_minutes", "").strip() or None
    reviews.record_review(
        db=services.db, sealer=services.sealer, user_id=user_id, case_id=case_id,
        body=reviews.ReviewInput(checkpoint=form.get("checkpoint", ""), aspects=aspects,
                                 decision=form.get("decision", ""), opinion=form.get("opinion", ""),
                                 discussion_minutes=minutes),
    )
    return back_to(f"/cases/{case_id}#reviews", notice="review_recorded")


@router.post("/cases/{case_id}/stage-documents")
def link_document(case_id: str, session: SessionDep, user: FormUser, item: Annotated[str, Form()],
                  role: Annotated[str, Form()], note: Annotated[str, Form()] = "") -> Response:
    """A handler links an item of the case to its current stage as one of the stage's documents."""
    documents.link_document(session, user=user, case_id=case_id, item_id=item, role=role, note=note)
    return back_to(f"/cases/{case_id}#stage-documents", notice="document_linked")


@router.post("/cases/{case_id}/outcome")
def record_outcome(case_id: str, session: SessionDep, user: FormUser, outcome: Annotated[str, Form()],
                   reason: Annotated[str, Form()] = "") -> Response:
    """A handler records the decided case's outcome (penalty or no penalty), with a reason."""
    outcomes.record_outcome(session, user=user, case_id=case_id, outcome=outcome, reason=reason)
    return back_to(f"/cases/{case_id}#life", notice="outcome_recorded")


@router.post("/cases/{case_id}/close")
def close_case(case_id: str, services: ServicesDep, user_id: FormUserId) -> Response:
    """A handler closes the case: every gate checked, the case archive record sealed."""
    closing.close_case(db=services.db, store=services.store, sealer=services.sealer, user_id=user_id,
                       case_id=case_id)
    return back_to(f"/cases/{case_id}#closing", notice="case_closed")


@router.post("/cases/{case_id}/hold")
def change_hold(case_id: str, session: SessionDep, services: ServicesDep, user: FormUser,
               reason: Annotated[str, Form()] = "", change: Annotated[Literal["place", "lift"], Form()] = "place") -> Response:
    """An administrator places (or, ``change=lift``, lifts) a legal hold, with a reason. (The
    field is not called ``action``: a form's control of that name hides the form's own
    ``action`` from scripts.)"""
    done = holds.release_hold if change == "lift" else holds.place_hold
    done(session, store=services.store, user=user, case_id=case_id, reason=reason)
    return back_to("/admin#records", notice="hold_lifted" if change == "lift" else "hold_placed")


@router.post("/cases/{case_id}/retention")
def set_retention(case_id: str, session: SessionDep, services: ServicesDep, user: FormUser,
                  retention_class: Annotated[str, Form()], reason: Annotated[str, Form()] = "") -> Response:
    """An administrator gives the case a retention class, with a reason (a custody entry)."""
    retention.set_retention_class(session, settings=services.settings, user=user, case_id=case_id,
                                  retention_class=retention_class, reason=reason)
    return back_to("/admin#records", notice="retention_set")


def records_view(session: Session, *, settings: Settings, cases: list[Case]) -> dict[str, Any]:
    """The administrator's records section: the classes, and each case's class, stage and hold."""
    standing = retention.standing(session, settings=settings, case_ids=[c.id for c in cases])
    return {
        "retention_classes": retention.retention_classes(settings),
        "default_class": settings.retention_default_class,
        "records": [{"id": c.id, "number": c.case_number, "unit": c.unit.name, "stage": c.stage.value,
                     "retention_class": standing[c.id].retention_class,
                     "hold": hold.reason if (hold := standing[c.id].hold) else None}
                    for c in cases],
    }


FIGURE_KEYS = {
    "by_stage": "stage", "cases_ended": "stage", "average_days_per_stage": "stage", "stage_stays": "stage",
    "by_outcome": "outcome", "reviews_by_checkpoint": "checkpoint",
    **{f"gaps_{name}": "level" for name in ("found", "explained", "accepted", "rejected", "open")},
}
"""Figures whose key is a stored value, and the catalogue group that names it (other keys are
case numbers, or empty)."""


@router.get("/disposal", response_class=HTMLResponse)
def disposal_page(request: Request, session: SessionDep, services: ServicesDep, user: PageUser) -> Response:
    """The disposal-eligibility report (administrators), as ``/api/v1/retention/disposal-report``
    gives it, in the reader's language and the corps' zone: a report, nothing is deleted."""
    report = disposal.disposal_report(session, settings=services.settings, user=user)
    zone = services.settings.time_zone

    def row(entry: disposal.DisposalEntry) -> dict[str, Any]:
        return {"id": entry.case_id, "number": entry.case_number, "unit": entry.unit, "stage": entry.stage,
                "retention": entry.retention_class, "years": entry.retention_years,
                "ended": local_time(entry.ended_at, zone), "until": local_date(entry.retain_until, zone),
                "hold": entry.legal_hold, "store": local_date(entry.store_retention_until, zone),
                "reasons": [r.code for r in entry.reasons], "notes": [n.code for n in entry.notes]}

    return render(request, "disposal.html", {
        "user": user, "made": local_time(report.generated_at, zone),
        "eligible": [row(e) for e in report.eligible], "not_eligible": [row(e) for e in report.not_eligible]})


@router.get("/figures", response_class=HTMLResponse)
def figures_page(request: Request, session: SessionDep, services: ServicesDep, user: PageUser,
                 year: int | None = None) -> Response:
    """The yearly figures (reviewers: their unit's; administrators: every unit's), with the CSV."""
    require_role(user, figures.FIGURE_READERS, doing="read the yearly figures")
    year = year or local_year(utcnow(), services.settings.time_zone)
    found = figures.yearly_figures(session, settings=services.settings, user=user, year=year)
    rows = [(figure, key, FIGURE_KEYS.get(figure) if key else None, value, note)
            for figure, key, value, note in figures.csv_rows(found)]
    return render(request, "figures.html", {"user": user, "year": year, "rows": rows,
                                            "csv_url": f"/api/v1/figures.csv?year={year}"})
