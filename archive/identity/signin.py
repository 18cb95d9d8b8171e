"""Browser sessions and the second factor (TOTP, RFC 6238, with one-time recovery codes).

A session is a random secret in an HttpOnly cookie; the server keeps only its SHA-256
(``web_sessions``), so ending one, or disabling its user, holds from the next request.
Its CSRF token is derived from the secret, so nothing more is stored and no other site
can compute it. A user who enrolled TOTP, or whose role must give a second factor,
gets a session that reaches nothing until the code (or a recovery code) is given.
Every sign-in, failed or not, is a custody ledger entry.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pyotp
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from archive.custody import ledger
from archive.errors import Conflict, InvalidInput, Unauthenticated
from archive.models import RecoveryCode, User, WebSession
from archive.identity.users import actor_name, check_user_may_sign_in, hash_token

ISSUER = "Evidence archive"
RECOVERY_CODES = 10


def csrf_token(secret: str) -> str:
    """The CSRF token that goes with a session (or pre-session) cookie value."""
    return hmac.new(secret.encode(), b"csrf", hashlib.sha256).hexdigest()


def csrf_matches(secret: str | None, given: str | None) -> bool:
    """True when ``given`` is the CSRF token of ``secret`` (constant time)."""
    # Compared as bytes: compare_digest refuses text with non-ASCII characters (a TypeError, a
    # 500 for anyone posting ``csrf_token=é``, before they were signed in too).
    return bool(secret and given) and hmac.compare_digest(
        csrf_token(secret).encode(), given.encode("utf-8", "surrogateescape"))  # type: ignore[union-attr]


def needs_second_factor(user: User, totp_roles: Collection[str]) -> bool:
    """Whether this user's sessions need a second factor before reaching anything."""
    return user.totp_enrolled_at is not None or user.role.value in totp_roles


def record_sign_in(session: Session, *, user: User | None, client: str, method: str, outcome: str, reason: str | None = None) -> None:
    """A custody entry for a sign-in attempt, successful or not."""
    details = {"client": client, "method": method, "outcome": outcome}
    if reason:
        details["reason"] = reason
    if user is not None:
        details["user"] = user.name
    ledger.append(session, actor=actor_name(user) if user else "anonymous", action="sign_in", details=details)


def start_session(session: Session, *, user: User, ttl_seconds: int, second_factor: bool = False) -> str:
    """A new browser session for ``user``; returns the cookie's secret (shown once)."""
    secret = secrets.token_urlsafe(32)
    now = datetime.now(timezone.utc)
    session.add(WebSession(
        user_id=user.id, token_hash=hash_token(secret), created_at=now,
        expires_at=now + timedelta(seconds=ttl_seconds), second_factor_at=now if second_factor else None,
    ))
    session.flush()
    return secret


def find_session(session: Session, *, secret: str | None) -> WebSession:
    """The live session whose cookie holds ``secret``; Unauthenticated otherwise."""
    if not secret:
        raise Unauthenticated("not signed in", code="missing_token")
    digest = hash_token(secret)
    row = session.execute(select(WebSession).where(WebSession.token_hash == digest)).scalar_one_or_none()
    if row is None or not hmac.compare_digest(row.token_hash, digest) or row.ended_at is not None:
        raise Unauthenticated("the session is not valid; sign in again", code="invalid_session")
    if row.expires_at <= datetime.now(timezone.utc):
        raise Unauthenticated("the session has expired; sign in again", code="session_expired")
    check_user_may_sign_in(row.user)
    return row


def session_user(session: Session, *, secret: str | None, totp_roles: Collection[str]) -> User:
    """The user of a live session that has given every factor it needs."""
    row = find_session(session, secret=secret)
    if row.second_factor_at is None and needs_second_factor(row.user, totp_roles):
        raise Unauthenticated("give your second factor first", code="second_factor_required")
    return row.user


