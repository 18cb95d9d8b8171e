"""The figures the corps reports every year, for one year in the corps' time zone.

Each figure counts what happened in the year (from 1 January 00:00 to the next, local
time; a year still running counts up to now):

* ``cases_filed``: cases filed in the year; ``by_stage`` and ``by_outcome``: those cases by
  the stage they stood in, and their outcome, at the end of the year;
* ``cases_ended``: cases that entered a final stage in the year, by that stage;
* ``reviews``: legal reviews recorded in the year (by checkpoint), and for each case closed
  in the year its reviews and approving reviews, with the closed cases that have fewer
  than three approving reviews;
* ``collective_discussion``: cases sent to collective discussion in the year (a review
  with discussion minutes, or a move into the ``discussion`` stage);
* ``closed_without_penalty``: cases closed in the year whose outcome is ``no_penalty``;
* ``average_days_per_stage``: stays in a stage that ended in the year, averaged per stage;
* ``gaps``: recording gaps found in the year (still current), explained (an explanation
  was given), accepted, rejected and still open, also by level.

Reviewers see their unit's figures, administrators any unit's or all units'.
"""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from archive.cases.models import LegalReview, ReviewCheckpoint
from archive.continuity.models import Gap, GapStatus
from archive.errors import Forbidden, InvalidInput, NotFound
from archive.identity.users import find_unit, require_role, same_unit
from archive.models import Case, CaseStage, Role, User, utcnow
from archive.records.common import FINAL_STAGES, year_start
from archive.records.history import stage_histories
from archive.records.models import CaseOutcome
from archive.records.outcomes import outcome_of
from archive.settings import Settings

FIGURE_READERS = {Role.reviewer, Role.admin}
OUTCOME_KEYS = ("penalty", "no_penalty", "withdrawn", "terminated", "referred", "undecided")


@dataclass(frozen=True)
class CaseReviews:
    """A case closed in the year and its legal reviews (recorded by the end of the year)."""

    case_number: str
    reviews: int
    approving: int


@dataclass(frozen=True)
class CaseList:
    """How many cases, and which (by case number)."""

    count: int
    cases: list[str]


@dataclass(frozen=True)
class StageTime:
    stays: int
    """Stays in the stage that ended in the year."""
    average_days: float
    """Their average length in days, rounded to 0.01."""


@dataclass(frozen=True)
class GapCounts:
    found: int
    explained: int
    """An explanation was given (whatever its review)."""
    accepted: int
    rejected: int
    open: int
    """No explanation yet."""


@dataclass(frozen=True)
class Reviews:
    recorded: int
    by_checkpoint: dict[str, int]
    per_closed_case: list[CaseReviews]
    average_per_closed_case: float
    fewer_than_three_approving: CaseList


@dataclass(frozen=True)
class Figures:
    """One year's figures of one unit (or of all units: ``unit`` None)."""

    year: int
    time_zone: str
    unit: str | None
    start: datetime
    end: datetime
    """Counted up to here (the end of the year, or now while it runs)."""
    cases_filed: int
    by_stage: dict[str, int]
    by_outcome: dict[str, int]
    cases_ended: dict[str, int]
    reviews: Reviews
    collective_discussion: CaseList
    closed_without_penalty: CaseList
    average_days_per_stage: dict[str, StageTime]
    gaps: GapCounts
    gaps_by_level: dict[str, GapCounts]


