"""Units, users, their bearer tokens, and who may do what.

Tokens are random, shown once, and stored only as their SHA-256 (``api_tokens``), so a
copy of the database does not let anyone act as a user. Each is named, may expire and
may be revoked; nothing is cached, so disabling a user or revoking a token holds from
the next request on. Every administrative change is a custody ledger entry.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import unicodedata
from collections.abc import Collection
from datetime import datetime, timedelta, timezone

from sqlalchemy import ColumnElement, Select, select, true
from sqlalchemy.orm import Session

from archive.custody import ledger
from archive.db import insert_ignoring_duplicates, unique_violations_as_conflicts
from archive.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthenticated
from archive.evidence.filenames import bad_character
from archive.models import ApiToken, Case, Role, Unit, User, new_id
from archive.identity.token_cache import TokenCache
from archive.wording import Sentences
TOKEN_PREFIX = "ev_"


def hash_token(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def actor_name(user: User) -> str:
    """How a user is named in the custody ledger."""
    return f"user:{user.name}"


def user_name(session: Session, user_id: str | None) -> str | None:
    """The name of the user with ``user_id``; None when there is no id or no such user."""
    if user_id is None:
        return None
    user = session.get(User, user_id)
    return user.name if user else None


def user_names(session: Session, user_ids: Collection[str]) -> dict[str, str]:
    """The names of the users with these ids (unknown ids are left out)."""
    if not user_ids:
        return {}
    return dict(session.execute(select(User.id, User.name).where(User.id.in_(user_ids))).all())


UNIT_NAME_LENGTH = 200
"""The most characters of a unit's name (its column holds no more)."""
USER_NAME_LENGTH = 195
"""The most characters of a user's name: the custody ledger names the user as its actor,
``user:NAME``, which held at most 200 characters until revision 0028 (widened to 255 for the
users named with up to 200 before). The API's schemas say so too, but the workspace's forms,
the CLI and single sign-on come here directly."""


def check_user_name(name: str) -> str:
    """Return ``name`` when it can name a user; raise InvalidInput (``invalid_user_name``)
    otherwise. A user's name is an actor in custody entries and a path segment of the
    users API, so it is shown and typed as given: no control, bidirectional-formatting or
    other invisible formatting character (a zero-width space would make ``off\u200b1`` print
    as ``off1``), no leading or trailing space, no ``/`` or ``\\``, not ``.`` or ``..``."""
    bad = misleading_character(name)
    if bad:
        raise InvalidInput(f"user name contains {bad}", code="invalid_user_name")
    if not name.strip() or name != name.strip():
        raise InvalidInput(f"user name must not be empty or begin or end with a space (got {name!r})",
                           code="invalid_user_name")
    if "/" in name or "\\" in name or name in (".", ".."):
        raise InvalidInput(f"user name must not contain '/' or '\\' nor be '.' or '..' (got {name!r})",
                           code="invalid_user_name")
    if len(name) > USER_NAME_LENGTH:
        raise InvalidInput(f"user name is {len(name)} characters long; at most {USER_NAME_LENGTH} are allowed",
                           code="invalid_user_name")
    return name


_IGNORABLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u206f"
    "\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0000-\U000e0fff"
    "\u2800]")
"""Unicode's Default_Ignorable_Code_Point characters (DerivedCoreProperties.txt: shown as
nothing at all, such as combining grapheme joiners, variation selectors and Hangul fillers) and
the blank Braille pattern, which draws as a space where none is typed."""


def _invisible(text: str) -> str | None:
    """The first character of ``text`` that shows as nothing (Unicode category Cf: zero-width
    spaces and joiners, soft hyphens...; any default-ignorable character, :data:`_IGNORABLE`)
    as a person would be told of it; None if none."""
    found = next((ch for ch in text if unicodedata.category(ch) == "Cf" or _IGNORABLE.match(ch)), None)
    return None if found is None else f"an invisible character (U+{ord(found):04X})"


def misleading_character(text: str) -> str | None:
    """The first character that would make a name or title shown to people lie about itself:
    a control, bidirectional-formatting or unpaired-surrogate character
    (:func:`~archive.evidence.filenames.bad_character`) or one that shows as nothing
    (:func:`_invisible`), as a person would be told of it; None if none."""
    return bad_character(text) or _invisible(text)


