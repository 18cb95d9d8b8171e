"""Celery tasks. Thin: each takes ids, reloads state and calls a service function.

Every task is declared with ``acks_late`` and ``reject_on_worker_lost`` (a worker killed
mid-task leaves the message to be redelivered) and is idempotent, so running it twice
gives one result and one custody entry.
"""

from __future__ import annotations

import logging
from functools import cached_property

from celery import Task

from archive import evidence, sealing
from archive.db import Database
from archive.errors import ArchiveError, StoreUnavailable
from archive.models import EvidenceItem
from archive.storage import ObjectStore, open_store
from ingest import casework, pipeline
from workers.app import celery_app, settings

log = logging.getLogger(__name__)


class EvidenceTask(Task):
    """Base of our tasks: owns the database and store, retries on store outages."""

    acks_late = True
    reject_on_worker_lost = True
    autoretry_for = (StoreUnavailable,)
    retry_backoff = True
    retry_backoff_max = 300
    max_retries = 10

    @cached_property
    def db(self) -> Database:
        return Database(settings)

    @cached_property
    def store(self) -> ObjectStore:
        return open_store(settings)

    def last_attempt(self) -> bool:
        """True when a failure now will not be retried (autoretry has run out)."""
        return self.max_retries is not None and self.request.retries >= self.max_retries

    def step(self, item_id: str, name: str, fn) -> None:  # type: ignore[no-untyped-def]
        """Run one processing step on an item, recording running/done/failed on it.

        A :class:`ingest.pipeline.StepNote` returned by ``fn`` becomes the reason shown
        with the ``done`` state.
        """
        with self.db.session() as session:
            item = session.get(EvidenceItem, item_id)
            if item is None:
                log.error("task %s: no item %s", name, item_id)
                return
            if (item.processing or {}).get(name, {}).get("state") == "done":
                return
            evidence.set_task_state(item, name, "running")
        try:
            result = fn()
        except StoreUnavailable as exc:
            # On the last attempt nothing will run it again: say so instead of "retrying" forever.
            state, reason = (("failed", f"object store unavailable: {exc.message}") if self.last_attempt()
                             else ("queued", "object store unavailable; retrying"))
            with self.db.session() as session:
                evidence.set_task_state(session.get(EvidenceItem, item_id), name, state, reason)
            raise
        except ArchiveError as exc:
            with self.db.session() as session:
                evidence.set_task_state(session.get(EvidenceItem, item_id), name, "failed", exc.message)
            log.error("task %s failed on item %s: %s", name, item_id, exc.message)
            return
        except Exception as exc:
            with self.db.session() as session:
                evidence.set_task_state(
                    session.get(EvidenceItem, item_id), name, "failed", f"internal error ({type(exc).__name__}); logged"
                )
            raise
        with self.db.session() as session:
            note = str(result) if isinstance(result, pipeline.StepNote) else None
            evidence.set_task_state(session.get(EvidenceItem, item_id), name, "done", note)


@celery_app.task(base=EvidenceTask, bind=True, name="evidence.process_item")
def process_item(self: EvidenceTask, item_id: str) -> None:
    """Everything that follows receipt of an original, in order; each step idempotent."""
    pipeline.mark_queued(self.db, item_id)
    retrying = False
    try:
        # Inside the try: a crash here must still close the queued steps and the seal with a reason.
        self.step(item_id, "sm3", lambda: evidence.compute_sm3(db=self.db, store=self.store, item_id=item_id))
        with pipeline.Workspace(db=self.db, store=self.store, settings=settings, item_id=item_id) as ws:
            self.step(item_id, "probe", lambda: pipeline.probe_step(ws))
            self.step(item_id, "packets", lambda: pipeline.packets_step(ws))
            self.step(item_id, "derive", lambda: pipeline.derive_step(ws))
            self.step(item_id, "document", lambda: pipeline.document_step(ws))
            self.step(item_id, "bundle", lambda: pipeline.bundle_step(ws, enqueue=_enqueue))
        self.step(item_id, "continuity", lambda: pipeline.continuity_step(ws, enqueue=_enqueue))
    except Exception as exc:
        # A store outage is retried as a whole task: the remaining steps stay queued and
        # the seal waits for them (sealing now would lock a manifest missing their facts).
        retrying = isinstance(exc, StoreUnavailable) and not self.last_attempt()
        if not retrying:
            pipeline.mark_skipped(self.db, item_id, reason=f"not run: an earlier step crashed ({type(exc).__name__})")
        raise
    finally:
        # Keep sealing LAST (the manifest states what the steps above found), and seal
        # even when one of them crashed: parsing never decides what is kept and sealed.
        if not retrying:
            self.step(item_id, "seal", lambda: sealing.seal_item(
                db=self.db, store=self.store, sealer=sealing.get_sealer(settings), item_id=item_id))
            enqueue_checkpoint_if_due(self.db)


