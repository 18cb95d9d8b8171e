"""The vaults' copies of sealed checkpoints and case archive records, compared with the database.

A sealed checkpoint is written, locked, into the vault of every case with custody entries
since the previous checkpoint (:func:`archive.custody.checkpoints.checkpoint_vaults`); a
closed case's archive record into the case's vault (:func:`archive.cases.closing.archive_copies`),
each with its CAdES and SM2 seals. The API serves the database rows; the copies are what a vault
carries on its own (a backup, the bucket handed over with the paper file). Verification
re-reads each copy from the store, streamed (:func:`archive.evidence.fixity.check_object`),
and compares its size and SHA-256 with the row's bytes: a copy missing from the store or
different from the row is named by its key (:class:`CopiesAltered` lists every one).

What each command checks:

* ``evidence ledger verify`` (:func:`verify_ledger_copies`): every checkpoint in every vault
  it was written to. The vaults of a checkpoint come from its own stretch of the ledger, so
  the walk reads each entry once and checks at most three objects per entry: linear.
* case verification (:func:`verify_case_checkpoint_copies`, :func:`verify_archive_copies`):
  the checkpoints the case's vault holds (those whose stretch holds an entry of the case) and
  every archive record of the case.
* ``evidence verify-item`` (:func:`verify_item_copies`): the checkpoint that first sealed the
  item's receipt, in the item's vault, and the archive records of its case.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from archive.cases.closing import archive_keys, archive_row_copies
from archive.cases.models import CaseArchive
from archive.custody import ledger
from archive.custody.checkpoints import checkpoint_copies, checkpoint_object_keys, checkpoint_vaults, first_covering
from archive.errors import ArchiveError, VerificationFailed
from archive.evidence.fixity import MISSING_OBJECT, check_object
from archive.models import Case, Checkpoint, LedgerEntry
from archive.storage import ObjectStore
from archive.storage.streams import VaultCopy
from archive.wording import Sentences

COPY_FAULTS = Sentences("copy_fault", {
    "missing": "missing from the store",
    "altered": ("altered: the store holds {size} bytes, sha256 {found}; the database's record is {recorded_size} bytes, "
                "sha256 {sha256}"),
    "copies": "{count} vault copies of {what} missing or altered: {faults}",
    "of_checkpoints": "checkpoints",
    "of_vault_checkpoints": "checkpoints in vault {vault}",
    "of_archives": "case archive records",
    "of_item": "records vouching for the item in vault {vault}",
    "unrecorded": ("a sealed checkpoint of tree size {tree_size}, made {time}, that no checkpoint row names: "
                   "left by a checkpoint run that did not finish, or by the newest checkpoint's removal"),
    "unreadable_statement": "a checkpoint statement no checkpoint row names, and that cannot be read as one",
    "unrecorded_archive": ("a sealed case archive record that no closing recorded: left by a close that did not "
                           "finish (interrupted between writing it and recording it); the case was not closed by it"),
    "beyond_ledger": "seals {tree_size} entries, and the ledger holds {held}: entries sealed then were removed",
    "other_root": "seals another root for the ledger's first {tree_size} entries: the ledger was rewritten",
}, fields={"tree_size": r"\d+", "held": r"\d+", "time": r"\S+",
           "size": r"\d+|None", "found": r"[0-9a-f]+", "recorded_size": r"\d+", "sha256": r"[0-9a-f]+",
           "key": r"\S+", "count": r"\d+", "vault": r"\S+"})
"""What is wrong with a vault's copies (:attr:`CopyFault.problem`, the message of
:class:`CopiesAltered`: ``what`` is one of the ``of_*`` sentences, ``faults`` its faults'
:meth:`CopyFault.describe` joined by :data:`FAULT_SEPARATOR`)."""
FAULT_SEPARATOR = "; "


@dataclass(frozen=True)
class CopyFault:
    """A vault copy that does not equal its database record."""

    key: str
    """The object's key in the store."""
    problem: str
    """What is wrong with it, in words."""

    def describe(self) -> str:
        """``KEY: PROBLEM``."""
        return f"{self.key}: {self.problem}"


