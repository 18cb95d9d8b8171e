"""Reviewer verification of a case: queue it, then read its receipts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from api.deps import CurrentUser, ServicesDep, SessionDep
from api.schemas import ErrorResponse
from archive import work
from archive.cases import receipts
from archive.models import User, VerificationReceipt

router = APIRouter(prefix="/api/v1/cases", tags=["verification"])
ERRORS = {s: {"model": ErrorResponse} for s in (401, 403, 404, 409, 422)}


class ReceiptPublic(BaseModel):
    id: str
    case_id: str
    requested_by: str | None
    status: str
    """queued, running, passed, incomplete (see ``pending``) or failed."""
    checks: list[dict[str, Any]]
    pending: list[dict[str, Any]] = []
    """Why an ``incomplete`` receipt is not ``passed``: one {what, subject, reason, detail} each."""
    created_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, session, receipt: VerificationReceipt) -> ReceiptPublic:  # type: ignore[no-untyped-def]
        user = session.get(User, receipt.requested_by)
        return cls(
            id=receipt.id, case_id=receipt.case_id, requested_by=user.name if user else None,
            status=receipt.status, checks=receipt.checks or [], pending=receipt.pending or [], created_at=receipt.created_at,
            finished_at=receipt.finished_at,
        )


@router.post("/{case_id}/verify", status_code=202, response_model=ReceiptPublic, responses=ERRORS)
def verify_case(case_id: str, session: SessionDep, user: CurrentUser, services: ServicesDep) -> ReceiptPublic:
    """Queue a verification of the whole case; the receipt completes when the worker is done."""
    receipt = receipts.request_verification(session, user=user, case_id=case_id)
    reply = ReceiptPublic.of(session, receipt)
    session.commit()
    services.enqueue(work.VERIFY_CASE, receipt.id)
    return reply


@router.get("/{case_id}/verifications", response_model=list[ReceiptPublic], responses=ERRORS)
def list_verifications(case_id: str, session: SessionDep, user: CurrentUser) -> list[ReceiptPublic]:
    """The case's verification receipts, newest first."""
    return [ReceiptPublic.of(session, r) for r in receipts.list_receipts(session, user=user, case_id=case_id)]