_WRITTEN_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_WRITTEN_BAD = re.compile(f"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f{_WRITTEN_BIDI}\ud800-\udfff]")
"""What free text may not hold: a control character other than a line break or tab, a
bidirectional embedding, override or isolate (shown, it reorders the text around it:
``\u202e退回`` shows as ``回退``), a bidirectional mark (LRM, RLM, ALM: invisible, they have
no use in Chinese or English legal text and change the order neighbouring digits and signs
are shown in, as they do in file names), an unpaired surrogate."""


def written_text(text: str | None, *, code: str, what: str, limit: int, required: bool = True) -> str:
    """Free text a person wrote for others to rely on (a reason, an opinion, an explanation, a
    comment), stripped. 422 ``code`` when it is required and nothing of it would show (only
    spaces and invisible characters such as a zero-width space: a reason no reader can see),
    when it is longer than ``limit`` characters, or when it holds a character that would make
    it show otherwise than it was stored (:data:`_WRITTEN_BAD`). Not required and nothing
    visible: ``""``."""
    value = (text or "").strip()
    if not any(not ch.isspace() and unicodedata.category(ch) != "Cf" and not _IGNORABLE.match(ch) for ch in value):
        if required:
            raise InvalidInput(f"{what} is required, and it must say something a reader sees", code=code)
        return ""
    if len(value) > limit:
        raise InvalidInput(f"{what} is {len(value)} characters; at most {limit}", code=code)
    bad = _WRITTEN_BAD.search(value)
    if bad is not None:
        kind = ("a bidirectional formatting character" if re.fullmatch(f"[{_WRITTEN_BIDI}]", bad.group())
                else "an unpaired surrogate" if "\ud800" <= bad.group() <= "\udfff" else "a control character")
        raise InvalidInput(f"{what} contains {kind} (U+{ord(bad.group()):04X})", code=code)
    return value


def same_name(name: str) -> str:
    """What two user names are compared by: as a person reads them, whatever their case or
    character width (NFKC, then case folded: ``ＯＦＦ１`` and ``off1`` are one name)."""
    return unicodedata.normalize("NFKC", name).casefold()


def same_unit(name: str) -> str:
    """What two unit names are compared by: as a person reads them, whatever their case,
    character width or spacing (``Team　1``, ``ＴＥＡＭ 1`` and ``team  1`` are ``Team 1``)."""
    return " ".join(same_name(name).split())


def find_unit(session: Session, name: str) -> Unit | None:
    """The unit ``name`` names as a person reads it (:func:`same_unit`), if there is one."""
    wanted = same_unit(name)
    # A corps has tens of units, not millions: their names are compared here, not in SQL,
    # where SQLite and PostgreSQL fold text differently.
    return next((u for u in session.execute(select(Unit)).scalars() if same_unit(u.name) == wanted), None)


def _find_or_add_unit(session: Session, name: str) -> tuple[Unit, bool]:
    """The unit ``name`` reads as, added when there is none: a unit typed with another width,
    case or spacing is the existing one, not a new unit whose users would see none of its cases."""
    bad = misleading_character(name)
    if bad:
        raise InvalidInput(f"unit name contains {bad}", code="invalid_unit")
    name = " ".join(name.split())
    if not name:
        raise InvalidInput("unit name is empty", code="invalid_unit")
    if len(name) > UNIT_NAME_LENGTH:
        raise InvalidInput(f"unit name is {len(name)} characters long; at most {UNIT_NAME_LENGTH} are allowed",
                           code="invalid_unit")
    existing = find_unit(session, name)
    if existing is not None:
        return existing, False
    # An upsert: two users added at once to a new unit both land in the one unit.
    created = insert_ignoring_duplicates(session, Unit, [{"id": new_id(), "name": name}])
    return session.execute(select(Unit).where(Unit.name == name)).scalar_one(), bool(created)


def _record_unit(session: Session, unit: Unit) -> None:
    ledger.append(session, actor="system:admin", action="unit_created", details={"unit": unit.name, "unit_id": unit.id})


def parse_role(role: Role | str) -> Role:
    """The role named ``role``; InvalidInput otherwise."""
    try:
        return Role(role)
    except ValueError as exc:
        raise InvalidInput(f"unknown role {role!r}; one of {[r.value for r in Role]}", code="invalid_role") from exc


