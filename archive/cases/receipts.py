"""Reviewer verification of a whole case, and its receipt in the custody ledger.

A reviewer (or admin) of the case's unit asks for a verification; a worker (or the CLI,
synchronously) then, for every item, runs :func:`archive.cases.verification.verify_item`
(original re-hashed from its recorded version, manifest and seals, PAdES copy, inclusion
of its receipt in the latest sealed checkpoint), verifies the whole custody ledger (chain
and tree) and every sealed checkpoint, compares the case's vault's copies of its checkpoints
and archive records with their database rows (:mod:`archive.cases.vault_copies`: each missing
or altered object is a failed check of its own), and reports the case's continuity status. The
receipt says who asked, when, what was checked and the outcome; it is itself a custody
entry (``case_verified``).

Three outcomes: ``passed`` only when everything is proven and complete; ``failed`` for a
real defect (the check names it); ``incomplete`` when nothing failed but something is
still awaited, listed machine-readably in the receipt's ``pending`` (an item still
processing or not sealed, a receipt entry not yet in a sealed checkpoint, a continuity
analysis queued, a gap not explained or not accepted). Unexplained gaps are not failures
(they are a fact about the recording, not about the archive's integrity), but a case with
one is not ``passed`` either. Before checking items, the verification seals a checkpoint
itself when the case's receipts are not yet covered by one.
"""

from __future__ import annotations

import gc
import json
import logging
import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from archive import work
from archive.custody import ledger
from archive.custody.checkpoints import checkpoint_covering, checkpoint_sizes, verify_checkpoints
from archive.seals.sealer import Sealer
from archive.cases import vault_copies, verification
from archive.cases import stages
from archive.cases.models import CaseArchive
from archive.continuity import analysis, runs
from archive.continuity.models import Gap
from archive.continuity.report import GAP_ALTERED, NO_DEVICE, build_report, gap_counts
from archive.db import Database
from archive.errors import ArchiveError, NotFound, VerificationFailed
from archive.models import Case, EvidenceItem, LedgerEntry, Role, User, VerificationReceipt, utcnow
from archive.settings import Settings
from archive.storage import ObjectStore, open_store
from archive.identity.users import actor_name, can_see_case, require_role
from archive.wording import Sentences

log = logging.getLogger(__name__)


def request_verification(session: Session, *, user: User, case_id: str) -> VerificationReceipt:
    """Record a queued verification of a case (reviewers and admins of its unit)."""
    require_role(user, {Role.reviewer, Role.admin}, doing="verify cases")
    case = session.get(Case, case_id)
    if case is None or not can_see_case(user, case):
        raise NotFound(f"no case {case_id} visible to you", code="case_not_found")
    receipt = VerificationReceipt(case_id=case_id, requested_by=user.id, status="queued", checks=[])
    session.add(receipt)
    session.flush()
    work.want(session, task=work.VERIFY_CASE, subject=receipt.id)
    ledger.append(session, actor=actor_name(user), action="verification_requested", case_id=case_id,
                  details={"receipt": receipt.id})
    return receipt


def list_receipts(session: Session, *, user: User, case_id: str, limit: int = 100) -> list[VerificationReceipt]:
    """A case's receipts, newest first (anyone who may read the case)."""
    require_role(user, {Role.officer, Role.reviewer, Role.admin}, doing="read verification receipts")
    case = session.get(Case, case_id)
    if case is None or not can_see_case(user, case):
        raise NotFound(f"no case {case_id} visible to you", code="case_not_found")
    return list(session.execute(
        select(VerificationReceipt).where(VerificationReceipt.case_id == case_id)
        .order_by(VerificationReceipt.created_at.desc()).limit(limit)
    ).scalars())


