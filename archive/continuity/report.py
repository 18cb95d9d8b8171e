"""The continuity report of a case: the one every reader uses.

:func:`build_report` is the report the API and the case page show, case verification
checks, and a certified export seals (:func:`report_document` is its sealed JSON form).
It says what the analyses found (the gaps, their explanations and reviews), which
actions the recordings must cover, and what keeps the case's continuity from being
complete: items still processing, an analysis queued or running, gaps not accepted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from archive.custody import ledger
from archive.continuity.models import ContinuityState, EnforcementAction, Gap, GapStatus
from archive.continuity.devices import actions_of
from archive.continuity.gaps import gap_record_faults
from archive.continuity.runs import end_never_known, processing_pending
from archive.models import EvidenceItem, User
from archive.identity.users import load_case, user_names
from archive.wording import Sentences

GAP_PENDING_REASONS = {
    GapStatus.open: "gap_unexplained",
    GapStatus.explained: "gap_awaiting_review",
    GapStatus.rejected: "gap_explanation_rejected",
}
"""Why a current gap keeps a case's continuity from being complete, by its status."""
GAP_DETAILS = Sentences("gap_detail", {
    "gap": "{level} gap of {seconds} s on {device} from {start}: {state}",
    "processing": "processing of this item has not finished",
    "analysis": "a continuity analysis of the case is queued or running",
    "action_end": "the window of {kind} from {start} has no end: {why}",
}, fields={"level": r"[a-z_]+", "seconds": r"\d+\.\d", "start": r".+?", "kind": r".+?", "why": r".+"})
"""The ``detail`` of what keeps a case's continuity from being complete (:attr:`CaseContinuity.outstanding`;
``start`` may be shown in local time, with spaces):
a gap's ``state`` is its status or an :data:`archive.continuity.gaps.RECORD_FAULTS` sentence;
``device`` is :data:`NO_DEVICE` for a gap of no device."""
NO_DEVICE = "no device"
GAP_ALTERED = "gap_record_altered"
"""A gap whose status or explanation is not what the custody ledger recorded: a failure of
the case's verification, not something to wait for (:func:`gap_record_faults`)."""


@dataclass(frozen=True)
class CaseContinuity:
    """The continuity report of a case as it stands."""

    case_id: str
    complete: bool
    """True only when nothing is pending and every current gap is accepted."""
    pending: bool
    """True while an item of the case is still being processed or an analysis is queued."""
    gaps: tuple[Gap, ...]
    """Current gaps (and, when asked for, those no longer found), by start time."""
    analysed_at: datetime | None
    """When the last analysis finished; None if none has run."""
    summary: dict[str, Any]
    """Tolerances and counts of the last analysis."""
    actions: tuple[EnforcementAction, ...]
    """The case's enforcement actions, whose windows the recordings must cover, by start."""
    outstanding: tuple[dict[str, Any], ...]
    """What keeps the continuity from being complete: ``{"what", "subject", "reason",
    "detail"}`` per item still processing (``processing``), for an unanswered analysis
    (``continuity_analysis_pending``), per current gap not accepted (see
    :data:`GAP_PENDING_REASONS`) or whose record the custody ledger contradicts
    (:data:`GAP_ALTERED`), and per action whose window can never end
    (``action_end_unknown``, :func:`archive.continuity.runs.end_never_known`). Empty exactly
    when ``complete``."""
    people: dict[str, str]
    """User id -> name of everyone who explained or reviewed one of ``gaps``."""


def _unfinished(session: Session, *, case_id: str) -> tuple[list[str], ContinuityState | None]:
    """(ids of items still being processed, the case's analysis state).

    Items are read before the analysis counters, and the order matters: each statement
    sees what was committed when it began (PostgreSQL's READ COMMITTED), and an item's
    hand-off commits its analysis request before its step is marked done. Read the
    other way round, a hand-off committing between the two reads looked finished while
    its analysis had not run (a report of no gaps, not pending: seen once in CI).
    """
    rows = session.execute(
        select(EvidenceItem.id, EvidenceItem.processing).where(EvidenceItem.case_id == case_id)
        .order_by(EvidenceItem.received_at, EvidenceItem.id)
    ).all()
    busy = [item_id for item_id, processing in rows if processing_pending(processing)]
    state = session.execute(select(ContinuityState).where(ContinuityState.case_id == case_id)).scalar_one_or_none()
    return busy, state


def continuity_report(
    session: Session, *, user: User, case_id: str, include_history: bool = False
) -> CaseContinuity:
    """The case's continuity report, for a user who may read the case."""
    load_case(session, user=user, case_id=case_id)
    return build_report(session, case_id=case_id, include_history=include_history)


