"""Cases and their vaults."""

from __future__ import annotations

import re
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from archive.cases.models import CaseHandler
from archive.custody import ledger
from archive.db import hold_name, unique_violations_as_conflicts
from archive.errors import Conflict, InvalidInput
from archive.exports.access import cases_with_exports_for
from archive.models import Case, Role, Unit, User, Vault, new_id
from archive.storage import ObjectStore
from archive.evidence.filenames import refuse_nul
from archive.identity.users import (
    CASE_WRITERS, actor_name, find_unit, misleading_character, require_role, same_unit, unit_scope,
)

CASE_NUMBER = re.compile(r"^[\w\-/.()\[\] \u3000-\u9fff\uff00-\uffef]{1,100}$")
TITLE_LENGTH = 500
"""The most characters of a case's title (its column holds no more)."""


_LOOK_ALIKE = str.maketrans({
    **dict.fromkeys("\u3014\u3010\u3016", "["), **dict.fromkeys("\u3015\u3011\u3017", "]"),
    **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212", "-"),
})
"""Brackets and dashes NFKC leaves apart that a case number writes either way: 文旅罚〔2026〕1号
(the official document's brackets), 【2026】 and [2026]; an en dash or a minus for a hyphen."""


def case_number_key(number: str) -> str:
    """What two case numbers are compared by, wherever a number is looked up or must be
    unique in its unit: as a person reads them, whatever their character width, case or spacing
    (:func:`archive.identity.users.same_unit`: ``ＷＡ－１`` is ``WA-1``), with the brackets and
    dashes of :data:`_LOOK_ALIKE` read as one (``〔2026〕``, ``［2026］`` and ``[2026]``)."""
    return same_unit(number).translate(_LOOK_ALIKE)


def vault_name(vault_id: str) -> str:
    """The storage prefix of a vault: derived from its id, unique, S3-safe."""
    return "vault-" + vault_id.replace("-", "")


def create_case(session: Session, *, store: ObjectStore, user: User, case_number: str, title: str) -> Case:
    """Create a case in the user's unit together with its one vault (409
    ``case_number_taken`` if the unit has a case of that number; other units' are no matter).

    The vault's space is made in the store first; a store failure leaves no row behind,
    and a failed insert leaves only an empty prefix, which is harmless.
    """
    require_role(user, CASE_WRITERS, doing="create cases")
    case_number = case_number.strip()
    if not CASE_NUMBER.match(case_number):
        raise InvalidInput(
            "case number must be 1-100 letters, digits, spaces or - / . ( ) [ ]", code="invalid_case_number"
        )
    refuse_nul(title, what="case title")
    bad = misleading_character(title)
    if bad or not title.strip():
        # The title is on every page, list and export certificate: "a\u202eb" would read reversed.
        raise InvalidInput(f"case title contains {bad}" if bad else "case title is empty", code="invalid_title")
    if len(title.strip()) > TITLE_LENGTH:
        # The API's schema says so too, but the workspace's form comes here directly.
        raise InvalidInput(f"case title is {len(title.strip())} characters long; at most {TITLE_LENGTH} are allowed",
                           code="invalid_title")
    # Numbers are the unit's own (another unit may use the same one): only the unit's own
    # cases are looked at, so the refusal says nothing about other units. Two creations of
    # numbers that read alike wait for each other here, so the second sees the first (the
    # database's unique index knows only the exact number).
    wanted = case_number_key(case_number)
    hold_name(session, "case number", user.unit_id, wanted)
    # A number typed with another width or case reads as the same number (an input method in
    # full-width mode writes ２０２６－０００１): a second case under it would split one case's
    # record in two. Compared here, not in SQL, where SQLite and PostgreSQL fold text differently;
    # a unit's numbers are thousands, not millions.
    numbers = session.execute(select(Case.case_number).where(Case.unit_id == user.unit_id)).scalars()
    same = next((n for n in numbers if case_number_key(n) == wanted), None)
    if same == case_number:
        raise Conflict(f"your unit has a case numbered {case_number} already", code="case_number_taken")
    if same is not None:
        raise Conflict(f"your unit has a case numbered {same} already, which reads as {case_number}",
                       code="case_number_taken")
    case = Case(id=new_id(), case_number=case_number, title=title.strip(), unit_id=user.unit_id, created_by=user.id)
    vault_id = new_id()
    vault = Vault(id=vault_id, case_id=case.id, name=vault_name(vault_id), object_lock=store.supports_lock)
    store.ensure_vault(vault.name)
    session.add(case)
    session.add(vault)
    # On PostgreSQL a concurrent creation of the same number passes the check above; its
    # insert waits for ours and then fails here: a conflict (case_number_taken), never a 500.
    with unique_violations_as_conflicts():
        session.flush()
    session.add(CaseHandler(case_id=case.id, user_id=user.id, added_by=user.id))
    session.flush()
    ledger.append(
        session, actor=actor_name(user), action="case_created", case_id=case.id,
        details={"case_number": case_number, "title": case.title, "unit": user.unit.name, "vault": vault.name},
    )
    return case


def list_cases(session: Session, *, user: User, limit: int = 100, offset: int = 0) -> list[Case]:
    """Cases the user may see, newest first: a unit's (all for admins; for court users
    only those with an export shared with them)."""
    query = select(Case).order_by(Case.created_at.desc()).limit(limit).offset(offset)
    if user.role == Role.court:
        # A court user sees only what was shared with them: cases with an export for them.
        query = query.where(Case.id.in_(cases_with_exports_for(user)))
    else:
        query = query.where(unit_scope(user))
    return list(session.execute(query).scalars().unique())


def cases_numbered(session: Session, *, case_number: str, unit: str | None = None) -> list[Case]:
    """The cases numbered ``case_number`` as a person reads it (:func:`case_number_key`: a court
    typing ``ＷＡ－１`` or ``[2026]`` finds ``WA-1`` or ``〔2026〕``; a number is unique within a
    unit only): in the unit named ``unit`` when given (none for an unknown unit), else in every
    unit, by unit name. No access check: for callers that span units (a court request, the
    command line)."""
    wanted = case_number_key(case_number)
    numbers = select(Case.id, Case.case_number)
    if unit is not None:
        found = find_unit(session, unit)
        if found is None:
            return []
        numbers = numbers.where(Case.unit_id == found.id)
    # Compared here, not in SQL, as at creation (SQLite and PostgreSQL fold text differently):
    # the numbers' two short columns, not the cases.
    ids = [case_id for case_id, number in session.execute(numbers) if case_number_key(number) == wanted]
    if not ids:
        return []
    query = select(Case).join(Unit, Unit.id == Case.unit_id).where(Case.id.in_(ids))
    return list(session.execute(query.order_by(Unit.name)).scalars().unique())


def case_numbers(session: Session, *, case_ids: Iterable[str]) -> dict[str, str]:
    """Case id -> case number, for ids the caller already may show (no access check here)."""
    ids = set(case_ids)
    if not ids:
        return {}
    return dict(session.execute(select(Case.id, Case.case_number).where(Case.id.in_(ids))).all())
