"""What records management's services share: who may act, reasons, stages that end a
case, and the year as the corps counts it."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TypeVar

from sqlalchemy.orm import Session

from archive.errors import InvalidInput
from archive.identity.users import written_text
from archive.models import CaseStage, Role
from archive.timefmt import check_zone

Row = TypeVar("Row")

ADMINS = {Role.admin}
"""Retention classes and legal holds are set by administrators only."""

FINAL_STAGES = frozenset({CaseStage.closed, CaseStage.withdrawn, CaseStage.terminated, CaseStage.referred})
"""Stages that end a case's life: its retention period runs from the move into one."""

MAX_REASON = 2000


def require_reason(reason: str | None) -> str:
    """The reason, stripped; 422 ``reason_required`` when it is empty (or nothing of it would
    show), too long, or would show otherwise than stored (:func:`written_text`)."""
    return written_text(reason, code="reason_required", what="the reason", limit=MAX_REASON)


def year_start(year: int, zone: str) -> datetime:
    """1 January of ``year``, 00:00 in the corps' time zone, as UTC."""
    if not 1971 <= year <= 9999:
        raise InvalidInput(f"year {year} is out of range (1971-9998)", code="invalid_year")
    return datetime(year, 1, 1, tzinfo=check_zone(zone)).astimezone(timezone.utc)


def local_year(moment: datetime, zone: str) -> int:
    """The year ``moment`` falls in, in the corps' time zone."""
    return moment.astimezone(check_zone(zone)).year


def case_row(session: Session, model: type[Row], case_id: str) -> Row:
    """The case's row of ``model`` (keyed by ``case_id``), added empty when it has none yet."""
    row = session.get(model, case_id)
    if row is None:
        row = model(case_id=case_id)  # type: ignore[call-arg]
        session.add(row)
    return row
