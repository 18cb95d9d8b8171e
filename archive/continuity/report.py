"""The continuity report of a case, and what keeps it from being complete."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from archive.custody import ledger
from archive.continuity.models import ContinuityState, Gap, GapStatus
from archive.continuity.runs import PIPELINE_DONE_STEP
from archive.models import EvidenceItem, User
from archive.identity.users import load_case


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


def processing_pending(processing: dict[str, Any] | None) -> bool:
    """True while an item's processing (its ``processing`` map) has not yet reached its
    continuity hand-off, or a step is queued or running."""
    processing = processing or {}
    if any((v or {}).get("state") in ("queued", "running") for v in processing.values()):
        return True
    return (processing.get(PIPELINE_DONE_STEP) or {}).get("state") not in ("done", "failed")


def _unfinished(session: Session, *, case_id: str, stop_early: bool) -> tuple[list[str], bool]:
    """(ids of items still being processed, whether a continuity analysis is unanswered).

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
    if busy and stop_early:
        return busy, False
    state = session.execute(select(ContinuityState).where(ContinuityState.case_id == case_id)).scalar_one_or_none()
    return busy, state is not None and state.analysed < state.requested


def case_pending(session: Session, *, case_id: str) -> bool:
    """True while processing of the case's evidence or its continuity analysis is unfinished."""
    busy, analysis = _unfinished(session, case_id=case_id, stop_early=True)
    return bool(busy) or analysis


GAP_PENDING_REASONS = {
    GapStatus.open: "gap_unexplained",
    GapStatus.explained: "gap_awaiting_review",
    GapStatus.rejected: "gap_explanation_rejected",
}
"""Why a current gap keeps a case's continuity from being complete, by its status."""


def pending_work(session: Session, *, case_id: str) -> list[dict[str, Any]]:
    """What keeps the case's processing and continuity from being complete, machine-readable.

    One ``{"what", "subject", "reason", "detail"}`` per item still being processed
    (``processing``), for an unanswered continuity analysis (``continuity_analysis_pending``)
    and per current gap not accepted (see :data:`GAP_PENDING_REASONS`). Empty when the
    case's continuity is complete (case verification's ``passed`` needs that).
    """
    busy, analysis = _unfinished(session, case_id=case_id, stop_early=False)
    out: list[dict[str, Any]] = []
    for item_id in busy:
        out.append({"what": "item", "subject": item_id, "reason": "processing",
                    "detail": "processing of this item has not finished"})
    if analysis:
        out.append({"what": "continuity", "subject": case_id, "reason": "continuity_analysis_pending",
                    "detail": "a continuity analysis of the case is queued or running"})
    gaps = session.execute(
        select(Gap).where(Gap.case_id == case_id, Gap.current.is_(True), Gap.status != GapStatus.accepted)
        .order_by(Gap.start, Gap.level, Gap.key)
    ).scalars()
    for gap in gaps:
        out.append({"what": "gap", "subject": gap.id, "reason": GAP_PENDING_REASONS[gap.status],
                    "detail": f"{gap.level} gap of {gap.duration_seconds:.1f} s on {gap.device or 'no device'} "
                              f"from {ledger.iso_utc(gap.start)}: {gap.status.value}"})
    return out


def continuity_report(
    session: Session, *, user: User, case_id: str, include_history: bool = False
) -> CaseContinuity:
    """The case's continuity as analysed so far, with its pending and complete flags."""
    load_case(session, user=user, case_id=case_id)
    return build_report(session, case_id=case_id, include_history=include_history)


def build_report(session: Session, *, case_id: str, include_history: bool = False) -> CaseContinuity:
    """The continuity report without an access check (for sealing and exports)."""
    query = select(Gap).where(Gap.case_id == case_id)
    if not include_history:
        query = query.where(Gap.current.is_(True))
    gaps = tuple(session.execute(query.order_by(Gap.start, Gap.level, Gap.key)).scalars())
    pending = case_pending(session, case_id=case_id)
    state = session.get(ContinuityState, case_id)
    complete = not pending and all(g.status == GapStatus.accepted for g in gaps if g.current)
    return CaseContinuity(
        case_id=case_id, complete=complete, pending=pending, gaps=gaps,
        analysed_at=state.analysed_at if state else None, summary=(state.summary if state else None) or {},
    )


def people_of(session: Session, gaps: Iterable[Gap]) -> dict[str, str]:
    """User id -> name of everyone who explained or reviewed one of ``gaps``."""
    ids = {u for g in gaps for u in (g.explained_by, g.reviewed_by) if u}
    if not ids:
        return {}
    return dict(session.execute(select(User.id, User.name).where(User.id.in_(ids))).all())  # type: ignore[arg-type]
