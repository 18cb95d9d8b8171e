"""Idempotency keys: a retried request gets the first answer again, never a second object.

Follows the IETF draft *The Idempotency-Key HTTP Header Field*
(draft-ietf-httpapi-idempotency-key-header). Keys belong to a user; each is claimed before
the work starts (in a short transaction of its own), and the answer is recorded in the
*same* transaction that commits what the request created, so no crash can separate
"created" from "answered". Hence, for one user and key:

* first request: processed normally; a success is recorded with its status and body;
* the same request again after that success: the recorded answer (the caller marks it as
  a replay), nothing new is created;
* the same request while the first one still runs: :class:`IdempotencyKeyInUse` (409);
* a different request (its fingerprint differs): :class:`IdempotencyKeyReused` (422);
* a request that failed kept nothing (a failed upload never leaves an item), so its claim
  is released and a retry with the same key runs afresh: this is what makes retrying a
  broken upload safe.

A claim whose request died with its process is taken over once its lease ran out
(:data:`LEASE`; long uploads renew it while bytes arrive). Should the old request only
have been slow, recording its answer then fails (the claim's token is no longer its), its
transaction rolls back, and so at most one of the two creates anything. Keys expire
:data:`KEY_TTL` after their answer; :func:`purge_expired` deletes them.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from archive.db import Database, insert_ignoring_duplicates
from archive.errors import IdempotencyKeyInUse, IdempotencyKeyReused, InvalidInput
from evidence_verify.ledger_format import canonical_json
from archive.models import IdempotencyKey, new_id, utcnow

KEY_PATTERN = re.compile(r"^[A-Za-z0-9._~:+/=-]{8,255}$")
"""8-255 characters of letters, digits and ``. _ ~ : + / = -`` (a UUID, a ULID, base64...)."""
KEY_TTL = timedelta(hours=24)
"""How long a key is remembered after its request was answered."""
LEASE = timedelta(minutes=10)
"""How long an in-flight claim lasts without renewal before a retry may take it over."""


def parse_key(header: str | None) -> str | None:
    """The key carried by an ``Idempotency-Key`` header, or None when there is none.

    The draft makes the value an RFC 8941 sf-string (``"8e03978e-..."``); the bare form
    (``8e03978e-...``) is accepted too, as many clients send it. Anything else is refused
    (InvalidInput ``invalid_idempotency_key``) before the key is looked up.
    """
    if header is None:
        return None
    value = header.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    if not KEY_PATTERN.match(value):
        raise InvalidInput(
            "Idempotency-Key must be 8-255 characters of letters, digits and . _ ~ : + / = - (e.g. a UUID)",
            code="invalid_idempotency_key",
        )
    return value


def fingerprint(*parts: Any) -> str:
    """SHA-256 hex of the canonical JSON of what identifies a request (method, path, parameters, body)."""
    return hashlib.sha256(canonical_json(list(parts)).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class StoredReply:
    """The answer recorded for a key."""

    status: int
    body: str | None
    """JSON text, exactly as first sent (None for an empty body)."""
    headers: dict[str, str]
    content_sha256: str | None
    """For uploads: SHA-256 of the body that was stored."""


@dataclass(frozen=True)
class Claim:
    """A key this request holds (``replay`` is None), or the answer it already got."""

    user_id: str
    key: str
    token: str | None
    replay: StoredReply | None = None


def claim(db: Database, *, user_id: str, key: str, fingerprint: str, now: datetime | None = None) -> Claim:
    """Claim ``key`` for a request with ``fingerprint``, or give back the answer it already got.

    Commits on its own (a short transaction), so a concurrent request with the same key
    sees the claim. Raises IdempotencyKeyInUse (409) while another request holds the key,
    IdempotencyKeyReused (422) when the key was used for a different request.
    """
    now = now or utcnow()
    token = new_id()
    fresh = {"fingerprint": fingerprint, "token": token, "state": "in_flight", "lease_until": now + LEASE,
             "response_status": None, "response_body": None, "response_headers": None,
             "content_sha256": None, "created_at": now, "expires_at": now + KEY_TTL}
    for _attempt in range(3):
        with db.session() as session:
            if insert_ignoring_duplicates(session, IdempotencyKey, [{"user_id": user_id, "key": key, **fresh}]):
                return Claim(user_id=user_id, key=key, token=token)
            row = session.execute(
                select(IdempotencyKey).where(IdempotencyKey.user_id == user_id, IdempotencyKey.key == key)
                .with_for_update()
            ).scalar_one_or_none()
            if row is None:
                continue  # released or purged between the two statements: insert again
            if row.expires_at <= now and row.lease_until <= now:
                for name, value in fresh.items():  # forgotten: the key is new again
                    setattr(row, name, value)
                return Claim(user_id=user_id, key=key, token=token)
            if row.fingerprint != fingerprint:
                raise IdempotencyKeyReused(
                    "this Idempotency-Key was already used for a different request; use a new key",
                    code="idempotency_key_reused",
                )
            if row.state == "done":
                return Claim(user_id=user_id, key=key, token=None, replay=StoredReply(
                    status=row.response_status or 200, body=row.response_body,
                    headers=dict(row.response_headers or {}), content_sha256=row.content_sha256,
                ))
            if row.lease_until > now:
                raise IdempotencyKeyInUse(
                    "a request with this Idempotency-Key is still being processed; retry when it has answered",
                    code="idempotency_key_in_use",
                )
            # The request holding it stopped renewing its lease (its process died): take over.
            row.token, row.lease_until = token, now + LEASE
            return Claim(user_id=user_id, key=key, token=token)
    raise IdempotencyKeyInUse("this Idempotency-Key is changing hands; retry", code="idempotency_key_in_use")


def _still_held(held: Claim) -> tuple[Any, ...]:
    """Conditions on the key's row that hold while this claim has it (not answered, not taken over)."""
    return (IdempotencyKey.user_id == held.user_id, IdempotencyKey.key == held.key,
            IdempotencyKey.token == held.token, IdempotencyKey.state == "in_flight")