def add_user(
    session: Session, *, name: str, unit: str, role: Role | str, actor: str = "system:admin",
    expires_in: int | None = None, initial_token: bool = True, external_subject: str | None = None,
    system: bool = False,
) -> tuple[User, str]:
    """Create a user in ``unit`` (created if needed) and return it with its first token.

    The token stops working after ``expires_in`` seconds when given. Without
    ``initial_token`` (users who sign in through the directory) no token is made and the
    second value is empty; ``external_subject`` links the user to the directory. A
    ``system`` identity (:attr:`User.system`) gets no token and can never sign in.
    """
    initial_token = initial_token and not system
    role = parse_role(role)
    check_user_name(name)
    # Names differing only in case or width read as one person in the custody ledger.
    key = same_name(name)
    same = next((n for n in session.execute(select(User.name)).scalars() if same_name(n) == key), None)
    if same is not None:
        raise Conflict(f"a user called {same!r} already exists", code="user_exists")
    # Both rows go in before the first custody entry: the ledger lock is taken last, so a
    # concurrent add of the same name fails on its unique key instead of deadlocking.
    unit_row, unit_created = _find_or_add_unit(session, unit)
    user = User(name=name, role=role, unit_id=unit_row.id, external_subject=external_subject, system=system)
    session.add(user)
    with unique_violations_as_conflicts():  # a concurrent add of the same name won
        session.flush()
    row, token = _new_token(session, user=user, name="initial", expires_in=expires_in) if initial_token else (None, "")
    if unit_created:
        _record_unit(session, unit_row)
    ledger.append(
        session, actor=actor, action="user_created",
        details={"user": name, "user_id": user.id, "role": role.value, "unit": unit_row.name,
                 "token_id": row.id if row else None, "expires_at": _iso(row.expires_at) if row else None,
                 **({"system": True} if system else {})},
    )
    return user, token


def _iso(moment: datetime | None) -> str | None:
    return ledger.iso_utc(moment) if moment else None


def _new_token(session: Session, *, user: User, name: str, expires_in: int | None) -> tuple[ApiToken, str]:
    if expires_in is not None and expires_in <= 0:
        raise InvalidInput("expires_in must be a positive number of seconds", code="invalid_expiry")
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidInput("a token needs a name of 1-200 characters", code="invalid_token_name")
    # Listed to its owner and administrators, to tell which device's token to revoke: shown as stored.
    bad = misleading_character(name)
    if bad:
        raise InvalidInput(f"the token's name contains {bad}", code="invalid_token_name")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires_at = datetime.now(timezone.utc) + timedelta(seconds=expires_in) if expires_in else None
    row = ApiToken(user_id=user.id, name=name, token_hash=hash_token(token), expires_at=expires_at)
    session.add(row)
    session.flush()
    return row, token


def find_user(session: Session, *, name: str) -> User:
    """The user called ``name``; NotFound otherwise."""
    user = session.execute(select(User).where(User.name == name)).scalar_one_or_none()
    if user is None:
        raise NotFound(f"no user {name!r}", code="user_not_found")
    return user


def list_users(session: Session) -> list[User]:
    """Every user, by name; not the archive's own identities (:attr:`User.system`)."""
    return list(session.execute(select(User).where(User.system.is_(False)).order_by(User.name)).scalars().unique())


def refuse_system_user(user: User) -> None:
    """403 ``system_user``: the archive's own identity (:attr:`User.system`) is no one's
    account: it gets no token and is not changed as users are."""
    if user.system:
        raise Forbidden(f"{user.name!r} is the archive's own identity, not a user's account", code="system_user")


def update_user(
    session: Session, *, name: str, actor: str, active: bool | None = None, role: Role | str | None = None,
    unit: str | None = None,
) -> User:
    """Disable or re-enable a user, or change their role or unit; each change is a custody entry.

    Disabling holds from the next request: every credential is checked against the row.
    """
    user = find_user(session, name=name)
    refuse_system_user(user)
    new_role = user.role if role is None else parse_role(role)
    stays_admin = (user.active if active is None else active) and new_role == Role.admin
    if user.active and user.role == Role.admin and not stays_admin:
        _keep_an_admin(session, leaving=user)
    changes: dict[str, object] = {}
    if new_role != user.role:
        changes["role"] = [user.role.value, new_role.value]
        user.role = new_role
    unit_row, unit_created = (None, False)
    if unit is not None:
        unit_row, unit_created = _find_or_add_unit(session, unit)
        if unit_row.id != user.unit_id:
            changes["unit"] = [user.unit.name, unit_row.name]
            user.unit_id = unit_row.id
    if active is not None and active != user.active:
        changes["active"] = [user.active, active]
        user.active = active
    # The user row changes before the ledger lock is taken (lock order: ledger last).
    session.flush()
    session.expire(user, ["unit"])
    if unit_created and unit_row is not None:
        _record_unit(session, unit_row)
    if changes:
        action = "user_changed"
        if set(changes) == {"active"}:
            action = "user_enabled" if active else "user_disabled"
        ledger.append(session, actor=actor, action=action, details={"user": user.name, "user_id": user.id, "changes": changes})
    return user


