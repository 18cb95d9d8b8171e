"""Celery tasks. Thin: each takes ids, reloads state and calls a service function.

Registered on :data:`workers.app.celery_app`, which names this module in its ``include``
so a worker imports it at start-up (this module imports the app, never the reverse).

Every task is declared with ``acks_late`` and ``reject_on_worker_lost`` (a worker killed
mid-task leaves the message to be redelivered) and is idempotent, so running it twice
gives one result and one custody entry.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from functools import cached_property
from typing import TypeVar

from celery import Task, signals

from archive import metrics, scratch, work
from archive.continuity import runs
from archive.evidence import fixity, items as evidence
from archive.custody.checkpoints import checkpoint_due, seal_checkpoint
from archive.seals.errors import TimestampUnavailable
from archive.seals.items import seal_item
from archive.seals.sealer import Sealer, SealerSource
from archive.db import Database, translate_busy
from archive.errors import ArchiveError, StoreUnavailable
from archive.models import EvidenceItem
from archive.storage import ObjectStore, open_store
from ingest import pipeline
from ingest.workspace import Workspace
from workers.app import celery_app, settings

log = logging.getLogger(__name__)
T = TypeVar("T")


_claim: ContextVar[work.Claim | None] = ContextVar("work_claim", default=None)

_sealers = SealerSource(settings)
# The worker process's one e-seal, shared by its tasks (see EvidenceTask.sealer).


class EvidenceTask(Task):
    """Base of our tasks: owns the database and store; runs durable work under a lease.

    A durable task (one recorded in the work table, see :mod:`archive.work`) runs through
    :meth:`durable`: it takes the lease, renews it while it runs, and on a transient
    failure (store, TSA or database unavailable) releases it with a back-off instead of
    failing; the reconciler sends it again when due. Non-durable tasks (checkpoint, fixity,
    sweeps) are periodic and retried by Celery on store outages.
    """

    acks_late = True
    reject_on_worker_lost = True
    autoretry_for = (StoreUnavailable,)
    retry_backoff = True
    retry_backoff_max = 300
    max_retries = 10

    @cached_property
    def db(self) -> Database:
        db = Database(settings)
        work.ring_with(db, _enqueue)
        return db

    @cached_property
    def store(self) -> ObjectStore:
        return open_store(settings)

    @property
    def sealer(self) -> Sealer:
        """The worker's e-seal as configured now (rebuilt after a key rotation)."""
        return _sealers.current()

    def durable(self, subject: str, run: Callable[[], T]) -> T | None:
        """Run ``run()`` as the durable work ``self.name`` for ``subject``."""
        try:
            claim = work.claim(self.db, settings, task=self.name, subject=subject)
            if claim is None:
                log.info("%s %s: nothing to do (done, or failed for good)", self.name, subject)
                return None
        except work.Busy as exc:
            log.info("%s", exc)
            return None
        except ArchiveError as exc:  # the database is busy: the work stays due
            log.warning("could not take the lease on %s %s: %s", self.name, subject, exc.message)
            return None
        token = _claim.set(claim)
        try:
            try:
                with work.keep(self.db, settings, claim):
                    result = run()
            except Exception as exc:
                translate_busy(exc)  # a database lost for a moment: retried, never given up at once
                raise
        except ArchiveError as exc:
            if exc.no_system_fault:  # reported to those who asked: the work ends, no fault to count
                _give_up(self.name, subject, exc.message, fault=False)
                if work.done(self.db, claim):
                    _enqueue(self.name, subject)
                raise
            if not exc.transient:
                work.fail(self.db, claim, exc.message)
                _give_up(self.name, subject, exc.message)
                raise
            metrics.record_reconciler_action("retry_scheduled")
            if not work.retry_later(self.db, settings, claim, exc.message):
                metrics.record_reconciler_action("gave_up")
                reason = work.STEP_REASONS.say("gave_up", attempts=claim.attempts, detail=exc.message)
                _give_up(self.name, subject, reason, unanswered=exc)
            log.warning("%s %s: %s; retrying later", self.name, subject, exc.message)
            return None
        except Exception as exc:
            reason = work.STEP_REASONS.say("internal_error", error=type(exc).__name__)
            work.fail(self.db, claim, reason)
            _give_up(self.name, subject, reason)
            raise
        finally:
            _claim.reset(token)
        if work.done(self.db, claim):
            _enqueue(self.name, subject)  # asked for again while it ran
        return result

    def last_attempt(self) -> bool:
        """True when a failure now will not be retried."""
        claim = _claim.get()
        if claim is not None:
            return work.last_attempt(settings, claim)
        return self.max_retries is not None and self.request.retries >= self.max_retries

    def step(self, item_id: str, name: str, fn) -> None:  # type: ignore[no-untyped-def]
        """Run one processing step on an item, recording running/done/failed on it.

        A :class:`ingest.pipeline.StepNote` returned by ``fn`` becomes the reason shown
        with the ``done`` state. A transient failure leaves the step ``queued`` (it runs
        again after the back-off) unless this is the last attempt.
        """
        with self.db.session() as session:
            item = session.get(EvidenceItem, item_id)
            if item is None:
                log.error("task %s: no item %s", name, item_id)
                return
            if (item.processing or {}).get(name, {}).get("state") == "done":
                return
            evidence.set_task_state(item, name, "running")
        started, failed = time.perf_counter(), True
        try:
            try:
                result = fn()
            except Exception as exc:
                translate_busy(exc)  # a database lost for a moment is transient, wherever it was met
                raise
            failed = False
        except ArchiveError as exc:
            if exc.transient:
                # On the last attempt nothing will run it again: say so instead of "retrying" forever.
                state, reason = (("failed", exc.message) if self.last_attempt()
                                 else ("queued", work.STEP_REASONS.say("retrying", detail=exc.message)))
            else:
                state, reason = "failed", exc.message
                log.error("task %s failed on item %s: %s", name, item_id, exc.message)
            self._record(item_id, name, state, reason)
            if exc.transient:
                raise
            return
        except Exception as exc:
            self._record(item_id, name, "failed", work.STEP_REASONS.say("internal_error", error=type(exc).__name__))
            raise
        finally:
            metrics.record_step(name, seconds=time.perf_counter() - started, failed=failed)
        note = str(result) if isinstance(result, pipeline.StepNote) else None
        self._record(item_id, name, "done", note)

    def _record(self, item_id: str, name: str, state: str, reason: str | None) -> None:
        with self.db.session() as session:
            evidence.set_task_state(session.get(EvidenceItem, item_id), name, state, reason)


