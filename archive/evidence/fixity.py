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

:func:`check_object` is the one comparison of a stored object with its record; the audit,
:func:`verify_item_fixity`, item verification (``archive.cases.verification``) and the
workers' local copy of an original (``ingest.workspace``) all use it and word its
outcome their own way.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, BinaryIO

from sqlalchemy import Row, bindparam, select
from sqlalchemy.orm import Session

from archive.custody import ledger
from archive.evidence.items import ITEM_ERRORS, add_flag, lock_item
from archive.db import Database, lock_row
from archive.errors import ArchiveError, NotFound, ObjectNotFound, VerificationFailed
from archive.models import Case, EvidenceItem, utcnow
from archive.settings import Settings
from archive.storage import ObjectStore
from archive.storage.streams import HashingStream
from archive.wording import Sentences

log = logging.getLogger(__name__)

FIXITY_FAILED = "fixity_failed"
MISSING_OBJECT = "missing_object"
FIXITY_CHECKED = "fixity_checked"
"""The custody action of every re-hash of an item (an audit's or one asked for)."""


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


STORE_FAULTS = Sentences("store_fault", {
    "missing": "the recorded version is missing from the store",
    "deleted": "a delete marker hides the recorded version {version}",
    "newer_version": "a newer version {current} was written over the recorded version {version}",
    "size": "{size} bytes read back differ from the size recorded",
    "digest": "{algorithm} differs from the one recorded",
}, fields={"version": r"\S+", "current": r"\S+", "size": r"\d+", "algorithm": r"\S+"})
"""What can be wrong with a stored object, by :attr:`ObjectFault.what` (``digest``: any of its
digests), in words that do not name the object (:attr:`ObjectFault.reason`)."""

ORIGINAL_PROBLEMS = Sentences("receipt_detail", {
    "original_unreadable": "stored original of item {item} cannot be read: {reason}",
    "original_size": "stored original of item {item} is {size} bytes, received {received}",
    "original_sha256": "stored original of item {item}: sha256 {found} != received {received}",
    "original_fault": "stored original of item {item}: {reason}",
    "original_changed": "stored original of item {item} no longer matches its record ({fault})",
    "original_changed_underived": "stored original of item {item} no longer matches its sha256; nothing derived",
    "original_broken_underived": "stored original of item {item} is not intact: {reason}; nothing derived",
}, fields={"item": r"\S+", "size": r"\d+", "found": r"[0-9a-f]+", "received": r"[0-9a-f]+", "fault": r"[a-z0-9_]+"})
"""What is wrong with an item's stored original, as :func:`verify_item_fixity` says it (the
custody entry's ``problem``, a failed check's detail), :func:`compute_sm3` (``fault``: the
:attr:`ObjectFault.what`) and a worker's copy of it (``*_underived``: the reason of the step that
refused to derive from it, :class:`ingest.workspace.Workspace`); ``reason`` is a
:data:`STORE_FAULTS` sentence or a store error's message."""

AUDIT_PROBLEMS = Sentences("fixity_problem", {
    "missing": "{role} object {key} is missing from the store",
    "deleted": "{role} object {key} was deleted (a delete marker hides recorded version {version})",
    "newer_version": "{role} object {key}: newer version {current} written over recorded version {version}",
    "altered": "{role} object {key}: {size} bytes with sha256 {found}, recorded {recorded_size} bytes with sha256 {sha256}",
}, fields={"role": r"[a-z0-9_]+", "key": r"\S+", "version": r"\S+", "current": r"\S+", "size": r"\d+|None",
           "found": r"[0-9a-f]+", "recorded_size": r"\d+", "sha256": r"[0-9a-f]+"})
"""What a fixity audit found wrong with one stored object of an item (:attr:`ObjectCheck.problem`,
the ``problems`` of its ``fixity_checked`` custody entry); ``role`` is ``original`` or the
derived object's role."""


@dataclass(frozen=True)
class ObjectFault:
    """What :func:`check_object` found wrong with one stored object."""

    outcome: str
    """``missing_object`` (the recorded version is gone, or a delete marker hides it) or ``fixity_failed``."""
    what: str
    """``missing``, ``deleted``, ``newer_version``, ``size``, or the algorithm whose digest differs."""
    size: int | None = None
    """Bytes read back (None when nothing could be read)."""
    digests: Mapping[str, str] = field(default_factory=dict)
    """The digests of what was read back, by algorithm."""
    current_version: str | None = None
    """For ``newer_version``: the version now on top of the recorded one."""
    version: str | None = None
    """The recorded version that was checked."""

    @property
    def reason(self) -> str:
        """What is wrong, in words (without naming the object)."""
        code = self.what if self.what in STORE_FAULTS.templates else "digest"
        return STORE_FAULTS.say(code, version=self.version, current=self.current_version, size=self.size,
                                algorithm=self.what)


