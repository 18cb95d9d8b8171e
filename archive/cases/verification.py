"""Composed verification of an evidence item: fixity, manifest, seals and ledger inclusion.

:func:`verify_item` is the one service function that says whether an item is what was
received: the CLI's ``verify-item`` and case verification (exports) both use it. It
returns a frozen :class:`ItemVerificationReport` only when every check holds, and raises
:class:`archive.errors.VerificationError` naming the first that does not.

An item that is simply not finished yet (not sealed yet, or received after the latest
checkpoint) is not a failure: the report lists it in ``pending``. Pass
``require_sealed=True`` (exports) to treat that as a failure too. An item that the
ledger says was sealed, but whose seal objects are missing, always fails.
"""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

import signing
from archive.custody import ledger
from archive.custody import merkle
from archive.db import Database
from archive.errors import ArchiveError, NotFound, VerificationFailed
from archive.evidence.items import ITEM_ERRORS
from archive.evidence.fixity import (FIXITY_CHECKED, MISSING_OBJECT, FixityReport, check_object, check_original,
                                     fixity_entry, original_of)
from archive.models import DerivedObject, EvidenceItem, LedgerEntry
from archive.cases.vault_copies import CopiesAltered, verify_item_copies
from archive.custody.checkpoints import PROBLEMS as CHECKPOINT_PROBLEMS
from archive.custody.checkpoints import latest_checkpoint, recorded_checkpoints, verify_checkpoint_seal
from archive.seals.manifests import build_manifest
from archive.seals.pades import check_pades_copy
from archive.seals.registry import recorded_sm2_keys
from archive.seals.sealer import Sealer
from archive.storage import ObjectStore
from archive.wording import Sentences

ITEM_PENDING = Sentences("receipt_detail", {
    "pending_seal": "seal ({status})",
    "pending_checkpoint": "checkpoint covering custody entry {seq}",
}, fields={"status": r"[a-z_]+", "seq": r"\d+"})
"""What an item still waits for (:attr:`ItemVerificationReport.pending`)."""

ITEM_PROBLEMS = Sentences("item_problem", {
    "item": "item {item}: {problem}",
    "derived_unreadable": "{role} object {key} cannot be read: {reason}",
    "derived_replaced": "{role} object {key}: {reason} (an attempt to replace it)",
    "derived_altered": "{role} object {key} altered: sha256 {found} != recorded {recorded}",
    "manifest_differs": "manifest object does not match the item record in: {fields}",
    "sm2_not_json": "sm2 seal object is not JSON",
    "seal_fails": "manifest seal fails: {reason}",
    "no_temporary_space": "the PAdES copy could not be checked: temporary directory failed: {reason}",
    "ledger_short": "ledger holds fewer entries than checkpoint {checkpoint} sealed ({size})",
    "unprovable": "checkpoint {checkpoint} (tree size {size}) cannot be proven: {reason}",
    "not_included": ("evidence_received entry {seq} is not included in sealed checkpoint {checkpoint} "
                     "(tree size {size}): the ledger was altered ({reason})"),
    "original_replaced": ("original {key}: a newer version {current} was written over the recorded version {version} "
                          "(an attempt to replace it)"),
    "no_receipt": "no evidence_received custody entry",
    "receipt_unreadable": "custody entry {seq} (evidence_received) is not readable (entry edited)",
    "receipt_differs": ("custody entry {seq} states sha256 {stated} / version {stated_version}, the item record "
                        "{sha256} / {version}"),
    "seal_status_altered": "seal objects exist but seal_status is {status} (record altered)",
    "seals_missing": "the item was sealed but its seal records are missing (have: {roles})",
    "not_sealed": "item is not sealed (seal_status {status})",
    "not_covered": "custody entry {seq} is not yet covered by a sealed checkpoint",
}, fields={"item": r"\S+", "role": r"[a-z0-9_]+", "key": r"\S+", "found": r"[0-9a-f]+", "recorded": r"[0-9a-f]+",
           "checkpoint": r"\S+", "size": r"\d+", "seq": r"\d+", "current": r"\S+", "version": r"\S+",
           "stated": r"\S+", "stated_version": r"\S+", "sha256": r"\S+", "status": r"\S+"})
