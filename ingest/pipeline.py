"""The processing steps a worker runs on each original after receipt.

Each step is a plain function the worker wraps in ``EvidenceTask.step`` (which records
running/done/failed on the item). Steps are idempotent: each checks, under the item's
row lock, whether its result is already recorded, and writes its result and its one
custody entry in one transaction, so a step run twice (a redelivered task after a
killed worker) adds nothing. A step may return a short text that becomes the reason
shown with its ``done`` state (for example why a file is unprobeable).

The original is only ever read: it is streamed once into a private temporary
directory (and its SHA-256 checked on the way), and the media tools run on that copy.
Failing to understand a file never removes it or fails the item (design invariant 5):
it is flagged instead.
"""

from __future__ import annotations

import logging
import mimetypes
import posixpath
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from archive import work
from archive.evidence import items as evidence
from archive.evidence import receiving
from archive.exports.waiting import wake_waiting_exports
from archive.continuity import runs
from archive.custody import ledger
from archive.db import Database
from archive.models import EvidenceItem, EvidenceKind, ItemStatus
from ingest.bundles import iter_member, read_bundle
from ingest.derive import make_proxy, make_thumbnail_strip
from ingest.documents import DOCUMENT_PROBLEMS, document_facts, sniff_media_type
from ingest.errors import IngestError, NoPackets, StepFailed
from ingest.media import probe
from ingest.packets import scan_packets
from ingest.workspace import Workspace

log = logging.getLogger(__name__)

ACTOR = "system:worker"
STEPS = ("probe", "packets", "derive", "document", "bundle", runs.PIPELINE_DONE_STEP)
"""The steps of this module, in the order the worker runs them."""
VIDEO_KINDS = runs.RECORDING_KINDS
DOCUMENT_TYPES = (
    "application/pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
)
_CHUNK = 1 << 20
Enqueue = Callable[..., None]


class StepNote(str):
    """A step's remark, shown as the reason of its ``done`` state (e.g. why unprobeable)."""


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            yield chunk


def _looks_like_video(item: EvidenceItem, sniffed: str) -> bool:
    guessed = mimetypes.guess_type(item.original_filename, strict=False)[0] or ""
    return item.kind in VIDEO_KINDS or guessed.startswith("video/") or sniffed.startswith("video/")


def _worth_probing(item: EvidenceItem, sniffed: str) -> bool:
    guessed = mimetypes.guess_type(item.original_filename, strict=False)[0] or ""
    return (
        item.kind in VIDEO_KINDS
        or sniffed.startswith(("video/", "audio/"))
        or guessed.startswith(("video/", "audio/"))
        # Unknown bytes may be a camera's raw stream; ffprobe decides.
        or sniffed == "application/octet-stream"
    )


is_recording = runs.is_recording


def has_video(facts: dict[str, Any] | None) -> bool:
    """True when probed media facts describe a recording with a video stream."""
    return is_recording(facts) and any(s.get("codec_type") == "video" for s in facts.get("streams") or ())  # type: ignore[union-attr]


# --- probe ------------------------------------------------------------------------------


