"""Records management: retention classes, legal holds, case outcomes, the disposal-eligibility
report and the yearly figures (JSON and a CSV download)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from api.deps import CurrentUser, ServicesDep, SessionDep
from api.schemas import ErrorResponse
from archive.identity.users import load_case, user_names
from archive.records import disposal, figures, holds, outcomes, retention
from archive.records.models import CaseOutcome, CaseRetention, LegalHold
from archive.settings import Settings

router = APIRouter(tags=["records"])
ERRORS = {s: {"model": ErrorResponse} for s in (401, 403, 404, 409, 422)}
Reason = Annotated[str, Field(min_length=1, max_length=2000, pattern=r"\S", description="Why (kept in the custody ledger)")]
Year = Annotated[int, Query(ge=1971, le=9998, description="Calendar year in the corps' time zone")]
UnitName = Annotated[str | None, Query(max_length=200, description="Administrators: one unit's figures (default all)")]


class ReasonBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Reason


class RetentionClassPublic(BaseModel):
    name: str
    years: int | None = Field(description="Years kept after the case ends; null: permanent")
    permanent: bool
    default: bool


class RetentionSet(BaseModel):
    model_config = ConfigDict(extra="forbid")
    retention_class: str = Field(min_length=1, max_length=40)
    reason: Reason


class CaseRetentionPublic(BaseModel):
    case_id: str
    retention_class: str
    years: int | None
    permanent: bool
    default: bool = Field(description="True when no administrator has classed the case (the default class)")
    reason: str | None
    set_by: str | None
    set_at: datetime | None

    @classmethod
    def of(cls, settings: Settings, case_id: str, row: CaseRetention | None, people: dict[str, str]) -> CaseRetentionPublic:
        name = row.retention_class if row else settings.retention_default_class
        years = settings.retention_classes.get(name)
        return cls(
            case_id=case_id, retention_class=name, years=years, permanent=name in settings.retention_classes and years is None,
            default=row is None, reason=row.reason if row else None,
            set_by=people.get(row.set_by) if row else None, set_at=row.set_at if row else None,
        )


class LegalHoldPublic(BaseModel):
    id: str
    case_id: str
    active: bool
    reason: str
    placed_by: str | None
    placed_at: datetime
    objects: int = Field(description="Object versions the store put under hold when it was placed")
    released_by: str | None
    released_at: datetime | None
    release_reason: str | None

    @classmethod
    def of(cls, hold: LegalHold, people: dict[str, str]) -> LegalHoldPublic:
        return cls(
            id=hold.id, case_id=hold.case_id, active=hold.released_at is None, reason=hold.reason,
            placed_by=people.get(hold.placed_by), placed_at=hold.placed_at, objects=hold.objects,
            released_by=people.get(hold.released_by) if hold.released_by else None, released_at=hold.released_at,
            release_reason=hold.release_reason,
        )


class OutcomeSet(BaseModel):
    model_config = ConfigDict(extra="forbid")
    outcome: Literal["penalty", "no_penalty"] = Field(description="no_penalty: 不予处罚")
    reason: Reason


class CaseOutcomePublic(BaseModel):
    case_id: str
    outcome: str
    reason: str
    recorded_by: str | None
    recorded_at: datetime

    @classmethod
    def of(cls, row: CaseOutcome, people: dict[str, str]) -> CaseOutcomePublic:
        return cls(case_id=row.case_id, outcome=row.outcome, reason=row.reason,
                   recorded_by=people.get(row.recorded_by), recorded_at=row.recorded_at)


def _hold_public(session: Session, hold: LegalHold) -> LegalHoldPublic:
    return LegalHoldPublic.of(hold, user_names(session, {hold.placed_by, hold.released_by} - {None}))


@router.get("/api/v1/retention/classes", response_model=list[RetentionClassPublic], responses=ERRORS)
def list_classes(services: ServicesDep, user: CurrentUser) -> list[RetentionClassPublic]:
    """The configured retention classes (``EVIDENCE_RETENTION_CLASSES``), permanent first."""
    default = services.settings.retention_default_class
    return [RetentionClassPublic(name=c.name, years=c.years, permanent=c.permanent, default=c.name == default)
            for c in retention.retention_classes(services.settings)]


@router.get("/api/v1/cases/{case_id}/retention", response_model=CaseRetentionPublic, responses=ERRORS)
def get_retention(case_id: str, session: SessionDep, services: ServicesDep, user: CurrentUser) -> CaseRetentionPublic:
    """The case's retention class and who set it, why and when."""
    case = load_case(session, user=user, case_id=case_id)
    row = session.get(CaseRetention, case.id)
    return CaseRetentionPublic.of(services.settings, case.id, row, user_names(session, {row.set_by} if row else set()))


