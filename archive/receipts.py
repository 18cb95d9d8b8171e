"""Reviewer verification of a whole case, and its receipt in the custody ledger.

A reviewer (or admin) of the case's unit asks for a verification; a worker (or the CLI,
synchronously) then, for every item, runs :func:`archive.verification.verify_item`
(original re-hashed from its recorded version, manifest and seals, PAdES copy, inclusion
of its receipt in the latest sealed checkpoint), verifies the whole custody ledger (chain
and tree) and every sealed checkpoint, and reports the case's continuity status. The
receipt says who asked, when, what was checked and the outcome; it is itself a custody
entry (``case_verified``).

An item not sealed yet, or received after the latest checkpoint, is reported as
*pending*, not as a failure. Unexplained gaps are reported, not failed: they are a fact
about the recording, not about the archive's integrity.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from archive import ledger, sealing, verification, work
from archive.db import Database
from archive.errors import ArchiveError, NotFound, VerificationError
from archive.exports import continuity_snapshot
from archive.models import Case, EvidenceItem, Role, User, VerificationReceipt, utcnow
from archive.settings import Settings
from archive.storage import ObjectStore
from archive.users import actor_name, can_see_case, require_role

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


def _check(what: str, subject: str, outcome: str, detail: str | None = None) -> dict[str, Any]:
    return {"what": what, "subject": subject, "outcome": outcome, "detail": detail}


def run_verification(
    *, db: Database, store: ObjectStore, settings: Settings, receipt_id: str, sealer: Any = None,
) -> VerificationReceipt | None:
    """Carry out a queued verification and complete its receipt; safe to run twice."""
    with db.session() as session:
        receipt = session.get(VerificationReceipt, receipt_id)
        if receipt is None:
            log.error("verification receipt %s does not exist", receipt_id)
            return None
        if receipt.status in ("passed", "failed"):
            return receipt
        receipt.status = "running"
        case_id = receipt.case_id
        requester = session.get(User, receipt.requested_by)
        actor = actor_name(requester) if requester else "system:worker"
        item_ids = list(session.execute(
            select(EvidenceItem.id).where(EvidenceItem.case_id == case_id).order_by(EvidenceItem.received_at)
        ).scalars())
    sealer = sealer or sealing.get_sealer(settings)
    checks: list[dict[str, Any]] = []
    for item_id in item_ids:
        try:
            report = verification.verify_item(db=db, store=store, sealer=sealer, item_id=item_id, actor=actor)
        except VerificationError as exc:
            checks.append(_check("item", item_id, "failed", exc.message))
            continue
        except ArchiveError as exc:
            if exc.status >= 500:
                raise  # store or TSA down: nothing learnt; the task retries
            checks.append(_check("item", item_id, "failed", exc.message))
            continue
        detail = f"sha256 {report.fixity.sha256}; sealed {report.sealed}"
        if report.checkpoint_tree_size:
            detail += f"; in checkpoint {report.checkpoint_tree_size}"
        if report.pending:
            checks.append(_check("item", item_id, "pending", detail + "; pending: " + ", ".join(report.pending)))
        else:
            checks.append(_check("item", item_id, "ok", detail))
    with db.snapshot() as session:
        try:
            lr = ledger.verify(session)
            checks.append(_check("ledger", "custody ledger", "ok", f"{lr.size} entries, root {lr.root_hash}"))
        except VerificationError as exc:
            checks.append(_check("ledger", "custody ledger", "failed", exc.message))
        try:
            cr = sealing.verify_checkpoints(session, sealer)
            checks.append(_check("checkpoints", "sealed checkpoints", "ok",
                                 f"{cr.count} checkpoints; latest tree size {cr.latest_tree_size}"))
        except VerificationError as exc:
            checks.append(_check("checkpoints", "sealed checkpoints", "failed", exc.message))
    with db.session() as session:
        summary = continuity_snapshot(session, case_id=case_id)["summary"]
        checks.append(_check(
            "continuity", "recording continuity", "ok" if summary["unresolved"] == 0 else "warning",
            f"{summary['gaps']} gaps, {summary['accepted']} accepted, {summary['unresolved']} unresolved",
        ))
        failed = [c for c in checks if c["outcome"] == "failed"]
        receipt = session.get(VerificationReceipt, receipt_id)
        receipt.checks = checks
        receipt.status = "failed" if failed else "passed"
        receipt.finished_at = utcnow()
        ledger.append(
            session, actor=actor, action="case_verified", case_id=case_id,
            details={"receipt": receipt_id, "outcome": receipt.status, "items": len(item_ids),
                     "failed": [f"{c['what']} {c['subject']}: {c['detail']}" for c in failed],
                     "pending": sum(1 for c in checks if c["outcome"] == "pending")},
        )
    if failed:
        log.error("verification of case %s FAILED: %s", case_id, "; ".join(c["detail"] or "" for c in failed))
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
