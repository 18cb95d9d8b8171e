"""A decided case's outcome: a penalty, or none (不予处罚).

The outcome is recorded by the case's unit (officers) or an administrator once the case
reached its decision (stages ``decision``, ``service`` and ``enforcement``); it may be
recorded again, with a reason, until the case closes. Each recording is a custody entry.
A withdrawn, terminated or referred case's outcome is that stage.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from archive.custody import ledger
from archive.db import lock_row
from archive.errors import Conflict, InvalidInput
from archive.identity.users import actor_name, load_case
from archive.models import Case, CaseStage, User, utcnow
from archive.records.common import case_row, require_reason
from archive.cases.models import CaseStageMove
from archive.records.models import CaseOutcome

OUTCOMES = ("penalty", "no_penalty")
DECIDED_STAGES = frozenset({CaseStage.decision, CaseStage.service, CaseStage.enforcement})
ENDING_OUTCOMES = frozenset({CaseStage.withdrawn, CaseStage.terminated, CaseStage.referred})
"""Stages that are themselves the outcome of a case."""


def outcome_of(stage: CaseStage, recorded: str | None) -> str:
    """The outcome a case shows at ``stage`` with ``recorded`` (None: nothing recorded yet):
    the stage for withdrawn, terminated and referred cases, else what was recorded, else
    ``undecided``."""
    if stage in ENDING_OUTCOMES:
        return stage.value
    return recorded or "undecided"


def ending_move(session: Session, *, case_id: str) -> CaseStageMove | None:
    """The move that ended the case as its outcome (into withdrawn, terminated or referred),
    when the case is still there or was closed from there; None otherwise (a case reopened
    since has no such outcome any more)."""
    ending = None
    for move in session.execute(select(CaseStageMove).where(CaseStageMove.case_id == case_id)
                                .order_by(CaseStageMove.at, CaseStageMove.ledger_seq)).scalars():
        if move.to_stage in ENDING_OUTCOMES:
            ending = move
        elif move.to_stage != CaseStage.closed:
            ending = None
    return ending


def record_outcome(session: Session, *, user: User, case_id: str, outcome: str, reason: str) -> CaseOutcome:
    """Record the outcome of a decided case (422 ``invalid_outcome``; 409
    ``case_not_decided`` before the decision or once the case has ended)."""
    reason = require_reason(reason)
    if outcome not in OUTCOMES:
        raise InvalidInput(f"outcome must be one of {list(OUTCOMES)}", code="invalid_outcome")
    case = load_case(session, user=user, case_id=case_id, write=True)
    lock_row(session, Case, case.id)
    if case.stage not in DECIDED_STAGES:
        raise Conflict(
            f"case {case.case_number} is at stage {case.stage.value}; an outcome is recorded at "
            f"{', '.join(sorted(s.value for s in DECIDED_STAGES))}",
            code="case_not_decided",
        )
    row = case_row(session, CaseOutcome, case.id)
    previous = row.outcome
    row.outcome, row.reason, row.recorded_by, row.recorded_at = outcome, reason, user.id, utcnow()
    session.flush()
    ledger.append(
        session, actor=actor_name(user), action="case_outcome_recorded", case_id=case.id,
        details={"outcome": outcome, "previous": previous, "reason": reason, "stage": case.stage.value},
    )
    return row
