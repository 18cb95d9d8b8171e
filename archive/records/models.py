"""Records management's tables: a case's retention class, its legal holds and its outcome."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from archive.models import AwareDateTime, Base, new_id, utcnow


class CaseRetention(Base):
    """The retention class an administrator gave a case (a case without a row has the
    configured default class, ``EVIDENCE_RETENTION_DEFAULT_CLASS``)."""

    __tablename__ = "case_retention"
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), primary_key=True)
    retention_class: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(Text)
    set_by: Mapped[str] = mapped_column(ForeignKey("users.id"))
    set_at: Mapped[datetime] = mapped_column(AwareDateTime(), default=utcnow)


class LegalHold(Base):
    """A legal hold on a case: placed and lifted by an administrator, each with a reason.

    At most one hold of a case is active (``released_at`` is None); placing and lifting
    lock the case row, so two requests cannot both place one.
    """

    __tablename__ = "legal_holds"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    reason: Mapped[str] = mapped_column(Text)
    placed_by: Mapped[str] = mapped_column(ForeignKey("users.id"))
    placed_at: Mapped[datetime] = mapped_column(AwareDateTime(), default=utcnow)
    objects: Mapped[int] = mapped_column(Integer, default=0)
    """Object versions the store put under hold when it was placed."""
    released_by: Mapped[str | None] = mapped_column(ForeignKey("users.id"))
    released_at: Mapped[datetime | None] = mapped_column(AwareDateTime())
    release_reason: Mapped[str | None] = mapped_column(Text)


class CaseOutcome(Base):
    """How a decided case ended: ``penalty`` or ``no_penalty`` (不予处罚).

    Recorded at the decision stage or later by the case's unit (or an administrator);
    a withdrawn, terminated or referred case's outcome is its stage. The ledger keeps
    every recording; this row holds the last.
    """

    __tablename__ = "case_outcomes"
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), primary_key=True)
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    recorded_by: Mapped[str] = mapped_column(ForeignKey("users.id"))
    recorded_at: Mapped[datetime] = mapped_column(AwareDateTime(), default=utcnow)
