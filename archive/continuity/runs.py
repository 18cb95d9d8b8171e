"""Requesting and running a case's continuity analysis, and keeping its findings.

:mod:`archive.continuity.analysis` computes gaps from plain values; this module feeds it from the
database (recordings of a case, device clock offsets, actions) and keeps its findings:

* a gap is stored under its stable key (:func:`archive.continuity.analysis.gap_key`), so a
  re-analysis finds the same row and its explanation and review stay attached;
* a gap a later analysis no longer finds is kept, marked not current;
* each change that can move a gap (evidence processed, an action recorded, a clock
  offset set) *requests* an analysis by bumping the case's ``requested`` counter in the
  same transaction; the analysis task records which request it answered, so the
  report can say whether it is ``pending`` and a task run twice does the work once.

Every action here that concerns a case is a custody entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from archive import work
from archive.custody import ledger
from archive.errors import NotFound
from archive.continuity.models import ContinuityState, Device, EnforcementAction, Gap, GapStatus
from archive.models import Case, EvidenceItem, EvidenceKind, utcnow
from archive.continuity import analysis
from archive.timefmt import in_range_utc

RECORDING_KINDS = (EvidenceKind.bodycam_video, EvidenceKind.interview_video)
"""Kinds whose items are recordings of a device (camera or interview room)."""
STILL_CONTAINERS = ("image2", "png_pipe", "jpeg_pipe", "tiff_pipe", "webp_pipe", "bmp_pipe", "gif")
"""ffprobe's formats of still images, which it "understands" as one-frame video: not recordings."""
PIPELINE_DONE_STEP = "continuity"
"""The processing step that hands a processed item to continuity analysis."""


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


# --- analysis ---------------------------------------------------------------------------


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time with its zone (as media tools and manifests write them), else None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def is_recording(facts: dict[str, Any] | None) -> bool:
    """True when probed media facts describe audio or video with a timeline."""
    if not facts or "container" not in facts:
        return False
    if facts.get("container") in STILL_CONTAINERS:
        return False
    return any(s.get("codec_type") in ("video", "audio") for s in facts.get("streams") or ())


def recording_of(item: EvidenceItem | Row[Any], *, default_start: datetime | None = None) -> analysis.Recording | None:
    """The item (or a row of its columns read here, by name) as a recording for continuity
    analysis, or None when it has no duration or is no recording: a still image, a file with
    no audio or video stream, or one whose streams hold not one timed packet (a header's
    duration over nothing).

    Start: the declared ``recorded_start``, else the media's creation time, else
    ``default_start`` (a capture bundle's start for its screen recording). With none of
    them the recording is not placed (:attr:`analysis.Recording.placed`): its pauses are
    still found, at times that assume it ended when the archive received it. Duration:
    from the packet scan (gaps included), else the container's. In-file gaps: from the
    packet scan.
    """
    facts = item.media_facts or {}
    if not is_recording(facts):
        return None
    start = item.recorded_start or parse_time(facts.get("creation_time")) or default_start
    scan = facts.get("packet_scan") or {}
    if "error" in scan:
        return None  # streams with not one timed packet: no recording, whatever the header says
    duration = scan.get("media_duration")
    if duration is None:
        duration = facts.get("duration_seconds")
    if not isinstance(duration, (int, float)) or duration <= 0:
        return None
    placed = start is not None
    if start is None:
        start = item.received_at - timedelta(seconds=float(duration))
    holes = tuple(
        analysis.InFileGap(start_offset=float(g["start_offset"]), end_offset=float(g["end_offset"]),
                             duration=float(g["duration"]), stream=g.get("stream"))
        for g in scan.get("gaps") or ()
    )
    return analysis.Recording(
        item_id=item.id, device_id=item.device_id, start=start, duration_seconds=float(duration), in_file_gaps=holes,
        placed=placed,
    )


def unreadable_of(item: EvidenceItem | Row[Any]) -> analysis.Unreadable | None:
    """The item as a recording that cannot be read (see :class:`analysis.Unreadable`), or None.

    An empty file, or one the probe could not parse (``media_facts["probe_error"]``, the tool's
    message), or one the probe read that holds no recording: a still image (sent as a camera's
    video), or media whose packets give no duration. Each is preserved and sealed, but has no
    duration and no place on the timeline. An item not probed yet is not judged, nor one whose
    packets are still to be scanned for its duration.
    """
    facts = item.media_facts or {}
    no_recording = ("container" in facts and (not is_recording(facts) or "packet_scan" in facts)
                    and recording_of(item) is None)
    if item.size and "probe_error" not in facts and not no_recording:
        return None
    if not item.size:
        reason = ""
    elif no_recording:
        reason = str(facts["container"])
    else:
        reason = str(facts.get("probe_error") or "")
    declared = item.recorded_start is not None
    return analysis.Unreadable(
        item_id=item.id, device_id=item.device_id, at=item.recorded_start if declared else item.received_at,
        reason=reason, declared=declared, no_recording=bool(item.size) and no_recording,
    )