def check_object(
    store: ObjectStore, *, key: str, version: str | None, size: int, digests: Mapping[str, str],
    sink: BinaryIO | None = None, pace: Callable[[Iterable[bytes]], Iterable[bytes]] | None = None,
) -> ObjectFault | None:
    """Re-read the recorded version of a stored object and compare it with what was recorded.

    ``digests`` are the hex digests recorded when the object was stored, by algorithm; each
    is recomputed. The bytes also go to ``sink`` when given (a local copy to work on), and
    through ``pace`` (e.g. :meth:`Pacer.paced`). For a versioned object the store is then
    asked which version is current: a newer version or a delete marker put on top hides
    the recorded one from anyone reading the key, and is a fault too. Returns None when
    everything holds. Only ObjectNotFound becomes a fault; any other StorageError is
    raised, since a store that cannot answer says nothing about the object.
    """
    return rehash_object(store, key=key, version=version, size=size, digests=digests, sink=sink, pace=pace)[0]


def rehash_object(
    store: ObjectStore, *, key: str, version: str | None, size: int, digests: Mapping[str, str],
    also: Iterable[str] = (), sink: BinaryIO | None = None,
    pace: Callable[[Iterable[bytes]], Iterable[bytes]] | None = None,
) -> tuple[ObjectFault | None, dict[str, str]]:
    """:func:`check_object`, also computing the digests named in ``also`` during the same read.

    Returns the fault (or None) and every digest computed (empty when the object is missing).
    """
    try:
        chunks: Iterable[bytes] = store.read(key, version_id=version)
        stream = HashingStream(pace(chunks) if pace is not None else chunks, *digests, *also)
        for chunk in stream:
            if sink is not None:
                sink.write(chunk)
    except ObjectNotFound:
        return ObjectFault(MISSING_OBJECT, "missing", version=version), {}
    if sink is not None:
        sink.flush()
    found = {name: stream.hexdigest(name) for name in (*digests, *also)}
    recorded_found = {name: found[name] for name in digests}
    if stream.size != size:
        return ObjectFault(FIXITY_FAILED, "size", stream.size, recorded_found, version=version), found
    for name, recorded in digests.items():
        if found[name] != recorded:
            return ObjectFault(FIXITY_FAILED, name, stream.size, recorded_found, version=version), found
    if version is not None:
        try:
            current = store.stat(key)
        except ObjectNotFound:
            return ObjectFault(MISSING_OBJECT, "deleted", stream.size, recorded_found, version=version), found
        if current.version_id != version:
            return (ObjectFault(FIXITY_FAILED, "newer_version", stream.size, recorded_found, current.version_id,
                                version), found)
    return None, found


def compute_sm3(*, db: Database, store: ObjectStore, item_id: str) -> str:
    """Hash the stored original with SM3 (and SHA-512) and record both; safe to run twice.

    The original is re-read from its recorded version and checked against its recorded size
    and SHA-256 first (:func:`rehash_object`); SHA-512 rides along in the same read, so
    exports need not hash every original with it again.
    """
    with db.session() as session:
        item = session.get(EvidenceItem, item_id)
        if item is None:
            raise NotFound(ITEM_ERRORS.say("not_found", item=item_id), code="item_not_found")
        if item.sm3:
            return item.sm3
        key, version, size, sha256 = item.storage_key, item.storage_version, item.size, item.sha256
    fault, found = rehash_object(store, key=key, version=version, size=size, digests={"sha256": sha256},
                                 also=("sm3", "sha512"))
    if fault is not None:
        raise VerificationFailed(ORIGINAL_PROBLEMS.say("original_changed", item=item_id, fault=fault.what),
                                 code=fault.outcome)
    digest, sha512 = found["sm3"], found["sha512"]
    with db.session() as session:
        item = lock_item(session, item_id)
        if item.sm3:
            return item.sm3
        item.sm3, item.sha512 = digest, sha512
        ledger.append(
            session, actor="system:worker", action="sm3_computed", case_id=item.case_id, item_id=item_id,
            details={"sm3": digest, "sha512": sha512},
        )
    return digest


def _audit_problem(fault: ObjectFault, *, role: str, key: str, size: int, sha256: str) -> str:
    code = fault.what if fault.what in ("missing", "deleted", "newer_version") else "altered"
    return AUDIT_PROBLEMS.say(code, role=role, key=key, version=fault.version, current=fault.current_version,
                              size=fault.size, found=fault.digests.get("sha256"), recorded_size=size, sha256=sha256)


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
        # A StorageError (the store is down) propagates: nothing was learnt; retry later.
        fault = check_object(store, key=key, version=version, size=size, digests={"sha256": sha256}, pace=pacer.paced)
        checks.append(ObjectCheck(key, role, "ok") if fault is None else ObjectCheck(
            key, role, fault.outcome, _audit_problem(fault, role=role, key=key, size=size, sha256=sha256)))
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
            session, actor=actor, action=FIXITY_CHECKED, case_id=case_id, item_id=item_id,
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


class ServedContentAltered(VerificationFailed):
    """A stored object read for a client was not what was recorded; the read was cut short."""

    code = FIXITY_FAILED


class StoredObjectMissing(ArchiveError):
    """A stored object a client asked for is not in the store (the item exists): 410."""

    code = "object_missing"
    status = 410


