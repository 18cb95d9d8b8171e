"""Legal holds: placed and lifted by an administrator only, each with a reason and a
custody entry, and carried out by the object store on the case's whole vault (an S3
object legal hold on every version, originals and derived alike; locally a marker the
store honours). While a case is held its store removes nothing, whatever the retention.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import select
from sqlalchemy.orm import Session

from archive.custody import ledger
from archive.db import lock_row
from archive.errors import Conflict
from archive.identity.users import actor_name, load_case, require_role
from archive.models import Case, User, utcnow
from archive.records.common import ADMINS, require_reason
from archive.records.models import LegalHold
from archive.storage import ObjectStore


def active_holds(session: Session, case_ids: Collection[str]) -> dict[str, LegalHold]:
    """The hold in force on each of these cases (cases without one are left out)."""
    if not case_ids:
        return {}
    query = select(LegalHold).where(LegalHold.case_id.in_(case_ids), LegalHold.released_at.is_(None))
    return {hold.case_id: hold for hold in session.execute(query).scalars()}


def case_holds(session: Session, *, user: User, case_id: str) -> list[LegalHold]:
    """Every hold a case ever had, oldest first (anyone who may read the case)."""
    case = load_case(session, user=user, case_id=case_id)
    query = select(LegalHold).where(LegalHold.case_id == case.id).order_by(LegalHold.placed_at)
    return list(session.execute(query).scalars())


def place_hold(session: Session, *, store: ObjectStore, user: User, case_id: str, reason: str) -> LegalHold:
    """Put a case under legal hold (administrators only, 403 for anyone else).

    The store holds the vault first; should the transaction then fail, the vault stays held
    with no record of it: too much protection, never too little, and placing again is
    harmless. 409 ``legal_hold_exists`` when the case is already held.
    """
    require_role(user, ADMINS, doing="place legal holds")
    reason = require_reason(reason)
    case = load_case(session, user=user, case_id=case_id)
    lock_row(session, Case, case.id)
    if active_holds(session, [case.id]):
        raise Conflict(f"case {case.case_number} is already under legal hold", code="legal_hold_exists")
    objects = store.set_legal_hold(case.vault.name, on=True)
    hold = LegalHold(case_id=case.id, reason=reason, placed_by=user.id, placed_at=utcnow(), objects=objects)
    session.add(hold)
    session.flush()
    ledger.append(
        session, actor=actor_name(user), action="legal_hold_placed", case_id=case.id,
        details={"hold": hold.id, "reason": reason, "vault": case.vault.name, "objects": objects},
    )
    return hold


def release_hold(session: Session, *, store: ObjectStore, user: User, case_id: str, reason: str) -> LegalHold:
    """Lift a case's legal hold (administrators only, 403 for anyone else), with a reason.

    409 ``no_legal_hold`` when the case is not held. The store lifts the hold on every
    object version of the vault; their COMPLIANCE retention stays as it was.
    """
    require_role(user, ADMINS, doing="lift legal holds")
    reason = require_reason(reason)
    case = load_case(session, user=user, case_id=case_id)
    lock_row(session, Case, case.id)
    hold = active_holds(session, [case.id]).get(case.id)
    if hold is None:
        raise Conflict(f"case {case.case_number} is not under legal hold", code="no_legal_hold")
    objects = store.set_legal_hold(case.vault.name, on=False)
    hold.released_by, hold.released_at, hold.release_reason = user.id, utcnow(), reason
    session.flush()
    ledger.append(
        session, actor=actor_name(user), action="legal_hold_lifted", case_id=case.id,
        details={"hold": hold.id, "reason": reason, "vault": case.vault.name, "objects": objects},
    )
    return hold
