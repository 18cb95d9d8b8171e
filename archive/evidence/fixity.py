"""Fixity audits: re-hash every stored object, slowly, forever, and raise the alarm.

A run takes the items checked longest ago (never-checked first) and re-hashes each
original from its *recorded* storage version, then every object derived from it (seal
manifests, CAdES and SM2 seals, PAdES copies, thumbnails, proxies), comparing with the
hashes recorded when they were stored. Reads are paced to ``fixity_bytes_per_second``
so audits never starve ingest or downloads; a run stops after
``fixity_max_bytes_per_run`` bytes or ``fixity_max_objects_per_run`` objects and the next
run continues where it left off (oldest-checked first).

On S3 with versioning, the recorded version cannot change; what can happen is a newer
version (or a delete marker) put on top of the key, hiding the original from anyone who
reads the key without a version. Both are reported too.

Each item checked gets one ``fixity_checked`` custody entry and ``last_fixity_at``. A
mismatch or a missing object is logged at error level and flags the item and its case
(``fixity_failed`` or ``missing_object``), which the API shows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from archive.custody import ledger
from archive.evidence.items import add_flag, lock_item
from archive.db import Database, lock_row
from archive.errors import ArchiveError, NotFound, ObjectNotFound, StorageError, VerificationError
from archive.models import Case, EvidenceItem, utcnow
from archive.settings import Settings
from archive.storage import ObjectStore
from archive.storage.streams import HashingStream, hash_chunks

log = logging.getLogger(__name__)

FIXITY_FAILED = "fixity_failed"
MISSING_OBJECT = "missing_object"


@dataclass(frozen=True)
class ObjectCheck:
    """One stored object re-hashed."""

    key: str
    role: str
    """``original`` or the derived object's role."""
    outcome: str
    """``ok``, ``fixity_failed`` or ``missing_object``."""
    problem: str | None = None


@dataclass(frozen=True)
class ItemAudit:
    """Every object of one item, checked."""

    item_id: str
    case_id: str
    checks: tuple[ObjectCheck, ...]

    @property
    def ok(self) -> bool:
        return all(c.outcome == "ok" for c in self.checks)


@dataclass(frozen=True)
class AuditRun:
    """What one run of the audit did."""

    items: tuple[ItemAudit, ...]
    bytes_read: int
    seconds: float

    @property
    def failures(self) -> tuple[ItemAudit, ...]:
        return tuple(a for a in self.items if not a.ok)