def served_checked(
    chunks: Iterable[bytes], *, sha256: str, size: int, on_altered: Callable[[], None]
) -> Iterator[bytes]:
    """A whole stored object's bytes as they are sent, checked as they pass: the last piece is
    held back until the size and SHA-256 of all of it match the record. If they do not, the
    reader never gets a complete copy (the response ends short of its Content-Length, which
    every client reports as a broken transfer): ``on_altered`` raises the alarm and
    :class:`ServedContentAltered` ends the stream. A tampered original is never served whole
    as the evidence its ETag and digest headers name."""
    digest = hashlib.sha256()
    count = 0
    held: bytes | None = None
    try:
        for chunk in chunks:
            if held is not None:
                yield held
            digest.update(chunk)
            count += len(chunk)
            held = chunk
        if count != size or digest.hexdigest() != sha256:
            log.error("FIXITY ALERT: a stored object served as sha256 %s is %d bytes of sha256 %s; "
                      "the read was cut short", sha256, count, digest.hexdigest())
            on_altered()
            raise ServedContentAltered(f"the stored object is not the recorded one (sha256 {sha256})")
        if held is not None:
            yield held
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


def audit_now(*, db: Database, store: ObjectStore, item_id: str, actor: str) -> ItemAudit | None:
    """Audit one item at once, unpaced: after a read found it altered (flags it and its case)."""
    return audit_item(db=db, store=store, item_id=item_id, pacer=Pacer(math.inf), actor=actor)


ORIGINAL_COLUMNS = (EvidenceItem.id, EvidenceItem.case_id, EvidenceItem.storage_key, EvidenceItem.storage_version,
                    EvidenceItem.size, EvidenceItem.sha256, EvidenceItem.sm3, EvidenceItem.sha512)
"""What :func:`check_original` needs of an item: select these (a light row) rather than the
whole item with its case, vault and derived objects."""
_ORIGINAL = select(*ORIGINAL_COLUMNS).where(EvidenceItem.id == bindparam("item_id"))


def original_of(session: Session, item_id: str) -> Row[Any]:
    """The item's :data:`ORIGINAL_COLUMNS`; NotFound when there is no such item."""
    row = session.execute(_ORIGINAL, {"item_id": item_id}).first()
    if row is None:
        raise NotFound(ITEM_ERRORS.say("not_found", item=item_id), code="item_not_found")
    return row


def check_original(store: ObjectStore, item: Any) -> tuple[FixityReport | None, str | None]:
    """Re-hash an original from its recorded version against the hashes taken at receipt:
    a report when it holds, else what is wrong, in words (an :data:`ORIGINAL_PROBLEMS`
    sentence). ``item`` is an item or a row of its :data:`ORIGINAL_COLUMNS`. Records nothing.

    A store that cannot answer now (down, full: a transient error) says nothing about the
    original: that error is raised, never turned into something wrong with the evidence."""
    algorithms = ("sha256", *(a for a in ("sm3", "sha512") if getattr(item, a)))
    try:
        fault = check_object(store, key=item.storage_key, version=item.storage_version, size=item.size,
                             digests={a: getattr(item, a) for a in algorithms})
    except ArchiveError as exc:
        if exc.transient:
            raise
        return None, ORIGINAL_PROBLEMS.say("original_unreadable", item=item.id, reason=exc.message)
    if fault is not None:
        return None, _original_problem(fault, item=item)
    return FixityReport(item_id=item.id, size=item.size, sha256=item.sha256, sm3=item.sm3, checked_at=utcnow()), None


def fixity_entry(problem: str | None) -> dict[str, Any]:
    """The details of a :data:`FIXITY_CHECKED` custody entry."""
    return {"outcome": "failed" if problem else "ok", "problem": problem}


def verify_item_fixity(*, db: Database, store: ObjectStore, item_id: str, actor: str) -> FixityReport:
    """Re-hash an original from storage and compare with the hashes taken at receipt.

    The outcome, good or bad, is a custody entry; a bad one raises VerificationFailed
    naming what failed.
    """
    with db.read() as session:
        item = original_of(session, item_id)
    report, problem = check_original(store, item)
    with db.session() as session:
        ledger.append(session, actor=actor, action=FIXITY_CHECKED, case_id=item.case_id, item_id=item_id,
                      details=fixity_entry(problem))
    if problem:
        raise VerificationFailed(problem, code="fixity_failed")
    assert report is not None
    return report


def _original_problem(fault: ObjectFault, *, item: Any) -> str:
    if fault.outcome == MISSING_OBJECT:
        return ORIGINAL_PROBLEMS.say("original_unreadable", item=item.id, reason=fault.reason)
    if fault.what == "size":
        return ORIGINAL_PROBLEMS.say("original_size", item=item.id, size=fault.size, received=item.size)
    if fault.what == "sha256":
        return ORIGINAL_PROBLEMS.say("original_sha256", item=item.id, found=fault.digests["sha256"],
                                     received=item.sha256)
    return ORIGINAL_PROBLEMS.say("original_fault", item=item.id, reason=fault.reason)