def probe_step(ws: Workspace) -> StepNote | None:
    """Sniff the media type and probe with ffprobe; store the media facts.

    A file that cannot be probed although it is (or is named as) video keeps
    everything and is flagged ``unprobeable`` with ffprobe's message; one of a recording
    kind that ffprobe reads as no recording (a still image sent as a camera's video) is
    flagged ``no_recording``. When no ``recorded_start`` was given at upload, the media's
    creation time is used. Custody entry: ``media_probed``.
    """
    with ws.db.session() as session:
        if ledger.count_actions(session, item_id=ws.item_id, action="media_probed"):
            return None
    item = ws.item()
    path = ws.original()
    sniffed = sniff_media_type(path) if item.size else "application/octet-stream"
    facts: dict[str, Any] | None = None
    error: str | None = None
    probed = _worth_probing(item, sniffed)
    if probed:
        if item.size == 0:
            error = "empty file: nothing to probe"
        else:
            try:
                facts = probe(path).as_dict()
            except IngestError as exc:
                error = exc.message
    reason = None
    with ws.db.session() as session:
        item = evidence.lock_item(session, ws.item_id)
        if ledger.count_actions(session, item_id=item.id, action="media_probed"):
            return None
        if sniffed != "application/octet-stream":
            item.media_type = sniffed
        elif error is not None:
            item.media_type = "application/octet-stream"
        media_facts: dict[str, Any] = dict(facts or {})
        media_facts["sniffed_media_type"] = sniffed
        details: dict[str, Any] = {"sniffed_media_type": sniffed, "probed": probed}
        if error is not None:
            media_facts["probe_error"] = error
            details.update(outcome="unprobeable", message=error)
            if _looks_like_video(item, sniffed):
                evidence.add_flag(item, "unprobeable")
                item.status = ItemStatus.flagged
                item.details = {**(item.details or {}), "unprobeable_reason": error}
                reason = StepNote(work.STEP_REASONS.say("unprobeable", detail=error))
        elif facts is not None:
            details.update(
                outcome="ok", container=facts["container"], duration_seconds=facts["duration_seconds"],
                creation_time=facts["creation_time"], streams=[s["codec_name"] for s in facts["streams"]],
            )
            if item.kind in runs.RECORDING_KINDS and not is_recording(facts):
                # Kept and sealed; continuity lists it as a recording missing from the timeline.
                details["outcome"] = "no_recording"
                evidence.add_flag(item, "no_recording")
                item.status = ItemStatus.flagged
                reason = StepNote(work.STEP_REASONS.say("no_recording", detail=facts["container"]))
            created = facts.get("creation_time")
            if item.recorded_start is None and created and is_recording(facts):
                item.recorded_start = runs.parse_time(created)
                details["recorded_start_from"] = "creation_time"
                item.details = {**(item.details or {}), "recorded_start_source": "creation_time"}
        else:
            details["outcome"] = "not_media"
        item.media_facts = media_facts
        ledger.append(session, actor=ACTOR, action="media_probed", case_id=item.case_id, item_id=item.id,
                      details=details)
    return reason


# --- packets ----------------------------------------------------------------------------


def packets_step(ws: Workspace) -> StepNote | None:
    """Scan packet timestamps of a recording for jumps (in-file gaps).

    The result goes to ``media_facts["packet_scan"]``; custody entry ``packets_scanned``. A file
    whose streams hold not one timed packet (its index cut inside) holds no recording, whatever
    duration its header states: its scan records the ``error`` (so continuity lists it as
    unreadable, not as time recorded) and the item is flagged ``no_recording``.
    """
    item = ws.item()
    facts = item.media_facts or {}
    if not is_recording(facts) or "packet_scan" in facts:
        return None
    try:
        scan = scan_packets(ws.original(), tolerance_seconds=ws.settings.gap_tolerance_seconds)
    except NoPackets as exc:
        return _no_packets(ws, exc.message)
    except IngestError as exc:
        raise StepFailed(work.STEP_REASONS.say("packet_scan_failed", detail=exc.message)) from exc
    result = {
        "stream": scan.stream, "packet_count": scan.packet_count, "first_pts": scan.first_pts,
        "last_pts": scan.last_pts, "media_duration": scan.media_duration,
        "nominal_interval": scan.nominal_interval, "tolerance_seconds": scan.tolerance_seconds,
        "method": scan.method,
        "gaps": [{"start_offset": g.start_offset, "end_offset": g.end_offset, "duration": g.duration,
                  "stream": g.stream} for g in scan.gaps],
    }
    with ws.db.session() as session:
        item = evidence.lock_item(session, ws.item_id)
        if not evidence.add_fact(item, "packet_scan", result):
            return None
        ledger.append(session, actor=ACTOR, action="packets_scanned", case_id=item.case_id, item_id=item.id,
                      details={k: result[k] for k in ("stream", "packet_count", "media_duration", "gaps")})
    return StepNote(work.STEP_REASONS.say("timestamp_jumps", count=len(scan.gaps))) if scan.gaps else None


