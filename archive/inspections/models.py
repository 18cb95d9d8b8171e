"""The inspections table: one row per requested remote online inspection."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from archive.models import AwareDateTime, Base, _enum, new_id, utcnow


class InspectionStatus(str, enum.Enum):
    queued = "queued"
    capturing = "capturing"
    sealing = "sealing"
    done = "done"
    failed = "failed"


class Inspection(Base):
    """A remote inspection of ``url`` for a case by the capture workstation ``device_id``.

    ``cookies`` holds the login session the officer supplied, only until the capture has
    used it (then it is emptied; the ledger names the cookies, never their values).
    """

    __tablename__ = "inspections"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    requested_by: Mapped[str] = mapped_column(ForeignKey("users.id"))
    url: Mapped[str] = mapped_column(Text)
    device_id: Mapped[str] = mapped_column(String(200))
    seconds: Mapped[int] = mapped_column()
    note: Mapped[str | None] = mapped_column(Text)
    mode: Mapped[str] = mapped_column(String(16), default="page")
    """``page`` (a browser session) or ``stream`` (an HLS / HTTP-FLV livestream)."""
    cookies: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    status: Mapped[InspectionStatus] = mapped_column(_enum(InspectionStatus, "inspection_status"),
                                                     default=InspectionStatus.queued)
    error: Mapped[str | None] = mapped_column(Text)
    item_id: Mapped[str | None] = mapped_column(ForeignKey("evidence_items.id"))
    """The WACZ item (parent of the screenshots, recording and environment)."""
    record_item_id: Mapped[str | None] = mapped_column(ForeignKey("evidence_items.id"))
    """The sealed inspection record PDF (远程勘验笔录)."""
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(AwareDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(AwareDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(AwareDateTime())
