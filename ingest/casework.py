"""The database side of continuity: device clocks, enforcement actions, persisted gaps.

:mod:`ingest.continuity` computes gaps from plain values; this module feeds it from the
database (recordings of a case, device clock offsets, actions) and keeps its findings:

* a gap is stored under its stable key (:func:`ingest.continuity.gap_key`), so a
  re-analysis finds the same row and its explanation and review stay attached;
* a gap a later analysis no longer finds is kept, marked not current;
* each change that can move a gap (evidence processed, an action recorded, a clock
  offset set) *requests* an analysis by bumping the case's ``requested`` counter in the
  same transaction; the analysis task records which request it answered, so the
  report can say whether it is ``pending`` and a task run twice does the work once.

Every action here that concerns a case is a custody entry.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from archive import work
from archive.custody import ledger
from archive.db import insert_ignoring_duplicates
from archive.errors import Conflict, Forbidden, InvalidInput, NotFound
from archive.models import (
    AwareDateTime,
    Base,
    Case,
    Device,
    EnforcementAction,
    EvidenceItem,
    EvidenceKind,
    Gap,
    GapStatus,
    Role,
    User,
    utcnow,
)
from archive.identity.users import CASE_WRITERS, actor_name, load_case, require_role
from ingest import continuity

RECORDING_KINDS = (EvidenceKind.bodycam_video, EvidenceKind.interview_video)
"""Kinds whose items are recordings of a device (camera or interview room)."""
PIPELINE_DONE_STEP = "continuity"
"""The processing step that hands a processed item to continuity analysis."""
MAX_CLOCK_OFFSET = 7 * 24 * 3600.0


class ContinuityState(Base):
    """Per case: how many analyses were requested and which request was last answered.

    Lives here rather than in ``archive.models`` because only continuity uses it
    (table created by migration 0003).
    """

    __tablename__ = "continuity_state"
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), primary_key=True)
    requested: Mapped[int] = mapped_column(default=0)
    analysed: Mapped[int] = mapped_column(default=0)
    analysed_at: Mapped[datetime | None] = mapped_column(AwareDateTime())
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON)


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


# --- requests ---------------------------------------------------------------------------


def _lock_case(session: Session, case_id: str) -> None:
    # The case row is the lock for its continuity state (the state row may not exist
    # yet). Lock order everywhere (see ledger.append): case rows (sorted by id), then
    # item rows, then the ledger lock; another order deadlocks against a running analysis.
    # FOR NO KEY UPDATE: inserts referencing the case (items, gaps) need not wait for it.
    found = session.execute(select(Case.id).where(Case.id == case_id).with_for_update(key_share=True)).scalar_one_or_none()
    if found is None:
        raise NotFound(f"no case {case_id}", code="case_not_found")


def _state(session: Session, case_id: str) -> ContinuityState:
    state = session.get(ContinuityState, case_id)
    if state is None:
        state = ContinuityState(case_id=case_id, requested=0, analysed=0)
        session.add(state)
        session.flush()
    return state


def request_analysis(session: Session, *, case_id: str) -> None:
    """Ask for the case's continuity to be analysed again (enqueue the task after commit)."""
    _lock_case(session, case_id)
    state = _state(session, case_id)
    state.requested += 1
    session.flush()
    work.want(session, task=work.ANALYSE_CONTINUITY, subject=case_id)


# --- devices and actions ----------------------------------------------------------------


def _check_device_id(device_id: str) -> str:
    device_id = device_id.strip()
    if not device_id or len(device_id) > 200 or not device_id.isprintable():
        raise InvalidInput("device id must be 1-200 printable characters", code="invalid_device_id")
    return device_id