CHECK_DETAILS = Sentences("receipt_detail", {
    "sha256": "sha256 {sha256}",
    "sealed": "sealed {sealed}",
    "in_checkpoint": "in checkpoint {size}",
    "pending": "pending: {pending}",
    "entries": "{size} entries, root {root}",
    "checkpoints": "{count} checkpoints",
    "latest": "latest tree size {size}",
    "gaps": "{gaps} gaps, {accepted} accepted, {unresolved} unresolved",
    "analysis_pending": "analysis pending",
    "checkpoint_copies": "{records} checkpoints, {objects} objects equal to the database's records",
    "archive_copies": "{records} archive records, {objects} objects equal to the database's records",
    "gap_altered": "gap {gap} ({detail})",
    "unrecorded": "this verification could not be recorded in the ledger: {reason}",
    "named_records": "{received} items and {archives} archive records the ledger names are in the database",
    "item_missing": "item {item} received at custody entry {seq} (sha256 {sha256}) is not among the case's items",
    "archive_missing": "archive record {archive} sealed at custody entry {seq} (sha256 {sha256}) is not in the database",
    "archive_differs": "archive record {archive} has sha256 {found}; custody entry {seq} recorded {sha256}",
    "gap_missing": ("gap {gap} on {device} from {start} to {end} ({seconds} s), which the recordings give, is not "
                    "in the case's record of gaps"),
    "gap_differs": ("gap {gap} is recorded from {kept_start} to {kept_end} ({kept_seconds} s) on {kept_device}; the "
                    "recordings give {start} to {end} ({seconds} s) on {device}"),
    "gap_extra": "gap {gap} from {kept_start} to {kept_end} ({kept_seconds} s) on {kept_device} is recorded, but the recordings give no such gap",
}, fields={"item": r"\S+", "archive": r"\S+", "seq": r"\d+", "found": r"[0-9a-f]+|None", "received": r"\d+", "archives": r"\d+",
           "seconds": r"\d+\.\d+", "kept_seconds": r"\d+\.\d+", "start": r"\S+", "end": r"\S+", "kept_start": r"\S+",
           "kept_end": r"\S+",
           "records": r"\d+", "objects": r"\d+", "gap": r"\S+", "sha256": r"[0-9a-f]+", "root": r"[0-9a-f]+", "sealed": r"True|False", "size": r"\d+|None",
           "count": r"\d+", "gaps": r"\d+", "accepted": r"\d+", "unresolved": r"\d+"})
"""The parts of a passed or pending check's detail, joined by :data:`PART_SEPARATOR`;
``pending`` is the item's :data:`archive.cases.verification.ITEM_PENDING` joined by
:data:`PENDING_SEPARATOR`; ``gap_altered`` (``detail``: a
:data:`archive.continuity.report.GAP_DETAILS` sentence) is a failed continuity check's part.
Another failed check's detail is the failure's own message."""
PART_SEPARATOR = "; "
PENDING_SEPARATOR = ", "


def _check(what: str, subject: str, outcome: str, detail: str | None = None) -> dict[str, Any]:
    return {"what": what, "subject": subject, "outcome": outcome, "detail": detail}


def _pending(what: str, subject: str, reason: str, detail: str) -> dict[str, Any]:
    return {"what": what, "subject": subject, "reason": reason, "detail": detail}


CHECKPOINT_COPIES = "checkpoint_copies"
ARCHIVE_COPIES = "archive_copies"
"""The receipt's checks of the vault's copies (:mod:`archive.cases.vault_copies`): one ``ok``
row each, or one ``failed`` row per missing or altered object, its key as the subject."""

FINISHED = ("passed", "incomplete", "failed")
"""Receipt statuses of a verification that has run."""


def _anchor_case(db: Database, store: ObjectStore, sealer: Sealer, case_id: str) -> None:
    """Seal a checkpoint now when the case's receipts of evidence are not covered by one yet.

    Otherwise a reviewer would be told "incomplete" only because the timed checkpoint has
    not run: something the system can do itself, before it proves inclusion.
    """
    ledger.settle(db.engine)
    with db.session() as session:
        last = session.execute(
            select(func.max(LedgerEntry.seq)).where(LedgerEntry.case_id == case_id,
                                                    LedgerEntry.action == "evidence_received")
        ).scalar()
        if last:
            try:
                checkpoint_covering(session, sealer, size=last, store=store)
            except VerificationFailed:
                pass  # a ledger that cannot be sealed is broken; the ledger check below names how


