"""The disposal-eligibility report: which cases the retention policy would allow to be
disposed of, and why each other case may not be. A report only: the service never
deletes a case, an item or an object.

A case is eligible when it has ended (closed, withdrawn, terminated or referred), its
retention class is not permanent, its years have run (counted from 1 January of the year
after it ended, in the corps' time zone), and it is not under legal hold. The store's own
COMPLIANCE retention on the originals is shown beside it (``store_retention_until``): until
then the store itself would refuse to delete them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from archive.identity.users import require_role
from archive.models import Case, EvidenceItem, Unit, User, utcnow
from archive.records.common import ADMINS, FINAL_STAGES, local_year, year_start
from archive.records.history import stage_histories
from archive.records.holds import active_holds
from archive.records.retention import RetentionClass, classes_of, retention_classes
from archive.settings import Settings
from archive.timefmt import check_zone


@dataclass(frozen=True)
class Reason:
    """Why a case is not eligible (or a note on one that is)."""

    code: str
    """``case_open``, ``retention_permanent``, ``retention_running``, ``legal_hold``,
    ``retention_class_unknown``, ``end_date_unknown``; notes: ``store_retention_running``."""
    message: str


@dataclass(frozen=True)
class DisposalEntry:
    """One case in the report."""

    case_id: str
    case_number: str
    unit: str
    stage: str
    retention_class: str
    retention_years: int | None
    ended_at: datetime | None
    """When the case entered the final stage it is in (None while it runs)."""
    retain_until: datetime | None
    """The moment its class allows disposal (None: permanent, unknown, or still running)."""
    legal_hold: bool
    store_retention_until: datetime | None
    """The latest COMPLIANCE retention on its originals."""
    eligible: bool
    reasons: list[Reason] = field(default_factory=list)
    """Why it is not eligible (empty when eligible)."""
    notes: list[Reason] = field(default_factory=list)


@dataclass(frozen=True)
class DisposalReport:
    """The report: the policy it applied, then the eligible and the other cases."""

    generated_at: datetime
    time_zone: str
    default_class: str
    classes: list[RetentionClass]
    eligible: list[DisposalEntry]
    not_eligible: list[DisposalEntry]


def disposal_report(session: Session, *, settings: Settings, user: User, now: datetime | None = None) -> DisposalReport:
    """Judge every case against the retention policy (administrators only). Changes nothing."""
    require_role(user, ADMINS, doing="see the disposal report")
    now = now or utcnow()
    # By number, then unit: a number is unique within its unit only.
    query = select(Case).join(Unit, Unit.id == Case.unit_id).order_by(Case.case_number, Unit.name)
    cases = list(session.execute(query).scalars().unique())
    ids = [c.id for c in cases]
    histories = stage_histories(session, cases)
    classes = classes_of(session, settings=settings, case_ids=ids)
    holds = active_holds(session, ids)
    store_until = dict(session.execute(
        select(EvidenceItem.case_id, func.max(EvidenceItem.retention_until)).group_by(EvidenceItem.case_id)
    ).all())
    eligible, not_eligible = [], []
    for case in cases:
        entry = _judge(
            case, settings=settings, now=now, retention_class=classes[case.id],
            ended_at=histories[case.id].ended_at, held=case.id in holds, store_until=store_until.get(case.id),
        )
        (eligible if entry.eligible else not_eligible).append(entry)
    return DisposalReport(
        generated_at=now, time_zone=settings.time_zone, default_class=settings.retention_default_class,
        classes=retention_classes(settings), eligible=eligible, not_eligible=not_eligible,
    )


def _judge(
    case: Case, *, settings: Settings, now: datetime, retention_class: str, ended_at: datetime | None,
    held: bool, store_until: datetime | None,
) -> DisposalEntry:
    reasons: list[Reason] = []
    notes: list[Reason] = []
    zone = check_zone(settings.time_zone)
    years = settings.retention_classes.get(retention_class)
    retain_until = None
    if retention_class not in settings.retention_classes:
        reasons.append(Reason("retention_class_unknown", f"retention class {retention_class!r} is not configured"))
    if case.stage not in FINAL_STAGES:
        reasons.append(Reason("case_open", f"the case is at stage {case.stage.value}; it has not ended"))
    elif ended_at is None:
        reasons.append(Reason("end_date_unknown", "the case ended before stage moves were recorded"))
    if retention_class in settings.retention_classes and years is None:
        reasons.append(Reason("retention_permanent", f"retention class {retention_class} keeps the case permanently"))
    elif years is not None and ended_at is not None and case.stage in FINAL_STAGES:
        retain_until = year_start(local_year(ended_at, settings.time_zone) + 1 + years, settings.time_zone)
        if now < retain_until:
            reasons.append(Reason(
                "retention_running",
                f"retention class {retention_class} keeps it {years} years after it ended: disposal from "
                f"{retain_until.astimezone(zone).date()}",
            ))
    if held:
        reasons.append(Reason("legal_hold", "the case is under legal hold"))
    if store_until is not None and store_until > now:
        notes.append(Reason(
            "store_retention_running",
            f"the store's COMPLIANCE retention on its originals runs until {store_until.astimezone(zone).date()}",
        ))
    return DisposalEntry(
        case_id=case.id, case_number=case.case_number, unit=case.unit.name, stage=case.stage.value,
        retention_class=retention_class, retention_years=years, ended_at=ended_at, retain_until=retain_until,
        legal_hold=held, store_retention_until=store_until, eligible=not reasons, reasons=reasons, notes=notes,
    )