def set_device_clock(
    session: Session,
    *,
    user: User,
    device_id: str,
    offset_seconds: float,
    source: str = "declared",
    description: str | None = None,
) -> tuple[Device, list[str]]:
    """Set a device's clock offset (S > 0: device clock ahead; true = device - S).

    Returns the device and the ids of the cases whose continuity it changes (their
    analysis is requested here; enqueue it after commit). Each such case gets a
    custody entry; with none, one entry without a case records the change. Forbidden
    for a non-admin when a case of another unit uses the device.
    """
    require_role(user, CASE_WRITERS, doing="set device clocks")
    device_id = _check_device_id(device_id)
    if not math.isfinite(offset_seconds) or abs(offset_seconds) > MAX_CLOCK_OFFSET:
        raise InvalidInput(
            f"clock_offset_seconds must be a finite number within ±{MAX_CLOCK_OFFSET:.0f}", code="invalid_clock_offset"
        )
    if source not in ("declared", "measured"):
        raise InvalidInput("source must be 'declared' or 'measured'", code="invalid_offset_source")
    # A device's offset moves the gaps of every case that uses it, so a non-admin may set
    # it only when all of those cases are their own unit's.
    if user.role != Role.admin:
        others = session.execute(
            select(Case.id).where(Case.id.in_(_cases_of_device(session, device_id)), Case.unit_id != user.unit_id)
        ).first()
        if others is not None:
            raise Forbidden(
                f"device {device_id} is used in another unit's cases; an administrator must set its clock",
                code="device_of_other_unit",
            )
    # Upsert, then lock (the device row comes first in the lock order, see ledger.append):
    # two requests naming a new device at once both succeed, the later one's offset last.
    created = insert_ignoring_duplicates(session, Device, [{
        "id": device_id, "clock_offset_seconds": float(offset_seconds), "offset_source": source, "updated_by": user.id,
    }])
    device = session.execute(
        select(Device).where(Device.id == device_id).with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    ).scalar_one()
    previous = None if created else device.clock_offset_seconds
    device.clock_offset_seconds = float(offset_seconds)
    device.offset_source = source
    if description is not None:
        device.description = description[:500]
    elif previous is not None and previous != float(offset_seconds):
        # A description says how the old offset was found ("measured at docking 09:00");
        # kept, it would vouch for a number it no longer describes.
        device.description = None
    device.updated_at = utcnow()
    device.updated_by = user.id
    session.flush()
    cases = sorted(_cases_of_device(session, device_id))
    details = {
        "device": device_id, "clock_offset_seconds": device.clock_offset_seconds, "previous": previous,
        "source": source,
    }
    for case_id in cases:  # case rows before the ledger lock (see _lock_case), in one order
        request_analysis(session, case_id=case_id)
    for case_id in cases or [None]:
        ledger.append(session, actor=actor_name(user), action="device_clock_set", case_id=case_id, details=details)
    return device, cases


def _cases_of_device(session: Session, device_id: str) -> set[str]:
    cases = set(
        session.execute(select(EvidenceItem.case_id).where(EvidenceItem.device_id == device_id).distinct()).scalars()
    )
    # Device lists are JSON; filtering them in SQL is not portable across our databases.
    for case_id, devices in session.execute(select(EnforcementAction.case_id, EnforcementAction.devices)):
        if device_id in (devices or []):
            cases.add(case_id)
    return cases


