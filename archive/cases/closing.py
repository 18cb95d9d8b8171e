"""Closing a case (结案): every gate checked, the case's one electronic store sealed in a record.

:func:`closing_gates` lists *every* reason a case cannot close yet, each ``{"code",
"message", "subject"}`` (``subject``: a file name, a stage or a count, for pages in any language;
a gate about a gap adds ``"gap"``, its id):

* ``stage_not_closable``: the case is not in service, enforcement, withdrawn, terminated
  or referred (``case_closed`` when it is closed already);
* ``gap_unexplained``, ``gap_awaiting_review``, ``gap_explanation_rejected``: a current gap of
  the continuity report is not accepted; ``processing``, ``continuity_analysis_pending``:
  an item is still being processed or an analysis is owed (:mod:`archive.continuity.report`);
* ``item_failed``: an item's processing or seal failed; ``item_unsealed``: an item is not
  sealed yet;
* ``export_in_progress``: an export of the case is requested, approved or building;
* ``too_few_reviews``: fewer than :data:`MIN_APPROVING_REVIEWS` approving legal reviews;
* ``closing_review_missing`` / ``closing_review_returned``: the latest closing review does
  not approve.

:func:`close_case` refuses with :class:`CaseNotReady` (409 ``case_not_ready``, ``reasons``)
or writes the **case archive record** (format ``evidence-case-archive/1``): the case, its
handlers, stage moves, reviews with their sealed records and seals, every item with its
hashes and seal objects, the continuity report, the case's custody entries with RFC 9162
inclusion proofs against a sealed checkpoint (statement and seals included), and the SM2
keys that sealed. The record is sealed (CAdES-B-T + SM2), verified, written locked into the
case's vault (``<vault>/case-archive/<id>/record.json`` with ``.p7s`` and ``.sm2.json``
beside it) and kept in ``case_archives``; then the case moves to ``closed`` (a custody
entry naming the record and its hash). From then on the vault accepts no new evidence
(``case_closed``) until a reviewer reopens the case.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from evidence_verify import layout

from archive.cases import stages
from archive.cases.documents import documents_of
from archive.cases.models import CaseArchive, CaseHandler, ReviewCheckpoint
from archive.cases.reviews import approval_counts, approving_count, review_document, reviews_of
from archive.continuity.report import CaseContinuity, build_report, report_document
from archive.custody import ledger
from archive.custody.checkpoints import checkpoint_covering, proven_case_entries
from archive.db import Database
from archive.errors import ArchiveError, CaseClosed, Conflict, NotFound
from archive.identity.users import load_case, user_names
from archive.models import Case, CaseStage, Checkpoint, EvidenceItem, ExportRequest, LedgerEntry, User, new_id, utcnow
from archive.seals.items import SEAL_ROLES
from archive.seals.manifests import canonical_bytes, utc_text
from archive.seals.registry import (
    certificates_in_seal, record_certificates, record_sm2_key, recorded_sm2_keys, sm2_keys_pem,
)
from archive.seals.sealer import SealBundle, Sealer, sealed_copies
from archive.storage import ObjectStore
from archive.storage.streams import VaultCopy, put_copies
from archive.wording import Sentences

MIN_APPROVING_REVIEWS = 3
"""Every case is legally reviewed, approvingly, at least three times before it closes."""
EXPORTS_IN_PROGRESS = ("requested", "approved", "waiting", "building")


def reviewable_checkpoints(session: Session, *, case: Case, user: User) -> list[ReviewCheckpoint]:
    """The checkpoints at which a review by ``user`` (who may review the case) does something
    now, for the review form to offer: those due (:func:`archive.cases.stages.due_checkpoints`),
    and the approved closing checkpoint while the case has too few approving reviews to close and
    ``user``'s approval there would count (a case withdrawn after filing has no other checkpoint
    left to give them). Any other approved checkpoint is done: the API records a review there
    too (201), but an approval repeated by its reviewer counts for nothing, and the form does not
    offer it."""
    offered = stages.due_checkpoints(session, case=case)
    closing = ReviewCheckpoint.closing
    if (closing not in offered and case.stage in stages.REVIEW_STAGES[closing]
            and approving_count(session, case_id=case.id) < MIN_APPROVING_REVIEWS
            and approval_counts(session, case_id=case.id, checkpoint=closing, reviewer_id=user.id)):
        offered.append(closing)
    return offered


class CaseNotReady(Conflict):
    """The case cannot close yet; ``extra["reasons"]`` lists every reason."""

    code = "case_not_ready"

    def __init__(self, reasons: list[dict[str, str]]):
        super().__init__(f"the case cannot close yet: {len(reasons)} reason(s): "
                         + "; ".join(r["message"] for r in reasons[:5]) + ("; ..." if len(reasons) > 5 else ""))
        self.extra = {"reasons": reasons}


GATES = Sentences("gate_message", {
    "stage_not_closable": "a case in {stage} cannot close; it closes from {stages}",
    "item": "item {subject}: {detail}",
    "gap": "gap {subject}: {detail}",
    "continuity": "continuity {subject}: {detail}",
    "action": "action {subject}: {detail}",
    "item_failed": "item {item} ({filename}): processing or sealing failed (seal {status})",
    "item_unsealed": "item {item} ({filename}) is not sealed yet (seal {status})",
    "export_in_progress": "export {export} is {export_status}",
    "too_few_reviews": "the case has {count} approving legal review(s); it needs at least {needed}",
}, fields={"stage": r"[a-z_]+", "stages": r"[a-z_]+(?:, [a-z_]+)*", "subject": r"\S+", "item": r"\S+",
           "status": r"\w+", "export": r"\S+", "export_status": r"[a-z_]+", "count": r"\d+", "needed": r"\d+"})
"""The English explanation of each closing gate (its ``message``, :func:`closing_gates`) but the
review gates' (:data:`archive.cases.stages.REVIEW_GATES`); ``item``, ``gap`` and ``continuity``
say what the continuity report still waits for (``subject``: the item's, gap's or case's id;
``detail``: a :data:`archive.continuity.report.GAP_DETAILS` sentence)."""


def _reason(code: str, message: str, subject: str = "", gap: str | None = None) -> dict[str, str]:
    """A closing gate: its code, its explanation (English), and what it is about in words that
    need no translation (a file name, a stage, a count), for pages in any language; a gate
    about a gap also names the gap (``gap``: its id), so that a page can say which."""
    return {"code": code, "message": message, "subject": subject, **({"gap": gap} if gap else {})}


def closing_gates(session: Session, *, case: Case, continuity: CaseContinuity | None = None) -> list[dict[str, str]]:
    """Every reason ``case`` cannot close now (empty when it can); see the module's doc.

    ``continuity``: the case's continuity report when the caller built it already (a page)."""
    reasons = []
    if case.stage not in stages.CLOSABLE:
        reasons.append(_reason("stage_not_closable", GATES.say(
            "stage_not_closable", stage=case.stage.value, stages=", ".join(sorted(s.value for s in stages.CLOSABLE))),
            case.stage.value))
    # The four columns read, not the items: a page of a 10,000-item case asks this each time.
    items = session.execute(
        select(EvidenceItem.id, EvidenceItem.original_filename, EvidenceItem.flags, EvidenceItem.seal_status)
        .where(EvidenceItem.case_id == case.id).order_by(EvidenceItem.received_at, EvidenceItem.id)
    ).all()
    names = {item.id: item.original_filename for item in items}
    continuity = continuity or build_report(session, case_id=case.id)
    for o in continuity.outstanding:
        subject = names.get(o["subject"], "") if o["what"] == "item" else ""
        reasons.append(_reason(o["reason"], GATES.say(o["what"], subject=o["subject"], detail=o["detail"]), subject,
                               gap=o["subject"] if o["what"] == "gap" else None))
    for item in items:
        failed = "processing_failed" in (item.flags or []) or item.seal_status == "failed"
        if failed:
            reasons.append(_reason("item_failed", GATES.say("item_failed", item=item.id, filename=item.original_filename,
                                                            status=item.seal_status), item.original_filename))
        elif item.seal_status != "sealed":
            reasons.append(_reason("item_unsealed", GATES.say("item_unsealed", item=item.id,
                                                              filename=item.original_filename, status=item.seal_status),
                                   item.original_filename))
    for export_id, status in session.execute(
        select(ExportRequest.id, ExportRequest.status).where(
            ExportRequest.case_id == case.id, ExportRequest.status.in_(EXPORTS_IN_PROGRESS))
        .order_by(ExportRequest.created_at)
    ).all():
        reasons.append(_reason("export_in_progress", GATES.say("export_in_progress", export=export_id,
                                                               export_status=status), export_id[:8]))
    approving = approving_count(session, case_id=case.id)
    if approving < MIN_APPROVING_REVIEWS:
        reasons.append(_reason("too_few_reviews", GATES.say("too_few_reviews", count=approving,
                                                            needed=MIN_APPROVING_REVIEWS),
                               f"{approving}/{MIN_APPROVING_REVIEWS}"))
    shut = stages.review_gate(session, case_id=case.id, checkpoint=ReviewCheckpoint.closing)
    if shut is not None:
        reasons.append(_reason(*shut))
    return reasons