def _keep_an_admin(session: Session, *, leaving: User) -> None:
    """Refuse (409 ``last_admin``) to disable the last active administrator or give them
    another role: nobody could then manage users but from the server's command line. The
    other administrators' rows are locked until the change commits, so two administrators
    disabling each other at once cannot both succeed."""
    # Every active administrator's row, the one leaving included, in one order: two
    # administrators disabling each other at once lock the same rows in the same order, so
    # the later waits for the earlier and then finds it alone (locking only the others, each
    # held the row the other went on to change: a deadlock on PostgreSQL).
    # The archive's own identities (User.system) manage nothing: they do not count.
    admins = session.execute(select(User.id).where(User.role == Role.admin, User.active.is_(True),
                                                   User.system.is_(False))
                             .order_by(User.id).with_for_update()).scalars().all()
    if not set(admins) - {leaving.id}:
        raise Conflict(f"{leaving.name!r} is the last active administrator: make another one first",
                       code="last_admin")


def issue_token(
    session: Session, *, user: User, name: str, expires_in: int | None, actor: str,
    totp_roles: Collection[str] = (),
) -> tuple[ApiToken, str]:
    """A new personal access token for ``user``, shown once.

    Where the user's role must give a second factor, tokens are issued only once the user
    has enrolled one (a program's token must not be a way around it).
    """
    refuse_system_user(user)
    if not user.active:
        raise Forbidden(f"user {user.name} is disabled", code="user_disabled")
    if user.role.value in totp_roles and user.totp_enrolled_at is None:
        raise Forbidden("enrol a second factor (TOTP) before creating tokens", code="second_factor_required")
    row, token = _new_token(session, user=user, name=name, expires_in=expires_in)
    ledger.append(session, actor=actor, action="token_created",
                  details={"user": user.name, "token_id": row.id, "name": row.name, "expires_at": _iso(row.expires_at)})
    return row, token


def list_tokens(session: Session, *, user: User | None = None) -> list[ApiToken]:
    """The tokens of ``user`` (every user's when None), newest first; never their secrets."""
    query = select(ApiToken).order_by(ApiToken.created_at.desc())
    if user is not None:
        query = query.where(ApiToken.user_id == user.id)
    return list(session.execute(query).scalars().unique())


def revoke_token(session: Session, *, token_id: str, actor: str, owner: User | None = None) -> ApiToken:
    """Revoke a token at once. With ``owner``, only that user's token (another's answers
    404 like an unknown one); without, any token (administrators, the CLI)."""
    row = session.get(ApiToken, token_id)
    if row is None or (owner is not None and row.user_id != owner.id):
        raise NotFound(f"no token {token_id}", code="token_not_found")
    if row.revoked_at is None:
        row.revoked_at = datetime.now(timezone.utc)
        session.flush()
        ledger.append(session, actor=actor, action="token_revoked",
                      details={"user": row.user.name, "token_id": row.id, "name": row.name})
    return row


def authenticate(session: Session, *, token: str | None, totp_roles: Collection[str] = (),
                 cache: TokenCache | None = None) -> User:
    """The active user holding ``token``; Unauthenticated (with the precise code) otherwise.

    ``totp_roles``: roles whose tokens work only once the user enrolled a second factor.
    ``cache``: the API process's cache of tokens checked lately (the user comes back attached
    to ``session`` after one small query, unless a token, user or unit changed since); expiry
    and the user's state are checked on every use.
    """
    if not token:
        raise Unauthenticated("a bearer token is required", code="missing_token")
    digest = hash_token(token)
    version = cache.version(session) if cache is not None else 0
    found = cache.get(digest, version) if cache is not None else None
    if found is not None:
        user, expires_at = session.merge(found[0], load=False), found[1]
    else:
        row = session.execute(select(ApiToken).where(ApiToken.token_hash == digest)).scalar_one_or_none()
        # Compare again in constant time so the lookup's timing says nothing about near misses.
        if row is None or not hmac.compare_digest(row.token_hash, digest):
            raise Unauthenticated("the bearer token is not valid", code="invalid_token")
        if row.revoked_at is not None:
            raise Unauthenticated("the bearer token was revoked", code="token_revoked")
        user, expires_at = row.user, row.expires_at
        if cache is not None:
            cache.keep(digest, version, user, expires_at)
    if expires_at is not None and expires_at <= datetime.now(timezone.utc):
        raise Unauthenticated("the bearer token has expired", code="token_expired")
    check_user_may_sign_in(user, totp_roles=totp_roles)
    return user