def create_action(
    session: Session,
    *,
    user: User,
    case_id: str,
    kind: str,
    start: datetime,
    end: datetime | None,
    devices: Iterable[str],
    description: str | None = None,
    record_item: str | None = None,
) -> EnforcementAction:
    """Record an enforcement action whose window the given devices must cover.

    ``record_item`` names the action's record, a document of the case: its signing time
    (the PDF's signature, else the ``recorded_start`` declared for it) closes the window,
    so an interview runs from its start to the signing of its record and ``end`` may be
    left out. Requests a continuity analysis of the case (enqueue it after commit).
    """
    load_case(session, user=user, case_id=case_id, write=True)
    kind = kind.strip()
    if not kind or len(kind) > 60:
        raise InvalidInput("kind must be 1-60 characters (inspection, seizure, interview...)", code="invalid_kind")
    if end is None and record_item is None:
        raise InvalidInput("give the action's end, or the record whose signing ends it", code="invalid_window")
    if start.tzinfo is None or (end is not None and end.tzinfo is None):
        raise InvalidInput("start and end need a time zone (e.g. Z or +08:00)", code="timezone_required")
    try:
        # Stored in UTC: a time at the edge of the calendar (0001-01-01+14:00) has no UTC form.
        start.astimezone(timezone.utc), end.astimezone(timezone.utc) if end is not None else None
    except OverflowError as exc:
        raise InvalidInput("start and end must fall within years 1-9999 in UTC", code="invalid_window") from exc
    if end is not None and end <= start:
        raise InvalidInput("the action's end must be after its start", code="invalid_window")
    if record_item is not None:
        record = session.get(EvidenceItem, record_item)
        if record is None or record.case_id != case_id:
            raise InvalidInput(f"no item {record_item} in this case to serve as the record",
                               code="invalid_record_item")
    device_ids = list(dict.fromkeys(_check_device_id(d) for d in devices))
    action = EnforcementAction(
        case_id=case_id, kind=kind, window_start=start, window_end=end, devices=device_ids,
        description=description, record_item_id=record_item, created_by=user.id,
    )
    session.add(action)
    session.flush()
    request_analysis(session, case_id=case_id)
    ledger.append(
        session, actor=actor_name(user), action="action_recorded", case_id=case_id,
        details={
            "action": action.id, "kind": kind, "start": ledger.iso_utc(action.window_start),
            "end": ledger.iso_utc(action.window_end) if action.window_end else None, "devices": device_ids,
            "description": description, "record_item": record_item,
        },
    )
    return action


def list_actions(session: Session, *, user: User, case_id: str) -> list[EnforcementAction]:
    """The enforcement actions of a case, by window start."""
    load_case(session, user=user, case_id=case_id)
    return list(
        session.execute(
            select(EnforcementAction).where(EnforcementAction.case_id == case_id)
            .order_by(EnforcementAction.window_start, EnforcementAction.created_at)
        ).scalars()
    )


# --- analysis ---------------------------------------------------------------------------


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def recording_of(item: EvidenceItem, *, default_start: datetime | None = None) -> continuity.Recording | None:
    """The item as a recording for continuity analysis, or None when it cannot be placed.

    Start: the declared ``recorded_start``, else the media's creation time, else
    ``default_start`` (a capture bundle's start for its screen recording). Duration:
    from the packet scan (gaps included), else the container's. In-file gaps: from the
    packet scan.
    """
    facts = item.media_facts or {}
    start = item.recorded_start or _parse_time(facts.get("creation_time")) or default_start
    scan = facts.get("packet_scan") or {}
    duration = scan.get("media_duration") if "error" not in scan else None
    if duration is None:
        duration = facts.get("duration_seconds")
    if start is None or not isinstance(duration, (int, float)) or duration <= 0:
        return None
    holes = tuple(
        continuity.InFileGap(start_offset=float(g["start_offset"]), end_offset=float(g["end_offset"]),
                             duration=float(g["duration"]), stream=g.get("stream"))
        for g in scan.get("gaps") or ()
    )
    return continuity.Recording(
        item_id=item.id, device_id=item.device_id, start=start, duration_seconds=float(duration), in_file_gaps=holes
    )


