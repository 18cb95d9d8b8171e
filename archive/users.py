"""Units, users and their bearer tokens, and who may do what.

Tokens are random, shown once, and stored only as their SHA-256, so a copy of the
database does not let anyone act as a user.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from archive import ledger
from archive.db import insert_ignoring_duplicates, unique_violations_as_conflicts
from archive.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthenticated
from archive.models import Case, Role, Unit, User, new_id

TOKEN_PREFIX = "ev_"


def hash_token(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def actor_name(user: User) -> str:
    """How a user is named in the custody ledger."""
    return f"user:{user.name}"


def _find_or_add_unit(session: Session, name: str) -> tuple[Unit, bool]:
    name = name.strip()
    if not name:
        raise InvalidInput("unit name is empty", code="invalid_unit")
    # An upsert: two users added at once to a new unit both land in the one unit.
    created = insert_ignoring_duplicates(session, Unit, [{"id": new_id(), "name": name}])
    return session.execute(select(Unit).where(Unit.name == name)).scalar_one(), bool(created)


def _record_unit(session: Session, unit: Unit) -> None:
    ledger.append(session, actor="system:admin", action="unit_created", details={"unit": unit.name, "unit_id": unit.id})


def add_user(session: Session, *, name: str, unit: str, role: Role | str, actor: str = "system:admin") -> tuple[User, str]:
    """Create a user in ``unit`` (created if needed) and return it with its new token."""
    try:
        role = Role(role)
    except ValueError as exc:
        raise InvalidInput(f"unknown role {role!r}; one of {[r.value for r in Role]}", code="invalid_role") from exc
    if session.execute(select(User).where(User.name == name)).scalar_one_or_none():
        raise Conflict(f"a user called {name!r} already exists", code="user_exists")
    # Both rows go in before the first custody entry: the ledger lock is taken last, so a
    # concurrent add of the same name fails on its unique key instead of deadlocking.
    unit_row, unit_created = _find_or_add_unit(session, unit)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    user = User(name=name, role=role, unit_id=unit_row.id, token_hash=hash_token(token))
    session.add(user)
    with unique_violations_as_conflicts():  # a concurrent add of the same name won
        session.flush()
    if unit_created:
        _record_unit(session, unit_row)
    ledger.append(
        session, actor=actor, action="user_created",
        details={"user": name, "user_id": user.id, "role": role.value, "unit": unit_row.name},
    )
    return user, token


def authenticate(session: Session, *, token: str | None) -> User:
    """The active user holding ``token``; Unauthenticated otherwise."""
    if not token:
        raise Unauthenticated("a bearer token is required", code="missing_token")
    digest = hash_token(token)
    user = session.execute(select(User).where(User.token_hash == digest)).scalar_one_or_none()
    # Compare again in constant time so the lookup's timing says nothing about near misses.
    if user is None or not hmac.compare_digest(user.token_hash, digest) or not user.active:
        raise Unauthenticated("the bearer token is not valid", code="invalid_token")
    return user


# Who may do what. Court users reach evidence only through exports shared with them.
CASE_READERS = {Role.officer, Role.reviewer, Role.admin}
CASE_WRITERS = {Role.officer, Role.admin}


def require_role(user: User, allowed: set[Role], *, doing: str) -> None:
    """Raise Forbidden unless the user's role is in ``allowed``."""
    if user.role not in allowed:
        raise Forbidden(f"role {user.role.value} may not {doing}", code="forbidden_role")


def can_see_case(user: User, case: Case) -> bool:
    """Admins see every case; others only their own unit's."""
    return user.role == Role.admin or user.unit_id == case.unit_id


def load_case(session: Session, *, user: User, case_id: str, write: bool = False) -> Case:
    """The case, if the user may see it (and write to it when ``write``).

    Another unit's case answers exactly like an unknown one, so case ids cannot be probed.
    """
    require_role(user, CASE_WRITERS if write else CASE_READERS, doing="change cases" if write else "read cases")
    case = session.get(Case, case_id)
    if case is None or not can_see_case(user, case):
        raise NotFound(f"no case {case_id} visible to you", code="case_not_found")
    return case