class Pacer:
    """Caps throughput at ``rate`` bytes per second by sleeping between chunks."""

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.rate, self.clock, self.sleep = rate, clock, sleep
        self.start = clock()
        self.done = 0

    def paced(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            self.done += len(chunk)
            ahead = self.done / self.rate - (self.clock() - self.start)
            if ahead > 0:
                self.sleep(ahead)
            yield chunk


def _check_object(
    store: ObjectStore, pacer: Pacer, *, key: str, version: str | None, role: str, size: int, sha256: str,
) -> ObjectCheck:
    try:
        hashed = hash_chunks(pacer.paced(store.read(key, version_id=version)), "sha256")
    except ObjectNotFound:
        return ObjectCheck(key, role, MISSING_OBJECT, f"{role} object {key} is missing from the store")
    got, digest = hashed.size, hashed.hexdigest("sha256")
    if got != size or digest != sha256:
        return ObjectCheck(key, role, FIXITY_FAILED,
                           f"{role} object {key}: {got} bytes with sha256 {digest}, "
                           f"recorded {size} bytes with sha256 {sha256}")
    if version is not None:
        # The recorded version is intact; check nobody put something over it.
        try:
            current = store.stat(key)
        except ObjectNotFound:
            return ObjectCheck(key, role, MISSING_OBJECT,
                               f"{role} object {key} was deleted (a delete marker hides recorded version {version})")
        if current.version_id != version:
            return ObjectCheck(key, role, FIXITY_FAILED,
                               f"{role} object {key}: newer version {current.version_id} written over recorded "
                               f"version {version}")
    return ObjectCheck(key, role, "ok")


def audit_item(*, db: Database, store: ObjectStore, item_id: str, pacer: Pacer, actor: str) -> ItemAudit | None:
    """Re-hash one item's original and derived objects; record the outcome and flag failures."""
    with db.session() as session:
        item = session.get(EvidenceItem, item_id)
        if item is None:
            return None
        targets = [("original", item.storage_key, item.storage_version, item.size, item.sha256)]
        targets += [(d.role, d.storage_key, d.storage_version, d.size, d.sha256) for d in item.derived]
        case_id = item.case_id
    checks = []
    for role, key, version, size, sha256 in targets:
        try:
            checks.append(_check_object(store, pacer, key=key, version=version, role=role, size=size, sha256=sha256))
        except StorageError:
            raise  # the store is down: nothing was learnt about the object; retry later
    result = ItemAudit(item_id=item_id, case_id=case_id, checks=tuple(checks))
    bad = [c for c in checks if c.outcome != "ok"]
    with db.session() as session:
        # Case row, item row, then the ledger (the rule at ledger.append), locked here
        # rather than left to the flush's order, and read under the lock so a flag
        # another transaction has just added is kept.
        case = lock_row(session, Case, case_id) if bad else None
        item = lock_item(session, item_id)
        item.last_fixity_at = utcnow()
        if case is not None:
            for c in bad:
                add_flag(item, c.outcome)
                add_flag(case, c.outcome)
                log.error("FIXITY ALERT case %s item %s: %s", case.case_number, item_id, c.problem)
        ledger.append(
            session, actor=actor, action="fixity_checked", case_id=case_id, item_id=item_id,
            details={
                "outcome": "failed" if bad else "ok",
                "objects": [{"role": c.role, "key": c.key, "outcome": c.outcome} for c in checks],
                "problems": [c.problem for c in bad],
            },
        )
    return result


def run_audit(
    *, db: Database, store: ObjectStore, settings: Settings, actor: str = "system:fixity",
    item_ids: Iterable[str] | None = None, sleep: Callable[[float], None] = time.sleep,
    not_checked_since: datetime | None = None,
) -> AuditRun:
    """One paced audit run over the items checked longest ago (or over ``item_ids``)."""
    started = time.monotonic()
    pacer = Pacer(settings.fixity_bytes_per_second, sleep=sleep)
    if item_ids is None:
        with db.session() as session:
            query = select(EvidenceItem.id).order_by(
                EvidenceItem.last_fixity_at.is_not(None), EvidenceItem.last_fixity_at, EvidenceItem.received_at
            )
            if not_checked_since is not None:
                query = query.where(
                    (EvidenceItem.last_fixity_at.is_(None)) | (EvidenceItem.last_fixity_at < not_checked_since)
                )
            item_ids = list(session.execute(query.limit(settings.fixity_max_objects_per_run)).scalars())
    audits: list[ItemAudit] = []
    objects = 0
    for item_id in item_ids:
        if pacer.done >= settings.fixity_max_bytes_per_run or objects >= settings.fixity_max_objects_per_run:
            break
        audit = audit_item(db=db, store=store, item_id=item_id, pacer=pacer, actor=actor)
        if audit is not None:
            audits.append(audit)
            objects += len(audit.checks)
    run = AuditRun(items=tuple(audits), bytes_read=pacer.done, seconds=time.monotonic() - started)
    log.info("fixity audit: %d items, %d bytes in %.1f s, %d failing",
             len(run.items), run.bytes_read, run.seconds, len(run.failures))
    return run


@dataclass(frozen=True)
class FixityReport:
    """An original re-hashed from storage and found identical to what was received."""

    item_id: str
    size: int
    sha256: str
    sm3: str | None
    checked_at: datetime


def rehash(store: ObjectStore, item: EvidenceItem, *, algorithms: tuple[str, ...] = ("sha256", "sm3")) -> HashingStream:
    """Stream the stored original through the hashers and return them."""
    return hash_chunks(store.read(item.storage_key, version_id=item.storage_version), *algorithms)


def verify_item_fixity(*, db: Database, store: ObjectStore, item_id: str, actor: str) -> FixityReport:
    """Re-hash an original from storage and compare with the hashes taken at receipt.

    The outcome, good or bad, is a custody entry; a bad one raises VerificationError
    naming what failed.
    """
    with db.session() as session:
        item = session.get(EvidenceItem, item_id)
        if item is None:
            raise NotFound(f"no evidence item {item_id}", code="item_not_found")
    problem = None
    algorithms = ("sha256", *(a for a in ("sm3", "sha512") if getattr(item, a)))
    try:
        stream = rehash(store, item, algorithms=algorithms)
        if stream.size != item.size:
            problem = f"stored original of item {item_id} is {stream.size} bytes, received {item.size}"
        elif stream.hexdigest("sha256") != item.sha256:
            problem = f"stored original of item {item_id}: sha256 {stream.hexdigest('sha256')} != received {item.sha256}"
        elif item.sm3 and stream.hexdigest("sm3") != item.sm3:
            problem = f"stored original of item {item_id}: sm3 differs from the one recorded"
        elif item.sha512 and stream.hexdigest("sha512") != item.sha512:
            problem = f"stored original of item {item_id}: sha512 differs from the one recorded"
    except ArchiveError as exc:
        problem = f"stored original of item {item_id} cannot be read: {exc.message}"
    with db.session() as session:
        ledger.append(
            session, actor=actor, action="fixity_checked", case_id=item.case_id, item_id=item_id,
            details={"outcome": "failed" if problem else "ok", "problem": problem},
        )
    if problem:
        raise VerificationError(problem, code="fixity_failed")
    return FixityReport(item_id=item_id, size=item.size, sha256=item.sha256, sm3=item.sm3, checked_at=utcnow())