def end_session(session: Session, *, secret: str | None) -> None:
    """Sign out: the session stops working at once."""
    if secret:
        session.execute(update(WebSession).where(WebSession.token_hash == hash_token(secret), WebSession.ended_at.is_(None))
                        .values(ended_at=datetime.now(timezone.utc)))


@dataclass(frozen=True)
class Enrolment:
    """What the enrolment page shows: the secret and its otpauth:// URI (for the QR code)."""

    secret: str
    uri: str


def begin_totp(session: Session, *, user: User) -> Enrolment:
    """A new (unconfirmed) TOTP secret for a user not yet enrolled."""
    if user.totp_enrolled_at is not None:
        raise Conflict("a second factor is already enrolled", code="totp_already_enrolled")
    if user.totp_secret is None:
        user.totp_secret = pyotp.random_base32()
        session.flush()
    return Enrolment(secret=user.totp_secret, uri=pyotp.TOTP(user.totp_secret).provisioning_uri(name=user.name, issuer_name=ISSUER))


def typed_code(code: str) -> str:
    """A second-factor or recovery code as typed, read as meant: an input method in full-width
    mode writes ``１２３４５６`` for 123456 (NFKC), spaces around it dropped, letters lower case."""
    return unicodedata.normalize("NFKC", code).strip().lower()


def _accept_code(user: User, code: str) -> bool:
    """Check a TOTP code (one step of drift either way), refusing a step already used."""
    code = typed_code(code)
    # ASCII digits only: str.isdigit() holds for other scripts' digits too, which no TOTP has
    # (and compare_digest refuses non-ASCII text with a TypeError: it was a 500).
    if not user.totp_secret or not (code.isascii() and code.isdigit()):
        return False
    totp = pyotp.TOTP(user.totp_secret)
    now = datetime.now(timezone.utc)
    for drift in (0, -1, 1):
        moment = now + timedelta(seconds=drift * totp.interval)
        step = totp.timecode(moment)
        if hmac.compare_digest(totp.at(moment), code) and (user.totp_last_step or -1) < step:
            user.totp_last_step = step
            return True
    return False


def confirm_totp(session: Session, *, user: User, code: str, web_session: WebSession | None = None) -> list[str]:
    """Finish enrolment with a first valid code; returns the recovery codes (shown once)."""
    if user.totp_enrolled_at is not None:
        raise Conflict("a second factor is already enrolled", code="totp_already_enrolled")
    if not _accept_code(user, code):
        raise InvalidInput("that code is not valid", code="invalid_totp_code")
    now = datetime.now(timezone.utc)
    user.totp_enrolled_at = now
    codes = [secrets.token_hex(5) for _ in range(RECOVERY_CODES)]
    session.add_all(RecoveryCode(user_id=user.id, code_hash=hash_token(c)) for c in codes)
    if web_session is not None:
        web_session.second_factor_at = now
    session.flush()
    ledger.append(session, actor=actor_name(user), action="totp_enrolled", details={"user": user.name})
    return codes


def give_second_factor(session: Session, *, web_session: WebSession, code: str, client: str) -> bool:
    """Check a TOTP or recovery code for the session's user; each recovery code works once.

    Records the attempt in the ledger either way; returns whether it was accepted.
    """
    user = web_session.user
    method = "totp"
    accepted = _accept_code(user, code)
    if not accepted:
        method = "recovery_code"
        digest = hash_token(typed_code(code))
        used = session.execute(
            update(RecoveryCode).where(RecoveryCode.user_id == user.id, RecoveryCode.code_hash == digest,
                                       RecoveryCode.used_at.is_(None))
            .values(used_at=datetime.now(timezone.utc))
        )
        accepted = used.rowcount == 1
    if accepted:
        web_session.second_factor_at = datetime.now(timezone.utc)
    session.flush()
    record_sign_in(session, user=user, client=client, method=f"second_factor:{method}" if accepted else "second_factor",
                   outcome="success" if accepted else "failure", reason=None if accepted else "invalid_code")
    return accepted