@celery_app.task(base=EvidenceTask, bind=True, name=work.PROCESS_ITEM)
def process_item(self: EvidenceTask, item_id: str) -> None:
    """Everything that follows receipt of an original, in order; each step idempotent."""
    self.durable(item_id, lambda: _process(self, item_id))


def _process(self: EvidenceTask, item_id: str) -> None:
    pipeline.mark_queued(self.db, item_id)
    retrying = False
    try:
        # Inside the try: a crash here must still close the queued steps and the seal with a reason.
        self.step(item_id, "sm3", lambda: fixity.compute_sm3(db=self.db, store=self.store, item_id=item_id))
        with Workspace(db=self.db, store=self.store, settings=settings, item_id=item_id) as ws:
            self.step(item_id, "probe", lambda: pipeline.probe_step(ws))
            self.step(item_id, "packets", lambda: pipeline.packets_step(ws))
            self.step(item_id, "derive", lambda: pipeline.derive_step(ws))
            self.step(item_id, "document", lambda: pipeline.document_step(ws))
            self.step(item_id, "bundle", lambda: pipeline.bundle_step(ws, enqueue=_enqueue))
        self.step(item_id, "continuity", lambda: pipeline.continuity_step(ws, enqueue=_enqueue))
    except Exception as exc:
        # A transient failure is retried as a whole task: the remaining steps stay queued
        # and the seal waits for them (sealing now would lock a manifest missing their facts).
        retrying = isinstance(exc, ArchiveError) and exc.transient and not self.last_attempt()
        if not retrying:
            pipeline.mark_skipped(self.db, item_id, reason=work.STEP_REASONS.say("not_run", detail=type(exc).__name__))
        raise
    finally:
        # Keep sealing LAST (the manifest states what the steps above found), and seal
        # even when one of them crashed: parsing never decides what is kept and sealed.
        if not retrying:
            self.step(item_id, "seal", lambda: seal_item(
                db=self.db, store=self.store, sealer=self.sealer, item_id=item_id))
            enqueue_checkpoint_if_due(self.db)


def _enqueue(name: str, *args: object) -> None:
    """Send a task by name (callers have committed what it depends on)."""
    celery_app.send_task(name, args=list(args))