class CopiesAltered(VerificationFailed):
    """Vault copies are missing or differ from their records; ``faults`` names every one."""

    code = "vault_copy_altered"

    def __init__(self, what: str, faults: list[CopyFault]):
        super().__init__(COPY_FAULTS.say("copies", count=len(faults), what=what,
                                         faults=FAULT_SEPARATOR.join(f.describe() for f in faults)))
        self.faults = tuple(faults)
        self.extra = {"faults": [{"key": f.key, "problem": f.problem} for f in faults]}


@dataclass(frozen=True)
class CopiesReport:
    """What a check of vault copies established (returned only when every copy held)."""

    records: int
    """Checkpoints (in each vault that keeps them) or archive records whose copies were checked."""
    objects: int
    """Objects re-read and found equal to their records."""


def _fault(store: ObjectStore, copy: VaultCopy) -> CopyFault | None:
    expected = hashlib.sha256(copy.data).hexdigest()
    # The current object under the key: what anyone reading the vault gets (on S3 a newer
    # version or a delete marker put over the locked one is what they would see).
    fault = check_object(store, key=copy.key, version=None, size=len(copy.data), digests={"sha256": expected})
    if fault is None:
        return None
    if fault.outcome == MISSING_OBJECT:
        return CopyFault(copy.key, COPY_FAULTS.say("missing"))
    return CopyFault(copy.key, COPY_FAULTS.say("altered", size=fault.size, found=fault.digests["sha256"],
                                               recorded_size=len(copy.data), sha256=expected))


def _check(what: str, store: ObjectStore, sets: Iterable[list[VaultCopy]]) -> CopiesReport:
    """Check every copy of ``sets`` (one set per record); raise CopiesAltered naming each bad one."""
    faults: list[CopyFault] = []
    records = objects = 0
    for copies in sets:
        records += 1
        for copy in copies:
            objects += 1
            if (fault := _fault(store, copy)) is not None:
                faults.append(fault)
    if faults:
        raise CopiesAltered(what, faults)
    return CopiesReport(records=records, objects=objects)


def verify_ledger_copies(session: Session, store: ObjectStore) -> CopiesReport:
    """Every checkpoint's copies in every vault it was written to; see the module's doc."""
    return _check(COPY_FAULTS.say("of_checkpoints"), store, (
        checkpoint_copies(vault, cp) for cp, vaults in checkpoint_vaults(session) for vault in vaults))


def _vault(session: Session, case_id: str) -> str:
    """The name of the case's vault."""
    return session.get(Case, case_id).vault.name


def _case_checkpoints(session: Session, case_id: str) -> Iterator[Checkpoint]:
    """The checkpoints kept in the case's vault: for each entry of the case, the first
    checkpoint whose tree holds it (the one sealed for that stretch of the ledger), in order.
    One query: each entry finds its checkpoint in the index of tree sizes, and only the few
    distinct checkpoints come back (a reading session has no cursor to stream with)."""
    covering = (select(func.min(Checkpoint.tree_size)).where(Checkpoint.tree_size >= LedgerEntry.seq)
                .correlate(LedgerEntry).scalar_subquery())
    sizes = select(covering).where(LedgerEntry.case_id == case_id).distinct()
    yield from session.execute(
        select(Checkpoint).where(Checkpoint.tree_size.in_(sizes)).order_by(Checkpoint.tree_size)).scalars()


def verify_case_checkpoint_copies(session: Session, store: ObjectStore, *, case_id: str) -> CopiesReport:
    """The copies of every checkpoint the case's vault keeps."""
    vault = _vault(session, case_id)
    return _check(COPY_FAULTS.say("of_vault_checkpoints", vault=vault), store,
                  (checkpoint_copies(vault, cp) for cp in _case_checkpoints(session, case_id)))


@dataclass(frozen=True)
class UnrecordedCopy:
    """A checkpoint statement in a vault that no checkpoint row names."""

    key: str
    tree_size: int | None
    """The size the statement seals (None when it cannot be read as a statement)."""
    time: str | None
    """When it says it was made (UTC, ISO 8601)."""
    problem: str | None
    """Why it cannot be a run that did not finish (it seals more entries than the ledger
    holds, or another root for its size); None when it can be."""