def _refuse(session: Session, case: Case) -> None:
    if case.stage == CaseStage.closed:
        raise CaseClosed(f"case {case.case_number} is closed already")
    reasons = closing_gates(session, case=case)
    if reasons:
        # The API's reasons are code, message and subject (ReasonPublic); a gap's id is for pages.
        raise CaseNotReady([{k: v for k, v in r.items() if k != "gap"} for r in reasons])


def _stage_at(moves: list[Any], moment: Any) -> str:
    """The case's stage at ``moment``, from its moves (oldest first)."""
    stage = CaseStage.filed.value
    for m in moves:
        if m.at > moment:
            break
        stage = m.to_stage.value
    return stage


def _items(session: Session, case_id: str, moves: list[Any]) -> list[dict[str, Any]]:
    """Every item of the case with its hashes, its seal objects and the stage it arrived in."""
    out = []
    items = session.execute(
        select(EvidenceItem).where(EvidenceItem.case_id == case_id).order_by(EvidenceItem.received_at, EvidenceItem.id)
    ).scalars().unique()
    for item in items:
        seals = {d.role: {"storage_key": d.storage_key, "storage_version": d.storage_version, "sha256": d.sha256,
                          "size": d.size} for d in item.derived if d.role in (*SEAL_ROLES, "pades")}
        out.append({
            "id": item.id, "kind": item.kind.value, "filename": item.original_filename, "media_type": item.media_type,
            "size": item.size, "sha256": item.sha256, "sm3": item.sm3, "sha512": item.sha512,
            "storage_key": item.storage_key, "storage_version": item.storage_version, "parent": item.parent_id,
            "device": item.device_id, "received_at": utc_text(item.received_at),
            "recorded_start": utc_text(item.recorded_start), "flags": list(item.flags or []),
            "seal_status": item.seal_status, "seals": seals, "stage": _stage_at(moves, item.received_at),
        })
    return out