CAPTURE_MAX_SPAN = timedelta(days=7)
"""Longest manifest window a capture bundle may claim as its workstation's recording."""
CAPTURE_CLOCK_SLACK = timedelta(minutes=5)
"""How far after its receipt a bundle's ``capture_end`` may lie (a workstation clock running fast)."""


def implausible_capture_window(start: datetime, end: datetime, *, received_at: datetime) -> str | None:
    """Why a capture bundle's manifest window (``capture_start`` to ``capture_end``) cannot be
    its workstation's recording, else None: a moment outside the years 1900-2999 (the bounds of
    a ``recorded_start``), a window longer than :data:`CAPTURE_MAX_SPAN`, or one ending more
    than :data:`CAPTURE_CLOCK_SLACK` after the bundle was received (a capture not yet made).
    Such a bundle is kept and flagged ``implausible_capture_window`` and covers no action."""
    if in_range_utc(start) is None or in_range_utc(end) is None:
        return "capture_start and capture_end must fall within the years 1900-2999"
    if end - start > CAPTURE_MAX_SPAN:
        return f"the window lasts {end - start}, longer than {CAPTURE_MAX_SPAN.days} days"
    if end > received_at + CAPTURE_CLOCK_SLACK:
        return (f"capture_end {end.isoformat()} is after the bundle was received "
                f"({received_at.isoformat(timespec='seconds')})")
    return None


def capture_windows(session: Session, *, case_id: str) -> list[analysis.Recording]:
    """The case's capture bundles as recordings of their workstation device.

    A bundle's manifest window (``capture_start`` to ``capture_end``) counts as recording
    by the device it was uploaded with, unless it is implausible
    (:func:`implausible_capture_window`). A screen recording inside it that paused punches
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
        start, end = parse_time(details.get("capture_start")), parse_time(details.get("capture_end"))
        if start is None or end is None or end <= start:
            continue
        if implausible_capture_window(start, end, received_at=bundle.received_at) is not None:
            continue
        holes: list[analysis.InFileGap] = []
        for member in session.execute(select(EvidenceItem).where(EvidenceItem.parent_id == bundle.id)).scalars():
            screen = recording_of(member, default_start=start)
            if screen is None:
                continue
            shift = (screen.start - start).total_seconds()
            holes += [
                analysis.InFileGap(start_offset=h.start_offset + shift, end_offset=h.end_offset + shift,
                                     duration=h.duration, stream=h.stream)
                for h in screen.in_file_gaps
            ]
        out.append(analysis.Recording(
            item_id=bundle.id, device_id=bundle.device_id, start=start,
            duration_seconds=(end - start).total_seconds(), in_file_gaps=tuple(sorted(holes, key=lambda h: h.start_offset)),
        ))
    return out


def signing_time(item: EvidenceItem) -> datetime | None:
    """When a record was signed: its PDF signature's time, else the time declared for it."""
    document = (item.media_facts or {}).get("document") or {}
    return parse_time(document.get("signed_at")) or item.recorded_start


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


def processing_pending(processing: dict[str, Any] | None) -> bool:
    """True while an item's processing (its ``processing`` map) has not yet reached its
    continuity hand-off, or a step is queued or running."""
    processing = processing or {}
    if any((v or {}).get("state") in ("queued", "running") for v in processing.values()):
        return True
    return (processing.get(PIPELINE_DONE_STEP) or {}).get("state") not in ("done", "failed")


def end_never_known(session: Session, action: EnforcementAction) -> str | None:
    """Why the window of an action that waits for its record's signing can never end, else
    None: the record's processing finished and gives no signing time after the action's
    start (an unsigned or encrypted PDF, no ``recorded_start`` declared). Such an action is
    never analysed, so it is refused when recorded and listed as outstanding when its record
    turns out so later; None too while the record is still being processed."""
    if action.record_item_id is None or action_end(session, action) is not None:
        return None
    record = session.get(EvidenceItem, action.record_item_id)
    if record is None or processing_pending(record.processing):
        return None
    return (f"its record {record.id} ({record.original_filename}) has no signing time after the action's start"
            " (no PDF signature time, no recorded_start declared)")


