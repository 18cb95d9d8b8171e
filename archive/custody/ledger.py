"""The custody ledger: an append-only, hash-chained list that is also a Merkle tree.

Each entry's canonical bytes (:func:`entry_bytes`) name its sequence number, time,
actor, case, item, action, details and the previous entry's hash. ``entry_hash`` is the
SHA-256 of those bytes (the chain); the same bytes are the leaves of an RFC 9162 Merkle
tree, so the service can give a tree head for any size, an inclusion proof for an entry
and a consistency proof between two sizes. Append stores the hash of every complete
subtree it finishes (``ledger_nodes``), so each of those reads O(log n) hashes. The proof
checks in :mod:`archive.custody.merkle` are pure and run offline. On PostgreSQL entries are
written with their action and sequenced in batches after it commits (:func:`append`).

Why one module of some 600 lines: appending, batch sequencing, tree heads, proofs and the
verifying pass all read and write the same three tables (entries, nodes, the lock row with its
frontier) under one lock discipline, and share their private readers (:func:`_entry_hash`,
:func:`_frontier`, :func:`_node_hashes`); split, each part would import the others' internals.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, Select, Table, and_, column, delete, func, insert, or_, select, table, text, type_coerce
from sqlalchemy.exc import IntegrityError
from sqlalchemy.types import NULLTYPE
from sqlalchemy.orm import Session

from archive.custody import merkle
from archive.db import after_commit, before_dispose, before_snapshot, lock_row, refuse_nul, will_run_after_commit
from archive.errors import DatabaseBusy, InvalidInput, LedgerTampered, NotFound
# The entry format lives in the offline verifier (evidence_verify), which needs no database;
# the names stay importable from here for existing callers.
from evidence_verify.ledger_format import GENESIS, canonical_json, compute_entry_hash, entry_bytes  # noqa: F401
from archive.models import LedgerEntry, LedgerLock, LedgerNode, LedgerPending
from archive.wording import Sentences

if TYPE_CHECKING:
    from archive.db import Database

log = logging.getLogger(__name__)


def iso_utc(moment: datetime) -> str:
    """ISO 8601 UTC text with microseconds and a ``Z``, the form the ledger hashes."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_fields(entry: LedgerEntry) -> dict[str, Any]:
    """The fields of an entry as published (API, exports, offline verification)."""
    return {
        "seq": entry.seq,
        "time": entry.recorded_at,
        "actor": entry.actor,
        "case": entry.case_id,
        "item": entry.item_id,
        "action": entry.action,
        "details": entry.details,
        "prev": entry.prev_hash,
    }


def row_bytes(seq: int, recorded_at: str, actor: str, case_id: str | None, item_id: str | None, action: str,
              details: str, prev_hash: str) -> bytes:
    """:func:`entry_bytes` of an entry given as its columns, in table order (a row of
    ``ledger_entries`` read with plain SQL)."""
    return entry_bytes({"seq": seq, "time": recorded_at, "actor": actor, "case": case_id, "item": item_id,
                        "action": action, "details": details, "prev": prev_hash})


def new_entry(
    *, seq: int, prev_hash: str, recorded_at: str, actor: str, action: str,
    case_id: str | None = None, item_id: str | None = None, details: str = "{}",
) -> tuple[dict[str, Any], bytes]:
    """The column values of entry ``seq`` (``details`` already canonical JSON), with its
    ``entry_hash``, and its Merkle leaf hash: what :func:`append` stores."""
    row = {"seq": seq, "recorded_at": recorded_at, "actor": actor, "case_id": case_id, "item_id": item_id,
           "action": action, "details": details, "prev_hash": prev_hash}
    data = row_bytes(seq, recorded_at, actor, case_id, item_id, action, details, prev_hash)
    row["entry_hash"] = hashlib.sha256(data).hexdigest()
    return row, merkle.leaf_hash(data)


def node_rows(made: list[tuple[int, int, bytes]]) -> list[dict[str, Any]]:
    """``ledger_nodes`` rows for the subtrees :func:`archive.custody.merkle.frontier_append_nodes` completed."""
    return [{"level": level, "idx": idx, "hash": h} for level, idx, h in made]


SEQUENCER = "custody-ledger-sequencer"
BATCH = 2000
"""Most waiting entries one sequencing transaction takes (the rest go in the next one)."""


