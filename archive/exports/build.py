"""Building an approved export: gather, wait for sealing, write the ZIP, record the result."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from archive import work
from archive.continuity.report import build_report
from archive.custody import ledger
from archive.db import Database, lock_row
from archive.errors import ArchiveError, ObjectExists, ObjectNotFound
from archive.exports import court_requests
from archive.exports.bag import write_bag
from archive.exports.bagzip import StorePipe
from archive.exports.errors import ExportWaiting
from archive.exports.plan import gather_plan, unsealed_items
from archive.models import Case, EvidenceItem, ExportRequest, utcnow
from archive.settings import Settings
from archive.storage import ObjectStore
from archive.storage.streams import hash_chunks

log = logging.getLogger(__name__)


def export_key(vault: str, export_id: str) -> str:
    """Where an export's ZIP lives: in the case's own vault."""
    return f"{vault}/exports/{export_id}.zip"


@dataclass(frozen=True)
class ExportResult:
    """A built export."""

    export_id: str
    storage_key: str
    size: int
    sha256: str
    members: int


def build_export(
    *, db: Database, store: ObjectStore, settings: Settings, export_id: str, sealer: Any,
) -> ExportResult | None:
    """Build an approved export's ZIP into the case's vault; safe to run twice.

    Returns None when there is nothing to do (unknown, not approved, already built), or
    when items are still being sealed or the case's continuity report is pending: the
    export then shows ``waiting`` (and for what), and the sealing of its last item or the
    analysis that settles the report asks for it again
    (:func:`archive.exports.waiting.wake_waiting_exports`).
    Marks the export ``failed`` (and re-raises) on any other ArchiveError.
    """
    with db.session() as session:
        export = lock_row(session, ExportRequest, export_id)
        if export is None:
            log.error("build_export: no export %s", export_id)
            return None
        if export.status not in ("approved", "waiting", "building"):
            return None
        vault = session.get(Case, export.case_id).vault.name
        if export.status in ("approved", "waiting"):
            export.status = "building"
            export.progress = {"phase": "gathering"}
            ledger.append(session, actor="system:worker", action="export_build_started", case_id=export.case_id,
                          details={"export": export_id})
    key = export_key(vault, export_id)
    try:
        existing = _stat_or_none(store, key)
        if existing is not None:
            # A previous run stored the ZIP and died before recording it: the ZIP is
            # complete (objects appear only whole), so record what is there.
            digest = hash_chunks(store.read(key, version_id=existing.version_id), "sha256").hexdigest("sha256")
            return _finish(db, export_id, key, existing.version_id, existing.size, digest, None, settings, store)
        while True:
            try:
                ledger.settle(db.engine)  # the plan covers every entry of the case so far
                with db.session() as session:
                    export = session.get(ExportRequest, export_id)
                    plan = gather_plan(session, store=store, export=export, sealer=sealer)
                break
            except ExportWaiting as waiting:
                if _wait(db, export_id, waiting):
                    return None
                # What it waited for was done meanwhile; plan again (a new analysis may
                # have been asked for since, and the export then waits for it).
        last = [0.0]

        def on_progress(done: int, total: int) -> None:
            now = time.monotonic()
            if now - last[0] < 2.0 and done < total:
                return
            last[0] = now
            with db.session() as s:
                row = s.get(ExportRequest, export_id)
                row.progress = {"phase": "writing", "bytes_done": done, "bytes_total": total}

        pipe = StorePipe(lambda chunks: store.put(key, chunks, content_type="application/zip"))
        try:
            members = write_bag(
                pipe, plan=plan, store=store, sealer=sealer,
                organisation=settings.export_organisation,
                contact=_contact(settings), on_progress=on_progress, time_zone=settings.time_zone,
                font=settings.export_certificate_font,
            )
            stored, sha256 = pipe.close_and_wait()
        except ObjectExists:
            # Another delivery of this task stored the ZIP first; it records the result.
            log.warning("export %s was built concurrently by another worker", export_id)
            return None
        except BaseException as exc:
            pipe.abort(str(exc))
            raise
        return _finish(db, export_id, key, stored.version_id, pipe.size, sha256, len(members), settings, store)
    except ArchiveError as exc:
        if not exc.transient:  # an outage is waited out: the export stays building
            fail_export(db, export_id, exc.message, fault=not exc.no_system_fault)
        raise
    except Exception as exc:
        fail_export(db, export_id, work.STEP_REASONS.say("internal_error", error=type(exc).__name__))
        raise


def _wait(db: Database, export_id: str, waiting: ExportWaiting) -> bool:
    """Show the export as ``waiting`` for its unsealed items or its pending continuity
    report; False if it waits for nothing any more.

    The mark is committed before the items and the report are looked at again, under a
    share lock on the case and the items: a sealing or an analysis that committed first
    is seen here, and one that commits later sees the mark and asks for the export again,
    so no wake-up is lost between the two.
    """
    with db.session() as session:
        export = lock_row(session, ExportRequest, export_id)
        case_id = export.case_id
        if export.status != "waiting":
            details: dict[str, Any] = {"export": export_id, "items": [u["item"] for u in waiting.items]}
            if waiting.continuity:
                details["continuity"] = sorted({o["reason"] for o in waiting.continuity})
            ledger.append(session, actor="system:worker", action="export_waiting", case_id=case_id, details=details)
        export.status = "waiting"
        export.progress = {"phase": "waiting", "waiting_for": waiting.items}
        if waiting.continuity:
            export.progress["waiting_for_continuity"] = waiting.continuity
    with db.session() as session:
        # Case row, then item rows (the lock order of archive.db.lock_row).
        session.execute(select(Case.id).where(Case.id == case_id).with_for_update(read=True)).all()
        ids = [u["item"] for u in waiting.items]
        session.execute(select(EvidenceItem.id).where(EvidenceItem.id.in_(ids)).with_for_update(read=True)).all()
        items = list(session.execute(select(EvidenceItem).where(EvidenceItem.id.in_(ids))).scalars().unique())
        still = unsealed_items(items)
        pending = bool(waiting.continuity) and build_report(session, case_id=case_id).pending
    log.info("export %s waits for %d item(s) to be sealed%s", export_id, len(still),
             " and for the continuity report" if pending else "")
    return bool(still) or pending


def _contact(settings: Settings) -> dict[str, str]:
    return {k: v for k, v in {
        "Contact-Name": settings.export_contact_name,
        "Contact-Email": settings.export_contact_email,
    }.items() if v}


def _stat_or_none(store: ObjectStore, key: str):  # type: ignore[no-untyped-def]
    try:
        return store.stat(key)
    except ObjectNotFound:
        return None


def _finish(
    db: Database, export_id: str, key: str, version: str | None, size: int, sha256: str, members: int | None,
    settings: Settings, store: ObjectStore,
) -> ExportResult:
    until = utcnow() + timedelta(days=settings.retention_days)
    store.lock(key, version_id=version, until=until)
    with db.session() as session:
        export = lock_row(session, ExportRequest, export_id)
        if export.status != "ready":
            export.status = "ready"
            export.storage_key = key
            export.storage_version = version
            export.size = size
            export.sha256 = sha256
            export.finished_at = utcnow()
            export.error = None
            export.progress = {"phase": "done", "bytes_done": size, "bytes_total": size, "members": members}
            ledger.append(
                session, actor="system:worker", action="export_built", case_id=export.case_id,
                details={"export": export_id, "storage_key": key, "storage_version": version, "size": size,
                         "sha256": sha256, "members": members},
            )
    log.info("export %s ready: %s (%d bytes)", export_id, key, size)
    return ExportResult(export_id=export_id, storage_key=key, size=size, sha256=sha256, members=members or 0)


def fail_export(db: Database, export_id: str, reason: str, *, fault: bool = True) -> None:
    """Mark an export failed with its reason (and a custody entry); a ready one stays ready.
    A court request it answered waits again for a reviewer (:func:`court_requests.reopen`).
    ``fault`` False (the request's own failure, e.g. nothing to export) is logged as a warning."""
    (log.error if fault else log.warning)("export %s failed: %s", export_id, reason)
    with db.session() as session:
        export = session.get(ExportRequest, export_id)
        if export is None or export.status in ("ready", "failed"):
            return
        export.status = "failed"
        export.error = reason
        export.finished_at = utcnow()
        ledger.append(session, actor="system:worker", action="export_failed", case_id=export.case_id,
                      details={"export": export_id, "reason": reason})
        court_requests.reopen(session, export=export, actor="system:worker")
