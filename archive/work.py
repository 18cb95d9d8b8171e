"""Durable background work: the database says what is still to do, the broker only rings.

Whatever asks for background work (an original received, an export approved, a case
verification requested, a continuity analysis asked for) calls :func:`want` in its own
transaction, so the work is recorded exactly when its cause is, and sends the task after
the commit as a doorbell. The task takes a lease (:func:`claim`) before it runs and renews
it while it runs (:func:`keep`); when it ends the row goes (:func:`done`).

Nothing is lost when the doorbell is: :func:`reconcile`, run by every worker every few
seconds, sends again each task whose row is due: never picked up (a message lost with a
killed worker or the filesystem queue), whose lease ran out (a worker killed, or the
power gone), or whose back-off after a transient failure (database busy, store or TSA
unavailable) has passed. A task that has used all its attempts stays ``failed`` with its
reason; the caller's give-up hook shows that reason on the item, export or receipt.

Tasks must be idempotent: a lease can run out under a worker that is merely slow, and
the same task then runs twice; each step checks under its row lock whether it is done.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, case, event, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from archive.db import Database
from archive.models import Work, WorkPulse, utcnow
from archive.settings import Settings
from archive.wording import Sentences

log = logging.getLogger(__name__)

# The names of every task, in one place (workers register them, callers send them).
# Durable ones (recorded in the work table):
PROCESS_ITEM = "evidence.process_item"
ANALYSE_CONTINUITY = "evidence.analyse_continuity"
BUILD_EXPORT = "evidence.build_export"
VERIFY_CASE = "evidence.verify_case"
INSPECT = "evidence.inspect"
# Periodic ones (the beat schedule, workers/celery.py):
CHECKPOINT = "evidence.checkpoint"
EXPIRE_UPLOADS = "evidence.expire_uploads"
FIXITY_AUDIT = "evidence.fixity_audit"
PURGE_IDEMPOTENCY_KEYS = "evidence.purge_idempotency_keys"

DISPATCH_GRACE = timedelta(seconds=120)
"""How long recorded work may wait in the queue before the reconciler sends it again. Long
enough that a backlog is not flooded with duplicates (they would only be skipped), short
enough that a bell lost between a commit and its send is soon rung again."""

PULSE_EVERY = timedelta(seconds=1)
"""How often at most a claim records that work is being taken up (``work_pulse``)."""

DERIVED_ROLES = ("thumbnail", "proxy")
"""The derived files the derive step makes for a video (``ingest.pipeline``), by role."""
DERIVE_SEPARATOR = "; "
"""Between the failures of one derive step (the receipts' part separator: each is read alone)."""

STEP_REASONS = Sentences("processing_reason", {
    "unprobeable": "unprobeable: {detail}",
    "no_recording": "no recording in it (no audio or video with a duration): read as {detail}",
    "not_run": "not run: an earlier step crashed ({detail})",
    "gave_up": "gave up after {attempts} attempts: {detail}",
    "timestamp_jumps": "{count} timestamp jump(s)",
    "lease_ran_out": "worker {owner} stopped before finishing (lease ran out)",
    "internal_error": "internal error ({error}); logged",
    "packet_scan_failed": "packet scan failed: {detail}",
    "time_limit": "{tool} was stopped at its time limit of {limit} s",
    "member_unregistered": "member {member} could not be registered: {detail}",
    "retrying": "{detail}; retrying",
    "derive_failed": "{role}: {failure}",
    "unreadable_document": "unreadable document: {detail}",
    "invalid_bundle": "invalid bundle: {detail}",
    "implausible_capture_window": "implausible capture window, not counted as recording: {detail}",
}, fields={"attempts": r"\d+", "detail": r".*", "count": r"\d+", "owner": r"\S+", "error": r"\w+",
           "limit": r"\d+", "tool": r"\w+",
           "role": "|".join(DERIVED_ROLES),
           "failure": r"(?:(?!" + re.escape(DERIVE_SEPARATOR) + "(?:" + "|".join(DERIVED_ROLES) + r"): ).)+"})
"""The reasons our own code gives a processing step (``ingest.pipeline``, ``workers.tasks``)
or work given up (:func:`reconcile`, which also keeps ``lease_ran_out`` as the work's last
error); ``detail`` is the underlying tool's or error's own message, kept as written (or
``time_limit``: a media tool killed at its time limit, ``ingest.ffmpeg_adapter``), ``error``
the name of an unexpected exception's class. A failed ``derive`` step's reason is one
``derive_failed`` per derived file that could not be made, joined by :data:`DERIVE_SEPARATOR`
(``failure``: the tool's message, which never runs into the next role's). An unreadable
document or an invalid capture bundle is kept and flagged; its step is done with a note."""

def ring_with(db: Database, send: Callable[[str, str], None]) -> None:
    """Set how sessions of ``db`` ring the workers' bell (the API's or the worker's Celery).

    Every transaction that :func:`want`-ed work then rings it right after its commit, so
    no caller has to remember to enqueue, and none can enqueue before the commit.
    """
    db.sessions.kw.setdefault("info", {})["doorbell"] = send


@event.listens_for(Session, "after_commit")
def _ring_after_commit(session: Session) -> None:
    wanted = session.info.pop("wanted", None)
    send = session.info.get("doorbell")
    if wanted and send is not None:
        for task, subject in wanted:
            try:
                send(task, subject)
            except Exception:  # noqa: BLE001 - the reconciler sends it when due
                log.warning("could not send %s(%s); the reconciler will", task, subject, exc_info=True)


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop("wanted", None)


def owner_name() -> str:
    """Who holds a lease: host, process and thread, so a log names the worker."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def want(session: Session, *, task: str, subject: str, now: datetime | None = None) -> None:
    """Record that ``task`` must run for ``subject`` (in the caller's transaction).

    Asking again for work that is already recorded keeps one row: a running one is marked
    to run once more when it ends (``again``), and a failed one starts over with fresh
    attempts (a person asked anew), recorded anew (``created_at``). Safe against concurrent
    callers on both databases.
    """
    now = now or utcnow()
    insert = (postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert)(Work)
    statement = insert.values(
        task=task, subject=subject, state="pending", attempts=0, due_at=now + DISPATCH_GRACE, again=False,
        created_at=now, updated_at=now,
    )
    session.execute(statement.on_conflict_do_update(
        index_elements=[Work.task, Work.subject],
        set_={
            "again": Work.lease_owner.is_not(None),
            "attempts": case((Work.state == "failed", 0), else_=Work.attempts),
            # Started over, it waits from now (see counts), not from when it first failed.
            "created_at": case((Work.state == "failed", now), else_=Work.created_at),
            "state": "pending",
            "due_at": case((Work.lease_owner.is_(None), statement.excluded.due_at), else_=Work.due_at),
            "updated_at": now,
        },
    ))
    session.info.setdefault("wanted", []).append((task, subject))


@dataclass(frozen=True)
class Claim:
    """A lease on one piece of work."""

    task: str
    subject: str
    owner: str
    attempts: int


class Busy(Exception):
    """Another live worker holds the lease; this delivery does nothing."""


def claim(db: Database, settings: Settings, *, task: str, subject: str) -> Claim | None:
    """Take the lease on ``task``/``subject`` for ``work_lease_seconds``; count the attempt.

    Returns None when no pending row records the work: it is done (a duplicate delivery)
    or failed for good (only a new request starts it again). Raises :class:`Busy` when
    another worker's lease is still running. Looks first without the write lock, so the
    duplicates a backlog collects cost one read each.
    """
    owner = owner_name()
    now = utcnow()
    with db.read() as session:
        row = session.get(Work, (task, subject))
        if row is None or row.state != "pending":
            return None
        if row.lease_until is not None and row.lease_until > now and row.lease_owner != owner:
            raise Busy(f"{task} {subject} is leased by {row.lease_owner} until {row.lease_until.isoformat()}")
    with db.session() as session:
        row = session.execute(
            select(Work).where(Work.task == task, Work.subject == subject).with_for_update()
        ).scalar_one_or_none()
        if row is None or row.state != "pending":
            return None
        if row.lease_until is not None and row.lease_until > now and row.lease_owner != owner:
            raise Busy(f"{task} {subject} is leased by {row.lease_owner} until {row.lease_until.isoformat()}")
        row.attempts += 1
        row.lease_owner = owner
        row.lease_until = row.due_at = now + timedelta(seconds=settings.work_lease_seconds)
        row.again = False
        # Workers are taking work up (see counts); written at most once a second, so claims
        # of many workers seldom wait for each other on this one row.
        session.execute(update(WorkPulse).where(
            WorkPulse.id == 1, or_(WorkPulse.taken_at.is_(None), WorkPulse.taken_at < now - PULSE_EVERY),
        ).values(taken_at=now))
        return Claim(task=task, subject=subject, owner=owner, attempts=row.attempts)


def _held(session: Session, c: Claim) -> Work | None:
    row = session.execute(
        select(Work).where(Work.task == c.task, Work.subject == c.subject).with_for_update()
    ).scalar_one_or_none()
    return row if row is not None and row.lease_owner == c.owner else None


@contextmanager
def keep(db: Database, settings: Settings, c: Claim) -> Iterator[None]:
    """Renew the lease every third of its length while the body runs (long steps: SM3 of a
    20 GB original, a proxy of a four-hour video). A killed worker stops renewing."""
    stop = threading.Event()
    period = settings.work_lease_seconds / 3

    def renew() -> None:
        while not stop.wait(period):
            try:
                with db.session() as session:
                    row = _held(session, c)
                    if row is None:
                        return
                    row.lease_until = row.due_at = utcnow() + timedelta(seconds=settings.work_lease_seconds)
            except Exception:  # noqa: BLE001 - a missed renewal is retried; the lease is generous
                log.warning("could not renew the lease on %s %s", c.task, c.subject, exc_info=True)

    thread = threading.Thread(target=renew, name=f"lease-{c.task}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def done(db: Database, c: Claim) -> bool:
    """The work ended: drop its row. Returns True when it was asked for again meanwhile
    (the row stays, due now, and the caller should ring the bell)."""
    with db.session() as session:
        row = _held(session, c)
        if row is None:
            return False
        if row.again:
            row.lease_owner = row.lease_until = None
            row.again, row.attempts, row.due_at = False, 0, utcnow()
            return True
        session.delete(row)
        return False


def backoff(settings: Settings, attempts: int) -> timedelta:
    """Wait before the next attempt: doubling from ``work_retry_seconds``, capped."""
    return timedelta(seconds=min(settings.work_retry_seconds * 2 ** max(attempts - 1, 0),
                                 settings.work_retry_max_seconds))


def retry_later(db: Database, settings: Settings, c: Claim, error: str) -> bool:
    """A transient failure: release the lease and come back after the back-off.

    Returns False (and marks the work failed) when the attempts are used up.
    """
    with db.session() as session:
        row = _held(session, c)
        if row is None:
            return True
        row.lease_owner = row.lease_until = None
        row.last_error = error
        if row.attempts >= settings.work_max_attempts:
            row.state = "failed"
            return False
        row.due_at = utcnow() + backoff(settings, row.attempts)
        return True


def fail(db: Database, c: Claim, error: str) -> None:
    """The work failed for good (a reason waiting cannot fix); keep it, with its reason."""
    with db.session() as session:
        row = _held(session, c)
        if row is not None:
            row.state, row.last_error = "failed", error
            row.lease_owner = row.lease_until = None


def last_attempt(settings: Settings, c: Claim) -> bool:
    """True when a failure now will not be retried."""
    return c.attempts >= settings.work_max_attempts


@dataclass(frozen=True)
class Reconciled:
    """What one reconciler pass did."""

    sent: tuple[tuple[str, str], ...]
    """(task, subject) sent again: never picked up, or a lease that ran out."""
    gave_up: tuple[tuple[str, str, str], ...]
    """(task, subject, reason) that used up their attempts."""


def reconcile(
    db: Database, settings: Settings, *, send: Callable[[str, str], None],
    give_up: Callable[[str, str, str], None], limit: int = 500,
) -> Reconciled:
    """Send again every piece of work that is due; fail for good what used its attempts.

    Several workers may run this at once: PostgreSQL hands each row to one of them
    (``SKIP LOCKED``), SQLite's write lock serialises them, and a row sent is not due again
    before ``work_lease_seconds`` have passed. Tasks are sent after the commit.
    """
    now = utcnow()
    sent: list[tuple[str, str]] = []
    gave_up: list[tuple[str, str, str]] = []
    with db.session() as session:
        rows = session.execute(
            select(Work).where(Work.state == "pending", Work.due_at <= now)
            .order_by(Work.due_at).limit(limit).with_for_update(skip_locked=True)
        ).scalars().all()
        for row in rows:
            if row.lease_owner is not None:  # its lease ran out: the worker died or stalled
                row.last_error = STEP_REASONS.say("lease_ran_out", owner=row.lease_owner)
                row.lease_owner = row.lease_until = None
                if row.attempts >= settings.work_max_attempts:
                    row.state = "failed"
                    reason = STEP_REASONS.say("gave_up", attempts=row.attempts, detail=row.last_error)
                    gave_up.append((row.task, row.subject, reason))
                    continue
            row.due_at = now + timedelta(seconds=settings.work_lease_seconds)
            sent.append((row.task, row.subject))
    for task, subject, reason in gave_up:
        log.error("work %s %s failed for good: %s", task, subject, reason)
        give_up(task, subject, reason)
    for task, subject in sent:
        send(task, subject)
    if sent:
        log.info("reconciler sent %d task(s) again: %s", len(sent), ", ".join(f"{t}({s})" for t, s in sent[:10]))
    return Reconciled(sent=tuple(sent), gave_up=tuple(gave_up))


@dataclass(frozen=True)
class WorkCounts:
    """Background work as operators see it (``/healthz``, metrics)."""

    pending: int
    """Recorded and not finished (waiting, running or backing off)."""
    running: int
    """Under a lease that has not run out."""
    stuck: int
    """Pending work nobody is getting to (the rule: :func:`counts`)."""
    failed: int
    """Used up their attempts; each keeps its reason."""


def counts(session: Session, settings: Settings, *, now: datetime | None = None) -> WorkCounts:
    """Count the work table by state.

    Work is ``stuck`` when it is pending, not running, and either

    * due for longer than three reconciler periods and a lease (:func:`_stuck_before`) while
      no worker has taken any work up for as long and none holds a lease: the workers are
      idle or gone (or receive nothing), so nothing will move it; or
    * recorded more than ``work_stuck_seconds`` ago (6 hours by default), however busy the
      workers are: far longer than a backlog should take to drain.

    Work that is due but not yet taken up while workers keep taking other work up (a capture
    bundle of thousands of members being worked through) is a backlog, counted in
    ``pending``, not stuck: the reconciler sends only so many rows a pass, so a large backlog
    is always partly due. Claims record when work was last taken up (``work_pulse``).
    """
    now = now or utcnow()
    pending, running, stuck, failed = session.execute(select(
        func.count().filter(Work.state == "pending"),
        func.count().filter(_running(now)),
        func.count().filter(_stuck(session, settings, now)),
        func.count().filter(Work.state == "failed"),
    )).one()
    return WorkCounts(pending=pending, running=running, stuck=stuck, failed=failed)


def _running(now: datetime) -> ColumnElement[bool]:
    return (Work.state == "pending") & (Work.lease_until > now)


def _stuck_before(settings: Settings, now: datetime) -> datetime:
    """Work due before this moment, with no work taken up since, is stuck: no worker is taking work up."""
    return now - timedelta(seconds=3 * settings.work_reconcile_seconds + settings.work_lease_seconds)


def _stuck(session: Session, settings: Settings, now: datetime) -> ColumnElement[bool]:
    """Which rows :func:`counts` counts as stuck (read with the pulse and the leases now)."""
    late = _stuck_before(settings, now)
    taken_at = session.execute(select(WorkPulse.taken_at).where(WorkPulse.id == 1)).scalar_one_or_none()
    idle = (taken_at is None or taken_at < late) and not session.execute(
        select(Work.task).where(_running(now)).limit(1)).first()
    waiting = (Work.state == "pending") & (Work.lease_until.is_(None) | (Work.lease_until <= now))
    too_long = Work.created_at < now - timedelta(seconds=settings.work_stuck_seconds)
    return waiting & (or_(too_long, Work.due_at < late) if idle else too_long)


def troubled(session: Session, settings: Settings, *, limit: int = 50, now: datetime | None = None) -> list[Work]:
    """The failed and the stuck work (the rows :func:`counts` counts as such), oldest first."""
    now = now or utcnow()
    return list(session.execute(
        select(Work).where((Work.state == "failed") | _stuck(session, settings, now))
        .order_by(Work.due_at).limit(limit)
    ).scalars())