def findings(session: Session, *, case_id: str, tolerance_seconds: float
             ) -> tuple[analysis.ContinuityReport, dict[str, float]]:
    """What the case's recordings, device clocks and enforcement actions give now: the
    analysis's report and the clock offsets it used (what :func:`analyse_case` keeps, and what
    case verification compares the kept gaps with)."""
    # Rows of the columns recording_of and unreadable_of read (by name), not the items as
    # objects with their case and derived files: 1.8 s a run in a case of 10,000 items.
    items = session.execute(
        select(EvidenceItem.id, EvidenceItem.device_id, EvidenceItem.recorded_start, EvidenceItem.received_at,
               EvidenceItem.size, EvidenceItem.media_facts).where(
            # Without a device a recording still has its own pauses (in-file gaps only).
            EvidenceItem.case_id == case_id, EvidenceItem.kind.in_(RECORDING_KINDS),
        )
    ).all()
    recordings = [r for r in (recording_of(i) for i in items) if r is not None]
    recordings += capture_windows(session, case_id=case_id)
    unreadable = [u for u in (unreadable_of(i) for i in items) if u is not None]
    devices = {r.device_id for r in recordings} | {u.device_id for u in unreadable}
    actions = session.execute(select(EnforcementAction).where(EnforcementAction.case_id == case_id)).scalars().all()
    for act in actions:
        devices.update(act.devices or [])
    clocks = {
        d.id: d.clock_offset_seconds
        for d in session.execute(select(Device).where(Device.id.in_([d for d in devices if d]))).scalars()
    }
    windows = [(a, action_end(session, a)) for a in actions]
    report = analysis.analyse(
        recordings=recordings,
        clocks=clocks,
        actions=[
            analysis.Action(action_id=a.id, kind=a.kind, start=a.window_start, end=end,
                              devices=tuple(a.devices or ()), description=a.description)
            for a, end in windows if end is not None
        ],
        tolerance_seconds=tolerance_seconds,
        unreadable=unreadable,
    )
    return report, clocks


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
    report, clocks = findings(session, case_id=case_id, tolerance_seconds=tolerance_seconds)
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
        "analysis_version": ANALYSIS_VERSION,
        "tolerance_seconds": report.tolerance_seconds,
        "segment_tolerance_seconds": report.segment_tolerance_seconds,
        "recording_count": report.recording_count,
        "action_count": report.action_count,
        "unplaced_items": list(report.unplaced),
        "unreadable_items": list(report.unreadable),
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


@dataclass(frozen=True)
class KeptGapDifference:
    """A gap where the case's record (its current ``gaps`` rows) and its recordings disagree."""

    key: str
    kept: Gap | None
    """The current row; None when the recordings give a gap the record lacks (deleted, or
    marked no longer current)."""
    found: analysis.Gap | None
    """What the recordings give; None when the record holds a gap they do not give (added)."""


def _same_gap(kept: Gap, found: analysis.Gap) -> bool:
    def near(a: float, b: float) -> bool:  # a stored time keeps microseconds at best
        return abs(a - b) < 0.001
    return ((kept.level, kept.device, kept.item_id, kept.previous_item_id, kept.action_id, kept.cause)
            == (found.level, found.device, found.item, found.previous_item, found.action, found.cause)
            and near(kept.start.timestamp(), found.start.timestamp()) and near(kept.end.timestamp(), found.end.timestamp())
            and near(kept.duration_seconds, found.duration_seconds))


ANALYSIS_VERSION = 2
"""The analysis's version, kept with each case's last analysis. Raise it whenever the gaps the
same recordings give change (a new kind of gap, another cause's wording): a case last analysed
by another version is not compared with what this one gives (:func:`kept_gap_differences`), which
would call an upgrade tampering."""


def kept_gap_differences(session: Session, *, case_id: str) -> list[KeptGapDifference] | None:
    """How the case's current gaps differ from what its recordings, clocks and actions give
    now, analysed again with the tolerance of the last analysis (nothing is written).

    Every change that moves a gap requests an analysis, so once the last request is answered
    the two agree: a gap deleted, shortened or marked no longer current in the database, or
    one added, is named here. None when they cannot be compared: never analysed, an analysis
    requested and not yet run (the caller also waits for items still processing), or the last
    analysis made by another version of it (:data:`ANALYSIS_VERSION`)."""
    state = session.get(ContinuityState, case_id)
    summary = (state.summary or {}) if state is not None else {}
    tolerance = summary.get("tolerance_seconds")
    if (state is None or state.analysed < state.requested or tolerance is None
            or summary.get("analysis_version") != ANALYSIS_VERSION):
        return None
    report, _ = findings(session, case_id=case_id, tolerance_seconds=tolerance)
    found = {g.key: g for g in report.gaps}
    kept = {g.key: g for g in session.execute(
        select(Gap).where(Gap.case_id == case_id, Gap.current.is_(True))).scalars()}
    return [KeptGapDifference(key, kept.get(key), found.get(key)) for key in sorted(found.keys() | kept.keys())
            if key not in kept or key not in found or not _same_gap(kept[key], found[key])]