def _no_packets(ws: Workspace, message: str) -> StepNote | None:
    result = {"error": message, "packet_count": 0, "gaps": []}
    with ws.db.session() as session:
        item = evidence.lock_item(session, ws.item_id)
        if not evidence.add_fact(item, "packet_scan", result):
            return None
        evidence.add_flag(item, "no_recording")
        item.status = ItemStatus.flagged
        ledger.append(session, actor=ACTOR, action="packets_scanned", case_id=item.case_id, item_id=item.id,
                      details={"outcome": "no_recording", "packet_count": 0, "error": message})
        container = (item.media_facts or {}).get("container", "")
    return StepNote(work.STEP_REASONS.say("no_recording", detail=container))


# --- derived files ----------------------------------------------------------------------

_DERIVATIONS = (
    ("thumbnail", make_thumbnail_strip, ".jpg", "image/jpeg"),
    ("proxy", make_proxy, ".mp4", "video/mp4"),
)


def derive_step(ws: Workspace) -> StepNote | None:
    """Make a thumbnail strip (``thumbnail``) and a browser-playable proxy (``proxy``).

    Each is a new object in the original's vault with a row naming the original and a
    ``derived_created`` custody entry; a role already stored is not made again.
    """
    item = ws.item()
    if not has_video(item.media_facts):
        return None
    failures = []
    for role, make, suffix, media_type in _DERIVATIONS:
        with ws.db.session() as session:
            if evidence.find_derived(session, item_id=item.id, role=role) is not None:
                continue
        out = ws.dir / f"{role}{suffix}"
        try:
            made = make(ws.original(), out)
        except IngestError as exc:
            failures.append(work.STEP_REASONS.say("derive_failed", role=role, failure=exc.message))
            continue
        evidence.store_derived(
            db=ws.db, store=ws.store, item_id=item.id, role=role, chunks=_file_chunks(made.path),
            media_type=media_type, suffix=suffix, details={"width": made.width, "height": made.height},
        )
        out.unlink(missing_ok=True)
    if failures:
        raise StepFailed(work.DERIVE_SEPARATOR.join(failures))
    return None


# --- documents --------------------------------------------------------------------------


def document_step(ws: Workspace) -> StepNote | None:
    """Page count and text (for search) of PDFs and office files (and any ``document``).

    Stored in ``media_facts["document"]``; custody entry ``document_read``. A document
    that cannot be read is flagged ``unreadable_document`` and kept.
    """
    item = ws.item()
    facts = item.media_facts or {}
    sniffed = facts.get("sniffed_media_type") or item.media_type
    if "document" in facts or not (item.kind == EvidenceKind.document or sniffed in DOCUMENT_TYPES):
        return None
    if item.size == 0:
        result: dict[str, Any] = {"error": DOCUMENT_PROBLEMS.say("empty")}
    else:
        try:
            doc = document_facts(ws.original())
            result = {"media_type": doc.media_type, "page_count": doc.page_count, "text": doc.text,
                      "truncated": doc.truncated, "encrypted": doc.encrypted, "signed_at": doc.signed_at}
        except IngestError as exc:
            result = {"error": exc.message}
    with ws.db.session() as session:
        item = evidence.lock_item(session, ws.item_id)
        if not evidence.add_fact(item, "document", result):
            return None
        if "error" in result:
            evidence.add_flag(item, "unreadable_document")
            item.status = ItemStatus.flagged
        else:
            item.details = {**(item.details or {}), "page_count": result["page_count"]}
        ledger.append(
            session, actor=ACTOR, action="document_read", case_id=item.case_id, item_id=item.id,
            details={"outcome": "failed" if "error" in result else "ok", "error": result.get("error"),
                     "page_count": result.get("page_count"), "chars": len(result.get("text") or ""),
                     "truncated": result.get("truncated"), "encrypted": result.get("encrypted"),
                     "signed_at": result.get("signed_at")},
        )
    return StepNote(work.STEP_REASONS.say("unreadable_document", detail=result["error"])) if "error" in result else None


# --- capture bundles --------------------------------------------------------------------


