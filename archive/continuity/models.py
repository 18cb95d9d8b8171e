"""Continuity's database models: devices and their clocks, enforcement actions, gaps, analysis state."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from archive.models import AwareDateTime, Base, _enum, new_id, utcnow


class Device(Base):
    """A recording device (body camera, interview room) and its clock offset.

    ``clock_offset_seconds`` = S means the device clock runs S seconds ahead of true
    time: true time = device time - S.
    """

    __tablename__ = "devices"
    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    clock_offset_seconds: Mapped[float] = mapped_column(default=0.0)
    offset_source: Mapped[str] = mapped_column(String(40), default="declared")
    """``declared`` by an officer or ``measured`` at docking."""
    description: Mapped[str | None] = mapped_column(String(500))
    updated_at: Mapped[datetime] = mapped_column(AwareDateTime(), default=utcnow)
    updated_by: Mapped[str | None] = mapped_column(ForeignKey("users.id"))


class EnforcementAction(Base):
    """An enforcement step of a case whose declared window must be fully recorded."""

    __tablename__ = "enforcement_actions"
    __table_args__ = (CheckConstraint("window_end IS NULL OR window_end > window_start", name="window_order"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    kind: Mapped[str] = mapped_column(String(60))
    window_start: Mapped[datetime] = mapped_column(AwareDateTime())
    window_end: Mapped[datetime | None] = mapped_column(AwareDateTime())
    """Declared end; None when the signing of ``record_item_id`` closes the window."""
    record_item_id: Mapped[str | None] = mapped_column(ForeignKey("evidence_items.id"))
    """The action's record (e.g. an interview's record): its signing time ends the window."""
    devices: Mapped[list[str]] = mapped_column(JSON, default=list)
    description: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(AwareDateTime(), default=utcnow)


class GapStatus(str, enum.Enum):
    open = "open"
    explained = "explained"
    accepted = "accepted"
    rejected = "rejected"


class Gap(Base):
    """A gap in continuous recording found by continuity analysis.

    ``key`` is stable across re-analysis, so explanations and reviews stay attached;
    a gap that a later analysis no longer finds is kept with ``current`` false.
    """

    __tablename__ = "gaps"
    __table_args__ = (UniqueConstraint("case_id", "key", name="gap_key_per_case"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    key: Mapped[str] = mapped_column(String(64))
    level: Mapped[str] = mapped_column(String(32))
    device: Mapped[str | None] = mapped_column(String(200))
    item_id: Mapped[str | None] = mapped_column(String(36))
    previous_item_id: Mapped[str | None] = mapped_column(String(36))
    action_id: Mapped[str | None] = mapped_column(String(36))
    start: Mapped[datetime] = mapped_column(AwareDateTime())
    end: Mapped[datetime] = mapped_column(AwareDateTime())
    duration_seconds: Mapped[float]
    cause: Mapped[str] = mapped_column(Text)
    current: Mapped[bool] = mapped_column(default=True)
    status: Mapped[GapStatus] = mapped_column(_enum(GapStatus, "gap_status"), default=GapStatus.open)
    explanation: Mapped[str | None] = mapped_column(Text)
    explained_by: Mapped[str | None] = mapped_column(ForeignKey("users.id"))
    explained_at: Mapped[datetime | None] = mapped_column(AwareDateTime())
    review_comment: Mapped[str | None] = mapped_column(Text)
    reviewed_by: Mapped[str | None] = mapped_column(ForeignKey("users.id"))
    reviewed_at: Mapped[datetime | None] = mapped_column(AwareDateTime())
    found_at: Mapped[datetime] = mapped_column(AwareDateTime(), default=utcnow)


class ContinuityState(Base):
    """Per case: how many analyses were requested and which request was last answered
    (see :mod:`archive.continuity.runs`); table created by revision 0003."""

    __tablename__ = "continuity_state"
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), primary_key=True)
    requested: Mapped[int] = mapped_column(default=0)
    analysed: Mapped[int] = mapped_column(default=0)
    analysed_at: Mapped[datetime | None] = mapped_column(AwareDateTime())
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON)