SIGN_IN_REFUSALS = Sentences("sign_in_refusal", {
    "disabled": "user {name} is disabled",
    "system": "{name} is the archive's own identity: it cannot sign in",
    "second_factor": "this role needs a second factor: sign in in a browser and enrol one",
})
"""Why a known user may not sign in (:func:`check_user_may_sign_in`), kept as a failed sign-in's reason."""


WITHDRAWN = frozenset({"token_revoked", "invalid_token", "user_disabled", "invalid_session", "system_user"})
"""Why a credential admitted earlier fails that means its holder was stopped (a token revoked
or deleted, a user disabled, a browser session signed out), not that it ran its course
(``token_expired``, ``session_expired``): a request already admitted, such as an upload
streaming for hours, is ended for the first and finishes despite the second."""


def check_user_may_sign_in(user: User, *, totp_roles: Collection[str] = ()) -> None:
    """Unauthenticated when the user is the archive's own identity (401 ``system_user``: a
    token made for it before revision 0023 is refused), is disabled, or must enrol a second
    factor first."""
    if user.system:
        raise Unauthenticated(SIGN_IN_REFUSALS.say("system", name=user.name), code="system_user")
    if not user.active:
        raise Unauthenticated(SIGN_IN_REFUSALS.say("disabled", name=user.name), code="user_disabled")
    if user.role.value in totp_roles and user.totp_enrolled_at is None:
        raise Unauthenticated(SIGN_IN_REFUSALS.say("second_factor"), code="second_factor_required")


# Who may do what. Court users reach evidence only through exports shared with them.
CASE_READERS = {Role.officer, Role.reviewer, Role.admin}
CASE_WRITERS = {Role.officer, Role.admin}


def require_role(user: User, allowed: set[Role], *, doing: str) -> None:
    """Raise Forbidden unless the user's role is in ``allowed``."""
    if user.role not in allowed:
        raise Forbidden(f"role {user.role.value} may not {doing}", code="forbidden_role")


def unit_scope(user: User) -> ColumnElement[bool]:
    """The condition on ``Case`` rows the user may see: every case for admins, else their unit's.

    The SQL form of :func:`can_see_case`, for queries joined to ``Case``.
    """
    return true() if user.role == Role.admin else Case.unit_id == user.unit_id


def reading_scope(user: User) -> str:
    """A name for the cases the user may see (:func:`unit_scope`): users with the same one see
    the same cases, so what is shown of them may be shared between them."""
    return "all" if user.role == Role.admin else f"unit:{user.unit_id}"


def readable_cases(user: User) -> Select | None:
    """The ids of the cases whose records the user may read; None for admins, who read all
    (including records of no case, such as sign-ins)."""
    return None if user.role == Role.admin else select(Case.id).where(unit_scope(user))


def can_see_case(user: User, case: Case) -> bool:
    """Admins see every case; others only their own unit's."""
    return sees_unit(user, case.unit_id)


def sees_unit(user: User, unit_id: str) -> bool:
    """Whether the user may see the cases of unit ``unit_id`` (:func:`can_see_case`)."""
    return user.role == Role.admin or user.unit_id == unit_id


def load_case(session: Session, *, user: User, case_id: str, write: bool = False) -> Case:
    """The case, if the user may see it (and write to it when ``write``).

    Another unit's case answers exactly like an unknown one, so case ids cannot be probed.
    """
    require_role(user, CASE_WRITERS if write else CASE_READERS, doing="change cases" if write else "read cases")
    case = session.get(Case, case_id)
    if case is None or not can_see_case(user, case):
        raise NotFound(f"no case {case_id} visible to you", code="case_not_found")
    return case