def bundle_step(ws: Workspace, *, enqueue: Enqueue) -> StepNote | None:
    """Validate a remote-inspection capture bundle and register each member as evidence.

    The manifest's fields go into the bundle item's ``details``. Each member becomes
    its own item (``parent_id`` = the bundle) through the same receipt path as an
    upload: streamed into the vault, hashed, checked against the hash the bundle
    reading computed, locked, recorded. Members already registered are not registered
    again. An invalid bundle is kept and flagged ``invalid_bundle``; one whose manifest window
    is implausible (:func:`runs.implausible_capture_window`) is unpacked and flagged
    ``implausible_capture_window``, its ``recorded_start`` not taken from it.
    """
    item = ws.item()
    if item.kind != EvidenceKind.remote_capture or item.parent_id is not None:
        return None
    if (item.details or {}).get("inspection"):
        return None  # the archive's own capture (a WACZ): its members were received with it
    with ws.db.session() as session:
        if ledger.count_actions(session, item_id=item.id, action="bundle_unpacked"):
            return _implausible_note((item.details or {}).get("capture_window_problem"))
        if "invalid_bundle" in (item.flags or []):
            return StepNote(work.STEP_REASONS.say("invalid_bundle", detail=(item.details or {}).get("bundle_error")))
    path = ws.original()
    try:
        bundle = read_bundle(path)
    except IngestError as exc:
        with ws.db.session() as session:
            locked = evidence.lock_item(session, ws.item_id)
            if "invalid_bundle" not in (locked.flags or []):
                evidence.add_flag(locked, "invalid_bundle")
                locked.status = ItemStatus.flagged
                locked.details = {**(locked.details or {}), "bundle_error": exc.message}
                ledger.append(session, actor=ACTOR, action="bundle_invalid", case_id=locked.case_id,
                              item_id=locked.id, details={"message": exc.message})
        return StepNote(work.STEP_REASONS.say("invalid_bundle", detail=exc.message))
    manifest = {
        "target_url": bundle.target_url, "capture_start": bundle.capture_start.isoformat(),
        "capture_end": bundle.capture_end.isoformat(), "operator": bundle.operator, "tool": bundle.tool,
    }
    implausible = runs.implausible_capture_window(bundle.capture_start, bundle.capture_end,
                                                  received_at=item.received_at)
    with ws.db.session() as session:
        locked = evidence.lock_item(session, ws.item_id)
        if implausible is not None:
            # Kept, its members registered; its window is no recording time (runs.capture_windows).
            evidence.add_flag(locked, "implausible_capture_window")
            locked.status = ItemStatus.flagged
            locked.details = {**(locked.details or {}), "capture_window_problem": implausible}
        elif locked.recorded_start is None:
            # The capture window is this bundle's recording time (by its workstation).
            locked.recorded_start = bundle.capture_start
        locked.details = {
            **(locked.details or {}), **manifest,
            "bundle": {"archive_format": bundle.archive_format, "manifest_sha256": bundle.manifest_sha256,
                       "member_count": len(bundle.members), "manifest": bundle.manifest},
        }
    registered = _members_by_name(ws)
    for member in bundle.members:
        if member.name in registered:
            continue
        incoming = receiving.IncomingEvidence(
            # The item is named by the member's last path component (checked like any
            # client-given name when the bundle was read); its full path is in details.
            case_id=item.case_id, kind=EvidenceKind.remote_capture, filename=posixpath.basename(member.name.replace("\\", "/")),
            declared_sha256=member.sha256, details={"bundle_member": member.name, "bundle_id": item.id},
            parent_id=item.id,
        )
        try:
            child = receiving.receive_original(
                db=ws.db, store=ws.store, user_id=item.uploaded_by, incoming=incoming,
                chunks=iter_member(path, member.name), retention_days=ws.settings.retention_days,
                expected_size=member.size,
            )
        except IngestError as exc:
            raise StepFailed(work.STEP_REASONS.say("member_unregistered", member=repr(member.name),
                                                   detail=exc.message)) from exc
        registered[member.name] = child
    for child in registered.values():
        # Members registered by an earlier, interrupted run may never have been queued.
        if not (child.processing or {}).get(runs.PIPELINE_DONE_STEP):
            enqueue(work.PROCESS_ITEM, child.id)
    with ws.db.session() as session:
        locked = evidence.lock_item(session, ws.item_id)
        if ledger.count_actions(session, item_id=locked.id, action="bundle_unpacked"):
            return _implausible_note(implausible)
        ledger.append(
            session, actor=ACTOR, action="bundle_unpacked", case_id=locked.case_id, item_id=locked.id,
            details={**manifest, "manifest_sha256": bundle.manifest_sha256,
                     **({"capture_window_problem": implausible} if implausible else {}),
                     "members": [{"name": m.name, "item": registered[m.name].id, "sha256": m.sha256,
                                  "sm3": m.sm3, "size": m.size} for m in bundle.members]},
        )
    return _implausible_note(implausible)