"""What :func:`verify_item` finds wrong with an item (the message of its VerificationFailed,
the ``problem`` of its ``item_verified`` custody entry, a failed check's detail): ``item`` wraps
every other sentence (``problem``) or a failure of another family (a checkpoint's, a PAdES
copy's, the vault copies'); ``reason`` is a store fault or the underlying failure's message."""


@dataclass(frozen=True)
class ItemVerificationReport:
    """Everything :func:`verify_item` established about one item."""

    item_id: str
    fixity: FixityReport
    """The original re-hashed from its recorded storage version."""
    sealed: bool
    """True when manifest, CAdES and SM2 seals were present and verified."""
    manifest_sha256: str | None
    cades: signing.SealReport | None
    """Signer, chain, signing time and time-stamp of the manifest's CAdES seal."""
    sm2: signing.Sm2Report | None
    pades: signing.PdfSealReport | None
    """The PAdES copy's validation (PDF documents), else None."""
    received_seq: int | None
    """Sequence number of the item's ``evidence_received`` custody entry."""
    checkpoint_id: int | None
    """The latest checkpoint, in which that entry's inclusion was proven."""
    checkpoint_tree_size: int | None
    checkpoint_time: datetime | None
    pending: tuple[str, ...]
    """What could not be checked yet because it does not exist yet (not a failure)."""


def _fail(item_id: str, what: str, code: str = "item_verification_failed") -> VerificationFailed:
    return VerificationFailed(ITEM_PROBLEMS.say("item", item=item_id, problem=what), code=code)


def _spool_derived(store: ObjectStore, item_id: str, d: DerivedObject, into: BinaryIO | None) -> None:
    """Copy the recorded version of a derived object into ``into`` (rewound; None: only read
    it) and check its hash and size.

    A newer version written over the recorded one is itself a failure.
    """
    where = {"role": d.role, "key": d.storage_key}
    try:
        fault = check_object(store, key=d.storage_key, version=d.storage_version, size=d.size,
                             digests={"sha256": d.sha256}, sink=into)
    except ArchiveError as exc:
        if exc.transient:  # the store is down or full: nothing learnt about the object
            raise
        raise _fail(item_id, ITEM_PROBLEMS.say("derived_unreadable", **where, reason=exc.message)) from exc
    if into is not None:
        into.seek(0)
    if fault is None:
        return
    if fault.outcome == MISSING_OBJECT:
        raise _fail(item_id, ITEM_PROBLEMS.say("derived_unreadable", **where, reason=fault.reason))
    if fault.what == "newer_version":
        raise _fail(item_id, ITEM_PROBLEMS.say("derived_replaced", **where, reason=fault.reason))
    raise _fail(item_id, ITEM_PROBLEMS.say("derived_altered", **where, found=fault.digests["sha256"], recorded=d.sha256))


CHECKED_WITH_SEALS = ("manifest", "cades", "sm2", "pades")
"""Derived objects :func:`_verify_sealed_parts` reads and checks; every other one is re-hashed
on its own."""


def _check_derived(store: ObjectStore, item_id: str, d: DerivedObject) -> bytes:
    """A small derived object (manifest, seal), read whole and checked."""
    buffer = io.BytesIO()
    _spool_derived(store, item_id, d, buffer)
    return buffer.getvalue()


def _manifest_differences(stored: bytes, expected: bytes) -> str:
    try:
        a, b = json.loads(stored), json.loads(expected)
        fields = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        return ", ".join(fields) or "encoding"
    except ValueError:
        return "not JSON"


