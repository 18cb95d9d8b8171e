"""The custody ledger: an append-only, hash-chained list that is also a Merkle tree.

Each entry's canonical bytes (:func:`entry_bytes`) name its sequence number, time,
actor, case, item, action, details and the previous entry's hash. ``entry_hash`` is the
SHA-256 of those bytes (the chain); the same bytes are the leaves of an RFC 9162 Merkle
tree, so the service can give a tree head for any size, an inclusion proof for an entry
and a consistency proof between two sizes. The proof checks in :mod:`archive.merkle` are
pure and run offline.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from archive import merkle
from archive.errors import InvalidInput, LedgerTampered, NotFound
# The entry format is pure and lives apart so the offline verifier needs no database;
# the names stay importable from here for existing callers.
from archive.ledger_format import GENESIS, canonical_json, compute_entry_hash, entry_bytes  # noqa: F401
from archive.models import LedgerEntry, LedgerLock


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


def append(
    session: Session,
    *,
    actor: str,
    action: str,
    case_id: str | None = None,
    item_id: str | None = None,
    details: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> LedgerEntry:
    """Append one entry in the caller's transaction (it becomes visible on commit).

    The single ``ledger_lock`` row is locked first, so concurrent appenders queue up
    and sequence numbers and the chain never fork.

    Lock order, in every transaction (the other order deadlocks on PostgreSQL): the
    device row, case rows (sorted by id), the item row, then export, upload, receipt
    or gap rows, and this ledger lock last. An UPDATE locks its row too: change (or
    lock) rows before the first append, since a change made after it is flushed, and
    its row locked, after the ledger lock. Lock with ``key_share=True`` (FOR NO KEY
    UPDATE), which does not block inserts that reference the row.
    """
    lock = session.execute(select(LedgerLock).where(LedgerLock.id == 1).with_for_update(key_share=True)).scalar_one()
    seq = lock.size + 1
    prev = _entry_hash(session, lock.size)
    entry = LedgerEntry(
        seq=seq,
        recorded_at=iso_utc(now or datetime.now(timezone.utc)),
        actor=actor,
        case_id=case_id,
        item_id=item_id,
        action=action,
        details=canonical_json(details or {}),
        prev_hash=prev,
    )
    fields = entry_fields(entry)
    entry.entry_hash = compute_entry_hash(fields)
    frontier = _frontier(session, lock)
    lock.frontier = [h.hex() for h in merkle.frontier_append(frontier, lock.size, merkle.leaf_hash(entry_bytes(fields)))]
    session.add(entry)
    lock.size = seq
    session.flush()
    return entry


def size(session: Session) -> int:
    """The number of entries the ledger claims to hold."""
    return session.execute(select(LedgerLock.size).where(LedgerLock.id == 1)).scalar_one()


def iter_entries(session: Session, *, start: int = 1, stop: int | None = None) -> Iterator[LedgerEntry]:
    """Entries with ``start <= seq <= stop`` in sequence order, streamed."""
    query = select(LedgerEntry).where(LedgerEntry.seq >= start).order_by(LedgerEntry.seq)
    if stop is not None:
        query = query.where(LedgerEntry.seq <= stop)
    yield from session.execute(query.execution_options(yield_per=2000)).scalars()


def _entry_hash(session: Session, seq: int) -> str:
    """The chain hash of entry ``seq`` (GENESIS for 0); LedgerTampered when the row is gone."""
    if seq == 0:
        return GENESIS
    found = session.execute(select(LedgerEntry.entry_hash).where(LedgerEntry.seq == seq)).scalar_one_or_none()
    if found is None:
        raise LedgerTampered(f"ledger entry {seq} is missing (the ledger recorded it; its row was deleted)")
    return found


def leaf_hashes(session: Session, tree_size: int) -> list[bytes]:
    """Merkle leaf hashes of the first ``tree_size`` entries.

    Raises LedgerTampered naming the first entry missing from ``1..tree_size``: every
    proof and root is computed from this list, and a short list must never reach the
    Merkle code as if the tree were smaller.
    """
    leaves = []
    for expected, entry in enumerate(iter_entries(session, stop=tree_size), start=1):
        if entry.seq != expected:
            raise LedgerTampered(f"ledger entry {expected} is missing (next present is {entry.seq})")
        leaves.append(merkle.leaf_hash(entry_bytes(entry_fields(entry))))
    if len(leaves) < tree_size:
        raise LedgerTampered(
            f"ledger entry {len(leaves) + 1} is missing: the ledger holds {len(leaves)} of the first {tree_size} entries"
        )
    return leaves


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
    """The Merkle frontier of the ledger's ``lock.size`` entries (computed once if unset)."""
    if lock.frontier is not None:
        return _decoded(lock.frontier)
    frontier: list[bytes] = []
    for index, leaf in enumerate(leaf_hashes(session, lock.size)):
        frontier = merkle.frontier_append(frontier, index, leaf)
    return frontier