def _copy_checks(session: Session, store: ObjectStore, case_id: str) -> list[dict[str, Any]]:
    """The receipt's rows for the vault's copies of the checkpoints and of the case archive
    records (:data:`CHECKPOINT_COPIES`, :data:`ARCHIVE_COPIES`)."""
    rows = []
    for what, subject, verify in (
        (CHECKPOINT_COPIES, "checkpoint copies in the vault", vault_copies.verify_case_checkpoint_copies),
        (ARCHIVE_COPIES, "case archive record copies", vault_copies.verify_archive_copies),
    ):
        try:
            report = verify(session, store, case_id=case_id)
        except vault_copies.CopiesAltered as exc:
            rows += [_check(what, f.key, "failed", f.problem) for f in exc.faults]
        else:
            rows.append(_check(what, subject, "ok", CHECK_DETAILS.say(what, records=report.records,
                                                                      objects=report.objects)))
    # A copy no row names is a warning (an unfinished run leaves one), a failure when it
    # cannot be one (it seals entries the ledger no longer holds, or another root).
    for copy in vault_copies.unrecorded_checkpoint_copies(session, store, case_id=case_id):
        said = (vault_copies.COPY_FAULTS.say("unrecorded", tree_size=copy.tree_size, time=copy.time)
                if copy.tree_size is not None else None)
        detail = PART_SEPARATOR.join(p for p in (said, copy.problem) if p)
        rows.append(_check(CHECKPOINT_COPIES, copy.key, "failed" if copy.problem else "warning", detail))
    for key in vault_copies.unrecorded_archive_copies(session, store, case_id=case_id):
        rows.append(_check(ARCHIVE_COPIES, key, "warning", vault_copies.COPY_FAULTS.say("unrecorded_archive")))
    return rows


def _named_records_check(session: Session, case_id: str) -> dict[str, Any]:
    """The receipt's row for the records the case's custody entries name: every item received
    into the case (``evidence_received``) must still be one of its items, and every archive
    record a closing sealed (a stage move naming ``archive``) must still be in the database,
    with the hash the entry recorded. Each item's own check cannot see an item whose row is
    gone; this one names it."""
    named = session.execute(
        select(LedgerEntry.seq, LedgerEntry.action, LedgerEntry.item_id, LedgerEntry.details).where(
            LedgerEntry.case_id == case_id,
            LedgerEntry.action.in_(("evidence_received", stages.MOVE_ACTION))).order_by(LedgerEntry.seq)
    ).all()
    items = set(session.execute(select(EvidenceItem.id).where(EvidenceItem.case_id == case_id)).scalars())
    archives = dict(session.execute(select(CaseArchive.id, CaseArchive.sha256).where(CaseArchive.case_id == case_id)).all())
    faults: list[str] = []
    received = sealed = 0
    for seq, action, item_id, text in named:
        details = _details(text)
        if action == "evidence_received":
            received += 1
            if item_id not in items:
                faults.append(CHECK_DETAILS.say("item_missing", item=item_id, seq=seq, sha256=details.get("sha256")))
        elif details.get("archive"):
            sealed += 1
            archive, sha256 = details["archive"], details.get("archive_sha256")
            if archive not in archives:
                faults.append(CHECK_DETAILS.say("archive_missing", archive=archive, seq=seq, sha256=sha256))
            elif archives[archive] != sha256:
                faults.append(CHECK_DETAILS.say("archive_differs", archive=archive, found=archives[archive], seq=seq,
                                                sha256=sha256))
    if faults:
        return _check("records", "records named by the ledger", "failed", PART_SEPARATOR.join(faults))
    return _check("records", "records named by the ledger", "ok",
                  CHECK_DETAILS.say("named_records", received=received, archives=sealed))


def _details(text: str | None) -> dict[str, Any]:
    try:
        details = json.loads(text or "{}")
    except ValueError:
        return {}
    return details if isinstance(details, dict) else {}


def _gap_difference(d: runs.KeptGapDifference) -> str:
    def span(gap: Gap | analysis.Gap, prefix: str = "") -> dict[str, str]:
        return {f"{prefix}start": ledger.iso_utc(gap.start), f"{prefix}end": ledger.iso_utc(gap.end),
                f"{prefix}seconds": f"{gap.duration_seconds:.1f}", f"{prefix}device": gap.device or NO_DEVICE}
    if d.kept is None:
        return CHECK_DETAILS.say("gap_missing", gap=d.key, **span(d.found))
    if d.found is None:
        return CHECK_DETAILS.say("gap_extra", gap=d.key, **span(d.kept, "kept_"))
    return CHECK_DETAILS.say("gap_differs", gap=d.key, **span(d.kept, "kept_"), **span(d.found))


def _item_pending(item_id: str, report: verification.ItemVerificationReport, seal_status: str | None) -> dict[str, Any]:
    if not report.sealed:
        reason = "seal_failed" if seal_status == "failed" else "awaiting_seal"
        return _pending("item", item_id, reason, verification.ITEM_PROBLEMS.say("not_sealed", status=seal_status))
    return _pending("item", item_id, "awaiting_checkpoint",
                    verification.ITEM_PROBLEMS.say("not_covered", seq=report.received_seq))