def _check_inclusion(session: Session, sealer: Sealer, item: EvidenceItem, entry: LedgerEntry,  # type: ignore[no-untyped-def]
                     checked: set[str] | None):
    cp = latest_checkpoint(session)
    recorded = recorded_checkpoints(session, up_to=ledger.size(session), latest_only=True)
    if recorded and (cp is None or cp.tree_size < recorded[0].details["tree_size"]):
        # The ledger says a newer checkpoint was sealed: its row is gone, not "not yet made".
        raise _fail(item.id, CHECKPOINT_PROBLEMS.say("row_deleted", record=recorded[0].describe()),
                    code="checkpoint_missing")
    if cp is None or cp.tree_size < entry.seq:
        return None
    # The same checkpoint proves every item of a case: its seals are checked once per run
    # (``checked`` holds the digest of the exact row checked; a changed row is checked again).
    seen = hashlib.sha256(b"\0".join([cp.statement.encode("utf-8"), bytes(cp.cades or b""),
                                      json.dumps(cp.sm2, sort_keys=True).encode("utf-8")])).hexdigest()
    if checked is None or seen not in checked:
        verify_checkpoint_seal(session, sealer, cp)
        if checked is not None:
            checked.add(seen)
    if ledger.size(session) < cp.tree_size:
        raise _fail(item.id, ITEM_PROBLEMS.say("ledger_short", checkpoint=cp.id, size=cp.tree_size))
    try:
        proof = [bytes.fromhex(p) for p in ledger.inclusion(session, seq=entry.seq, tree_size=cp.tree_size).path]
    except VerificationFailed as exc:
        raise _fail(item.id, ITEM_PROBLEMS.say("unprovable", checkpoint=cp.id, size=cp.tree_size, reason=exc.message),
                    code=exc.code) from exc
    # The leaf is the entry as it stands, not the stored node: an edited entry fails here.
    leaf = merkle.leaf_hash(ledger.entry_bytes(ledger.entry_fields(entry)))
    try:
        merkle.verify_inclusion(leaf_hash=leaf, index=entry.seq - 1, tree_size=cp.tree_size, proof=proof,
                                root=bytes.fromhex(cp.root_hash))
    except merkle.ProofError as exc:
        raise _fail(item.id, ITEM_PROBLEMS.say("not_included", seq=entry.seq, checkpoint=cp.id, size=cp.tree_size,
                                               reason=exc)) from exc
    return cp


def _verify_sealed_parts(session: Session, store: ObjectStore, sealer: Sealer, item: EvidenceItem):  # type: ignore[no-untyped-def]
    by_role = {d.role: d for d in item.derived}
    manifest = _check_derived(store, item.id, by_role["manifest"])
    expected = build_manifest(session, item)
    if manifest != expected:
        raise _fail(item.id, ITEM_PROBLEMS.say("manifest_differs", fields=_manifest_differences(manifest, expected)))
    cades = _check_derived(store, item.id, by_role["cades"])
    sm2_bytes = _check_derived(store, item.id, by_role["sm2"])
    try:
        sm2_record = json.loads(sm2_bytes)
    except ValueError as exc:
        raise _fail(item.id, ITEM_PROBLEMS.say("sm2_not_json")) from exc
    try:
        report = sealer.verify_seal(manifest, (cades, sm2_record), known_sm2_keys=recorded_sm2_keys(session))
    except VerificationFailed as exc:
        raise _fail(item.id, ITEM_PROBLEMS.say("seal_fails", reason=exc.message), code=exc.code) from exc
    pades = None
    if "pades" in by_role:
        # As large as the original: checked from a temporary file, never held in memory.
        try:
            with tempfile.TemporaryFile(prefix="evidence-verify-") as copy:
                _spool_derived(store, item.id, by_role["pades"], copy)
                original = store.read(item.storage_key, version_id=item.storage_version)
                try:
                    pades = check_pades_copy(sealer, original, copy)
                except VerificationFailed as exc:
                    raise _fail(item.id, exc.message, code=exc.code) from exc
        except OSError as exc:
            raise _fail(item.id, ITEM_PROBLEMS.say("no_temporary_space", reason=exc),
                        code="temporary_space_failed") from exc
    return hashlib.sha256(manifest).hexdigest(), report, pades