def record_reply(
    session: Session, held: Claim, *, status: int, body: str | None, headers: dict[str, str] | None = None,
    content_sha256: str | None = None, now: datetime | None = None,
) -> None:
    """Record the answer in the caller's transaction, the one that commits what the request created.

    Raises IdempotencyKeyInUse when the claim was taken over meanwhile (its lease ran
    out); the caller's transaction then rolls back, so only one request creates anything.
    """
    now = now or utcnow()
    result = session.execute(
        update(IdempotencyKey)
        .where(*_still_held(held))
        .values(state="done", response_status=status, response_body=body, response_headers=headers or {},
                content_sha256=content_sha256, lease_until=now, expires_at=now + KEY_TTL)
    )
    if result.rowcount != 1:
        raise IdempotencyKeyInUse(
            "this request's Idempotency-Key was taken over by a retry; nothing was kept",
            code="idempotency_key_in_use",
        )


def renew(db: Database, held: Claim, *, now: datetime | None = None) -> None:
    """Extend the lease of a claim whose request is still working (a long upload)."""
    now = now or utcnow()
    with db.session() as session:
        session.execute(
            update(IdempotencyKey)
            .where(*_still_held(held))
            .values(lease_until=now + LEASE)
        )


def renewing(db: Database, held: Claim, chunks: Iterable[bytes], *, every: float | None = None) -> Iterator[bytes]:
    """Pass ``chunks`` through, renewing the claim's lease while they keep arriving."""
    every = LEASE.total_seconds() / 3 if every is None else every
    last = time.monotonic()
    for chunk in chunks:
        if time.monotonic() - last >= every:
            renew(db, held)
            last = time.monotonic()
        yield chunk
    # Storing and registering follow the last byte: give them a whole lease.
    renew(db, held)


def release(db: Database, held: Claim) -> None:
    """Forget the claim of a request that failed having kept nothing, so a retry runs afresh."""
    if held.token is None:
        return
    with db.session() as session:
        session.execute(
            delete(IdempotencyKey).where(*_still_held(held))
        )


def purge_expired(session: Session, *, now: datetime | None = None) -> int:
    """Delete keys past their expiry (answered more than :data:`KEY_TTL` ago); returns how many."""
    now = now or utcnow()
    result = session.execute(
        delete(IdempotencyKey).where(IdempotencyKey.expires_at <= now, IdempotencyKey.lease_until <= now)
    )
    return max(result.rowcount, 0)