RECORD_EVERY = 16
"""The items' custody entries are written by the process running the verification, this many
(or the rest) at a time, in one transaction, as the checks come in: the processes checking
items only read (on SQLite they otherwise queued for its one write lock, item after item)."""
ITEM_CHECKERS = 4
"""Items of a case verified at once (threads) by :func:`run_verification`."""
PROCESS_POOL_FROM = 16
"""Cases of at least this many items are verified in a pool of processes (one per core) when
the caller allows it (``settings``): the seal checks are Python (pyHanko, asn1crypto) and
hold the interpreter's lock, so threads of one process share one core for them."""


ItemCheck = tuple[dict[str, Any], "dict[str, Any] | None", list[verification.CustodyEntry]]
"""An item's check for the receipt, what it still waits for (None when nothing), and the
custody entries of its verification, still to be written (:data:`RECORD_EVERY`)."""


def _check_item(db: Database, store: ObjectStore, sealer: Sealer, item_id: str, actor: str,
                checked_checkpoints: set[str]) -> ItemCheck:
    entries: list[verification.CustodyEntry] = []
    try:
        # The vault's copies are checked once for the whole case (:func:`_copy_checks`).
        report = verification.verify_item(db=db, store=store, sealer=sealer, item_id=item_id, actor=actor,
                                          checked_checkpoints=checked_checkpoints, vault_copies=False,
                                          record=entries)
    except VerificationFailed as exc:
        return _check("item", item_id, "failed", exc.message), None, entries
    except ArchiveError as exc:
        if exc.status >= 500:
            # Store or TSA down: nothing learnt, the task retries; what was read is recorded.
            verification.record_entries(db, actor=actor, entries=entries)
            raise
        return _check("item", item_id, "failed", exc.message), None, entries
    parts = [CHECK_DETAILS.say("sha256", sha256=report.fixity.sha256),
             CHECK_DETAILS.say("sealed", sealed=report.sealed)]
    if report.checkpoint_tree_size:
        parts.append(CHECK_DETAILS.say("in_checkpoint", size=report.checkpoint_tree_size))
    if not report.pending:
        return _check("item", item_id, "ok", PART_SEPARATOR.join(parts)), None, entries
    with db.read() as session:
        pending = _item_pending(item_id, report, session.get(EvidenceItem, item_id).seal_status)
    parts.append(CHECK_DETAILS.say("pending", pending=PENDING_SEPARATOR.join(report.pending)))
    return _check("item", item_id, "pending", PART_SEPARATOR.join(parts)), pending, entries


_checker: dict[str, Any] = {}
"""A verifying process's own database, store and e-seal (see :func:`_start_checker`)."""


def _start_checker(settings: Settings) -> None:
    # Forked from the caller: its connections are not shared, each process opens its own.
    _checker.update(db=Database(settings), store=open_store(settings), sealer=Sealer(settings), seen=set())


def _check_in_checker(item_id: str, actor: str) -> ItemCheck:
    return _check_item(_checker["db"], _checker["store"], _checker["sealer"], item_id, actor, _checker["seen"])


def _item_checks(db: Database, store: ObjectStore, sealer: Sealer, item_ids: list[str], actor: str,
                 settings: Settings | None) -> Iterator[ItemCheck]:
    """Each item's check, in the order of ``item_ids``, made side by side: in processes (one
    per core) for a large case when ``settings`` allow a verifying process to open its own
    connections and this process may have children; else in threads, where re-hashing
    originals (I/O and OpenSSL) runs outside the interpreter's lock."""
    cores = os.cpu_count() or 1
    if (settings is not None and cores > 1 and len(item_ids) >= PROCESS_POOL_FROM
            and not multiprocessing.current_process().daemon):
        ledger.finish_sequencing(engine=db.engine)  # no thread of this process is mid-query at the fork
        sealer.load_verifiers()  # once here, not once per child
        # What this process holds is left out of the children's collections, which would
        # otherwise write to every inherited object and so copy the pages holding them (the
        # gc module's advice before a fork); this process takes it back when they are done.
        gc.freeze()
        try:
            with ProcessPoolExecutor(max_workers=cores, mp_context=multiprocessing.get_context("fork"),
                                     initializer=_start_checker, initargs=(settings,)) as pool:
                yield from pool.map(_check_in_checker, item_ids, [actor] * len(item_ids), chunksize=4)
        finally:
            gc.unfreeze()
        return
    checked_checkpoints: set[str] = set()
    with ThreadPoolExecutor(max_workers=ITEM_CHECKERS, thread_name_prefix="verify-item") as pool:
        yield from pool.map(lambda i: _check_item(db, store, sealer, i, actor, checked_checkpoints), item_ids)