def _enqueue(name: str, *args: object) -> None:
    """Send a task by name (callers have committed what it depends on)."""
    celery_app.send_task(name, args=list(args))


@celery_app.task(base=EvidenceTask, bind=True, name="evidence.analyse_continuity")
def analyse_continuity(self: EvidenceTask, case_id: str) -> None:
    """Re-analyse a case's continuity if a request is unanswered; idempotent."""
    with self.db.session() as session:
        casework.analyse_case(session, case_id=case_id, tolerance_seconds=settings.gap_tolerance_seconds)


def enqueue_checkpoint_if_due(db: Database) -> None:
    """Queue a checkpoint when enough entries were added since the last one (never sign inline)."""
    with db.session() as session:
        due = sealing.checkpoint_due(session, settings)
    if due:
        checkpoint.delay()


@celery_app.task(
    base=EvidenceTask, bind=True, name="evidence.checkpoint",
    autoretry_for=(StoreUnavailable, sealing.TimestampUnavailable),
)
def checkpoint(self: EvidenceTask) -> int | None:
    """Seal a ledger checkpoint if the ledger grew since the last one; returns its tree size."""
    with self.db.session() as session:
        cp = sealing.create_checkpoint(session, sealing.get_sealer(settings), store=self.store)
        return cp.tree_size if cp is not None else None


@celery_app.task(base=EvidenceTask, bind=True, name="evidence.expire_uploads")
def expire_uploads(self: EvidenceTask) -> int:
    """Remove resumable uploads abandoned past ``upload_expiry_hours``; safe at any time."""
    from ingest import tus

    return len(tus.expire_uploads(db=self.db, store=self.store))


# Hourly sweep; an upload is only removed once it has been idle for upload_expiry_hours.
celery_app.conf.beat_schedule["evidence-expire-uploads"] = {"task": "evidence.expire_uploads", "schedule": 3600.0}


@celery_app.task(
    base=EvidenceTask, bind=True, name="evidence.build_export",
    autoretry_for=(StoreUnavailable, sealing.TimestampUnavailable),
)
def build_export(self: EvidenceTask, export_id: str) -> str | None:
    """Build an approved certified export into its case's vault; idempotent."""
    from archive import exports

    try:
        result = exports.build_export(db=self.db, store=self.store, settings=settings, export_id=export_id)
    except (StoreUnavailable, sealing.TimestampUnavailable):
        raise
    except ArchiveError:
        return None  # recorded on the export as failed, with the reason
    return result.sha256 if result else None


@celery_app.task(base=EvidenceTask, bind=True, name="evidence.verify_case")
def verify_case(self: EvidenceTask, receipt_id: str) -> str | None:
    """Carry out a reviewer's queued case verification; idempotent."""
    from archive import receipts

    receipt = receipts.run_verification(db=self.db, store=self.store, settings=settings, receipt_id=receipt_id)
    return receipt.status if receipt else None


@celery_app.task(base=EvidenceTask, bind=True, name="evidence.fixity_audit")
def fixity_audit(self: EvidenceTask) -> int:
    """One paced fixity audit run (Celery beat); returns how many items failed."""
    from archive import fixity

    return len(fixity.run_audit(db=self.db, store=self.store, settings=settings).failures)


@celery_app.task(base=EvidenceTask, bind=True, name="evidence.purge_idempotency_keys")
def purge_idempotency_keys(self: EvidenceTask) -> int:
    """Forget Idempotency-Keys answered more than a day ago; safe at any time."""
    from archive import idempotency

    with self.db.session() as session:
        return idempotency.purge_expired(session)


# Hourly: a key is only forgotten KEY_TTL (24 h) after its answer.
celery_app.conf.beat_schedule["evidence-purge-idempotency-keys"] = {
    "task": "evidence.purge_idempotency_keys", "schedule": 3600.0,
}
