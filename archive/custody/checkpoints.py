"""Sealed checkpoints of the custody ledger's Merkle tree.

:func:`seal_checkpoint` (and, inside a caller's transaction, :func:`create_checkpoint`) seals
the ledger's tree head (CAdES-B-T and SM2) and records the checkpoint in the ledger itself;
:func:`verify_checkpoints` checks every checkpoint against its record, its seals and the
current ledger.

Why one module of some 500 lines: sealing a checkpoint and verifying one read the same record
format, seal names and frontier arithmetic; split, the writer and the checker of one format
would drift apart.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from archive.custody import ledger
from archive.custody import merkle
from archive.db import Database
from archive.errors import VerificationFailed
from archive.models import Case, Checkpoint, LedgerEntry, Vault, utcnow
from archive.seals.manifests import canonical_bytes, utc_text
from archive.seals.registry import certificates_in_seal, record_certificates, record_sm2_key, recorded_sm2_keys
from archive.seals.sealer import SealBundle, Sealer, sealed_copies
from archive.settings import Settings
from archive.storage import ObjectStore
from archive.storage.streams import VaultCopy, put_copies
from archive.wording import Sentences

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "evidence-ledger-checkpoint/1"
CHECKPOINT_ACTION = "checkpoint_sealed"
"""The custody-ledger action that records each sealed checkpoint (see :func:`checkpoint_record`)."""


def _serialise_checkpoints(session: Session) -> None:
    # SQLite already runs every transaction under BEGIN IMMEDIATE; PostgreSQL needs a lock
    # so two workers never seal competing checkpoints with crossed "previous" links.
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(7310241)"))


def latest_checkpoint(session: Session) -> Checkpoint | None:
    """The checkpoint with the largest tree size, or None."""
    return session.execute(select(Checkpoint).order_by(Checkpoint.tree_size.desc()).limit(1)).scalar_one_or_none()


def _new_entries(session: Session, last: Checkpoint | None, size: int) -> int:
    """Entries appended since ``last`` was sealed, not counting the entry that records ``last``.

    That entry always follows its checkpoint's tree (it is appended in the same
    transaction, after the tree head was taken); counting it would make every checkpoint
    "due" again and the timed checkpoint would seal forever on an idle ledger.
    """
    if last is None:
        return size
    grown = size - last.tree_size
    if grown > 0:
        first = session.execute(
            select(LedgerEntry.action).where(LedgerEntry.seq == last.tree_size + 1)
        ).scalar_one_or_none()
        if first == CHECKPOINT_ACTION:
            grown -= 1
    return grown


def checkpoint_due(session: Session, settings: Settings) -> bool:
    """True when at least ``checkpoint_every_entries`` entries were added since the last checkpoint."""
    return _new_entries(session, latest_checkpoint(session), ledger.size(session)) >= settings.checkpoint_every_entries


def checkpoint_statement(cp: Checkpoint) -> dict[str, Any]:
    """The parsed statement of a checkpoint."""
    return json.loads(cp.statement)


def checkpoint_object_keys(vault: str, cp: Checkpoint) -> dict[str, str]:
    """Where a checkpoint is kept in a vault.

    The name carries the tree size (sortable) and the statement's hash, so a
    retried, re-signed checkpoint never collides with an orphan from a crashed run.
    """
    base = f"{vault}/checkpoints/{cp.tree_size:012d}-{hashlib.sha256(cp.statement.encode()).hexdigest()[:16]}"
    return {"statement": base + ".json", "cades": base + ".p7s", "sm2": base + ".sm2.json"}


def checkpoint_copies(vault: str, cp: Checkpoint) -> list[VaultCopy]:
    """The objects ``vault`` keeps of a checkpoint (statement, CAdES and SM2 seals), with the
    bytes of its row: what :func:`_sealed` writes and what verification compares."""
    keys = checkpoint_object_keys(vault, cp)
    return sealed_copies(cp.statement.encode("utf-8"), SealBundle(cades=bytes(cp.cades), sm2=cp.sm2),
                         document=keys["statement"], cades=keys["cades"], sm2=keys["sm2"])


def vaults_between(session: Session, *, after: int, upto: int) -> list[str]:
    """The vaults of the cases with custody entries ``after`` < seq <= ``upto``: where the
    checkpoint sealing that stretch of the ledger is kept (sorted)."""
    return list(session.execute(
        select(Vault.name).join(Case, Case.id == Vault.case_id).where(
            Case.id.in_(select(LedgerEntry.case_id).where(
                LedgerEntry.seq > after, LedgerEntry.seq <= upto, LedgerEntry.case_id.is_not(None),
            ))
        ).order_by(Vault.name)
    ).scalars())


def checkpoint_vaults(session: Session) -> Iterator[tuple[Checkpoint, list[str]]]:
    """Each checkpoint, in tree-size order, with the vaults it was written to (those of the
    cases with entries since the previous checkpoint's tree, as :func:`_plan` chose them).

    One query per checkpoint over its own stretch of the ledger (by sequence number), so the
    whole walk reads each entry once; checkpoint rows are loaded one at a time."""
    after = 0
    rows = session.execute(select(Checkpoint.id, Checkpoint.tree_size).order_by(Checkpoint.tree_size)).all()
    for cp_id, size in rows:
        yield session.get(Checkpoint, cp_id), vaults_between(session, after=after, upto=size)
        after = size


def checkpoint_record(cp: Checkpoint, previous: Checkpoint | None) -> dict[str, Any]:
    """The details of the ``checkpoint_sealed`` custody entry that records ``cp``.

    Names the checkpoint (id, tree size, root), the SHA-256 of its sealed statement, of
    its CAdES seal and of its SM2 seal (canonical JSON), and the checkpoint before it.
    :func:`verify_checkpoints` recomputes this from each row and compares.
    """
    return {
        "checkpoint": cp.id,
        "tree_size": cp.tree_size,
        "root_hash": cp.root_hash,
        "statement_sha256": hashlib.sha256(cp.statement.encode("utf-8")).hexdigest(),
        "cades_sha256": hashlib.sha256(bytes(cp.cades)).hexdigest(),
        "sm2_sha256": hashlib.sha256(canonical_bytes(cp.sm2)).hexdigest(),
        "previous": None if previous is None else {
            "id": previous.id, "tree_size": previous.tree_size, "root_hash": previous.root_hash},
    }


@dataclass(frozen=True)
class _Plan:
    """What a new checkpoint will seal: read in one short transaction."""

    last: Checkpoint | None
    statement: bytes
    tree_size: int
    root_hash: str
    vaults: list[str]


def _plan(session: Session, now: datetime | None) -> _Plan | None:
    last = latest_checkpoint(session)
    size = ledger.size(session)
    if _new_entries(session, last, size) <= 0:
        return None
    head = ledger.tree_head(session, tree_size=size)
    statement = {
        "format": CHECKPOINT_FORMAT,
        "tree_size": head.tree_size,
        "root_hash": head.root_hash,
        "last_entry_hash": head.last_entry_hash,
        "time": ledger.iso_utc(now or datetime.now(timezone.utc)),
        "previous": None if last is None else {"id": last.id, "tree_size": last.tree_size, "root_hash": last.root_hash},
    }
    vaults = vaults_between(session, after=last.tree_size if last else 0, upto=size)
    return _Plan(last=last, statement=canonical_bytes(statement), tree_size=head.tree_size,
                 root_hash=head.root_hash, vaults=vaults)


def _sealed(plan: _Plan, sealer: Sealer, store: ObjectStore | None) -> Checkpoint:
    """The checkpoint row of ``plan``, sealed (and its seals verified), its objects written
    and locked in every vault of ``plan`` (objects of a checkpoint that is then not recorded
    are named by its statement's hash: harmless orphans, as after a crash)."""
    bundle = sealer.seal(plan.statement)
    report = sealer.verify_seal(plan.statement, bundle)
    cp = Checkpoint(
        tree_size=plan.tree_size, root_hash=plan.root_hash, statement=plan.statement.decode("utf-8"),
        cades=bundle.cades, sm2=bundle.sm2, timestamp_time=report.cades.timestamp_time,
    )
    if store is not None:
        until = utcnow() + timedelta(days=sealer.settings.retention_days)
        for vault in plan.vaults:
            put_copies(store, checkpoint_copies(vault, cp), until=until)
    return cp


def _record(session: Session, sealer: Sealer, cp: Checkpoint, last: Checkpoint | None) -> Checkpoint:
    session.add(cp)
    session.flush()
    record_certificates(session, certificates_in_seal(bytes(cp.cades)))
    record_sm2_key(session, sealer.sm2_key.public_key)
    # Last, as everywhere: the ledger lock is the last lock a transaction takes.
    ledger.append_now(session, actor="system:checkpoint", action=CHECKPOINT_ACTION, details=checkpoint_record(cp, last))
    log.info("sealed ledger checkpoint at tree size %d", cp.tree_size)
    return cp


def create_checkpoint(
    session: Session, sealer: Sealer, *, store: ObjectStore | None = None, now: datetime | None = None
) -> Checkpoint | None:
    """Seal the ledger's current tree head if the ledger grew since the last checkpoint, in
    the caller's transaction (for a caller that needs the checkpoint in it, such as an
    export; timed checkpoints use :func:`seal_checkpoint`, which holds no transaction while
    it seals).

    The statement (canonical JSON: format, tree size, root, last entry hash, time,
    previous checkpoint) gets a CAdES-B-T and an SM2 seal. With a ``store``, statement
    and seals are also written, locked, into every vault whose case has entries since
    the previous checkpoint. The checkpoint is then itself recorded in the ledger (a
    ``checkpoint_sealed`` entry, see :func:`checkpoint_record`), so deleting, altering or
    reordering checkpoint rows is provable. Returns the new row (flushed in the caller's
    transaction), or None when there was nothing new. Entries the caller appended in its
    transaction are sequenced first, so the checkpoint covers them.
    """
    _serialise_checkpoints(session)
    ledger.sequence_own(session)
    plan = _plan(session, now)
    if plan is None:
        return None
    return _record(session, sealer, _sealed(plan, sealer, store), plan.last)


def seal_checkpoint(db: Database, sealer: Sealer, *, store: ObjectStore | None = None,
                    now: datetime | None = None) -> Checkpoint | None:
    """:func:`create_checkpoint` in three steps, so that no transaction is open while the seal
    is made (a time-stamping authority may take seconds): the tree head is read, then sealed
    and written to the vaults, then recorded, unless another checkpoint was recorded
    meanwhile (then None: that one stands, and the next run seals what is new). Entries
    appended while it seals come after the tree it seals; its ledger record follows them,
    which verification allows. Entries committed but not yet sequenced (a process died
    between its commit and the sequencing) are sequenced first. Returns the new row
    (detached), or None."""
    ledger.sequence_pending(db.engine)
    with db.read() as session:
        plan = _plan(session, now)
    if plan is None:
        return None
    cp = _sealed(plan, sealer, store)
    with db.session() as session:
        _serialise_checkpoints(session)
        last = latest_checkpoint(session)
        if (last.id if last else None) != (plan.last.id if plan.last else None):
            log.info("a checkpoint was recorded while this one was sealed; tree size %d not recorded", cp.tree_size)
            return None
        _record(session, sealer, cp, last)
        session.flush()
        session.expunge(cp)
    return cp


def first_covering(session: Session, *, size: int) -> Checkpoint | None:
    """The first sealed checkpoint whose tree covers entries ``1..size`` (the one that sealed
    entry ``size``), or None when none does yet."""
    return session.execute(
        select(Checkpoint).where(Checkpoint.tree_size >= size).order_by(Checkpoint.tree_size).limit(1)
    ).scalar_one_or_none()


def checkpoint_covering(
    session: Session, sealer: Sealer, *, size: int, store: ObjectStore | None = None
) -> Checkpoint | None:
    """The first sealed checkpoint whose tree covers entries ``1..size``, sealed now if
    none does yet; None when the ledger itself holds fewer than ``size`` entries."""
    existing = first_covering(session, size=size)
    if existing is not None:
        return existing
    created = create_checkpoint(session, sealer, store=store)
    return created if created is not None and created.tree_size >= size else None


PROBLEMS = Sentences("checkpoint_problem", {
    "ledger_changed": "the ledger no longer matches sealed checkpoint {size} at entry {seq} ({problem})",
    "record": "checkpoint {checkpoint} (tree size {size}, recorded in ledger entry {seq})",
    "record_unreadable": "ledger entry {seq}: its checkpoint record is unreadable (entry edited)",
    "not_json": "checkpoint {checkpoint}: statement is not JSON",
    "not_canonical": "checkpoint {checkpoint}: statement is not a canonical checkpoint statement",
    "row_altered": ("checkpoint {checkpoint}: row says tree size {size} root {root}, but the sealed statement "
                    "says {sealed_size} root {sealed_root} (checkpoint row altered)"),
    "link_broken": ("checkpoint {checkpoint}: its sealed previous-checkpoint link {link} does not name the "
                    "preceding checkpoint {expected} (a checkpoint was removed or altered)"),
    "root_changed": ("checkpoint {checkpoint}: the ledger's first {size} entries no longer hash to the sealed root "
                     "{root} (an entry at or before {last} was changed, removed or reordered)"),
    "seal_fails": "checkpoint {checkpoint} (tree size {size}): {problem}",
    "unrecorded": ("checkpoint {checkpoint} (tree size {size}) has no {recorded_action} entry in the ledger: it was added "
                   "behind the ledger's back, or sealed by a version that did not yet record checkpoints in the "
                   "ledger (such checkpoints are not accepted; see the README)"),
    "differs": ("checkpoint {checkpoint} (tree size {size}) differs from its record in ledger entry {seq} in "
                "{fields} (checkpoint row altered or replaced)"),
    "entries_removed": ("checkpoint {checkpoint} covers {size} entries but the ledger holds {total} "
                        "(entries removed after they were sealed)"),
    "previous_broken": ("{record} names previous checkpoint {named}, but the ledger's preceding checkpoint record "
                        "is {expected} (a checkpoint or its record was removed or reordered)"),
    "not_extending": "{record} does not extend the tree of {before} (checkpoints reordered)",
    "past_itself": "{record} claims to cover entries up to and past itself (entry edited)",
    "row_deleted": "{record} is missing: its checkpoint row was deleted",
    "out_of_order": ("checkpoints out of order: by tree size the rows run {by_size}, the ledger recorded them as "
                     "{by_record} (checkpoint rows reordered)"),
    "consistency": "checkpoints {previous} -> {checkpoint}: consistency proof fails: {problem}",
}, fields={"checkpoint": r"\S+", "size": r"\S+", "seq": r"\d+", "root": r"\S+", "last": r"\d+", "total": r"\d+",
           "previous": r"\S+", "recorded_action": r"[a-z_]+", "sealed_size": r"\S+", "sealed_root": r"\S+"})
"""What a check of the sealed checkpoints finds wrong (:func:`verify_checkpoints`,
:func:`proven_case_entries`; the message of the VerificationFailed it raises). ``record`` and
``before`` are ``record`` sentences (:meth:`RecordedCheckpoint.describe`); ``problem`` is the
underlying failure's own message."""


def proven_case_entries(session: Session, *, case_id: str, checkpoint: Checkpoint) -> list[dict[str, Any]]:
    """Every custody entry of a case within ``checkpoint``'s tree, each with its RFC 9162 inclusion proof.

    Each item is ``{"entry": fields, "entry_hash", "proof": {"leaf_index", "tree_size", "path"}}``
    (the form exports and case archive records carry). Each proof reads O(log n) stored
    subtree hashes and is checked here, against the sealed root, with the leaf recomputed
    from the entry as it stands: raises VerificationFailed (``ledger_tampered``) naming the
    first entry that no longer matches.
    """
    sealed_root = bytes.fromhex(checkpoint.root_hash)
    entries = []
    rows = session.execute(
        select(LedgerEntry).where(LedgerEntry.case_id == case_id, LedgerEntry.seq <= checkpoint.tree_size)
        .order_by(LedgerEntry.seq)
    ).scalars()
    for entry in rows:
        try:
            proof = [bytes.fromhex(p) for p in ledger.inclusion(session, seq=entry.seq, tree_size=checkpoint.tree_size).path]
            merkle.verify_inclusion(leaf_hash=merkle.leaf_hash(ledger.entry_bytes(ledger.entry_fields(entry))),
                                    index=entry.seq - 1, tree_size=checkpoint.tree_size, proof=proof, root=sealed_root)
        except (merkle.ProofError, VerificationFailed) as exc:
            raise VerificationFailed(
                PROBLEMS.say("ledger_changed", size=checkpoint.tree_size, seq=entry.seq, problem=exc),
                code="ledger_tampered",
            ) from exc
        entries.append({
            "entry": ledger.entry_fields(entry), "entry_hash": entry.entry_hash,
            "proof": {"leaf_index": entry.seq - 1, "tree_size": checkpoint.tree_size,
                      "path": [p.hex() for p in proof]},
        })
    return entries


def _failure(message: str, code: str = "checkpoint_inconsistent") -> VerificationFailed:
    return VerificationFailed(message, code=code)


@dataclass(frozen=True)
class RecordedCheckpoint:
    """A ``checkpoint_sealed`` custody entry: what the ledger says was sealed."""

    seq: int
    """The entry's sequence number."""
    details: dict[str, Any]
    """:func:`checkpoint_record` of the checkpoint as sealed."""

    @property
    def checkpoint_id(self) -> Any:
        """The id of the checkpoint row the entry names."""
        return self.details.get("checkpoint")

    def describe(self) -> str:
        """``checkpoint N (tree size T, recorded in ledger entry S)``."""
        return PROBLEMS.say("record", checkpoint=self.checkpoint_id, size=self.details.get("tree_size"), seq=self.seq)


def recorded_checkpoints(
    session: Session, *, up_to: int | None = None, latest_only: bool = False
) -> list[RecordedCheckpoint]:
    """The ``checkpoint_sealed`` entries among the ledger's first ``up_to`` entries, in order
    (only the last of them with ``latest_only``).

    Raises VerificationFailed naming an entry whose details are not a checkpoint record.
    """
    query = select(LedgerEntry.seq, LedgerEntry.details).where(LedgerEntry.action == CHECKPOINT_ACTION)
    if up_to is not None:
        query = query.where(LedgerEntry.seq <= up_to)
    query = query.order_by(LedgerEntry.seq.desc()).limit(1) if latest_only else query.order_by(LedgerEntry.seq)
    found = []
    for seq, details in session.execute(query):
        try:
            record = json.loads(details)
        except ValueError:
            record = None
        if not isinstance(record, dict) or not isinstance(record.get("tree_size"), int):
            raise _failure(PROBLEMS.say("record_unreadable", seq=seq))
        found.append(RecordedCheckpoint(seq=seq, details=record))
    return found


@dataclass(frozen=True)
class CheckpointsReport:
    """What :func:`verify_checkpoints` established."""

    count: int
    """Number of checkpoints checked."""
    latest_tree_size: int | None
    latest_root_hash: str | None
    latest_timestamp_time: datetime | None


def verify_checkpoint_seal(session: Session, sealer: Sealer, cp: Checkpoint) -> dict[str, Any]:
    """Check a checkpoint's seals and that its row agrees with its statement; return the statement."""
    statement_bytes = (cp.statement or "").encode("utf-8")
    try:
        sealer.verify_seal(statement_bytes, (bytes(cp.cades or b""), cp.sm2 or {}),
                           known_sm2_keys=recorded_sm2_keys(session))
    except VerificationFailed as exc:
        raise VerificationFailed(PROBLEMS.say("seal_fails", checkpoint=cp.id, size=cp.tree_size, problem=exc.message),
                                 code="checkpoint_invalid") from exc
    try:
        statement = json.loads(statement_bytes)
    except ValueError as exc:
        raise VerificationFailed(PROBLEMS.say("not_json", checkpoint=cp.id), code="checkpoint_invalid") from exc
    if (not isinstance(statement, dict) or canonical_bytes(statement) != statement_bytes
            or statement.get("format") != CHECKPOINT_FORMAT):
        raise VerificationFailed(PROBLEMS.say("not_canonical", checkpoint=cp.id), code="checkpoint_invalid")
    if statement.get("tree_size") != cp.tree_size or statement.get("root_hash") != cp.root_hash:
        raise VerificationFailed(
            PROBLEMS.say("row_altered", checkpoint=cp.id, size=cp.tree_size, root=cp.root_hash,
                         sealed_size=statement.get("tree_size"), sealed_root=statement.get("root_hash")),
            code="checkpoint_invalid",
        )
    return statement


def _check_records(recorded: list[RecordedCheckpoint], rows: list[Checkpoint]) -> None:
    """The ledger's checkpoint records chain, and name exactly the checkpoint rows present.

    Catches a deleted checkpoint row (an entry names it), an extra row (no entry names
    it), reordered rows (tree-size order differs from the order they were recorded in)
    and removed or reordered records themselves (their previous-links break).
    """
    before: RecordedCheckpoint | None = None
    for rec in recorded:
        expected = None if before is None else {
            "id": before.checkpoint_id, "tree_size": before.details.get("tree_size"),
            "root_hash": before.details.get("root_hash")}
        if rec.details.get("previous") != expected:
            raise _failure(PROBLEMS.say("previous_broken", record=rec.describe(), named=rec.details.get("previous"),
                                        expected=expected))
        if before is not None and rec.details["tree_size"] <= before.details["tree_size"]:
            raise _failure(PROBLEMS.say("not_extending", record=rec.describe(), before=before.describe()))
        if rec.details["tree_size"] >= rec.seq:
            raise _failure(PROBLEMS.say("past_itself", record=rec.describe()))
        before = rec
    present = {cp.id: cp for cp in rows}
    for rec in recorded:
        if rec.checkpoint_id not in present:
            raise _failure(PROBLEMS.say("row_deleted", record=rec.describe()), code="checkpoint_missing")
    named = {rec.checkpoint_id for rec in recorded}
    for cp in rows:
        if cp.id not in named:
            raise _failure(PROBLEMS.say("unrecorded", checkpoint=cp.id, size=cp.tree_size, recorded_action=CHECKPOINT_ACTION),
                           code="checkpoint_unrecorded")
    by_size = [cp.id for cp in rows]
    by_record = [rec.checkpoint_id for rec in recorded]
    if by_size != by_record:
        raise _failure(PROBLEMS.say("out_of_order", by_size=by_size, by_record=by_record))


def checkpoint_sizes(session: Session) -> list[int]:
    """The tree sizes of the checkpoint rows: pass them to :func:`archive.custody.ledger.verify` as
    ``at_sizes`` so its one pass yields the roots :func:`verify_checkpoints` compares."""
    return list(session.execute(select(Checkpoint.tree_size).order_by(Checkpoint.tree_size)).scalars())


def verify_checkpoints(
    session: Session, sealer: Sealer, *, ledger_report: ledger.LedgerReport | None = None
) -> CheckpointsReport:
    """Check every checkpoint against its ledger record, its seals and the current ledger.

    First the ledger's ``checkpoint_sealed`` records: they chain by their previous-links,
    each names a checkpoint row that exists, every row is named by one, and the rows'
    tree-size order is the order they were recorded in. Then for each checkpoint: both
    seals verify over its statement; the row agrees with its statement and with the
    record (statement, seal digests, previous checkpoint); its sealed ``previous`` link
    names the preceding checkpoint; the current ledger's first ``tree_size`` entries
    hash to the sealed root; and an RFC 9162 consistency proof links it to the next
    checkpoint. Raises VerificationFailed naming the first failure.

    The roots come from one pass over the ledger (:func:`archive.custody.ledger.verify` with
    ``at_sizes=checkpoint_sizes(session)``): give its report as ``ledger_report`` when
    the caller has just run it, else the pass runs here.
    """
    return verify_checkpoint_chain(session, ledger_report=ledger_report,
                                   statement_of=lambda cp: verify_checkpoint_seal(session, sealer, cp))


def verify_checkpoint_chain(
    session: Session, *, ledger_report: ledger.LedgerReport | None,
    statement_of: Callable[[Checkpoint], dict[str, Any]],
) -> CheckpointsReport:
    """:func:`verify_checkpoints` with the seal check given as ``statement_of`` (which
    returns the checkpoint's statement once its seals hold). The service always passes
    :func:`verify_checkpoint_seal`; only the ledger benchmark passes the unchecked
    :func:`checkpoint_statement`, to time the rest on checkpoints it could not seal."""
    total = ledger.size(session)
    cps = session.execute(select(Checkpoint).order_by(Checkpoint.tree_size)).scalars().all()
    recorded = recorded_checkpoints(session, up_to=total)
    _check_records(recorded, cps)
    if not cps:
        return CheckpointsReport(count=0, latest_tree_size=None, latest_root_hash=None, latest_timestamp_time=None)
    if cps[-1].tree_size > total:
        raise _failure(PROBLEMS.say("entries_removed", checkpoint=cps[-1].id, size=cps[-1].tree_size, total=total))
    if ledger_report is None or any(cp.tree_size not in ledger_report.roots for cp in cps):
        ledger_report = ledger.verify(session, at_sizes=[cp.tree_size for cp in cps])
    records = {rec.checkpoint_id: rec for rec in recorded}
    previous: Checkpoint | None = None
    previous_root: bytes | None = None
    for cp in cps:
        statement = statement_of(cp)
        rec = records[cp.id]
        actual = checkpoint_record(cp, previous)
        changed = sorted(k for k in actual.keys() | rec.details.keys() if actual.get(k) != rec.details.get(k))
        if changed:
            raise _failure(PROBLEMS.say("differs", checkpoint=cp.id, size=cp.tree_size, seq=rec.seq,
                                        fields=", ".join(changed)), code="checkpoint_invalid")
        expected_prev = None if previous is None else {
            "id": previous.id, "tree_size": previous.tree_size, "root_hash": previous.root_hash}
        if statement.get("previous") != expected_prev:
            raise _failure(PROBLEMS.say("link_broken", checkpoint=cp.id, link=statement.get("previous"),
                                        expected=expected_prev))
        sealed_root = bytes.fromhex(cp.root_hash)
        if ledger_report.roots[cp.tree_size] != cp.root_hash:
            raise _failure(PROBLEMS.say("root_changed", checkpoint=cp.id, size=cp.tree_size, root=cp.root_hash,
                                        last=cp.tree_size))
        if previous is not None and previous_root is not None:
            # The proof the API serves, from the stored subtree hashes (O(log n)).
            try:
                proof = ledger.consistency(session, old_size=previous.tree_size, new_size=cp.tree_size)
                merkle.verify_consistency(old_size=previous.tree_size, new_size=cp.tree_size,
                                          old_root=previous_root, new_root=sealed_root,
                                          proof=[bytes.fromhex(p) for p in proof.path])
            except (merkle.ProofError, VerificationFailed) as exc:
                raise _failure(PROBLEMS.say("consistency", previous=previous.id, checkpoint=cp.id, problem=exc)) from exc
        previous, previous_root = cp, sealed_root
    last = cps[-1]
    return CheckpointsReport(count=len(cps), latest_tree_size=last.tree_size, latest_root_hash=last.root_hash,
                             latest_timestamp_time=last.timestamp_time)


def checkpoint_public(cp: Checkpoint) -> dict[str, Any]:
    """A checkpoint as published: statement text and seals (the API adds where to get proofs against it)."""
    return {
        "id": cp.id,
        "tree_size": cp.tree_size,
        "root_hash": cp.root_hash,
        "created_at": utc_text(cp.created_at),
        "timestamp_time": utc_text(cp.timestamp_time),
        "statement": cp.statement,
        "cades": base64.b64encode(bytes(cp.cades)).decode("ascii"),
        "sm2": cp.sm2,
    }