def capture_windows(session: Session, *, case_id: str) -> list[continuity.Recording]:
    """The case's capture bundles as recordings of their workstation device.

    A bundle's manifest window (``capture_start`` to ``capture_end``) counts as recording
    by the device it was uploaded with. A screen recording inside it that paused punches
    its pauses into the window, so a missing stretch is reported (level ``in_file``, on
    the bundle) rather than covered by the manifest's claim.
    """
    bundles = session.execute(
        select(EvidenceItem).where(
            EvidenceItem.case_id == case_id, EvidenceItem.kind == EvidenceKind.remote_capture,
            EvidenceItem.parent_id.is_(None), EvidenceItem.device_id.is_not(None),
        )
    ).scalars().all()
    out = []
    for bundle in bundles:
        details = bundle.details or {}
        start, end = _parse_time(details.get("capture_start")), _parse_time(details.get("capture_end"))
        if start is None or end is None or end <= start:
            continue
        holes: list[continuity.InFileGap] = []
        for member in session.execute(select(EvidenceItem).where(EvidenceItem.parent_id == bundle.id)).scalars():
            screen = recording_of(member, default_start=start)
            if screen is None:
                continue
            shift = (screen.start - start).total_seconds()
            holes += [
                continuity.InFileGap(start_offset=h.start_offset + shift, end_offset=h.end_offset + shift,
                                     duration=h.duration, stream=h.stream)
                for h in screen.in_file_gaps
            ]
        out.append(continuity.Recording(
            item_id=bundle.id, device_id=bundle.device_id, start=start,
            duration_seconds=(end - start).total_seconds(), in_file_gaps=tuple(sorted(holes, key=lambda h: h.start_offset)),
        ))
    return out


def signing_time(item: EvidenceItem) -> datetime | None:
    """When a record was signed: its PDF signature's time, else the time declared for it."""
    document = (item.media_facts or {}).get("document") or {}
    return _parse_time(document.get("signed_at")) or item.recorded_start


def action_end(session: Session, action: EnforcementAction) -> datetime | None:
    """Where an action's window ends: its record's signing, else its declared end.

    None while an action that waits for its record's signing has none yet (nothing to
    check until then).
    """
    if action.record_item_id is not None:
        record = session.get(EvidenceItem, action.record_item_id)
        signed = signing_time(record) if record is not None else None
        if signed is not None and signed > action.window_start:
            return signed
    return action.window_end


def analyse_case(
    session: Session, *, case_id: str, tolerance_seconds: float, actor: str = "system:worker"
) -> ContinuityState | None:
    """Analyse a case's continuity and persist the gaps, if a request is unanswered.

    Idempotent: when the latest request was already answered nothing happens (no
    custody entry). Otherwise gaps are upserted by key, gaps no longer found become
    not current, and one ``continuity_analysed`` custody entry is written.
    """
    if session.get(Case, case_id) is None:
        return None
    _lock_case(session, case_id)
    state = _state(session, case_id)
    if state.requested == 0:
        state.requested = 1  # analysed on demand without a recorded request
    if state.analysed >= state.requested:
        return state
    target = state.requested
    items = session.execute(
        select(EvidenceItem).where(
            EvidenceItem.case_id == case_id, EvidenceItem.device_id.is_not(None),
            EvidenceItem.kind.in_(RECORDING_KINDS),
        )
    ).scalars().all()
    recordings = [r for r in (recording_of(i) for i in items) if r is not None]
    recordings += capture_windows(session, case_id=case_id)
    devices = {r.device_id for r in recordings}
    actions = session.execute(select(EnforcementAction).where(EnforcementAction.case_id == case_id)).scalars().all()
    for act in actions:
        devices.update(act.devices or [])
    clocks = {
        d.id: d.clock_offset_seconds
        for d in session.execute(select(Device).where(Device.id.in_([d for d in devices if d]))).scalars()
    }
    windows = [(a, action_end(session, a)) for a in actions]
    report = continuity.analyse(
        recordings=recordings,
        clocks=clocks,
        actions=[
            continuity.Action(action_id=a.id, kind=a.kind, start=a.window_start, end=end,
                              devices=tuple(a.devices or ()), description=a.description)
            for a, end in windows if end is not None
        ],
        tolerance_seconds=tolerance_seconds,
    )
    found = {g.key: g for g in report.gaps}
    rows = {g.key: g for g in session.execute(select(Gap).where(Gap.case_id == case_id)).scalars()}
    new_keys, resolved = [], []
    for key, gap in found.items():
        row = rows.get(key)
        if row is None:
            row = Gap(case_id=case_id, key=key, status=GapStatus.open)
            session.add(row)
            new_keys.append(key)
        row.level, row.device, row.item_id = gap.level, gap.device, gap.item
        row.previous_item_id, row.action_id = gap.previous_item, gap.action
        row.start, row.end, row.duration_seconds, row.cause = gap.start, gap.end, gap.duration_seconds, gap.cause
        row.current = True
    for key, row in rows.items():
        if key not in found and row.current:
            row.current = False
            resolved.append(key)
    state.analysed = target
    state.analysed_at = utcnow()
    state.summary = {
        "tolerance_seconds": report.tolerance_seconds,
        "segment_tolerance_seconds": report.segment_tolerance_seconds,
        "recording_count": report.recording_count,
        "action_count": report.action_count,
        "gap_count": len(found),
        "clocks": clocks,
    }
    session.flush()
    ledger.append(
        session, actor=actor, action="continuity_analysed", case_id=case_id,
        details={"request": target, **state.summary, "gaps": sorted(found), "new": sorted(new_keys),
                 "no_longer_found": sorted(resolved)},
    )
    return state