CustodyEntry = dict[str, Any]
"""A custody entry to write: the keyword arguments of :func:`archive.custody.ledger.append`
but the actor (``action``, ``case_id``, ``item_id``, ``details``)."""


def record_entries(db: Database, *, actor: str, entries: list[CustodyEntry]) -> bool:
    """Write ``entries``, in order, in one transaction; whether they could be written (a
    verification's outcome stands even when its record cannot be made)."""
    if not entries:
        return True
    try:
        with db.session() as session:
            ledger.append_all(session, actor=actor, entries=entries)
    except ArchiveError:
        return False
    return True


def verify_item(
    *, db: Database, store: ObjectStore, sealer: Sealer, item_id: str, actor: str, require_sealed: bool = False,
    checked_checkpoints: set[str] | None = None, vault_copies: bool = True, record: list[CustodyEntry] | None = None,
) -> ItemVerificationReport:
    """Verify one item end to end; return a report or raise VerificationFailed naming what failed.

    Checks, in order: the original re-hashed from its recorded storage version
    (SHA-256 and SM3) equals what was received, and no newer version was written over
    it; the ``evidence_received`` custody entry states the same hash; the manifest,
    CAdES and SM2 objects, and every other derived object (playback proxy, thumbnails),
    equal their recorded hashes and versions; the manifest bytes
    equal the manifest rebuilt from the item row; the CAdES-B-T seal (signer chain,
    signing time, time-stamp token) and the SM2 seal verify over the manifest; a PAdES
    copy, if any, validates and extends the original byte for byte; and the received
    entry is included (RFC 9162 proof) in the latest sealed checkpoint, whose seals
    verify. With ``vault_copies`` (the default), the vault's copies of the checkpoint that
    first sealed that entry and of the case's archive records must equal their database rows
    (:func:`archive.cases.vault_copies.verify_item_copies`; case verification checks the
    whole vault once instead). ``checked_checkpoints``, shared by the items of one run,
    spares checking the same checkpoint's seals once per item.

    The outcome is two custody entries, good or bad: the re-hash of the original
    (``fixity_checked``), then the whole check (``item_verified``). They are written in one
    transaction before this returns or raises, unless ``record`` is given: then they are added
    to it, and the caller writes them (:func:`record_entries`; case verification writes a
    batch of items' entries at a time, so the processes checking items never wait for the
    database's write lock).
    """
    problem: str | None = None
    original = None
    unanswered = False
    entries: list[CustodyEntry] = []
    try:
        with db.read() as session:
            original = original_of(session, item_id)
        fixity, fixity_problem = check_original(store, original)
        entries.append({"action": FIXITY_CHECKED, "details": fixity_entry(fixity_problem)})
        if fixity_problem:
            raise VerificationFailed(fixity_problem, code="fixity_failed")
        # One snapshot: a worker sealing the item meanwhile must not be seen half-done.
        with db.snapshot() as session:
            report = _verify(session, store, sealer, item_id, fixity, require_sealed, checked_checkpoints,
                             vault_copies)
    except ArchiveError as exc:
        if exc.transient:
            # The store (or the database, the TSA) did not answer: nothing was learnt about the
            # item, so no outcome is recorded; what was read before is (its fixity entry).
            unanswered = True
        problem = exc.message
        raise
    finally:
        if original is not None:
            if not unanswered:
                entries.append({"action": "item_verified",
                                "details": {"outcome": "failed" if problem else "ok", "problem": problem}})
            for entry in entries:
                entry.update(case_id=original.case_id, item_id=item_id)
            if record is None:
                record_entries(db, actor=actor, entries=entries)
            else:
                record.extend(entries)
    return report