def _implausible_note(problem: str | None) -> StepNote | None:
    return StepNote(work.STEP_REASONS.say("implausible_capture_window", detail=problem)) if problem else None


def _members_by_name(ws: Workspace) -> dict[str, EvidenceItem]:
    from sqlalchemy import select

    with ws.db.read() as session:
        children = session.execute(select(EvidenceItem).where(EvidenceItem.parent_id == ws.item_id)).scalars()
        return {(c.details or {}).get("bundle_member", c.original_filename): c for c in children}


def members_of(session: Any, item_id: str) -> list[EvidenceItem]:
    """The members registered from a capture bundle, in receipt order."""
    from sqlalchemy import select

    return list(
        session.execute(
            select(EvidenceItem).where(EvidenceItem.parent_id == item_id).order_by(EvidenceItem.received_at)
        ).scalars()
    )


# --- hand-off to continuity -------------------------------------------------------------


def continuity_step(ws: Workspace, *, enqueue: Enqueue) -> StepNote | None:
    """Mark the item processed and request a continuity analysis of its case.

    A step that failed for good on an item otherwise kept and sealed (a proxy ffmpeg could
    not make, a packet scan stopped at its time limit) stays ``failed`` with its reason in
    the item's ``processing``, shown with the item; it does not flag the item
    ``processing_failed``, which says the item could not be processed at all (and stops the
    case from closing: a missing proxy must not).
    The request is committed before the task is enqueued, so the report says
    ``pending`` from the moment processing ends until the analysis has run.
    """
    case_id = ws.item().case_id  # never changes, so it may be read before the locks
    with ws.db.session() as session:
        # The case row before the item row (lock order: see ledger.append); a fixity
        # alarm flags both in that order, and the other order deadlocks against it.
        runs.request_analysis(session, case_id=case_id)
        item = evidence.lock_item(session, ws.item_id)
        if item.status == ItemStatus.received:
            item.status = ItemStatus.processed
    enqueue(work.ANALYSE_CONTINUITY, case_id)
    return None


def mark_skipped(db: Database, item_id: str, *, reason: str) -> None:
    """Fail the steps still ``queued`` after an earlier step crashed, so nothing looks pending forever."""
    with db.session() as session:
        item = session.get(EvidenceItem, item_id)
        if item is None:
            return
        for name, state in (item.processing or {}).items():
            if state.get("state") == "queued":
                evidence.set_task_state(item, name, "failed", reason)


def mark_queued(db: Database, item_id: str, steps: tuple[str, ...] = STEPS) -> None:
    """Show the steps not yet run as ``queued`` on the item (visible in the API)."""
    with db.session() as session:
        item = session.get(EvidenceItem, item_id)
        if item is None:
            return
        for name in steps:
            if name not in (item.processing or {}):
                evidence.set_task_state(item, name, "queued")


def give_up(db: Database, item_id: str, *, reason: str) -> None:
    """Processing of an item failed for good: every unfinished step says why, the item is
    flagged ``processing_failed`` and, unless already sealed, its seal shows ``failed``.

    The original stays as received; a person can see the reason and ask again.
    """
    with db.session() as session:
        item = session.get(EvidenceItem, item_id)
        if item is None:
            return
        item = evidence.lock_item(session, item_id)
        for name, state in (item.processing or {}).items():
            if state.get("state") in ("queued", "running"):
                evidence.set_task_state(item, name, "failed", reason)
        if item.seal_status != "sealed":
            item.seal_status = "failed"
            evidence.set_task_state(item, "seal", "failed", reason)
        evidence.add_flag(item, "processing_failed")
        # An export waiting for this item can now say why it cannot be built.
        wake_waiting_exports(session, case_id=item.case_id)
        ledger.append(session, actor=ACTOR, action="processing_failed", case_id=item.case_id, item_id=item_id,
                      details={"reason": reason})
