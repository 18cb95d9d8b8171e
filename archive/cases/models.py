"""The case's legal life: stage moves, handlers, legal reviews and the sealed case archive record.

The stage itself is ``Case.stage`` (:class:`archive.models.CaseStage`, on the shared
``cases`` table); the rules of moving it live in :mod:`archive.cases.stages`.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from archive.models import AwareDateTime, Base, CaseStage, _enum, new_id, utcnow

__all__ = [
    "CaseArchive", "CaseHandler", "CaseStage", "CaseStageMove", "LegalReview", "ReviewCheckpoint",
    "REVIEW_DECISIONS", "StageDocument", "StageDocumentRole",
]


class ReviewCheckpoint(str, enum.Enum):
    """When the legal office reviews a case (立案, 支委会, 呈批, 结案)."""

    filing = "filing"
    committee = "committee"
    approval = "approval"
    closing = "closing"


REVIEW_DECISIONS = ("approve", "return")
"""A review approves the case at its checkpoint, or returns it to its handlers with reasons."""


class CaseStageMove(Base):
    """One move of a case from one stage to another, with who, when and why (also a custody entry)."""

    __tablename__ = "case_stage_moves"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    from_stage: Mapped[CaseStage] = mapped_column(_enum(CaseStage, "case_stage"))
    to_stage: Mapped[CaseStage] = mapped_column(_enum(CaseStage, "case_stage"))
    reason: Mapped[str | None] = mapped_column(Text)
    actor_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"))
    """The user who moved it; None when the system moved it (a returned review sends it back)."""
    review_id: Mapped[str | None] = mapped_column(String(36))
    """The review that caused or approved this move (a returned review, a reopening's approval)."""
    at: Mapped[datetime] = mapped_column(AwareDateTime(), default=utcnow)
    ledger_seq: Mapped[int] = mapped_column(BigInteger)
    """The ``case_stage_moved`` custody entry of this move."""


class CaseHandler(Base):
    """An officer handling a case (its creator, and those assigned); handlers never review it."""

    __tablename__ = "case_handlers"
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True, index=True)
    added_by: Mapped[str | None] = mapped_column(ForeignKey("users.id"))
    at: Mapped[datetime] = mapped_column(AwareDateTime(), default=utcnow)


class StageDocumentRole(str, enum.Enum):
    """What a document is to its stage (立案审批表, 告知书, 陈述申辩笔录, 听证笔录, 集体讨论记录,
    处罚决定书, 送达回证, 公告, 执行记录, 结案报告, or another document of the stage)."""

    filing_approval = "filing_approval"
    notice = "notice"
    statement_record = "statement_record"
    hearing_record = "hearing_record"
    discussion_record = "discussion_record"
    decision = "decision"
    service_proof = "service_proof"
    public_notice = "public_notice"
    enforcement_record = "enforcement_record"
    closing_report = "closing_report"
    other = "other"


class StageDocument(Base):
    """An evidence item of the case linked to a stage as one of its documents (also a custody entry).

    The item itself is unchanged; the link says, for example, that item X is the notice of
    the facts and rights served at the ``notice`` stage. An item can be linked more than once
    (the same record serves two stages) but not twice with the same stage and role.
    """

    __tablename__ = "stage_documents"
    __table_args__ = (UniqueConstraint("item_id", "stage", "role", name="stage_document_once"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("evidence_items.id"))
    stage: Mapped[CaseStage] = mapped_column(_enum(CaseStage, "case_stage"))
    role: Mapped[StageDocumentRole] = mapped_column(_enum(StageDocumentRole, "stage_document_role"))
    note: Mapped[str | None] = mapped_column(Text)
    linked_by: Mapped[str] = mapped_column(ForeignKey("users.id"))
    at: Mapped[datetime] = mapped_column(AwareDateTime(), default=utcnow)
    ledger_seq: Mapped[int] = mapped_column(BigInteger)
    """The ``stage_document_linked`` custody entry."""


class LegalReview(Base):
    """A legal review (法制审核) of a case at a checkpoint: a sealed record and a custody entry.

    ``record`` is the canonical JSON that was sealed (every field below that a court needs);
    ``cades`` its detached CAdES-B-T signature, ``sm2`` its SM2/SM3 seal record.
    """

    __tablename__ = "legal_reviews"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    checkpoint: Mapped[ReviewCheckpoint] = mapped_column(_enum(ReviewCheckpoint, "review_checkpoint"))
    stage: Mapped[CaseStage] = mapped_column(_enum(CaseStage, "case_stage"))
    """The case's stage when the review was recorded."""
    aspects: Mapped[dict[str, Any]] = mapped_column(JSON)
    """subject, facts, basis, discretion, procedure -> {"ok": bool, "comment": str}."""
    decision: Mapped[str] = mapped_column(String(16))
    """``approve`` or ``return``."""
    opinion: Mapped[str] = mapped_column(Text, default="")
    discussion_minutes: Mapped[str | None] = mapped_column(Text)
    """Minutes of the collective discussion (集体讨论), when the committee met."""
    reviewer_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(AwareDateTime(), default=utcnow)
    record: Mapped[str] = mapped_column(Text)
    """Canonical JSON of the review, exactly as sealed."""
    record_sha256: Mapped[str] = mapped_column(String(64))
    cades: Mapped[bytes] = mapped_column(LargeBinary)
    """Detached CAdES-B-T signature over ``record``."""
    sm2: Mapped[dict[str, Any]] = mapped_column(JSON)
    """SM2/SM3 seal record over ``record``."""
    timestamp_time: Mapped[datetime | None] = mapped_column(AwareDateTime())
    ledger_seq: Mapped[int] = mapped_column(BigInteger)
    """The ``legal_review_recorded`` custody entry."""


class CaseArchive(Base):
    """The sealed case archive record written when a case closes (its one electronic store, sealed).

    The record (canonical JSON) and its seals are kept twice: here and, locked, in the
    case's vault (``storage_prefix``: ``record.json``, ``record.p7s``, ``record.sm2.json``).
    Neither is ever altered; a case reopened and closed again gets a new record.
    """

    __tablename__ = "case_archives"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(AwareDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(ForeignKey("users.id"))
    record: Mapped[bytes] = mapped_column(LargeBinary)
    """The record, canonical JSON bytes, exactly as sealed."""
    sha256: Mapped[str] = mapped_column(String(64))
    cades: Mapped[bytes] = mapped_column(LargeBinary)
    """Detached CAdES-B-T signature over ``record``."""
    sm2: Mapped[dict[str, Any]] = mapped_column(JSON)
    timestamp_time: Mapped[datetime | None] = mapped_column(AwareDateTime())
    storage_prefix: Mapped[str] = mapped_column(String(1000))
    """Object-key prefix in the case's vault under which record and seals are stored."""
    ledger_first_seq: Mapped[int | None] = mapped_column(BigInteger)
    ledger_last_seq: Mapped[int | None] = mapped_column(BigInteger)
    checkpoint_tree_size: Mapped[int] = mapped_column(BigInteger)
    """The sealed checkpoint the record's inclusion proofs are against."""
    item_count: Mapped[int] = mapped_column(Integer, default=0)