@celery_app.task(base=EvidenceTask, bind=True, name=work.ANALYSE_CONTINUITY)
def analyse_continuity(self: EvidenceTask, case_id: str) -> None:
    """Re-analyse a case's continuity if a request is unanswered; idempotent.

    Exports of the case that wait for its continuity report are asked for again in the
    same transaction: the report they seal may no longer be pending.
    """
    from archive.exports.waiting import wake_waiting_exports

    def run() -> None:
        with self.db.session() as session:
            if runs.analyse_case(session, case_id=case_id, tolerance_seconds=settings.gap_tolerance_seconds):
                wake_waiting_exports(session, case_id=case_id)

    self.durable(case_id, run)


def enqueue_checkpoint_if_due(db: Database) -> None:
    """Queue a checkpoint when enough entries were added since the last one (never sign inline)."""
    with db.read() as session:
        due = checkpoint_due(session, settings)
    if due:
        checkpoint.delay()


@celery_app.task(
    base=EvidenceTask, bind=True, name=work.CHECKPOINT,
    autoretry_for=(StoreUnavailable, TimestampUnavailable),
)
def checkpoint(self: EvidenceTask) -> int | None:
    """Seal a ledger checkpoint if the ledger grew since the last one; returns its tree size."""
    cp = seal_checkpoint(self.db, self.sealer, store=self.store)
    return cp.tree_size if cp is not None else None


@celery_app.task(base=EvidenceTask, bind=True, name=work.EXPIRE_UPLOADS)
def expire_uploads(self: EvidenceTask) -> int:
    """Complete uploads that hold all their bytes but are not evidence yet (their last PATCH's
    completion failed), remove resumable uploads abandoned past ``upload_expiry_hours``, then every leftover
    of a write that never finished (partial files, orphan stages, abandoned multipart
    uploads) older than that; safe at any time. Returns how many uploads expired."""
    from ingest import tus

    for item_id in tus.finish_received_uploads(db=self.db, store=self.store, live=tus.LiveUploads(),
                                               retention_days=settings.retention_days,
                                               idle_seconds=settings.upload_idle_seconds):
        _enqueue(work.PROCESS_ITEM, item_id)
    expired = tus.expire_uploads(db=self.db, store=self.store)
    tus.sweep_debris(db=self.db, store=self.store, expiry_hours=settings.upload_expiry_hours)
    return len(expired)



@celery_app.task(base=EvidenceTask, bind=True, name=work.BUILD_EXPORT)
def build_export(self: EvidenceTask, export_id: str) -> str | None:
    """Build an approved certified export into its case's vault; idempotent."""
    from archive.exports import build

    try:
        result = self.durable(export_id, lambda: build.build_export(
            db=self.db, store=self.store, settings=settings, export_id=export_id, sealer=self.sealer))
    except ArchiveError:
        return None  # recorded on the export as failed, with the reason
    return result.sha256 if result else None


@celery_app.task(base=EvidenceTask, bind=True, name=work.VERIFY_CASE)
def verify_case(self: EvidenceTask, receipt_id: str) -> str | None:
    """Carry out a reviewer's queued case verification; idempotent."""
    from archive.cases import receipts

    # An outage (it may seal a checkpoint first) is waited out by the durable work's back-off.
    receipt = self.durable(receipt_id, lambda: receipts.run_verification(
        db=self.db, store=self.store, sealer=self.sealer, receipt_id=receipt_id))
    return receipt.status if receipt else None


@celery_app.task(base=EvidenceTask, bind=True, name=work.INSPECT, time_limit=settings.capture_max_seconds + 900)
def inspect(self: EvidenceTask, inspection_id: str) -> None:
    """Carry out a remote online inspection: capture, package, seal, receive; bounded in time
    (Celery's hard limit), bytes and memory (see :mod:`ingest.capture`)."""
    from ingest.capture.run import run_inspection

    self.durable(inspection_id, lambda: run_inspection(
        db=self.db, store=self.store, settings=settings, sealer=self.sealer, inspection_id=inspection_id))


@celery_app.task(base=EvidenceTask, bind=True, name=work.FIXITY_AUDIT)
def fixity_audit(self: EvidenceTask) -> int:
    """One paced fixity audit run (Celery beat); returns how many items failed."""
    return len(fixity.run_audit(db=self.db, store=self.store, settings=settings).failures)