def build_record(
    session: Session, *, case: Case, archive_id: str, closed_by: User, checkpoint: Any, sealer: Sealer,
) -> dict[str, Any]:
    """The case archive record (a JSON-able dict) of ``case`` as it stands, proven against ``checkpoint``."""
    reviews = reviews_of(session, case_id=case.id)
    moves = stages.moves_of(session, case_id=case.id)
    handlers = list(session.execute(select(CaseHandler).where(CaseHandler.case_id == case.id)
                                    .order_by(CaseHandler.at, CaseHandler.user_id)).scalars())
    docs = documents_of(session, case_id=case.id)
    names = user_names(session, {*(r.reviewer_id for r in reviews), *(m.actor_id for m in moves if m.actor_id),
                                 *(h.user_id for h in handlers), *(d.linked_by for d in docs), case.created_by})
    entries = proven_case_entries(session, case_id=case.id, checkpoint=checkpoint)
    seqs = [e["entry"]["seq"] for e in entries]
    return {
        "format": layout.CASE_ARCHIVE_FORMAT,
        "archive_id": archive_id,
        "created_at": utc_text(utcnow()),
        "closed_by": {"id": closed_by.id, "name": closed_by.name},
        "case": {
            "id": case.id, "number": case.case_number, "title": case.title, "unit": case.unit.name,
            "created_at": utc_text(case.created_at), "created_by": names.get(case.created_by, case.created_by),
            "vault": case.vault.name, "stage_at_closing": case.stage.value,
        },
        "handlers": [{"id": h.user_id, "name": names.get(h.user_id), "since": utc_text(h.at)} for h in handlers],
        "stages": [{"from": m.from_stage.value, "to": m.to_stage.value, "reason": m.reason,
                    "actor": names.get(m.actor_id) if m.actor_id else "system", "at": utc_text(m.at),
                    "review": m.review_id, "ledger_seq": m.ledger_seq} for m in moves],
        "documents": [{"item": d.item_id, "stage": d.stage.value, "role": d.role.value, "note": d.note,
                       "linked_by": names.get(d.linked_by, d.linked_by), "at": utc_text(d.at),
                       "ledger_seq": d.ledger_seq} for d in docs],
        "reviews": [review_document(r, reviewer=names.get(r.reviewer_id)) for r in reviews],
        "items": _items(session, case.id, moves),
        "continuity": report_document(build_report(session, case_id=case.id)),
        "ledger": {
            "first_seq": min(seqs) if seqs else None, "last_seq": max(seqs) if seqs else None,
            "checkpoint": {"tree_size": checkpoint.tree_size, "root_hash": checkpoint.root_hash,
                           "statement": checkpoint.statement,
                           "cades": base64.b64encode(bytes(checkpoint.cades)).decode("ascii"), "sm2": checkpoint.sm2},
            "entries": entries,
        },
        "trust": {"sm2_public_keys": sm2_keys_pem([*sealer.sm2_public_keys(), *recorded_sm2_keys(session)])
                  .decode("ascii")},
    }