@router.put("/api/v1/cases/{case_id}/retention", response_model=CaseRetentionPublic, responses=ERRORS)
def set_retention(
    case_id: str, body: RetentionSet, session: SessionDep, services: ServicesDep, user: CurrentUser,
) -> CaseRetentionPublic:
    """Give the case a retention class, with a reason (administrators only; a custody entry)."""
    row = retention.set_retention_class(
        session, settings=services.settings, user=user, case_id=case_id, retention_class=body.retention_class,
        reason=body.reason,
    )
    return CaseRetentionPublic.of(services.settings, row.case_id, row, {user.id: user.name})


@router.get("/api/v1/cases/{case_id}/holds", response_model=list[LegalHoldPublic], responses=ERRORS)
def list_holds(case_id: str, session: SessionDep, user: CurrentUser) -> list[LegalHoldPublic]:
    """Every legal hold the case had, oldest first (``active`` for the one in force)."""
    return [_hold_public(session, h) for h in holds.case_holds(session, user=user, case_id=case_id)]


@router.post("/api/v1/cases/{case_id}/hold", status_code=201, response_model=LegalHoldPublic, responses=ERRORS)
def place_hold(
    case_id: str, body: ReasonBody, session: SessionDep, services: ServicesDep, user: CurrentUser,
) -> LegalHoldPublic:
    """Put the case under legal hold, with a reason (administrators only: 403 ``forbidden_role``
    for anyone else; 409 ``legal_hold_exists``). On S3 every object version of its vault gets
    an object legal hold."""
    hold = holds.place_hold(session, store=services.store, user=user, case_id=case_id, reason=body.reason)
    return _hold_public(session, hold)


@router.post("/api/v1/cases/{case_id}/hold/release", response_model=LegalHoldPublic, responses=ERRORS)
def release_hold(
    case_id: str, body: ReasonBody, session: SessionDep, services: ServicesDep, user: CurrentUser,
) -> LegalHoldPublic:
    """Lift the case's legal hold, with a reason (administrators only; 409 ``no_legal_hold``)."""
    hold = holds.release_hold(session, store=services.store, user=user, case_id=case_id, reason=body.reason)
    return _hold_public(session, hold)


@router.get("/api/v1/cases/{case_id}/outcome", response_model=CaseOutcomePublic | None, responses=ERRORS)
def get_outcome(case_id: str, session: SessionDep, user: CurrentUser) -> CaseOutcomePublic | None:
    """The case's outcome: for a case withdrawn, terminated or referred (and closed since), that
    stage, with the move's reason, mover and time; else the outcome recorded for it (null while
    none is recorded)."""
    case = load_case(session, user=user, case_id=case_id)
    ending = outcomes.ending_move(session, case_id=case.id)
    if ending is not None:
        return CaseOutcomePublic(case_id=case.id, outcome=ending.to_stage.value, reason=ending.reason or "",
                                 recorded_by=user_names(session, {ending.actor_id}).get(ending.actor_id),
                                 recorded_at=ending.at)
    row = session.get(CaseOutcome, case.id)
    return CaseOutcomePublic.of(row, user_names(session, {row.recorded_by})) if row else None


@router.post("/api/v1/cases/{case_id}/outcome", response_model=CaseOutcomePublic, responses=ERRORS)
def set_outcome(case_id: str, body: OutcomeSet, session: SessionDep, user: CurrentUser) -> CaseOutcomePublic:
    """Record the outcome of a decided case: ``penalty`` or ``no_penalty`` (不予处罚), with a reason
    (its unit's officers or an administrator; 409 ``case_not_decided`` outside the decision,
    service and enforcement stages)."""
    row = outcomes.record_outcome(session, user=user, case_id=case_id, outcome=body.outcome, reason=body.reason)
    return CaseOutcomePublic.of(row, {user.id: user.name})


@router.get("/api/v1/retention/disposal-report", response_model=disposal.DisposalReport, responses=ERRORS)
def disposal_report(session: SessionDep, services: ServicesDep, user: CurrentUser) -> disposal.DisposalReport:
    """Which cases the retention policy would allow to be disposed of, and why the others not
    (administrators only). A report: nothing is ever deleted by the service."""
    return disposal.disposal_report(session, settings=services.settings, user=user)


@router.get("/api/v1/figures", response_model=figures.Figures, responses=ERRORS)
def yearly_figures(
    session: SessionDep, services: ServicesDep, user: CurrentUser, year: Year, unit: UnitName = None,
) -> figures.Figures:
    """The year's figures (reviewers: their unit; administrators: all units or ``unit``)."""
    return figures.yearly_figures(session, settings=services.settings, user=user, year=year, unit=unit)


@router.get(
    "/api/v1/figures.csv", responses={**ERRORS, 200: {"content": {"text/csv": {}}, "description": "UTF-8 CSV with BOM"}},
)
def yearly_figures_csv(
    session: SessionDep, services: ServicesDep, user: CurrentUser, year: Year, unit: UnitName = None,
) -> Response:
    """The same figures as a CSV download (UTF-8 with BOM for Excel; columns figure, key, value, 说明)."""
    found = figures.yearly_figures(session, settings=services.settings, user=user, year=year, unit=unit)
    return Response(
        figures.to_csv(found), media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="figures-{year}.csv"'},
    )
