"""Retention classes of case files (configured in settings) and the class of each case.

A class keeps a case permanently or for a number of years after it ends; the years count
from 1 January of the year after the case ended, in the corps' time zone, as archives
count them. A case no administrator has classed has the default class (permanent unless
configured otherwise). Originals keep their COMPLIANCE retention in the store whatever
the class: the class only says when disposal would be allowed, and the service never
disposes of anything.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, exists, select
from sqlalchemy.orm import Session

from archive.custody import ledger
from archive.db import lock_row
from archive.errors import InvalidInput, NotFound
from archive.identity.users import CASE_READERS, actor_name, load_case, require_role, sees_unit
from archive.models import Case, Unit, User, Vault, utcnow
from archive.records.common import ADMINS, case_row, require_reason
from archive.records.models import CaseRetention, LegalHold
from archive.settings import Settings


@dataclass(frozen=True)
class RetentionClass:
    """A configured class: ``years`` kept after the case ends, None for permanent."""

    name: str
    years: int | None

    @property
    def permanent(self) -> bool:
        return self.years is None


def retention_classes(settings: Settings) -> list[RetentionClass]:
    """Every configured class, permanent first, then by years, longest first."""
    classes = [RetentionClass(name, years) for name, years in settings.retention_classes.items()]
    return sorted(classes, key=lambda c: (c.years is not None, -(c.years or 0), c.name))


def classes_of(session: Session, *, settings: Settings, case_ids: Collection[str]) -> dict[str, str]:
    """The retention class name of each case (the default where none was set)."""
    rows = dict(session.execute(
        select(CaseRetention.case_id, CaseRetention.retention_class).where(CaseRetention.case_id.in_(case_ids))
    ).all()) if case_ids else {}
    return {case_id: rows.get(case_id, settings.retention_default_class) for case_id in case_ids}


@dataclass(frozen=True)
class Standing:
    """Where a case stands as a record: the legal hold in force (None when there is none) and
    its retention class."""

    hold: LegalHold | None
    retention_class: str


_HOLD_IN_FORCE = and_(LegalHold.case_id == Case.id, LegalHold.released_at.is_(None))
"""A legal hold of the case (``Case``) that has not been released."""


def _class_of(retention_class: str | None, settings: Settings) -> str:
    """A case's retention class: the one set for it, else the settings' default."""
    return retention_class or settings.retention_default_class


def standing(session: Session, *, settings: Settings, case_ids: Collection[str]) -> dict[str, Standing]:
    """The :class:`Standing` of each of these cases, in one query (a case read asks it every
    time: one round trip rather than one for holds and one for classes)."""
    if not case_ids:
        return {}
    rows = session.execute(
        select(Case.id, CaseRetention.retention_class, LegalHold).select_from(Case)
        .outerjoin(CaseRetention, CaseRetention.case_id == Case.id).outerjoin(LegalHold, _HOLD_IN_FORCE)
        .where(Case.id.in_(case_ids))
    ).all()
    return {case_id: Standing(hold, _class_of(retention_class, settings)) for case_id, retention_class, hold in rows}


_CASE_READ = (
    select(Case.id, Case.case_number, Case.title, Unit.name.label("unit"), Case.unit_id, Case.status, Case.stage,
           Vault.name.label("vault"), Case.created_at, Case.flags, CaseRetention.retention_class,
           exists().where(_HOLD_IN_FORCE).label("legal_hold"))
    .join(Unit, Unit.id == Case.unit_id).join(Vault, Vault.case_id == Case.id)
    .outerjoin(CaseRetention, CaseRetention.case_id == Case.id)
    .where(Case.id == bindparam("case_id")))
"""A case with its unit's and vault's names and its standing, in one statement built once (a
case read asks it every time; the case as ORM objects, then its standing, were two round trips
and most of the read's own CPU)."""


def readable_case(session: Session, *, user: User, settings: Settings, case_id: str) -> dict[str, Any]:
    """The case as rows give it, with its unit's and vault's names, ``legal_hold`` (one in
    force) and ``retention_class`` (the default when none was set), if the user may read it:
    another unit's case is not found, as an unknown one (:func:`load_case`)."""
    require_role(user, CASE_READERS, doing="read cases")
    row = session.execute(_CASE_READ, {"case_id": case_id}).mappings().first()
    if row is None or not sees_unit(user, row["unit_id"]):
        raise NotFound(f"no case {case_id} visible to you", code="case_not_found")
    return {**row, "retention_class": _class_of(row["retention_class"], settings)}


def set_retention_class(
    session: Session, *, settings: Settings, user: User, case_id: str, retention_class: str, reason: str,
) -> CaseRetention:
    """Give a case a retention class (administrators only), with a reason; a custody entry.

    422 ``unknown_retention_class`` for a class the settings do not name.
    """
    require_role(user, ADMINS, doing="set retention classes")
    reason = require_reason(reason)
    if retention_class not in settings.retention_classes:
        raise InvalidInput(
            f"no retention class {retention_class!r}; one of {sorted(settings.retention_classes)}",
            code="unknown_retention_class",
        )
    case = load_case(session, user=user, case_id=case_id)
    lock_row(session, Case, case.id)
    row = case_row(session, CaseRetention, case.id)
    previous = row.retention_class or settings.retention_default_class
    row.retention_class, row.reason, row.set_by, row.set_at = retention_class, reason, user.id, utcnow()
    session.flush()
    ledger.append(
        session, actor=actor_name(user), action="retention_class_set", case_id=case.id,
        details={
            "retention_class": retention_class, "years": settings.retention_classes[retention_class],
            "previous": previous, "reason": reason,
        },
    )
    return row