def tree_head(session: Session, *, tree_size: int | None = None) -> TreeHead:
    """The tree head for ``tree_size`` entries (default: all).

    The current head comes from the frontier each append keeps (O(log n)); an older
    size is rehashed from its entries. ``verify`` checks the frontier against them.
    """
    total, stored = session.execute(select(LedgerLock.size, LedgerLock.frontier).where(LedgerLock.id == 1)).one()
    n = _checked_size(session, tree_size, total=total)
    if n == total and stored is not None:
        root = merkle.frontier_root(_decoded(stored))
    else:
        root = merkle.root_from_leaf_hashes(leaf_hashes(session, n))
    return TreeHead(tree_size=n, root_hash=root.hex(), last_entry_hash=_entry_hash(session, n))


@dataclass(frozen=True)
class InclusionProof:
    """Proof that entry ``seq`` is leaf ``seq - 1`` of the tree of ``tree_size`` entries."""

    seq: int
    tree_size: int
    leaf_hash: str
    root_hash: str
    path: tuple[str, ...]


def inclusion(session: Session, *, seq: int, tree_size: int | None = None) -> InclusionProof:
    """An RFC 9162 inclusion proof for entry ``seq``."""
    n = _checked_size(session, tree_size)
    if not 1 <= seq <= n:
        raise NotFound(f"entry {seq} is not in a tree of size {n}", code="entry_not_found")
    leaves = leaf_hashes(session, n)
    path = merkle.inclusion_proof(leaves, seq - 1, n)
    return InclusionProof(
        seq=seq, tree_size=n, leaf_hash=leaves[seq - 1].hex(),
        root_hash=merkle.root_from_leaf_hashes(leaves).hex(), path=tuple(p.hex() for p in path),
    )


@dataclass(frozen=True)
class ConsistencyProof:
    """Proof that the tree of ``old_size`` entries is a prefix of the one of ``new_size``."""

    old_size: int
    new_size: int
    old_root: str
    new_root: str
    path: tuple[str, ...]


def consistency(session: Session, *, old_size: int, new_size: int | None = None) -> ConsistencyProof:
    """An RFC 9162 consistency proof between two tree sizes."""
    n = _checked_size(session, new_size)
    if not 0 <= old_size <= n:
        raise InvalidInput(f"old size {old_size} is outside 0..{n}", code="invalid_tree_size")
    leaves = leaf_hashes(session, n)
    path = merkle.consistency_proof(leaves, old_size, n)
    return ConsistencyProof(
        old_size=old_size, new_size=n,
        old_root=merkle.root_from_leaf_hashes(leaves[:old_size]).hex(),
        new_root=merkle.root_from_leaf_hashes(leaves).hex(),
        path=tuple(p.hex() for p in path),
    )


@dataclass(frozen=True)
class LedgerReport:
    """What a successful ledger verification established."""

    size: int
    root_hash: str
    last_entry_hash: str


def verify(session: Session) -> LedgerReport:
    """Recompute the chain and tree from the database; raise LedgerTampered on any defect.

    Detects an edited entry (its hash no longer recomputes), a deleted or inserted entry
    (sequence gap or surplus, broken chain, or a count different from the ledger's own)
    and reordering (broken chain).
    """
    # The count and running tree head are read first and the entries checked up to that
    # count, so entries appended meanwhile (the service keeps running) are no alarm.
    claimed, stored = session.execute(select(LedgerLock.size, LedgerLock.frontier).where(LedgerLock.id == 1)).one()
    expected_prev = GENESIS
    expected_seq = 1
    leaves: list[bytes] = []
    for entry in iter_entries(session, stop=claimed):
        fields = entry_fields(entry)
        if entry.seq != expected_seq:
            if entry.seq > expected_seq:
                raise LedgerTampered(f"ledger entry {expected_seq} is missing (next present is {entry.seq})")
            raise LedgerTampered(f"ledger entry {entry.seq} appears out of order")
        if entry.prev_hash != expected_prev:
            raise LedgerTampered(
                f"ledger entry {entry.seq}: previous-hash link broken (entry removed, inserted or reordered)"
            )
        if compute_entry_hash(fields) != entry.entry_hash:
            raise LedgerTampered(f"ledger entry {entry.seq}: content does not match its hash (edited)")
        leaves.append(merkle.leaf_hash(entry_bytes(fields)))
        expected_prev = entry.entry_hash
        expected_seq += 1
    found = expected_seq - 1
    if found != claimed:
        raise LedgerTampered(f"ledger holds {found} entries but recorded {claimed}: entry {found + 1} onward removed")
    recorded_now = size(session)
    surplus = session.execute(select(func.min(LedgerEntry.seq)).where(LedgerEntry.seq > recorded_now)).scalar()
    if surplus is not None:
        raise LedgerTampered(
            f"ledger holds entries past the {recorded_now} it recorded: entry {surplus} onward added"
        )
    root = merkle.root_from_leaf_hashes(leaves)
    if stored is not None and merkle.frontier_root(_decoded(stored)) != root:
        raise LedgerTampered("the ledger's running tree head does not match its entries (entries rewritten)")
    return LedgerReport(size=found, root_hash=root.hex(), last_entry_hash=expected_prev)


def count_actions(session: Session, *, item_id: str, action: str) -> int:
    """How many entries of ``action`` name ``item_id`` (for idempotent tasks and tests)."""
    return session.execute(
        select(func.count()).select_from(LedgerEntry).where(
            LedgerEntry.item_id == item_id, LedgerEntry.action == action
        )
    ).scalar_one()