def run_verification(
    *, db: Database, store: ObjectStore, sealer: Sealer, receipt_id: str, settings: Settings | None = None,
) -> VerificationReceipt | None:
    """Carry out a queued verification and complete its receipt; safe to run twice.

    The receipt's status is ``passed`` only when every item verified, is sealed and its
    receipt entry is proven included in a sealed checkpoint, the ledger and every
    checkpoint verify, and the case's continuity report is complete (no item still
    processing, no continuity analysis pending, every current gap accepted). ``failed``
    when any check found a defect; otherwise ``incomplete``, with ``pending`` listing
    what is awaited. Items received after the latest checkpoint get one sealed first.
    With ``settings``, a large case's items are checked in a pool of processes
    (:func:`_item_checks`).
    """
    with db.session() as session:
        receipt = session.get(VerificationReceipt, receipt_id)
        if receipt is None:
            log.error("verification receipt %s does not exist", receipt_id)
            return None
        if receipt.status in FINISHED:
            return receipt
        receipt.status = "running"
        case_id = receipt.case_id
        requester = session.get(User, receipt.requested_by)
        actor = actor_name(requester) if requester else "system:worker"
        item_ids = list(session.execute(
            select(EvidenceItem.id).where(EvidenceItem.case_id == case_id).order_by(EvidenceItem.received_at)
        ).scalars())
    _anchor_case(db, store, sealer, case_id)
    checks: list[dict[str, Any]] = []
    waiting: dict[str, dict[str, Any]] = {}
    unrecorded: list[verification.CustodyEntry] = []
    try:
        # The receipt lists the items in the order they were received.
        for item_id, (check, pending, entries) in zip(item_ids,
                                                       _item_checks(db, store, sealer, item_ids, actor, settings)):
            checks.append(check)
            if pending is not None:
                waiting[item_id] = pending
            unrecorded += entries
            if len(unrecorded) >= RECORD_EVERY:
                verification.record_entries(db, actor=actor, entries=unrecorded)
                unrecorded = []
    finally:
        verification.record_entries(db, actor=actor, entries=unrecorded)
    with db.snapshot() as session:
        lr = None
        try:
            lr = ledger.verify(session, at_sizes=checkpoint_sizes(session))
            checks.append(_check("ledger", "custody ledger", "ok",
                                 CHECK_DETAILS.say("entries", size=lr.size, root=lr.root_hash)))
        except VerificationFailed as exc:
            checks.append(_check("ledger", "custody ledger", "failed", exc.message))
        try:
            cr = verify_checkpoints(session, sealer, ledger_report=lr)
            checks.append(_check("checkpoints", "sealed checkpoints", "ok", PART_SEPARATOR.join((
                CHECK_DETAILS.say("checkpoints", count=cr.count), CHECK_DETAILS.say("latest", size=cr.latest_tree_size)))))
        except VerificationFailed as exc:
            checks.append(_check("checkpoints", "sealed checkpoints", "failed", exc.message))
        checks.extend(_copy_checks(session, store, case_id))
        checks.append(_named_records_check(session, case_id))
    with db.session() as session:
        continuity = build_report(session, case_id=case_id)
        # Analysed again only when nothing is waiting: the record may lag its recordings till then.
        differences = None if continuity.pending else runs.kept_gap_differences(session, case_id=case_id)
    summary = gap_counts(continuity)
    altered = [p for p in continuity.outstanding if p["reason"] == GAP_ALTERED]
    progress = [p for p in continuity.outstanding if p["reason"] != GAP_ALTERED]
    # An item still being processed is listed once, as processing: its seal is part of that.
    busy = {p["subject"] for p in progress if p["what"] == "item"}
    pending = [p for item_id, p in waiting.items() if item_id not in busy] + progress
    unfinished = [p for p in progress if p["what"] != "item"]
    faults = [CHECK_DETAILS.say("gap_altered", gap=p["subject"], detail=p["detail"]) for p in altered]
    faults += [_gap_difference(d) for d in differences or []]
    if faults:
        checks.append(_check("continuity", "recording continuity", "failed", PART_SEPARATOR.join(faults)))
    else:
        parts = [CHECK_DETAILS.say("gaps", gaps=summary["gaps"], accepted=summary["accepted"],
                                   unresolved=summary["unresolved"])]
        if any(p["reason"] == "continuity_analysis_pending" for p in unfinished):
            parts.append(CHECK_DETAILS.say("analysis_pending"))
        checks.append(_check("continuity", "recording continuity", "pending" if unfinished else "ok",
                             PART_SEPARATOR.join(parts)))
    failed = [c for c in checks if c["outcome"] == "failed"]
    status = "failed" if failed else "incomplete" if pending else "passed"
    try:
        receipt = _complete(db, receipt_id, checks=checks, pending=pending, status=status, actor=actor,
                            items=len(item_ids), record=True)
    except ArchiveError as exc:
        # The ledger refuses the receipt's entry (e.g. its last row was deleted): the receipt
        # still tells the reviewer, and says why it is not in the ledger.
        checks.append(_check("ledger", "custody ledger", "failed", CHECK_DETAILS.say("unrecorded", reason=exc.message)))
        failed, status = [c for c in checks if c["outcome"] == "failed"], "failed"
        receipt = _complete(db, receipt_id, checks=checks, pending=pending, status=status, actor=actor,
                            items=len(item_ids), record=False)
    if failed:
        log.error("verification of case %s FAILED: %s", case_id, "; ".join(c["detail"] or "" for c in failed))
    return receipt


