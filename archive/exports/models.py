"""Certified exports' own tables: the requests courts make by case number."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from archive.models import AwareDateTime, Base, _enum, new_id, utcnow


class CourtRequestStatus(str, enum.Enum):
    pending = "pending"
    fulfilled = "fulfilled"
    declined = "declined"


class CourtRequest(Base):
    """A court's (or prosecutor's) request for a certified export of a case, named by its number.

    ``case_id`` is set when the number names a case, and never shown to the court: the
    answer to a request is the same whether or not the case exists. The case's unit's
    reviewers fulfil it (an export for the requester) or decline it, with a reason.
    """

    __tablename__ = "court_requests"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    case_number: Mapped[str] = mapped_column(String(100))
    """As the court wrote it."""
    case_id: Mapped[str | None] = mapped_column(ForeignKey("cases.id"), index=True)
    court_reference: Mapped[str] = mapped_column(String(200))
    legal_basis: Mapped[str] = mapped_column(Text)
    requested_by: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(AwareDateTime(), default=utcnow)
    status: Mapped[CourtRequestStatus] = mapped_column(
        _enum(CourtRequestStatus, "court_request_status"), default=CourtRequestStatus.pending)
    export_id: Mapped[str | None] = mapped_column(ForeignKey("exports.id"))
    """The export that fulfilled it."""
    decided_by: Mapped[str | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime | None] = mapped_column(AwareDateTime())
    reason: Mapped[str | None] = mapped_column(Text)
    """Why it was declined."""