# --- report, explanations, reviews ------------------------------------------------------


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


def load_gap(session: Session, *, user: User, gap_id: str, lock: bool = False) -> Gap:
    """A gap of a case the user may read (locked for update when ``lock``)."""
    gap = session.get(Gap, gap_id)
    if gap is None:
        raise NotFound(f"no gap {gap_id} visible to you", code="gap_not_found")
    try:
        load_case(session, user=user, case_id=gap.case_id)
    except NotFound:
        raise NotFound(f"no gap {gap_id} visible to you", code="gap_not_found") from None
    if lock:
        session.execute(select(Gap.id).where(Gap.id == gap_id).with_for_update(key_share=True))
        session.refresh(gap)
    return gap


def explain_gap(session: Session, *, user: User, gap_id: str, reason: str) -> Gap:
    """An officer of the case's unit says why the record is interrupted."""
    require_role(user, {Role.officer}, doing="explain gaps")
    gap = load_gap(session, user=user, gap_id=gap_id, lock=True)
    reason = reason.strip()
    if not reason:
        raise InvalidInput("reason is empty", code="invalid_reason")
    if not gap.current:
        raise Conflict("this gap is no longer found by the analysis", code="gap_not_current")
    if gap.status == GapStatus.accepted:
        raise Conflict("this gap's explanation was already accepted", code="gap_already_accepted")
    gap.explanation, gap.explained_by, gap.explained_at = reason, user.id, utcnow()
    gap.status = GapStatus.explained
    gap.review_comment = gap.reviewed_by = gap.reviewed_at = None
    ledger.append(
        session, actor=actor_name(user), action="gap_explained", case_id=gap.case_id, item_id=gap.item_id,
        details={"gap": gap.id, "key": gap.key, "level": gap.level, "reason": reason},
    )
    return gap


def review_gap(session: Session, *, user: User, gap_id: str, accept: bool, comment: str | None = None) -> Gap:
    """A reviewer of the case's unit accepts or rejects a gap's explanation."""
    require_role(user, {Role.reviewer}, doing="review gap explanations")
    gap = load_gap(session, user=user, gap_id=gap_id, lock=True)
    if not gap.current:
        raise Conflict("this gap is no longer found by the analysis", code="gap_not_current")
    if gap.status != GapStatus.explained:
        raise Conflict(f"only an explained gap can be reviewed (this one is {gap.status.value})",
                       code="gap_not_explained")
    gap.status = GapStatus.accepted if accept else GapStatus.rejected
    gap.review_comment, gap.reviewed_by, gap.reviewed_at = comment, user.id, utcnow()
    ledger.append(
        session, actor=actor_name(user), action="gap_reviewed", case_id=gap.case_id, item_id=gap.item_id,
        details={"gap": gap.id, "key": gap.key, "accepted": bool(accept), "comment": comment},
    )
    return gap