def yearly_figures(
    session: Session, *, settings: Settings, user: User, year: int, unit: str | None = None,
    now: datetime | None = None,
) -> Figures:
    """The figures of ``year`` for the caller's unit (reviewers) or ``unit`` / all units (admins)."""
    require_role(user, FIGURE_READERS, doing="read the yearly figures")
    if year > 9998:  # its end, 1 January of the next year, must be a date too
        raise InvalidInput(f"year {year} is out of range (1971-9998)", code="invalid_year")
    start, end = year_start(year, settings.time_zone), year_start(year + 1, settings.time_zone)
    end = min(end, now or utcnow())
    unit_id, unit = _unit_scope(session, user=user, unit=unit)
    query = select(Case).where(Case.created_at < end)
    if unit_id is not None:
        query = query.where(Case.unit_id == unit_id)
    cases = {c.id: c for c in session.execute(query).scalars().unique()}
    histories = stage_histories(session, cases.values())
    # A number is unique within its unit only: figures of every unit name the unit too.
    number = {cid: c.case_number if unit_id is not None else f"{c.case_number} ({c.unit.name})"
              for cid, c in cases.items()}

    def within(moment: datetime | None) -> bool:
        return moment is not None and start <= moment < end

    filed = [cid for cid, c in cases.items() if within(c.created_at)]
    outcomes = _outcomes(session, cases, end)
    by_stage = Counter(histories[cid].stage_at(end).value for cid in filed)
    by_outcome = Counter(outcome_of(histories[cid].stage_at(end), outcomes.get(cid)) for cid in filed)
    ended: Counter[str] = Counter()
    closed: list[str] = []
    for cid, history in histories.items():
        for at, _from, to in history.moves:
            if to in FINAL_STAGES and within(at):
                ended[to.value] += 1
                if to == CaseStage.closed:
                    closed.append(cid)
    closed = sorted(set(closed), key=number.get)

    reviews = list(session.execute(
        select(LegalReview.case_id, LegalReview.checkpoint, LegalReview.decision, LegalReview.discussion_minutes,
               LegalReview.created_at)
        .where(LegalReview.case_id.in_(cases), LegalReview.created_at < end)
    )) if cases else []
    per_case: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    by_checkpoint: Counter[str] = Counter()
    discussed = set()
    for case_id, checkpoint, decision, minutes, created_at in reviews:
        per_case[case_id][0] += 1
        per_case[case_id][1] += decision == "approve"
        if within(created_at):
            by_checkpoint[checkpoint.value] += 1
            if minutes and minutes.strip():
                discussed.add(case_id)
    for cid, history in histories.items():
        if any(within(at) for at in history.moved_into({CaseStage.discussion})):
            discussed.add(cid)
    closed_reviews = [CaseReviews(number[cid], *per_case[cid]) for cid in closed]
    few = [r.case_number for r in closed_reviews if r.approving < 3]
    no_penalty = [number[cid] for cid in closed if outcomes.get(cid) == "no_penalty"]

    stays: dict[str, list[float]] = defaultdict(list)
    for history in histories.values():
        for stay in history.stays():
            if within(stay.end):
                stays[stay.stage.value].append((stay.end - stay.start).total_seconds() / 86400)
    gaps = _gaps(session, list(cases), start, end)
    return Figures(
        year=year, time_zone=settings.time_zone, unit=unit, start=start, end=end,
        cases_filed=len(filed),
        by_stage={s.value: by_stage[s.value] for s in CaseStage},
        by_outcome={k: by_outcome[k] for k in OUTCOME_KEYS},
        cases_ended={s.value: ended[s.value] for s in CaseStage if s in FINAL_STAGES},
        reviews=Reviews(
            recorded=sum(by_checkpoint.values()),
            by_checkpoint={c.value: by_checkpoint[c.value] for c in ReviewCheckpoint},
            per_closed_case=closed_reviews,
            average_per_closed_case=round(sum(r.reviews for r in closed_reviews) / len(closed_reviews), 2)
            if closed_reviews else 0.0,
            fewer_than_three_approving=CaseList(len(few), few),
        ),
        collective_discussion=CaseList(len(discussed), sorted(number[c] for c in discussed)),
        closed_without_penalty=CaseList(len(no_penalty), no_penalty),
        average_days_per_stage={
            s.value: StageTime(len(stays[s.value]), round(sum(stays[s.value]) / len(stays[s.value]), 2))
            for s in CaseStage if stays[s.value]
        },
        gaps=_count_gaps(gaps),
        gaps_by_level={level: _count_gaps([g for g in gaps if g[0] == level]) for level in sorted({g[0] for g in gaps})},
    )


def _unit_scope(session: Session, *, user: User, unit: str | None) -> tuple[str | None, str | None]:
    """The id and name of the unit the figures cover ((None, None): all units, for administrators)."""
    if user.role != Role.admin:
        if unit is not None and same_unit(unit) != same_unit(user.unit.name):
            raise Forbidden("reviewers read their own unit's figures only", code="forbidden_unit")
        return user.unit_id, user.unit.name
    if unit is None:
        return None, None
    found = find_unit(session, unit)
    if found is None:
        raise NotFound(f"no unit {unit!r}", code="unit_not_found")
    return found.id, found.name