def archive_keys(vault: str, archive_id: str) -> dict[str, str]:
    """Where a case archive record and its seals are kept in the case's vault."""
    base = f"{vault}/case-archive/{archive_id}/{layout.CASE_ARCHIVE_RECORD}"
    return {"record": base, "cades": base + layout.CADES_SUFFIX, "sm2": base + layout.SM2_SUFFIX}


def archive_copies(vault: str, archive_id: str, record: bytes, bundle: SealBundle) -> list[VaultCopy]:
    """The objects the case's vault keeps of a case archive record (the record, its CAdES and
    SM2 seals) with their bytes: what :func:`close_case` writes and verification compares."""
    keys = archive_keys(vault, archive_id)
    return sealed_copies(record, bundle, document=keys["record"], cades=keys["cades"], sm2=keys["sm2"])


def archive_row_copies(vault: str, row: CaseArchive) -> list[VaultCopy]:
    """:func:`archive_copies` of a kept record, from its ``case_archives`` row."""
    return archive_copies(vault, row.id, bytes(row.record), SealBundle(cades=bytes(row.cades), sm2=row.sm2))


def close_case(*, db: Database, store: ObjectStore, sealer: Sealer, user_id: str, case_id: str) -> CaseArchive:
    """Close a case: check every gate, seal the case archive record, keep it, move the case to ``closed``.

    Raises CaseNotReady listing every reason when a gate fails. The record is built and
    sealed outside the case's row lock (a time-stamp may take a while); under it the gates are
    checked again, and the case must still be at the stage and hold the items the record
    describes (409 ``case_moved``, ``case_changed``), before the record's objects are written
    (locked) into the vault and its row kept. A close refused there writes nothing: only a
    crash between the objects and the row's commit leaves a sealed record no row names, which
    case verification reports (:func:`archive.cases.vault_copies.unrecorded_archive_copies`).
    """
    ledger.settle(db.engine)  # the checkpoint must cover every entry of the case so far
    with db.session() as session:  # gates first; then a checkpoint covering the case's entries
        user = session.get(User, user_id)
        case = stages.lock_case(session, user=user, case_id=case_id, write=True)
        stages.require_handler(session, user=user, case=case, doing="close it")
        _refuse(session, case)
        last_seq = session.execute(
            select(func.max(LedgerEntry.seq)).where(LedgerEntry.case_id == case_id)).scalar() or 0
        checkpoint = checkpoint_covering(session, sealer, size=last_seq, store=store)
        if checkpoint is None:  # pragma: no cover - the ledger holds the case's entries
            raise ArchiveError("no sealed checkpoint covers the case's custody entries", code="checkpoint_missing",
                               status=503)
        checkpoint_id = checkpoint.id
    archive_id = new_id()
    with db.read() as session:
        user = session.get(User, user_id)
        case = session.get(Case, case_id)
        record = build_record(session, case=case, archive_id=archive_id, closed_by=user,
                              checkpoint=session.get(Checkpoint, checkpoint_id), sealer=sealer)
        vault = case.vault.name
        stage_before = case.stage
    data = canonical_bytes(record)
    bundle = sealer.seal(data)
    report = sealer.verify_seal(data, bundle)
    keys = archive_keys(vault, archive_id)
    sha = hashlib.sha256(data).hexdigest()
    with db.session() as session:
        user = session.get(User, user_id)
        case = stages.lock_case(session, user=user, case_id=case_id, write=True)
        if case.stage != stage_before:
            raise Conflict(f"the case moved to {case.stage.value} while it was being closed", code="case_moved")
        _refuse(session, case)
        held = set(session.execute(select(EvidenceItem.id).where(EvidenceItem.case_id == case_id)).scalars())
        if held != {i["id"] for i in record["items"]}:
            raise Conflict("the case's evidence changed while it was being closed; close it again",
                           code="case_changed")
        # Written under the lock, once nothing can refuse the close but a failure to record it.
        until = utcnow() + timedelta(days=sealer.settings.retention_days)
        put_copies(store, archive_copies(vault, archive_id, data, bundle), until=until)
        record_certificates(session, certificates_in_seal(bundle.cades))
        record_sm2_key(session, sealer.sm2_key.public_key)
        row = CaseArchive(
            id=archive_id, case_id=case_id, created_by=user.id, record=data, sha256=sha, cades=bundle.cades,
            sm2=bundle.sm2, timestamp_time=report.cades.timestamp_time, storage_prefix=keys["record"].rsplit("/", 1)[0],
            ledger_first_seq=record["ledger"]["first_seq"], ledger_last_seq=record["ledger"]["last_seq"],
            checkpoint_tree_size=record["ledger"]["checkpoint"]["tree_size"], item_count=len(record["items"]),
        )
        session.add(row)
        session.flush()
        stages.record_move(
            session, case=case, to=CaseStage.closed, reason=stages.MOVE_REASONS.say("closed"),
            actor=user, details={"archive": archive_id, "archive_sha256": sha,
                                 "timestamp_time": utc_text(report.cades.timestamp_time),
                                 "ledger_range": [row.ledger_first_seq, row.ledger_last_seq],
                                 "checkpoint_tree_size": row.checkpoint_tree_size},
        )
        session.expunge(row)
    return row


def case_archive(session: Session, *, user: User, case_id: str) -> CaseArchive:
    """The case's latest archive record, for a user who may read the case."""
    load_case(session, user=user, case_id=case_id)
    return latest_archive(session, case_id=case_id)


def latest_archive(session: Session, *, case_id: str) -> CaseArchive:
    """The case's latest archive record (404 ``archive_not_found`` when it was never closed);
    no access check here."""
    row = session.execute(
        select(CaseArchive).where(CaseArchive.case_id == case_id).order_by(CaseArchive.created_at.desc()).limit(1)
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"case {case_id} has no archive record: it was never closed", code="archive_not_found")
    return row

