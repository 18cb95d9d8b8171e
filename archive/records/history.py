"""A case's stages over time, from its stage moves: where it stood at a moment, when it
ended, and how long it stayed in each stage."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from archive.cases.models import CaseStageMove
from archive.models import Case, CaseStage
from archive.records.common import FINAL_STAGES


@dataclass(frozen=True)
class Stay:
    """A stretch of a case's life in one stage: from ``start`` up to ``end`` (None: still there)."""

    stage: CaseStage
    start: datetime
    end: datetime | None


@dataclass(frozen=True)
class StageHistory:
    """The stage moves of one case, oldest first."""

    case_id: str
    filed_at: datetime
    stage: CaseStage
    """The stage now."""
    moves: tuple[tuple[datetime, CaseStage, CaseStage], ...]
    """(at, from, to) of each move."""

    def stage_at(self, moment: datetime) -> CaseStage:
        """The stage the case stood in just before ``moment``."""
        stage = self.moves[0][1] if self.moves else self.stage
        for at, _from, to in self.moves:
            if at >= moment:
                break
            stage = to
        return stage

    def moved_into(self, stages: Collection[CaseStage]) -> list[datetime]:
        """When the case moved into any of ``stages``."""
        return [at for at, _from, to in self.moves if to in stages]

    @property
    def ended_at(self) -> datetime | None:
        """When the case entered the final stage it is in now (None while it runs, or for a
        case that ended before stage moves were recorded)."""
        if self.stage not in FINAL_STAGES:
            return None
        entered = self.moved_into({self.stage})
        return entered[-1] if entered else None

    def stays(self) -> list[Stay]:
        """Every stay, the first one from filing."""
        stays, stage, start = [], self.moves[0][1] if self.moves else self.stage, self.filed_at
        for at, _from, to in self.moves:
            stays.append(Stay(stage, start, at))
            stage, start = to, at
        stays.append(Stay(stage, start, None))
        return stays


def stage_histories(session: Session, cases: Collection[Case]) -> dict[str, StageHistory]:
    """The stage history of each case."""
    moves: dict[str, list[tuple[datetime, CaseStage, CaseStage]]] = defaultdict(list)
    ids = [case.id for case in cases]
    if ids:
        query = (
            select(CaseStageMove.case_id, CaseStageMove.at, CaseStageMove.from_stage, CaseStageMove.to_stage)
            .where(CaseStageMove.case_id.in_(ids))
            .order_by(CaseStageMove.at, CaseStageMove.ledger_seq)
        )
        for case_id, at, from_stage, to_stage in session.execute(query):
            moves[case_id].append((at, from_stage, to_stage))
    return {
        case.id: StageHistory(case.id, case.created_at, case.stage, tuple(moves[case.id])) for case in cases
    }