def build_report(session: Session, *, case_id: str, include_history: bool = False) -> CaseContinuity:
    """The case's continuity report, without an access check (for verification and exports)."""
    busy, state = _unfinished(session, case_id=case_id)
    analysis = state is not None and state.analysed < state.requested
    query = select(Gap).where(Gap.case_id == case_id)
    if not include_history:
        query = query.where(Gap.current.is_(True))
    gaps = tuple(session.execute(query.order_by(Gap.start, Gap.level, Gap.key)).scalars())
    outstanding = [{"what": "item", "subject": item_id, "reason": "processing",
                    "detail": GAP_DETAILS.say("processing")} for item_id in busy]
    if analysis:
        outstanding.append({"what": "continuity", "subject": case_id, "reason": "continuity_analysis_pending",
                            "detail": GAP_DETAILS.say("analysis")})
    current = [gap for gap in gaps if gap.current]
    altered = gap_record_faults(session, case_id=case_id, gaps=current)
    outstanding += [
        {"what": "gap", "subject": gap.id,
         "reason": GAP_ALTERED if gap.id in altered else GAP_PENDING_REASONS[gap.status],
         "detail": GAP_DETAILS.say("gap", level=gap.level, seconds=f"{gap.duration_seconds:.1f}",
                                   device=gap.device or NO_DEVICE, start=ledger.iso_utc(gap.start),
                                   state=altered[gap.id] if gap.id in altered else gap.status.value)}
        for gap in current if gap.id in altered or gap.status != GapStatus.accepted
    ]
    actions = tuple(actions_of(session, case_id=case_id))
    for action in actions:
        why = end_never_known(session, action)
        if why is not None:
            # Never analysed (no end to check up to): it must not pass for covered.
            outstanding.append({"what": "action", "subject": action.id, "reason": "action_end_unknown",
                                "detail": GAP_DETAILS.say("action_end", kind=action.kind,
                                                          start=ledger.iso_utc(action.window_start), why=why)})
    return CaseContinuity(
        case_id=case_id, complete=not outstanding, pending=bool(busy) or analysis, gaps=gaps,
        analysed_at=state.analysed_at if state else None, summary=(state.summary if state else None) or {},
        actions=actions, outstanding=tuple(outstanding),
        people=people_of(session, gaps),
    )


def people_of(session: Session, gaps: Iterable[Gap]) -> dict[str, str]:
    """User id -> name of everyone who explained or reviewed one of ``gaps``."""
    return user_names(session, {u for g in gaps for u in (g.explained_by, g.reviewed_by) if u})


def gap_counts(report: CaseContinuity) -> dict[str, Any]:
    """How many current gaps there are, how many are accepted, and the status they give.

    ``status`` is ``continuous`` (no gap), ``explained`` (every gap accepted) or
    ``unexplained_gaps``; whether work is still pending is the report's ``pending``.
    """
    current = [g for g in report.gaps if g.current]
    unresolved = sum(1 for g in current if g.status != GapStatus.accepted)
    return {
        "gaps": len(current), "accepted": len(current) - unresolved, "unresolved": unresolved,
        "status": "continuous" if not current else ("explained" if not unresolved else "unexplained_gaps"),
    }


def report_document(report: CaseContinuity) -> dict[str, Any]:
    """The report as the JSON a certified export seals (``continuity/report.json``).

    ``case``, ``gaps``, ``actions`` and ``summary`` (:func:`gap_counts`) are the format
    readers have relied on since the first exports; ``complete``, ``pending``,
    ``analysed_at`` and ``analysis`` (the last analysis's tolerances and counts) were
    added when exports began to seal this report. Only current gaps are listed.
    """
    def name(user_id: str | None) -> str | None:
        return report.people.get(user_id, user_id) if user_id else None

    def when(moment: datetime | None) -> str | None:
        return ledger.iso_utc(moment) if moment else None

    return {
        "case": report.case_id,
        "complete": report.complete,
        "pending": report.pending,
        "analysed_at": when(report.analysed_at),
        "analysis": report.summary,
        "gaps": [
            {
                "key": g.key, "level": g.level, "device": g.device, "item": g.item_id,
                "previous_item": g.previous_item_id, "action": g.action_id,
                "start": ledger.iso_utc(g.start), "end": ledger.iso_utc(g.end),
                "duration_seconds": g.duration_seconds, "cause": g.cause, "status": g.status.value,
                "explanation": g.explanation, "explained_by": name(g.explained_by),
                "explained_at": when(g.explained_at),
                "review_comment": g.review_comment, "reviewed_by": name(g.reviewed_by),
                "reviewed_at": when(g.reviewed_at),
            }
            for g in report.gaps if g.current
        ],
        "actions": [
            {"id": a.id, "kind": a.kind, "window_start": ledger.iso_utc(a.window_start),
             "window_end": when(a.window_end), "record_item": a.record_item_id,
             "devices": a.devices, "description": a.description}
            for a in report.actions
        ],
        "summary": gap_counts(report),
    }
