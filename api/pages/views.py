"""View models of the pages: what a template shows, built from the domains' rows.

Templates never get ORM rows: these frozen dataclasses carry exactly what is shown, times
already in the corps' zone with their offset.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from collections.abc import Collection

from sqlalchemy import select
from sqlalchemy.orm import Session

from archive.continuity.models import EnforcementAction, Gap
from archive.evidence.items import is_viewable, is_wacz
from archive.models import Case, EvidenceItem, ExportRequest, LedgerEntry
from archive.timefmt import gap_span, local_time, shown

PLAYABLE_ROLE = "proxy"
"""The derived object a browser plays (an H.264/AAC MP4 made by ingest.derive)."""


@dataclass(frozen=True)
class CaseRow:
    """One line of the case list."""

    id: str
    number: str
    title: str
    unit: str
    status: str
    stage: str
    held: bool
    """Under legal hold."""
    opened: str
    flags: tuple[str, ...]
    open_gaps: int
    mine: bool
    """Opened by the reader."""

    @classmethod
    def of(cls, case: Case, *, zone: str, open_gaps: int, reader_id: str, held: bool = False) -> CaseRow:
        return cls(id=case.id, number=case.case_number, title=case.title, unit=case.unit.name,
                   status=case.status.value, stage=case.stage.value, held=held, opened=local_time(case.created_at, zone),
                   flags=tuple(case.flags or ()), open_gaps=open_gaps, mine=case.created_by == reader_id)


@dataclass(frozen=True)
class ItemRow:
    """One evidence item on the case page."""

    id: str
    filename: str
    kind: str
    size: int
    media_type: str
    sha256: str
    sm3: str | None
    device: str | None
    recorded_start: str
    received: str
    processing: tuple[tuple[str, str, str], ...]
    """(step, state, reason) in the order the pipeline recorded them."""
    seal_status: str
    flags: tuple[str, ...]
    in_bundle: bool
    playable: str | None
    """URL of the proxy a <video> plays, when one was made."""
    content_url: str
    derived: tuple[tuple[str, str], ...] = ()
    """(role, URL) of each derived object (thumbnail strip, proxy, sealed copy, seals...):
    links, never loaded by the page itself, since every read is a custody entry."""
    view: str | None = None
    """URL showing an image or PDF original in the browser (a read, so a custody entry)."""
    replay: str | None = None
    """URL of the replay page of a WACZ (api/pages/replay.py)."""

    @property
    def busy(self) -> bool:
        """Still being processed or sealed (the page keeps asking)."""
        return self.seal_status == "pending"

    @classmethod
    def of(cls, item: EvidenceItem, *, zone: str) -> ItemRow:
        roles = {d.role for d in item.derived}
        return cls(
            id=item.id, filename=item.original_filename, kind=item.kind.value, size=item.size,
            media_type=item.media_type, sha256=item.sha256, sm3=item.sm3, device=item.device_id,
            recorded_start=local_time(item.recorded_start, zone), received=local_time(item.received_at, zone),
            processing=tuple((name, st.get("state", ""), st.get("reason") or "")
                             for name, st in (item.processing or {}).items()),
            seal_status=item.seal_status, flags=tuple(item.flags or ()), in_bundle=item.parent_id is not None,
            playable=f"/api/v1/evidence/{item.id}/derived/{PLAYABLE_ROLE}" if PLAYABLE_ROLE in roles else None,
            content_url=f"/api/v1/evidence/{item.id}/content",
            view=f"/api/v1/evidence/{item.id}/content?inline=true" if is_viewable(item) else None,
            derived=tuple((d.role, f"/api/v1/evidence/{item.id}/derived/{d.role}") for d in item.derived),
            replay=f"/evidence/{item.id}/replay" if is_wacz(item) else None,
        )


@dataclass(frozen=True)
class Clip:
    """An evidence item as a reader knows it, where a sentence names it by id (a gap's cause)."""

    id: str
    name: str
    """Its original file name."""
    about: str
    """Its device and recorded start (local time), as far as known: what tells apart two
    files of the same name."""

    @property
    def href(self) -> str:
        """Its row on the case page."""
        return f"#item-{self.id}"


def clips_of(session: Session, item_ids: Collection[str | None], *, zone: str) -> dict[str, Clip]:
    """The items ``item_ids`` (None and unknown ids left out) as :class:`Clip`, by id, in one query."""
    wanted = {i for i in item_ids if i}
    if not wanted:
        return {}
    rows = session.execute(select(EvidenceItem.id, EvidenceItem.original_filename, EvidenceItem.device_id,
                                  EvidenceItem.recorded_start).where(EvidenceItem.id.in_(wanted)))
    return {ident: Clip(ident, name, " · ".join(filter(None, (device, local_time(start, zone)))))
            for ident, name, device, start in rows}


FILE_LEVELS = ("in_file", "unreadable")
"""Gap levels whose cause is about one file without naming it (its row names the file)."""


@dataclass(frozen=True)
class ActionRow:
    """An enforcement action of the case: its window in the corps' zone, its devices, its record."""

    id: str
    kind: str
    start: str
    end: str
    devices: list[str]
    record: str | None
    """The file name of the record whose signing ends the window, if one was named."""
    description: str | None

    @classmethod
    def of(cls, action: EnforcementAction, *, zone: str, names: dict[str, str]) -> ActionRow:
        """``names``: item ids to their file names."""
        return cls(id=action.id, kind=action.kind, start=local_time(action.window_start, zone),
                   end=local_time(action.window_end, zone), devices=list(action.devices or []),
                   record=names.get(action.record_item_id) if action.record_item_id else None,
                   description=action.description)


@dataclass(frozen=True)
class GapRow:
    """One gap in continuous recording, with where a player should start to show it."""

    id: str
    level: str
    device: str | None
    start: str
    end: str
    duration: str
    cause: str
    status: str
    explanation: str | None
    explained: str | None
    reviewed: str | None
    review_comment: str | None
    item_id: str | None
    play_item: str | None
    """The item whose proxy shows the moments before the gap (the one that ends at it)."""
    play_at: float | None
    """Seconds into that item's proxy: a few seconds before the gap starts."""
    clips: dict[str, Clip]
    """The items the cause names by id (the clip before and after the gap), as readers know them."""
    file: Clip | None = None
    """The file a gap is in when its cause does not name it (a pause inside a file, a recording
    that could not be read)."""

    @classmethod
    def of(cls, gap: Gap, *, zone: str, people: dict[str, str], play: tuple[str | None, float | None],
           clips: dict[str, Clip]) -> GapRow:
        """``play``: the item and second a player starts from to show the gap (see timeline.play_point);
        ``clips``: :func:`clips_of` the page's gaps."""
        start, end, duration = gap_span(gap.start, gap.end, zone)
        play_item, play_at = play
        explained = (f"{people.get(gap.explained_by, gap.explained_by)} · {local_time(gap.explained_at, zone)}"
                     if gap.explained_by else None)
        reviewed = (f"{people.get(gap.reviewed_by, gap.reviewed_by)} · {local_time(gap.reviewed_at, zone)}"
                    if gap.reviewed_by else None)
        return cls(id=gap.id, level=gap.level, device=gap.device, start=start, end=end, duration=duration,
                   cause=gap.cause, status=gap.status.value, explanation=gap.explanation, explained=explained,
                   reviewed=reviewed, review_comment=gap.review_comment, item_id=gap.item_id,
                   play_item=play_item if play_at is not None else None, play_at=play_at,
                   clips={i: clips[i] for i in (gap.item_id, gap.previous_item_id) if i in clips},
                   file=clips.get(gap.item_id or "") if gap.level in FILE_LEVELS else None)


@dataclass(frozen=True)
class EntryRow:
    """One custody entry."""

    seq: int
    at: str
    actor: str
    action: str
    item_id: str | None
    details: tuple[tuple[str, Any], ...]
    """(key, value) as stored, moments written in the corps' zone; the page labels both."""
    entry_hash: str

    @classmethod
    def of(cls, entry: LedgerEntry, *, zone: str) -> EntryRow:
        details: dict[str, Any] = json.loads(entry.details) if isinstance(entry.details, str) else dict(entry.details or {})
        return cls(seq=entry.seq, at=local_time(entry.recorded_at, zone), actor=entry.actor, action=entry.action,
                   item_id=entry.item_id, details=tuple((k, _shown(v, zone)) for k, v in details.items()),
                   entry_hash=entry.entry_hash)


def _shown(value: Any, zone: str) -> Any:
    """:func:`shown` at every depth of a stored JSON value."""
    if isinstance(value, dict):
        return {k: _shown(v, zone) for k, v in value.items()}
    if isinstance(value, list):
        return [_shown(v, zone) for v in value]
    return shown(value, zone)


@dataclass(frozen=True)
class ExportRow:
    """One certified export, as the case page and the court page show it."""

    id: str
    case_id: str
    status: str
    requested_by: str | None
    recipient: str | None
    approved_by: str | None
    created: str
    size: int | None
    sha256: str | None
    error: str | None
    download_url: str | None
    court_reference: str = ""
    """The court's own reference of the request the export answers (empty: none)."""
    chosen: int | None = None
    """How many items were chosen for it (their bundles' members come too); None: the whole case."""

    @classmethod
    def of(cls, export: ExportRequest, *, zone: str, people: dict[str, str],
           references: dict[str, str] | None = None) -> ExportRow:
        return cls(
            id=export.id, case_id=export.case_id, status=export.status,
            requested_by=people.get(export.requested_by or ""), recipient=people.get(export.recipient_id or ""),
            approved_by=people.get(export.approved_by or ""), created=local_time(export.created_at, zone),
            size=export.size, sha256=export.sha256, error=export.error,
            download_url=f"/api/v1/exports/{export.id}/download" if export.status == "ready" else None,
            court_reference=(references or {}).get(export.id, ""),
            chosen=len(export.items) if export.items is not None else None,
        )


@dataclass(frozen=True)
class CourtRequestRow:
    """A court's request by case number, as its court user or the unit's reviewers see it."""

    id: str
    case_number: str
    case_id: str | None
    court_reference: str
    legal_basis: str
    requested_by: str
    sent: str
    status: str
    reason: str | None
    export_id: str | None

    @classmethod
    def of(cls, request: Any, *, zone: str, people: dict[str, str], show_case: bool) -> CourtRequestRow:
        return cls(id=request.id, case_number=request.case_number, case_id=request.case_id if show_case else None,
                   court_reference=request.court_reference, legal_basis=request.legal_basis,
                   requested_by=people.get(request.requested_by, request.requested_by),
                   sent=local_time(request.created_at, zone), status=request.status.value, reason=request.reason,
                   export_id=request.export_id)


@dataclass(frozen=True)
class ReceiptRow:
    """A case verification's receipt: its state and each check's outcome."""

    id: str
    status: str
    requested_by: str | None
    created: str
    finished: str
    checks: tuple[tuple[str, str, str, str], ...]
    """(what, subject, outcome, detail) for each check."""
    pending: tuple[tuple[str, str, str], ...]
    """(what, subject, reason) for each reason the receipt is not ``passed``."""
    named: dict[str, Clip] = field(default_factory=dict)
    """The items among the subjects, by id, as a reviewer knows them (their file names)."""

    @property
    def running(self) -> bool:
        return self.status in ("queued", "running")

    @staticmethod
    def items_named(receipt: Any) -> set[str]:
        """The ids of the items a receipt's checks and pending reasons are about."""
        return {c.get("subject", "") for c in (*(receipt.checks or ()), *(receipt.pending or ())) if c.get("what") == "item"}

    @classmethod
    def of(cls, receipt: Any, *, zone: str, people: dict[str, str], clips: dict[str, Clip] | None = None) -> ReceiptRow:
        return cls(
            id=receipt.id, status=receipt.status, requested_by=people.get(receipt.requested_by),
            created=local_time(receipt.created_at, zone), finished=local_time(receipt.finished_at, zone),
            checks=tuple((c.get("what", ""), c.get("subject", ""), c.get("outcome", ""), shown(c.get("detail") or "", zone))
                         for c in receipt.checks or ()),
            pending=tuple((p.get("what", ""), p.get("subject", ""), p.get("reason", "")) for p in receipt.pending or ()),
            named={i: clip for i, clip in (clips or {}).items() if i in cls.items_named(receipt)},
        )


@dataclass(frozen=True)
class ReplayView:
    """What the replay page of a WACZ shows: the item, its case, and what the player loads."""

    item_id: str
    filename: str
    sha256: str
    size: int
    case_id: str
    case_number: str
    captured: str
    """When the capture started (local time with its offset), or empty when unknown."""
    source: str
    """The WACZ the player reads: the item's content endpoint (range requests, each a custody entry)."""
    url: str
    """The page shown first: the one asked for, else the capture's target, else none (the page list)."""

    @classmethod
    def of(cls, item: EvidenceItem, *, zone: str, url: str | None) -> ReplayView:
        target = (item.details or {}).get("target_url")
        return cls(item_id=item.id, filename=item.original_filename, sha256=item.sha256, size=item.size,
                   case_id=item.case_id, case_number=item.case.case_number,
                   captured=local_time(item.recorded_start, zone), source=f"/api/v1/evidence/{item.id}/content",
                   url=url or (target if isinstance(target, str) else ""))