def append(
    session: Session,
    *,
    actor: str,
    action: str,
    case_id: str | None = None,
    item_id: str | None = None,
    details: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> None:
    """Record one custody entry with the caller's transaction: it commits (or rolls back)
    with the action it records.

    On PostgreSQL the entry waits in ``ledger_pending`` and takes no lock. Once the transaction
    commits, the process's sequencer (:class:`_Sequencer`) puts what every committed
    transaction left there into the ledger in batches (:func:`sequence_pending`), so many
    concurrent writers share one lock and one flush per batch, and none waits for it. Entries
    keep the order they were written in. A reader of the ledger calls :func:`settle` first to
    see every entry committed before it asked. On SQLite, where the write transaction already
    serialises writers, the entry is sequenced at once (:func:`append_now`). Use :func:`append_now`
    where the caller needs the entry's sequence number inside its transaction.
    """
    _append_rows(session, [_columns(actor, action, case_id, item_id, details, now)])


def append_all(session: Session, *, actor: str, entries: Iterable[Mapping[str, Any]]) -> None:
    """:func:`append` of several entries by one actor, in order (each a mapping of ``action``
    and optionally ``case_id``, ``item_id``, ``details``), in one statement on PostgreSQL and
    one sequencing on SQLite."""
    now = datetime.now(timezone.utc)
    _append_rows(session, [_columns(actor, e["action"], e.get("case_id"), e.get("item_id"), e.get("details"), now)
                           for e in entries])


def _append_rows(session: Session, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    if session.get_bind().dialect.name != "postgresql":
        _append_here(session, rows)
        return
    if len(rows) == 1:
        session.execute(_PENDING_INSERT, rows)
    else:
        _insert_rows(session, LedgerPending.__table__, rows)
    after_commit(session, SEQUENCER, _Sequencing)


def record(
    database: Database,
    *,
    actor: str,
    action: str,
    case_id: str | None = None,
    item_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Record one custody entry on its own, not with an action of the caller's (a read of
    evidence records only that it was read), committed when this returns.

    The entries a process's threads record at the same moment share one transaction and one
    flush (a group commit): the first caller writes, with its own entry, every entry waiting
    when it begins; those that arrive while it writes wait for it, and the first of them
    writes theirs next. Alone, a caller writes at once. A batch is written as :func:`append`
    writes (on PostgreSQL it waits in ``ledger_pending`` and is sequenced in a batch after its
    commit; a reader settles first). If a batch fails, each of its entries is tried again on its own, so
    one bad entry fails only its own caller; a database that does not answer, or is full, fails
    them all (:class:`archive.errors.DatabaseBusy`). Nothing of the caller's may be open on the
    database meanwhile: a request gives its reading connection back first.
    """
    _group(database).submit(database, _columns(actor, action, case_id, item_id, details, None))


class _Recording:
    """One caller of :func:`record`: its entry, and what it is told (its batch written, or
    that it writes the next batch)."""

    __slots__ = ("row", "woken", "writes", "error")

    def __init__(self, row: dict[str, Any]) -> None:
        self.row = row
        self.woken = threading.Event()
        self.writes = False
        self.error: BaseException | None = None


class _GroupCommit:
    """The callers of :func:`record` in one process for one database (see there)."""

    BATCH = 500

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.waiting: list[_Recording] = []
        self.writing = False

    def submit(self, database: Database, row: dict[str, Any]) -> None:
        me = _Recording(row)
        with self.lock:
            self.waiting.append(me)
            if not self.writing:
                self.writing = me.writes = True
        if not me.writes:
            me.woken.wait()  # written by another caller, or this one writes the next batch
        if me.writes:
            self._write_next(database)
        if me.error is not None:
            raise me.error

    def _write_next(self, database: Database) -> None:
        with self.lock:
            batch, self.waiting = self.waiting[:self.BATCH], self.waiting[self.BATCH:]
        try:
            _write_batch(database, [r.row for r in batch])
        except BaseException as exc:
            if len(batch) == 1 or isinstance(exc, (DatabaseBusy, LedgerTampered)):  # the database, not an entry
                for r in batch:
                    r.error = exc
            else:  # each on its own: only a bad entry fails its caller
                for r in batch:
                    try:
                        _write_batch(database, [r.row])
                    except BaseException as own:
                        r.error = own
        with self.lock:
            following = self.waiting[0] if self.waiting else None
            if following is None:
                self.writing = False
            else:
                following.writes = True
        for r in batch:
            r.woken.set()
        if following is not None:
            following.woken.set()


def _write_batch(database: Database, rows: list[dict[str, Any]]) -> None:
    with database.session() as session:
        _append_rows(session, rows)


_groups: dict[object, _GroupCommit] = {}


def _group(database: Database) -> _GroupCommit:
    with _sequencers_lock:
        return _groups.setdefault(id(database.engine.pool), _GroupCommit())


_PENDING_INSERT = insert(LedgerPending.__table__)
"""A plain insert (no ORM bulk-insert step): it runs once per append, on every write path."""


def _columns(actor: str, action: str, case_id: str | None, item_id: str | None,
             details: dict[str, Any] | None, now: datetime | None) -> dict[str, Any]:
    """An entry's columns before it has a place (no sequence number or hashes yet)."""
    return {"recorded_at": iso_utc(now or datetime.now(timezone.utc)), "actor": actor, "action": action,
            "case_id": case_id, "item_id": item_id, "details": canonical_json(details or {})}


class _Sequencing:
    """What a transaction asks once it commits: that its entries be sequenced soon."""

    def __call__(self, engine: Engine) -> None:
        _sequencer(engine).poke(engine)


class _Sequencer:
    """The thread that sequences, in batches, the entries its process's committers left
    waiting: committers do not wait for it (an append costs its caller one insert in its own
    transaction), and entries that commit while a pass runs all go in the next pass. Across
    processes the ledger's lock orders the passes; a pass takes every committed waiting entry,
    whichever process wrote it. A try that finds another pass holding the lock stops there
    (that pass hands over, see :func:`sequence_pending`); the thread then waits
    :attr:`BUSY_PAUSE` before trying for later commits, so sixteen busy processes make a
    few tries a second each rather than one per commit (measured: ``bench/bench_appends.py``).

    The thread runs while there is work and ends when there is none; a later commit starts
    another. If a pass fails (the database unreachable), it tries again a few times, then
    leaves the entries waiting (committed, so nothing is lost) for the next commit's pass or
    the timed checkpoint, which sequences whatever waits (see
    :func:`archive.custody.checkpoints.seal_checkpoint`)."""

    RETRIES = (0.1, 0.5, 2.0, 5.0)
    BUSY_PAUSE = 0.1
    GATHER = 0.01

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.wanted = False
        self.running = False
        self.thread: threading.Thread | None = None

    def poke(self, engine: Engine) -> None:
        with self.lock:
            self.wanted = True
            if self.running:
                return
            self.running = True
            # Each batch's statements read what committed before them (a reading session's
            # snapshot isolation would refuse the lock row another pass changed); made only when
            # a thread starts, not on every commit.
            engine = engine.execution_options(isolation_level="READ COMMITTED")
            self.thread = threading.Thread(target=self._run, args=(engine,), name="ledger-sequencer", daemon=True)
            self.thread.start()

    def join(self, timeout: float) -> None:
        thread = self.thread
        if thread is not None:
            thread.join(timeout)

    def _run(self, engine: Engine) -> None:
        failures = 0
        while True:
            with self.lock:
                if not self.wanted:
                    self.running = False
                    return
                self.wanted = False
            try:
                # None: another pass holds the lock, and it sequences this process's entries
                # (committed before this try) before it lets go (see sequence_pending).
                took = _sequence_batches(engine, wait=False)
                failures = 0
                if took is None:  # held: tries wait a moment, gathering this process's commits
                    time.sleep(self.BUSY_PAUSE)
                elif took:  # the hand-over (see sequence_pending): one more pass, a batch gathered
                    time.sleep(self.GATHER)
                    with self.lock:
                        self.wanted = True
            except Exception as exc:  # the entries stay waiting, committed; see the class's text
                if failures == len(self.RETRIES):
                    log.warning("custody entries wait to be sequenced (%s); the next commit or the "
                                "timed checkpoint sequences them", type(exc).__name__)
                    with self.lock:
                        self.running = False
                    return
                time.sleep(self.RETRIES[failures])
                failures += 1
                with self.lock:
                    self.wanted = True


_sequencers: dict[object, _Sequencer] = {}
_sequencers_lock = threading.Lock()


def _sequencer(engine: Engine) -> _Sequencer:
    """The process's sequencer for this database (its engines share one connection pool)."""
    with _sequencers_lock:
        return _sequencers.setdefault(id(engine.pool), _Sequencer())


def _forget_sequencers() -> None:
    # A forked child has none of its parent's threads, and a lock the parent held at the
    # fork would never be released in it.
    global _sequencers_lock
    _sequencers.clear()
    _groups.clear()
    _sequencers_lock = threading.Lock()


def finish_sequencing(timeout: float = 5.0, *, engine: Engine | None = None) -> None:
    """Let this process's sequencers (or the one of ``engine``) finish what its commits left
    waiting, at most ``timeout`` seconds. Run as the process exits normally, and before a
    database is disposed; whatever is left waits, committed, for another process's pass or
    the timed checkpoint."""
    deadline = time.monotonic() + timeout
    with _sequencers_lock:
        sequencers = list(_sequencers.values()) if engine is None else \
            [s for s in [_sequencers.pop(id(engine.pool), None)] if s is not None]
    for sequencer in sequencers:
        sequencer.join(max(0.0, deadline - time.monotonic()))


os.register_at_fork(after_in_child=_forget_sequencers)
atexit.register(finish_sequencing)
before_dispose(lambda engine: finish_sequencing(engine=engine))


def settle(engine: Engine) -> None:
    """Sequence now every entry committed before this call and still waiting, so that a
    session opened after it reads them in the ledger: for readers of the ledger (proofs, a
    case's custody entries, verification), who must find the entries of actions answered
    before they asked. Call it before the reader takes its connection (a request never holds
    two). Nothing to do on SQLite, where appends are sequenced at once."""
    if engine.dialect.name != "postgresql":
        return
    with engine.connect() as conn:
        if not conn.execute(select(LedgerPending.id).limit(1)).first():
            return
    sequence_pending(engine.execution_options(isolation_level="READ COMMITTED"))


before_snapshot(settle)


def append_now(
    session: Session,
    *,
    actor: str,
    action: str,
    case_id: str | None = None,
    item_id: str | None = None,
    details: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> LedgerEntry:
    """Append one entry in the caller's transaction and return it with its sequence number.

    The single ``ledger_lock`` row is locked first and held to the end of the transaction, so
    sequence numbers and the chain never fork. Entries already waiting to be sequenced
    (committed ones, and this transaction's own) go first, so the ledger keeps the order
    entries were written in. The Merkle subtrees the entry completes are stored
    (``ledger_nodes``) in the same transaction.

    This lock comes last in the lock order (see :func:`archive.db.lock_row`).
    """
    seq = _append_here(session, [_columns(actor, action, case_id, item_id, details, now)])
    entry = session.get(LedgerEntry, seq)
    assert entry is not None
    return entry


def _append_here(session: Session, rows: list[dict[str, Any]]) -> int:
    """:func:`append_now` of ``rows`` without reading them back: the last one's sequence number."""
    lock = lock_row(session, LedgerLock, 1)
    assert lock is not None, "the ledger lock row is created by the first migration"
    if session.get_bind().dialect.name == "postgresql":  # elsewhere nothing waits (see append)
        _sequence_waiting(session, lock)
        # Holding the lock, this transaction must hand over as a pass does: entries committed
        # while it holds it are sequenced after it commits (see sequence_pending).
        after_commit(session, SEQUENCER, _Sequencing)
    return _sequence(session, lock, rows)[-1]["seq"]


def sequence_pending(engine: Engine, *, wait: bool = True) -> int | None:
    """Sequence every committed waiting entry into the ledger, in batches of at most
    :data:`BATCH` entries, each batch one transaction under the ledger's lock; return how
    many. Run by each process's sequencer after commits that left entries waiting, by
    :func:`settle`, and by the timed checkpoint (which also picks up entries a process died
    before sequencing). A pass that finds the lock held waits for it, then takes what is
    left, often nothing; with ``wait=False`` it returns None at once instead.

    A committer whose try finds the lock held goes on, without waiting or polling, because
    whoever held the lock hands over: having sequenced entries, it has its process's
    sequencer make one more pass, a moment later, which takes what committed meanwhile or finds
    the lock held again (and so on). An entry committed before a try that found the lock held
    is therefore taken by that holder's next pass, or by whoever took the lock after the holder
    let go, which read it (it had committed) and hands over the same way. With many writers,
    one process thus sequences everyone's entries in batches, while the others' tries cost a
    skipped lock each."""
    done = _sequence_batches(engine, wait=wait)
    if done:
        _sequencer(engine).poke(engine)  # the hand-over
    return done


def _sequence_batches(engine: Engine, *, wait: bool) -> int | None:
    """:func:`sequence_pending` without the hand-over (the sequencer's own loop makes it)."""
    done = 0
    while True:
        with Session(engine) as session:
            if wait:
                lock = lock_row(session, LedgerLock, 1)
            else:
                lock = session.execute(select(LedgerLock).where(LedgerLock.id == 1).with_for_update(
                    of=LedgerLock, key_share=True, skip_locked=True)).scalar_one_or_none()
                if lock is None:
                    return None
            assert lock is not None, "the ledger lock row is created by the first migration"
            count = _sequence_waiting(session, lock, limit=BATCH)
            if count:
                session.commit()
                done += count
        if count < BATCH:
            return done


def sequence_own(session: Session) -> None:
    """Sequence now, in the caller's transaction, the entries it appended (and those other
    transactions committed before them), for a caller that needs them in the ledger before it
    commits, such as a checkpoint over them. The ledger's lock is then held to its end."""
    if not will_run_after_commit(session, SEQUENCER):
        return
    lock = lock_row(session, LedgerLock, 1)
    assert lock is not None, "the ledger lock row is created by the first migration"
    _sequence_waiting(session, lock)


def waiting(session: Session) -> int:
    """How many committed entries wait to be sequenced."""
    return session.execute(select(func.count()).select_from(LedgerPending)).scalar_one()


def _sequence_waiting(session: Session, lock: LedgerLock, *, limit: int | None = None) -> int:
    """Sequence the waiting entries this transaction sees (under the held ``lock``), oldest
    first: each is taken out of ``ledger_pending`` and written to the ledger in one step."""
    oldest = select(LedgerPending.id).order_by(LedgerPending.id)
    if limit is not None:
        oldest = oldest.limit(limit)
    session.flush()  # this transaction's own waiting entries too
    taken = session.execute(
        delete(LedgerPending).where(LedgerPending.id.in_(oldest.scalar_subquery()))
        .returning(LedgerPending.id, LedgerPending.recorded_at, LedgerPending.actor, LedgerPending.action,
                   LedgerPending.case_id, LedgerPending.item_id, LedgerPending.details)
        .execution_options(synchronize_session=False)
    ).mappings().all()
    if not taken:
        return 0
    _sequence(session, lock, [{k: v for k, v in w.items() if k != "id"} for w in sorted(taken, key=lambda w: w["id"])])
    return len(taken)


def _sequence(session: Session, lock: LedgerLock, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give ``rows`` (entry columns without seq and hashes) the next sequence numbers under the
    held ``lock``: write the entries and the Merkle subtrees they complete, advance the lock."""
    prev, size = _entry_hash(session, lock.size), lock.size
    frontier = _frontier(session, lock)
    entries, nodes = [], []
    for r in rows:
        row, leaf = new_entry(seq=size + 1, prev_hash=prev, **r)
        try:
            frontier, made = merkle.frontier_append_nodes(frontier, size, leaf)
        except ValueError as exc:  # a lock row whose frontier does not fit its size: altered
            raise LedgerTampered(PROBLEMS.say("lock_altered", size=lock.size, reason=exc)) from exc
        entries.append(row)
        nodes.extend(node_rows(made))
        prev, size = row["entry_hash"], size + 1
    try:
        _insert_rows(session, LedgerEntry.__table__, entries)
        _insert_rows(session, LedgerNode.__table__, nodes)
    except IntegrityError as exc:  # the transaction is lost with it: the caller's action is not done
        # Under the lock nothing else numbers entries: rows already there past the size the
        # lock records were left by someone cutting the lock back, not by a writer.
        raise LedgerTampered(PROBLEMS.say("lock_altered", size=lock.size, reason="entries or nodes past it exist")) from exc
    lock.frontier = [h.hex() for h in frontier]
    lock.size = size
    return entries


def _insert_rows(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` into ``table``: on PostgreSQL one statement reading them from one JSON
    text (``json_populate_recordset``), since the driver's executemany sends a statement per
    row and a batch of a thousand entries spent most of its time there; elsewhere an
    executemany. Bytes go as PostgreSQL's hex form of ``bytea``."""
    if not rows:
        return
    if session.get_bind().dialect.name != "postgresql":
        session.execute(insert(table), rows)
        return
    refuse_nul(rows)  # inside the JSON a NUL would be escaped, unseen by the statement's own check
    names = ", ".join(rows[0])
    data = json.dumps([{k: "\\x" + v.hex() if isinstance(v, bytes) else v for k, v in r.items()} for r in rows])
    session.execute(text(f"INSERT INTO {table.name} ({names}) SELECT {names} FROM json_populate_recordset("
                         f"NULL::{table.name}, :rows) WITH ORDINALITY AS r ORDER BY ordinality"), {"rows": data})


def size(session: Session) -> int:
    """The number of entries the ledger claims to hold."""
    return session.execute(select(LedgerLock.size).where(LedgerLock.id == 1)).scalar_one()


def iter_entries(session: Session, *, start: int = 1, stop: int | None = None) -> Iterator[LedgerEntry]:
    """Entries with ``start <= seq <= stop`` in sequence order, streamed."""
    query = select(LedgerEntry).where(LedgerEntry.seq >= start).order_by(LedgerEntry.seq)
    if stop is not None:
        query = query.where(LedgerEntry.seq <= stop)
    yield from session.execute(query.execution_options(yield_per=2000)).scalars()


PROBLEMS = Sentences("ledger_problem", {
    "entry_deleted": "ledger entry {seq} is missing (the ledger recorded it; its row was deleted)",
    "node": "stored Merkle node (level {depth}, index {index}: entries {first}..{last})",
    "node_missing": "{node} is missing (node row deleted)",
    "node_altered": "{node} does not match the entries (node row altered, or entries rewritten under it)",
    "entry_missing": "ledger entry {seq} is missing (next present is {next})",
    "out_of_order": "ledger entry {seq} appears out of order",
    "link_broken": "ledger entry {seq}: previous-hash link broken (entry removed, inserted or reordered)",
    "edited": "ledger entry {seq}: content does not match its hash (edited)",
    "removed": "ledger holds {held} entries but recorded {claimed}: entry {first} onward removed",
    "added": "ledger holds entries past the {size} it recorded: entry {first} onward added",
    "head_rewritten": "the ledger's running tree head does not match its entries (entries rewritten)",
    "lock_altered": ("the ledger's lock row (size {size}) does not fit its entries and nodes ({reason}): it was "
                     "altered, and no entry can be added until the ledger is repaired; run evidence ledger verify"),
}, fields={"seq": r"\d+", "depth": r"\d+", "index": r"\d+", "first": r"\d+", "last": r"\d+", "next": r"\d+",
           "held": r"\d+", "claimed": r"\d+", "size": r"\d+"})
"""What :func:`verify` (and the reads of entries and nodes) finds wrong with the ledger
(:class:`LedgerTampered`'s message); ``node`` is a ``node`` sentence."""

def _entry_hash(session: Session, seq: int) -> str:
    """The chain hash of entry ``seq`` (GENESIS for 0); LedgerTampered when the row is gone."""
    if seq == 0:
        return GENESIS
    found = session.execute(select(LedgerEntry.entry_hash).where(LedgerEntry.seq == seq)).scalar_one_or_none()
    if found is None:
        raise LedgerTampered(PROBLEMS.say("entry_deleted", seq=seq))
    return found


def _describe_node(level: int, idx: int) -> str:
    return PROBLEMS.say("node", depth=level, index=idx, first=(idx << level) + 1, last=(idx + 1) << level)


def _node_hashes(session: Session, keys: set[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
    """The stored hashes of these subtrees, in one query; LedgerTampered naming one that is missing."""
    if not keys:
        return {}
    by_level: dict[int, list[int]] = {}
    for level, idx in sorted(keys):
        by_level.setdefault(level, []).append(idx)
    # One primary-key lookup per level (SQLite scans the table for a row-value IN list).
    rows = session.execute(
        select(LedgerNode.level, LedgerNode.idx, LedgerNode.hash).where(or_(*(
            and_(LedgerNode.level == level, LedgerNode.idx.in_(idxs)) for level, idxs in by_level.items()
        )))
    )
    found = {(level, idx): bytes(h) for level, idx, h in rows}
    missing = keys - found.keys()
    if missing:
        raise LedgerTampered(PROBLEMS.say("node_missing", node=_describe_node(*min(missing))))
    return found


def _range_roots(session: Session, ranges: list[tuple[int, int]]) -> list[bytes]:
    """The Merkle Tree Hash of each leaf range, from the stored subtree hashes (O(log n) each)."""
    pieces = [merkle.subtrees(start, end) for start, end in ranges]
    stored = _node_hashes(session, {p for ps in pieces for p in ps})
    return [merkle.fold([stored[p] for p in ps]) for ps in pieces]


@dataclass(frozen=True)
class TreeHead:
    """The Merkle tree head of the ledger's first ``tree_size`` entries."""

    tree_size: int
    root_hash: str
    """Hex SHA-256 Merkle root (RFC 9162 MTH)."""
    last_entry_hash: str
    """Chain hash of entry ``tree_size`` (GENESIS when empty)."""


def _checked_size(session: Session, tree_size: int | None, *, total: int | None = None) -> int:
    total = size(session) if total is None else total
    if tree_size is None:
        return total
    if tree_size < 0 or tree_size > total:
        raise InvalidInput(f"tree size {tree_size} is outside 0..{total}", code="invalid_tree_size")
    return tree_size


def _decoded(frontier: list[str]) -> list[bytes]:
    return [bytes.fromhex(h) for h in frontier]


def _frontier(session: Session, lock: LedgerLock) -> list[bytes]:
    """The Merkle frontier of the ledger's ``lock.size`` entries (from the stored nodes if unset)."""
    if lock.frontier is not None:
        return _decoded(lock.frontier)
    pieces = merkle.subtrees(0, lock.size)
    stored = _node_hashes(session, set(pieces))
    return [stored[p] for p in pieces]


def tree_head(session: Session, *, tree_size: int | None = None) -> TreeHead:
    """The tree head for ``tree_size`` entries (default: all).

    The current head comes from the frontier each append keeps; an older size from
    the stored subtree hashes. Both O(log n); ``verify`` checks both against the entries.
    """
    total, stored = session.execute(select(LedgerLock.size, LedgerLock.frontier).where(LedgerLock.id == 1)).one()
    n = _checked_size(session, tree_size, total=total)
    if n == total and stored is not None:
        root = merkle.frontier_root(_decoded(stored))
    else:
        root = _range_roots(session, [(0, n)])[0]
    return TreeHead(tree_size=n, root_hash=root.hex(), last_entry_hash=_entry_hash(session, n))


@dataclass(frozen=True)
class InclusionProof:
    """Proof that entry ``seq`` is leaf ``seq - 1`` of the tree of ``tree_size`` entries."""

    seq: int
    tree_size: int
    leaf_hash: str
    root_hash: str
    path: tuple[str, ...]


def inclusion(
    session: Session, *, seq: int, tree_size: int | None = None, cases: Select | None = None
) -> InclusionProof:
    """An RFC 9162 inclusion proof for entry ``seq``, from O(log n) stored subtree hashes.

    With ``cases`` (the ids of the cases a caller may read), only for an entry of one of
    them: any other is 404 ``entry_not_found``, as an unknown one, before the tree is looked at.
    """
    if cases is not None and session.execute(
            select(LedgerEntry.seq).where(LedgerEntry.seq == seq, LedgerEntry.case_id.in_(cases))).first() is None:
        raise NotFound(f"entry {seq} is not an entry of a case you may read", code="entry_not_found")
    n = _checked_size(session, tree_size)
    if not 1 <= seq <= n:
        raise NotFound(f"entry {seq} is not in a tree of size {n}", code="entry_not_found")
    root, leaf, *path = _range_roots(session, [(0, n), (seq - 1, seq), *merkle.inclusion_ranges(seq - 1, n)])
    return InclusionProof(seq=seq, tree_size=n, leaf_hash=leaf.hex(), root_hash=root.hex(),
                          path=tuple(p.hex() for p in path))


@dataclass(frozen=True)
class ConsistencyProof:
    """Proof that the tree of ``old_size`` entries is a prefix of the one of ``new_size``."""

    old_size: int
    new_size: int
    old_root: str
    new_root: str
    path: tuple[str, ...]


def consistency(session: Session, *, old_size: int, new_size: int | None = None) -> ConsistencyProof:
    """An RFC 9162 consistency proof between two tree sizes, from O(log n) stored subtree hashes."""
    n = _checked_size(session, new_size)
    if not 0 <= old_size <= n:
        raise InvalidInput(f"old size {old_size} is outside 0..{n}", code="invalid_tree_size")
    old_root, new_root, *path = _range_roots(session, [(0, old_size), (0, n),
                                                       *merkle.consistency_ranges(old_size, n)])
    return ConsistencyProof(old_size=old_size, new_size=n, old_root=old_root.hex(), new_root=new_root.hex(),
                            path=tuple(p.hex() for p in path))


@dataclass(frozen=True)
class LedgerReport:
    """What a successful ledger verification established."""

    size: int
    root_hash: str
    last_entry_hash: str
    roots: dict[int, str] = field(default_factory=dict)
    """The hex root at each tree size :func:`verify` was asked for (``at_sizes``) within the ledger."""


_VERIFY_CHUNK = 8192
"""Entries per batch of stored subtree hashes compared in :func:`verify`."""


class _NodeCheck:
    """Compares the subtree hashes a verification pass computes with the stored ones, a
    chunk at a time (one query per chunk), remembering the first mismatch."""

    def __init__(self, session: Session):
        self.connection = session.connection()
        # Per level: the index of the first node computed since the last flush, and the hashes.
        self.first: dict[int, int] = {}
        self.levels: dict[int, list[bytes]] = {}
        self.pending = 0
        self.problem: str | None = None

    def flush(self) -> None:
        if self.pending and self.problem is None:
            self._compare()
        self.first, self.levels, self.pending = {}, {}, 0

    def _compare(self) -> None:
        stored: dict[int, list[bytes]] = {level: [] for level in self.levels}
        # Core rows (no ORM loading): each level's new nodes are consecutive, one range each.
        # The hashes untyped: the drivers already return bytes, and a per-row conversion
        # is a third of this comparison's time.
        query = select(LedgerNode.level, type_coerce(LedgerNode.hash, NULLTYPE)).where(or_(*(
            and_(LedgerNode.level == level, LedgerNode.idx.between(self.first[level],
                                                                   self.first[level] + len(hashes) - 1))
            for level, hashes in self.levels.items()
        ))).order_by(LedgerNode.level, LedgerNode.idx)
        for level, h in self.connection.execute(query).all():
            stored[level].append(h)
        if all(stored[level] == hashes for level, hashes in self.levels.items()):
            return
        # Name the bad node covering the earliest entries (the lowest at a tie).
        present = {(level, idx) for level, idx in self.connection.execute(
            select(LedgerNode.level, LedgerNode.idx).where(query.whereclause))}
        bad = []
        for level, hashes in self.levels.items():
            got = iter(stored[level])
            for offset, h in enumerate(hashes):
                idx = self.first[level] + offset
                if (level, idx) not in present:
                    bad.append(((idx + 1) << level, level, idx, "node_missing"))
                elif next(got) != h:
                    bad.append(((idx + 1) << level, level, idx, "node_altered"))
        _, level, idx, what = min(bad)
        self.problem = PROBLEMS.say(what, node=_describe_node(level, idx))


def verify(session: Session, *, at_sizes: Iterable[int] = ()) -> LedgerReport:
    """Recompute the chain and tree from the database in one pass; raise LedgerTampered on any defect.

    Detects an edited entry (its hash no longer recomputes), a deleted or inserted entry
    (sequence gap or surplus, broken chain, or a count different from the ledger's own),
    reordering (broken chain), a running tree head that differs from the entries, and a
    stored subtree hash (``ledger_nodes``) that is missing or differs from the one the
    pass computes. Also returns the root at each of ``at_sizes`` (the sealed checkpoints'
    sizes, so they are checked without rehashing each prefix).
    """
    # The count and running tree head are read first and the entries checked up to that
    # count, so entries appended meanwhile (the service keeps running) are no alarm.
    claimed, stored = session.execute(select(LedgerLock.size, LedgerLock.frontier).where(LedgerLock.id == 1)).one()
    wanted = set(at_sizes)
    roots = {0: merkle.EMPTY_ROOT.hex()} if 0 in wanted else {}
    nodes = _NodeCheck(session)
    levels, first = nodes.levels, nodes.first
    frontier: list[bytes] = []
    expected_prev = GENESIS
    expected_seq = 1
    rows = session.connection().execute(
        select(LedgerEntry.seq, LedgerEntry.recorded_at, LedgerEntry.actor, LedgerEntry.case_id,
               LedgerEntry.item_id, LedgerEntry.action, LedgerEntry.details, LedgerEntry.prev_hash,
               LedgerEntry.entry_hash)
        .where(LedgerEntry.seq <= claimed).order_by(LedgerEntry.seq).execution_options(yield_per=5000)
    )
    for seq, recorded_at, actor, case_id, item_id, action, details, prev_hash, entry_hash in rows:
        if seq != expected_seq:
            if seq > expected_seq:
                raise LedgerTampered(PROBLEMS.say("entry_missing", seq=expected_seq, next=seq))
            raise LedgerTampered(PROBLEMS.say("out_of_order", seq=seq))
        if prev_hash != expected_prev:
            raise LedgerTampered(PROBLEMS.say("link_broken", seq=seq))
        data = row_bytes(seq, recorded_at, actor, case_id, item_id, action, details, prev_hash)
        if hashlib.sha256(data).hexdigest() != entry_hash:
            raise LedgerTampered(PROBLEMS.say("edited", seq=seq))
        # merkle.frontier_append_nodes inlined: this loop runs once per entry of the ledger,
        # and the frontier is only ever extended here, so it is updated in place.
        h, index, level = merkle.leaf_hash(data), seq - 1, 0
        while True:
            if level not in levels:
                levels[level], first[level] = [], index
            levels[level].append(h)
            if not index & 1:
                break
            h = merkle.node_hash(frontier.pop(), h)
            index >>= 1
            level += 1
        frontier.append(h)
        nodes.pending += 1
        if nodes.pending == _VERIFY_CHUNK:
            nodes.flush()
            levels, first = nodes.levels, nodes.first
        if seq in wanted:
            roots[seq] = merkle.frontier_root(frontier).hex()
        expected_prev = entry_hash
        expected_seq += 1
    found = expected_seq - 1
    if found != claimed:
        raise LedgerTampered(PROBLEMS.say("removed", held=found, claimed=claimed, first=found + 1))
    recorded_now = size(session)
    surplus = session.execute(select(func.min(LedgerEntry.seq)).where(LedgerEntry.seq > recorded_now)).scalar()
    if surplus is not None:
        raise LedgerTampered(PROBLEMS.say("added", size=recorded_now, first=surplus))
    root = merkle.frontier_root(frontier)
    if stored is not None and merkle.frontier_root(_decoded(stored)) != root:
        raise LedgerTampered(PROBLEMS.say("head_rewritten"))
    nodes.flush()
    if nodes.problem is not None:
        raise LedgerTampered(nodes.problem)
    return LedgerReport(size=found, root_hash=root.hex(), last_entry_hash=expected_prev, roots=roots)


_NODES = table("ledger_nodes", column("level"), column("idx"), column("hash"))


def backfill_nodes(connection: Connection, *, batch: int = 5000) -> int:
    """Store the subtree hashes of every entry present (an empty ``ledger_nodes`` assumed),
    streamed: memory stays O(batch + log n). Returns the number of entries read.

    For ledgers written before nodes were stored (migration 0012). A ledger tampered
    with before that gets the nodes of its tampered entries; the chain check of
    :func:`verify` and the sealed checkpoints still name the tampering.
    """
    # Options on the statement, not the connection: those would outlive this call.
    rows = connection.execute(text(
        "SELECT seq, recorded_at, actor, case_id, item_id, action, details, prev_hash "
        "FROM ledger_entries ORDER BY seq"
    ).execution_options(stream_results=True, yield_per=batch))
    frontier: list[bytes] = []
    pending: list[dict[str, Any]] = []
    count = 0
    for count, (seq, recorded_at, actor, case_id, item_id, action, details, prev_hash) in enumerate(rows, start=1):
        data = row_bytes(seq, recorded_at, actor, case_id, item_id, action, details, prev_hash)
        frontier, made = merkle.frontier_append_nodes(frontier, count - 1, merkle.leaf_hash(data))
        pending.extend(node_rows(made))
        if len(pending) >= batch:
            connection.execute(insert(_NODES), pending)
            pending = []
    if pending:
        connection.execute(insert(_NODES), pending)
    return count


def count_actions(session: Session, *, item_id: str, action: str) -> int:
    """How many entries of ``action`` name ``item_id`` (for idempotent tasks and tests),
    sequenced or still waiting in ``ledger_pending``: an entry counts from the commit of its
    action. One statement, so one snapshot: the sequencer's move from one table to the other
    is seen whole, never twice or not at all."""
    def counted(table: type[LedgerEntry] | type[LedgerPending]) -> Any:
        return select(func.count()).select_from(table).where(
            table.item_id == item_id, table.action == action).scalar_subquery()
    return session.execute(select(counted(LedgerEntry) + counted(LedgerPending))).scalar_one()


def entries(
    session: Session, *, start: int = 1, limit: int | None = None, case_id: str | None = None, cases: Select | None = None
) -> list[LedgerEntry]:
    """Entries from ``start`` in order: of one case, of the cases ``cases`` selects, or all of them."""
    query = select(LedgerEntry).where(LedgerEntry.seq >= start).order_by(LedgerEntry.seq).limit(limit)
    if case_id is not None:
        query = query.where(LedgerEntry.case_id == case_id)
    if cases is not None:
        query = query.where(LedgerEntry.case_id.in_(cases))
    return list(session.execute(query).scalars())


@dataclass(frozen=True)
class _Facets:
    upto: int
    actors: frozenset[str]
    actions: frozenset[str]


FACET_CASES = 512
"""Cases whose actors and actions a process keeps (:func:`case_facets`)."""
_facets: dict[str, _Facets] = {}
_facets_guard = threading.Lock()


def case_facets(session: Session, *, case_id: str) -> tuple[list[str], list[str]]:
    """The actors and the actions of ``case_id``'s sequenced entries, sorted: what the case
    page's custody filters offer.

    Entries are never changed and are sequenced in order (a batch commits under the ledger's
    lock before the next is numbered), so whatever one read found stays true: each process
    keeps it, for its last :data:`FACET_CASES` cases, and the next read groups only the
    entries numbered since. A case of 100,000 entries paid a scan of them all at every view of
    its page (about 125 ms on PostgreSQL)."""
    with _facets_guard:
        known = _facets.pop(case_id, None) or _Facets(0, frozenset(), frozenset())
    new = session.execute(
        select(LedgerEntry.actor, LedgerEntry.action, func.max(LedgerEntry.seq))
        .where(LedgerEntry.case_id == case_id, LedgerEntry.seq > known.upto)
        .group_by(LedgerEntry.actor, LedgerEntry.action)
    ).all()
    now = _Facets(max([known.upto, *(r[2] for r in new)]), known.actors | {r[0] for r in new},
                  known.actions | {r[1] for r in new})
    with _facets_guard:
        _facets[case_id] = now  # the newest last: the oldest go first
        while len(_facets) > FACET_CASES:
            del _facets[next(iter(_facets))]
    return sorted(now.actors), sorted(now.actions)