def _complete(
    db: Database, receipt_id: str, *, checks: list[dict[str, Any]], pending: list[dict[str, Any]], status: str,
    actor: str, items: int, record: bool,
) -> VerificationReceipt:
    with db.session() as session:
        receipt = session.get(VerificationReceipt, receipt_id)
        receipt.checks = checks
        receipt.pending = pending
        receipt.status = status
        receipt.finished_at = utcnow()
        if record:
            failed = [c for c in checks if c["outcome"] == "failed"]
            ledger.append(
                session, actor=actor, action="case_verified", case_id=receipt.case_id,
                details={"receipt": receipt_id, "outcome": status, "items": items,
                         "failed": [f"{c['what']} {c['subject']}: {c['detail']}" for c in failed],
                         "pending": len(pending),
                         "pending_reasons": sorted({p["reason"] for p in pending})},
            )
    return receipt


def end_unchecked(*, db: Database, receipt_id: str, error: ArchiveError) -> VerificationReceipt | None:
    """End a verification that could not be carried out now because a server it needs did not
    answer (``error``, a transient one: the object store, the TSA): its receipt is
    ``incomplete``, its one pending entry naming the reason (``error.code``, e.g.
    ``store_unavailable``) and what the server said. Nothing was found, so nothing is claimed
    failed; the ``case_verified`` entry says the same. A receipt already finished is left as it is."""
    with db.session() as session:
        receipt = session.get(VerificationReceipt, receipt_id)
        if receipt is None or receipt.status in FINISHED:
            return receipt
        pending = [_pending("run", "verification", error.code, error.message)]
        receipt.status, receipt.pending, receipt.finished_at = "incomplete", pending, utcnow()
        receipt.checks = [*(receipt.checks or []), _check("run", "verification", "pending", error.message)]
        ledger.append(session, actor=actor_name(session.get(User, receipt.requested_by)), action="case_verified",
                      case_id=receipt.case_id,
                      details={"receipt": receipt_id, "outcome": "incomplete", "failed": [], "pending": 1,
                               "pending_reasons": [error.code]})
    return receipt


def give_up(*, db: Database, receipt_id: str, reason: str) -> None:
    """A queued verification that could not be carried out: say so on its receipt."""
    with db.session() as session:
        receipt = session.get(VerificationReceipt, receipt_id)
        if receipt is None or receipt.status not in ("queued", "running"):
            return
        receipt.status = "failed"
        receipt.checks = [*(receipt.checks or []), _check("run", "verification", "failed", reason)]
        receipt.finished_at = utcnow()
        ledger.append(session, actor="system:worker", action="case_verified", case_id=receipt.case_id,
                      details={"receipt": receipt_id, "outcome": "failed", "failed": [reason]})