def _verify(session: Session, store: ObjectStore, sealer: Sealer, item_id: str, fixity: FixityReport,
            require_sealed: bool, checked_checkpoints: set[str] | None, vault_copies: bool) -> ItemVerificationReport:
    item = session.get(EvidenceItem, item_id)
    if item is None:
        raise NotFound(ITEM_ERRORS.say("not_found", item=item_id), code="item_not_found")
    pending: list[str] = []
    current = store.stat(item.storage_key)
    if item.storage_version is not None and current.version_id != item.storage_version:
        raise _fail(item_id, ITEM_PROBLEMS.say("original_replaced", key=item.storage_key, current=current.version_id,
                                               version=item.storage_version))
    received = session.execute(
        select(LedgerEntry).where(LedgerEntry.item_id == item_id, LedgerEntry.action == "evidence_received")
        .order_by(LedgerEntry.seq).limit(1)
    ).scalar_one_or_none()
    if received is None:
        raise _fail(item_id, ITEM_PROBLEMS.say("no_receipt"))
    try:
        stated = json.loads(received.details)
    except ValueError:
        stated = None
    if not isinstance(stated, dict):
        raise _fail(item_id, ITEM_PROBLEMS.say("receipt_unreadable", seq=received.seq))
    if stated.get("sha256") != item.sha256 or stated.get("storage_version") != item.storage_version:
        raise _fail(item_id, ITEM_PROBLEMS.say("receipt_differs", seq=received.seq, stated=stated.get("sha256"),
                                               stated_version=stated.get("storage_version"), sha256=item.sha256,
                                               version=item.storage_version))

    roles = {d.role for d in item.derived}
    manifest_sha = cades = sm2 = pades = None
    if {"manifest", "cades", "sm2"} <= roles:
        if item.seal_status != "sealed":
            raise _fail(item_id, ITEM_PROBLEMS.say("seal_status_altered", status=repr(item.seal_status)))
        manifest_sha, seal_report, pades = _verify_sealed_parts(session, store, sealer, item)
        cades, sm2 = seal_report.cades, seal_report.sm2
    elif (item.seal_status == "sealed" or roles & {"manifest", "cades", "sm2"}
          or ledger.count_actions(session, item_id=item_id, action="item_sealed")):
        raise _fail(item_id, ITEM_PROBLEMS.say("seals_missing", roles=sorted(roles) or "none"))
    elif require_sealed:
        raise _fail(item_id, ITEM_PROBLEMS.say("not_sealed", status=item.seal_status), code="item_not_sealed")
    else:
        pending.append(ITEM_PENDING.say("pending_seal", status=item.seal_status))

    # The files made from the original for people to view (playback proxy, thumbnails,
    # pages): a reviewer plays the proxy at a gap, so an altered one fails the item too.
    for d in item.derived:
        if d.role not in CHECKED_WITH_SEALS:
            _spool_derived(store, item_id, d, None)
    cp = _check_inclusion(session, sealer, item, received, checked_checkpoints)
    if cp is None:
        if require_sealed:
            raise _fail(item_id, ITEM_PROBLEMS.say("not_covered", seq=received.seq), code="item_not_sealed")
        pending.append(ITEM_PENDING.say("pending_checkpoint", seq=received.seq))
    if vault_copies:
        try:
            verify_item_copies(session, store, case_id=item.case_id, received_seq=received.seq)
        except CopiesAltered as exc:
            raise _fail(item_id, exc.message, code=exc.code) from exc
    return ItemVerificationReport(
        item_id=item_id, fixity=fixity, sealed=cades is not None, manifest_sha256=manifest_sha, cades=cades,
        sm2=sm2, pades=pades, received_seq=received.seq, checkpoint_id=cp.id if cp else None,
        checkpoint_tree_size=cp.tree_size if cp else None, checkpoint_time=cp.timestamp_time if cp else None,
        pending=tuple(pending),
    )