def unrecorded_checkpoint_copies(session: Session, store: ObjectStore, *, case_id: str) -> list[UnrecordedCopy]:
    """The checkpoint statements in the case's vault that no checkpoint row names.

    A checkpoint is sealed and written to the vaults before its row is recorded, so a run
    that did not finish (a crash, another checkpoint recorded first) leaves one: harmless.
    But removing the newest checkpoint row, with the entries after it, leaves the same trace.
    A statement sealing more entries than the ledger holds, or another root for its size,
    cannot be an unfinished run: the ledger was cut or rewritten after it was sealed."""
    vault = _vault(session, case_id)
    recorded = {checkpoint_object_keys(vault, cp)["statement"]
                for cp in session.execute(select(Checkpoint)).scalars()}
    size = ledger.size(session)
    found = []
    for stored in store.list(f"{vault}/checkpoints/"):
        key = stored.key
        if not key.endswith(".json") or key.endswith(".sm2.json") or key in recorded:
            continue
        try:
            statement = json.loads(b"".join(store.read(key, version_id=stored.version_id)))
            tree_size, root, time = int(statement["tree_size"]), statement["root_hash"], statement.get("time")
        except (ArchiveError, ValueError, KeyError, TypeError):
            found.append(UnrecordedCopy(key, None, None, COPY_FAULTS.say("unreadable_statement")))
            continue
        problem = None
        if tree_size > size:
            problem = COPY_FAULTS.say("beyond_ledger", tree_size=tree_size, held=size)
        elif tree_size > 0 and _root(session, tree_size) not in (root, None):
            problem = COPY_FAULTS.say("other_root", tree_size=tree_size)
        found.append(UnrecordedCopy(key, tree_size, time, problem))
    return found


def _root(session: Session, tree_size: int) -> str | None:
    """The ledger's root at ``tree_size``; None when the ledger cannot give one (its own check
    names why)."""
    try:
        return ledger.tree_head(session, tree_size=tree_size).root_hash
    except ArchiveError:
        return None


def unrecorded_archive_copies(session: Session, store: ObjectStore, *, case_id: str) -> list[str]:
    """The keys of case archive records in the case's vault that no ``case_archives`` row
    names. A close writes its record into the vault just before it records it, under the
    case's lock, so only a close interrupted between the two leaves one. (A row removed
    afterwards is named by the case's custody: the stage move to ``closed`` records the
    archive's id and hash, which the receipt's ``records`` check compares.)"""
    vault = _vault(session, case_id)
    recorded = {archive_keys(vault, archive_id)["record"]
                for archive_id in session.execute(select(CaseArchive.id).where(CaseArchive.case_id == case_id)).scalars()}
    records = {key for key in (stored.key for stored in store.list(f"{vault}/case-archive/"))
               if key == archive_keys(vault, key.split("/")[-2])["record"]}
    return sorted(records - recorded)


def _archives(session: Session, case_id: str) -> list[CaseArchive]:
    return list(session.execute(select(CaseArchive).where(CaseArchive.case_id == case_id)
                                .order_by(CaseArchive.created_at)).scalars())


def verify_archive_copies(session: Session, store: ObjectStore, *, case_id: str) -> CopiesReport:
    """The copies of every archive record of the case (none when it was never closed)."""
    vault = _vault(session, case_id)
    return _check(COPY_FAULTS.say("of_archives"), store,
                  (archive_row_copies(vault, row) for row in _archives(session, case_id)))


def verify_item_copies(session: Session, store: ObjectStore, *, case_id: str, received_seq: int) -> CopiesReport:
    """The copies vouching for one item: the checkpoint that first sealed its receipt (entry
    ``received_seq``), in its case's vault, and the case's archive records."""
    vault = _vault(session, case_id)
    first = first_covering(session, size=received_seq)
    sets = [checkpoint_copies(vault, first)] if first is not None else []
    sets += [archive_row_copies(vault, row) for row in _archives(session, case_id)]
    return _check(COPY_FAULTS.say("of_item", vault=vault), store, sets)