def _give_up(task: str, subject: str, reason: str, *, fault: bool = True,
             unanswered: ArchiveError | None = None) -> None:
    """Show on the subject why its work failed for good (never raises: it only reports).
    ``fault`` False: no fault of the system (``ArchiveError.no_system_fault``), a warning.
    ``unanswered``: the transient error (a server not answering) its last attempt met; a
    verification that met only that found nothing, so its receipt ends incomplete, not failed."""
    from archive.exports import build
    from archive.cases import receipts
    from archive.inspections import service as inspections

    db = process_item.db  # the one Database of this worker process
    hooks: dict[str, Callable[[], None]] = {
        work.PROCESS_ITEM: lambda: pipeline.give_up(db, subject, reason=reason),
        work.BUILD_EXPORT: lambda: build.fail_export(db, subject, reason, fault=fault),
        work.VERIFY_CASE: lambda: (receipts.end_unchecked(db=db, receipt_id=subject, error=unanswered)
                                   if unanswered is not None else receipts.give_up(db=db, receipt_id=subject,
                                                                                    reason=reason)),
        work.INSPECT: lambda: inspections.finish(db, subject, item_id=None, record_id=None, error=reason),
    }
    if fault:
        log.error("%s %s failed for good: %s", task, subject, reason)
    else:
        log.warning("%s %s refused: %s", task, subject, reason)
    hook = hooks.get(task)
    if hook is None:
        return
    try:
        hook()
    except Exception:  # noqa: BLE001 - the work row keeps the reason; /healthz shows it
        log.exception("could not record the failure of %s %s", task, subject)


def reconcile_once() -> work.Reconciled:
    """One reconciler pass: send again the durable work that is due (lost message, dead
    worker, back-off over); fail for good what used up its attempts; reopen the court
    requests an earlier release left fulfilled by an export that failed."""
    result = work.reconcile(process_item.db, settings, send=_enqueue, give_up=_give_up)
    for _ in result.sent:
        metrics.record_reconciler_action("resent")
    for _ in result.gave_up:
        metrics.record_reconciler_action("gave_up")
    reopen_court_requests()
    return result


def reopen_court_requests() -> int:
    """Reopen court requests an earlier release left fulfilled by a failed export (it did
    not reopen them when the export failed, and nothing else ever would); returns how many."""
    from archive.exports import court_requests

    reopened = court_requests.reopen_left_fulfilled(process_item.db, actor="system:reconciler")
    if reopened:
        log.warning("reopened %d court request(s) left fulfilled by a failed export", reopened)
    for _ in range(reopened):
        metrics.record_reconciler_action("court_request_reopened")
    return reopened


class Reconciler:
    """Each worker's own reconciler loop: a pass at start-up (so work left by a power loss
    is taken up at once), then every ``work_reconcile_seconds``. It needs neither beat nor
    the broker to be healthy; several workers running it at once is safe. It also removes,
    at start-up and every :data:`SWEEP_SECONDS`, the scratch directories of this host's
    worker processes that were killed mid-task (copies of originals, :mod:`archive.scratch`)."""

    SWEEP_SECONDS = 300.0

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._swept = -math.inf

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="reconciler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while True:
            try:
                reconcile_once()
            except Exception:  # noqa: BLE001 - the next pass tries again
                log.warning("reconciler pass failed", exc_info=True)
            if time.monotonic() - self._swept >= self.SWEEP_SECONDS:
                self._swept = time.monotonic()
                try:
                    scratch.sweep()
                except OSError:
                    log.warning("could not sweep scratch directories", exc_info=True)
            if self._stop.wait(settings.work_reconcile_seconds):
                return


_reconciler = Reconciler()
signals.worker_ready.connect(lambda **_: _reconciler.start(), weak=False)
signals.worker_shutting_down.connect(lambda **_: _reconciler.stop(), weak=False)


# Duration and failures of every task, for /metrics (multiprocess files, see archive.metrics).
# Signals rather than an overridden Task.__call__, which would hide the worker's request
# context (retries, delivery info) from the task.
_started: dict[str, float] = {}


@signals.task_prerun.connect
def _task_started(task_id: str | None = None, **_: object) -> None:
    if task_id:
        _started[task_id] = time.perf_counter()


@signals.task_postrun.connect
def _task_ended(task_id: str | None = None, task: Task | None = None, state: str | None = None, **_: object) -> None:
    start = _started.pop(task_id, None) if task_id else None
    if start is not None and task is not None:
        metrics.record_task(task.name, seconds=time.perf_counter() - start, failed=state != "SUCCESS")


@celery_app.task(base=EvidenceTask, bind=True, name=work.PURGE_IDEMPOTENCY_KEYS)
def purge_idempotency_keys(self: EvidenceTask) -> int:
    """Forget Idempotency-Keys answered more than a day ago; safe at any time."""
    from archive import idempotency

    with self.db.session() as session:
        return idempotency.purge_expired(session)