def _outcomes(session: Session, cases: dict[str, Case], end: datetime) -> dict[str, str]:
    if not cases:
        return {}
    query = select(CaseOutcome.case_id, CaseOutcome.outcome).where(
        CaseOutcome.case_id.in_(cases), CaseOutcome.recorded_at < end
    )
    return dict(session.execute(query).all())


def _gaps(session: Session, case_ids: list[str], start: datetime, end: datetime) -> list[tuple[str, GapStatus]]:
    if not case_ids:
        return []
    query = select(Gap.level, Gap.status).where(
        Gap.case_id.in_(case_ids), Gap.current.is_(True), Gap.found_at >= start, Gap.found_at < end
    )
    return [(level, status) for level, status in session.execute(query)]


def _count_gaps(gaps: list[tuple[str, GapStatus]]) -> GapCounts:
    status = Counter(s for _level, s in gaps)
    return GapCounts(
        found=len(gaps), explained=len(gaps) - status[GapStatus.open], accepted=status[GapStatus.accepted],
        rejected=status[GapStatus.rejected], open=status[GapStatus.open],
    )


CSV_HEADER = ("figure", "key", "value", "说明")


def csv_rows(figures: Figures) -> Iterator[tuple[str, str, object, str]]:
    """The figures as (figure, key, value, Chinese label) rows, in the order of the JSON."""
    yield "year", "", figures.year, "年度"
    yield "unit", "", figures.unit or "", "单位（空：全部）"
    yield "cases_filed", "", figures.cases_filed, "立案数"
    for key, value in figures.by_stage.items():
        yield "by_stage", key, value, "立案案件年末所处阶段"
    for key, value in figures.by_outcome.items():
        yield "by_outcome", key, value, "立案案件处理结果"
    for key, value in figures.cases_ended.items():
        yield "cases_ended", key, value, "本年办结（按结束方式）"
    yield "reviews_recorded", "", figures.reviews.recorded, "本年法制审核次数"
    for key, value in figures.reviews.by_checkpoint.items():
        yield "reviews_by_checkpoint", key, value, "法制审核次数（按审核节点）"
    for r in figures.reviews.per_closed_case:
        yield "reviews_per_closed_case", r.case_number, r.reviews, "结案案件审核次数"
        yield "approving_reviews_per_closed_case", r.case_number, r.approving, "结案案件通过审核次数"
    yield "average_reviews_per_closed_case", "", figures.reviews.average_per_closed_case, "结案案件平均审核次数"
    yield from _case_list("fewer_than_three_approving", figures.reviews.fewer_than_three_approving,
                          "通过审核少于三次的结案案件")
    yield from _case_list("collective_discussion", figures.collective_discussion, "集体讨论案件")
    yield from _case_list("closed_without_penalty", figures.closed_without_penalty, "不予处罚结案案件")
    for key, time in figures.average_days_per_stage.items():
        yield "average_days_per_stage", key, time.average_days, "各阶段平均天数"
        yield "stage_stays", key, time.stays, "各阶段已结束的停留次数"
    for level, counts in [("", figures.gaps), *figures.gaps_by_level.items()]:
        for name, label in (("found", "发现"), ("explained", "已说明"), ("accepted", "说明已接受"),
                            ("rejected", "说明被驳回"), ("open", "未说明")):
            yield f"gaps_{name}", level, getattr(counts, name), f"录像中断{label}（项目为级别，空为合计）"


def _case_list(name: str, cases: CaseList, label: str) -> Iterator[tuple[str, str, object, str]]:
    yield name, "", cases.count, label
    for case_number in cases.cases:
        yield f"{name}_case", case_number, 1, label


def to_csv(figures: Figures) -> bytes:
    """The CSV download: UTF-8 with a byte-order mark (so Excel reads the Chinese), CRLF rows."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)
    writer.writerows(csv_rows(figures))
    return "\ufeff".encode() + out.getvalue().encode("utf-8")
