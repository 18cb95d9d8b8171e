"""Database models (SQLAlchemy 2, typed). API schemas live in ``api/schemas.py``.

Invariants held by constraints, not by convention:

* a case has exactly one vault (``vaults.case_id`` is unique and not null) and a vault
  belongs to exactly one case;
* an evidence item lives in its case's vault: ``(case_id, vault_id)`` references
  ``vaults(case_id, id)``, so an item can never point at another case's vault;
* storage keys are unique, so one object is never claimed by two rows;
* ledger entries are append-only (database triggers refuse UPDATE and DELETE).

Why one module of some 500 lines: these are the core tables whose constraints refer to each
other (cases, vaults, items, derived objects, users, the ledger); split, one invariant would
be spread over several files. The tables of each domain live in its own package
(``archive/continuity``, ``cases``, ``records``, ``exports``, ``inspections``).
"""

from __future__ import annotations

import enum
import secrets
import uuid
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Computed,
    DateTime,
    Enum,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    column,
    false,
)
from sqlalchemy.types import TypeDecorator
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from archive.sqljson import JsonWithout

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Now, timezone-aware UTC."""
    return datetime.now(timezone.utc)


def _unusable_hash() -> str:
    return secrets.token_hex(32)


def new_id() -> str:
    """A random identifier (UUID4 hex with dashes) for rows and object keys."""
    return str(uuid.uuid4())


class AwareDateTime(TypeDecorator):
    """Stores UTC and always gives back timezone-aware UTC (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to an aware column")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Role(str, enum.Enum):
    officer = "officer"
    reviewer = "reviewer"
    court = "court"
    admin = "admin"


class CaseStatus(str, enum.Enum):
    filed = "filed"
    under_review = "under_review"
    decided = "decided"
    closed = "closed"


class CaseStage(str, enum.Enum):
    """Where a case stands in the administrative penalty procedure (see :mod:`archive.cases.stages`)."""

    filed = "filed"
    investigation = "investigation"
    notice = "notice"
    hearing = "hearing"
    legal_review = "legal_review"
    discussion = "discussion"
    decision = "decision"
    service = "service"
    enforcement = "enforcement"
    closed = "closed"
    withdrawn = "withdrawn"
    terminated = "terminated"
    referred = "referred"


class EvidenceKind(str, enum.Enum):
    bodycam_video = "bodycam_video"
    interview_video = "interview_video"
    document = "document"
    remote_capture = "remote_capture"
    other = "other"


class ItemStatus(str, enum.Enum):
    received = "received"
    """Stored, hashed and locked; processing may still be running."""
    processed = "processed"
    flagged = "flagged"


def _enum(e: type[enum.Enum], name: str) -> Enum:
    return Enum(e, name=name, native_enum=False, length=32, validate_strings=True)


class Unit(Base):
    """An enforcement team; cases and users belong to exactly one."""

    __tablename__ = "units"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(AwareDateTime(), default=utcnow)


class User(Base):
    """A person or system with a role in one unit; authenticates with a bearer token."""

    __tablename__ = "users"
    # Revision 0010 made external_subject unique with an index (SQLite cannot add a
    # constraint to a table others reference); the model says the same.
    __table_args__ = (Index("uq_users_external_subject", "external_subject", unique=True),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    role: Mapped[Role] = mapped_column(_enum(Role, "role"))
    unit_id: Mapped[str] = mapped_column(ForeignKey("units.id"))
    retired_token_hash: Mapped[str] = mapped_column("token_hash", String(64), unique=True, default=_unusable_hash)
    """Retired by revision 0010 (tokens live in ``api_tokens``); kept because SQLite cannot
    drop a UNIQUE column of a table others reference. Holds a random value that is no
    token's hash."""
    active: Mapped[bool] = mapped_column(default=True)
    """False once an administrator disabled the user: every credential is refused."""
    system: Mapped[bool] = mapped_column(default=False, server_default=false())
    """The archive's own identity (the command line's ``system-cli``): named by custody
    entries, but it holds no token and cannot sign in, is not listed among users, cannot be
    changed through them, and is no administrator :func:`~archive.identity.users.update_user`'s
    last-administrator rule counts (revision 0023)."""
    created_at: Mapped[datetime] = mapped_column(AwareDateTime(), default=utcnow)
    totp_secret: Mapped[str | None] = mapped_column(String(64), default=None)
    """Base32 RFC 6238 secret; set at enrolment, confirmed when ``totp_enrolled_at`` is set."""
    totp_enrolled_at: Mapped[datetime | None] = mapped_column(AwareDateTime(), default=None)
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger, default=None)
    """Time step of the last accepted code, so a code is accepted once only."""
    external_subject: Mapped[str | None] = mapped_column(String(255), default=None)
    """The OpenID Connect claim value this user signs in with, when provisioned by SSO."""

    unit: Mapped[Unit] = relationship(lazy="joined")


class AuthVersion(Base):
    """One row whose number every change of a token, a user or a unit advances (database
    triggers, revision 0018): a cached token check made at an older number may be stale
    (:mod:`archive.identity.token_cache`)."""

    __tablename__ = "auth_version"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger)


class EvidenceListVersion(Base):
    """A number that database triggers (revision 0024) advance with every change of a case's
    items or their derived objects (``key``: the case's id), or when an item arrives whose
    content another case already holds (``key``: ``content``; a list names an item's
    duplicates): a case's evidence list cached at older numbers may be stale
    (:mod:`api.list_cache`). No row: never changed (0)."""

    __tablename__ = "evidence_list_versions"
    key: Mapped[str] = mapped_column(String(36), primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger)


class ApiToken(Base):
    """A bearer credential of a user: named, optionally expiring, revocable; stored as a hash."""

    __tablename__ = "api_tokens"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    """SHA-256 of the token; the token itself is never stored."""
    created_at: Mapped[datetime] = mapped_column(AwareDateTime(), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(AwareDateTime(), default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(AwareDateTime(), default=None)

    user: Mapped[User] = relationship(lazy="joined")


class WebSession(Base):
    """A browser's sign-in: short-lived, kept on the server, its cookie stored as a hash."""

    __tablename__ = "web_sessions"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(AwareDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(AwareDateTime())
    second_factor_at: Mapped[datetime | None] = mapped_column(AwareDateTime(), default=None)
    """When the user gave their second factor in this session (None: not yet)."""
    ended_at: Mapped[datetime | None] = mapped_column(AwareDateTime(), default=None)

    user: Mapped[User] = relationship(lazy="joined")


class RecoveryCode(Base):
    """A one-time code that stands in for the TOTP code; stored as a hash."""

    __tablename__ = "recovery_codes"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    used_at: Mapped[datetime | None] = mapped_column(AwareDateTime(), default=None)


class Case(Base):
    """A case file; it owns exactly one vault."""

    __tablename__ = "cases"
    # A number is unique within its unit: units number their cases independently, and a
    # unit must not learn from a refusal that another unit used a number.
    __table_args__ = (UniqueConstraint("unit_id", "case_number"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    case_number: Mapped[str] = mapped_column(String(100))
    title: Mapped[str] = mapped_column(String(500))
    unit_id: Mapped[str] = mapped_column(ForeignKey("units.id"), index=True)
    status: Mapped[CaseStatus] = mapped_column(_enum(CaseStatus, "case_status"), default=CaseStatus.filed)
    stage: Mapped[CaseStage] = mapped_column(_enum(CaseStage, "case_stage"), default=CaseStage.filed)
    """Where the case stands in its legal life; moved only by :func:`archive.cases.stages.move`."""
    created_by: Mapped[str] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(AwareDateTime(), default=utcnow)
    flags: Mapped[list[str]] = mapped_column(JSON, default=list)

    unit: Mapped[Unit] = relationship(lazy="joined")
    vault: Mapped[Vault] = relationship(back_populates="case", uselist=False, lazy="joined")


class Vault(Base):
    """The one electronic store of a case: a prefix of the object store named ``name``."""

    __tablename__ = "vaults"
    __table_args__ = (UniqueConstraint("case_id", "id", name="case_vault_pair"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    object_lock: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(AwareDateTime(), default=utcnow)

    case: Mapped[Case] = relationship(back_populates="vault")


class EvidenceItem(Base):
    """One original, stored byte-for-byte in its case's vault, never altered."""

    __tablename__ = "evidence_items"
    __table_args__ = (
        ForeignKeyConstraint(
            ["case_id", "vault_id"], ["vaults.case_id", "vaults.id"], name="item_in_case_vault"
        ),
        CheckConstraint("size >= 0", name="size_non_negative"),
        CheckConstraint("length(sha256) = 64", name="sha256_hex"),
        # A case's items in the order every reader takes them (a page of its list, its export):
        # read from where a page ended, not sorted whole for each (revision 0021).
        Index("ix_evidence_items_case_order", "case_id", "received_at", "id"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"))
    vault_id: Mapped[str] = mapped_column(String(36))
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("evidence_items.id"), index=True)
    """Set for members of a capture bundle: the bundle they came in."""
    kind: Mapped[EvidenceKind] = mapped_column(_enum(EvidenceKind, "evidence_kind"))
    original_filename: Mapped[str] = mapped_column(String(1000))
    media_type: Mapped[str] = mapped_column(String(200))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    sm3: Mapped[str | None] = mapped_column(String(64))
    sha512: Mapped[str | None] = mapped_column(String(128))
    """Taken with SM3 by the worker (same read); exports list it in ``manifest-sha512.txt``."""
    storage_key: Mapped[str] = mapped_column(String(1000), unique=True)
    storage_version: Mapped[str | None] = mapped_column(String(200))
    retention_until: Mapped[datetime | None] = mapped_column(AwareDateTime())
    uploaded_by: Mapped[str] = mapped_column(ForeignKey("users.id"))
    device_id: Mapped[str | None] = mapped_column(String(200), index=True)
    recorded_start: Mapped[datetime | None] = mapped_column(AwareDateTime())
    received_at: Mapped[datetime] = mapped_column(AwareDateTime(), default=utcnow)
    status: Mapped[ItemStatus] = mapped_column(_enum(ItemStatus, "item_status"), default=ItemStatus.received)
    flags: Mapped[list[str]] = mapped_column(JSON, default=list)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """Kind-specific metadata given at upload (officer, room, session id...)."""
    media_facts: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    listed_facts: Mapped[dict[str, Any] | None] = mapped_column(
        JSON, Computed(JsonWithout(column("media_facts"), "document", "text"), persisted=True), deferred=True)
    """``media_facts`` without a document's extracted text (up to 200,000 characters), as a
    case's evidence list shows them: kept by the database with every change of the facts
    (revision 0020), so a list neither reads the text nor has the database take it out of
    each row at every request. Stored on PostgreSQL; on SQLite, which cannot add a stored
    column to a table, computed as it is read."""
    processing: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """Task name -> {"state": queued|running|done|failed, "reason": ..., "at": ...}."""
    seal_status: Mapped[str] = mapped_column(String(16), default="pending")
    last_fixity_at: Mapped[datetime | None] = mapped_column(AwareDateTime(), index=True)
    """When a fixity audit last re-hashed this original."""

    case: Mapped[Case] = relationship(lazy="joined")
    vault: Mapped[Vault] = relationship(lazy="joined", viewonly=True)
    derived: Mapped[list[DerivedObject]] = relationship(
        back_populates="item", order_by="DerivedObject.created_at", lazy="selectin"
    )
    members: Mapped[list[EvidenceItem]] = relationship(
        foreign_keys=[parent_id], order_by="EvidenceItem.received_at", viewonly=True
    )
    """The items that arrived inside this capture bundle (loaded when asked for)."""


class DerivedObject(Base):
    """A new object made from an original (thumbnail, proxy, sealed copy, seal, manifest)."""

    __tablename__ = "derived_objects"
    __table_args__ = (UniqueConstraint("item_id", "role", name="one_per_role"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    item_id: Mapped[str] = mapped_column(ForeignKey("evidence_items.id"), index=True)
    role: Mapped[str] = mapped_column(String(40))
    media_type: Mapped[str] = mapped_column(String(200))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    storage_key: Mapped[str] = mapped_column(String(1000), unique=True)
    storage_version: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(AwareDateTime(), default=utcnow)

    item: Mapped[EvidenceItem] = relationship(back_populates="derived")


class LedgerEntry(Base):
    """One custody entry. Append-only: triggers refuse UPDATE and DELETE.

    ``entry_hash`` is SHA-256 of the canonical JSON of every other field, including
    ``prev_hash``; the entries are also the leaves of an RFC 9162 Merkle tree.
    """

    __tablename__ = "ledger_entries"
    # A case's entries in the ledger's order: its newest on the case page, its pages in the API
    # (revision 0022).
    __table_args__ = (Index("ix_ledger_entries_case_seq", "case_id", "seq"),)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    recorded_at: Mapped[str] = mapped_column(String(40))
    """ISO 8601 UTC text, exactly as hashed."""
    actor: Mapped[str] = mapped_column(String(255))  # revision 0028
    case_id: Mapped[str | None] = mapped_column(String(36))
    item_id: Mapped[str | None] = mapped_column(String(36), index=True)
    action: Mapped[str] = mapped_column(String(60))
    details: Mapped[str] = mapped_column(Text)
    """Canonical JSON text, exactly as hashed."""
    prev_hash: Mapped[str] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64), unique=True)


class LedgerPending(Base):
    """A custody entry committed with its action but not yet given its place in the ledger.

    On PostgreSQL :func:`archive.custody.ledger.append` writes here, in the caller's
    transaction, without taking the ledger's lock; as that transaction commits, the entries
    every committed transaction left here are sequenced into ``ledger_entries`` in one batch
    under one lock (:func:`archive.custody.ledger.sequence_pending`), as transparency logs
    integrate queued leaves. ``id`` orders them (the order they were written). Rows are
    never updated (a trigger refuses it); the sequencer deletes each one in the transaction
    that writes its ledger entry.
    """

    __tablename__ = "ledger_pending"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True,
                                    autoincrement=True)
    recorded_at: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(255))  # revision 0028
    case_id: Mapped[str | None] = mapped_column(String(36))
    item_id: Mapped[str | None] = mapped_column(String(36))
    action: Mapped[str] = mapped_column(String(60))
    details: Mapped[str] = mapped_column(Text)


class LedgerLock(Base):
    """A single row locked by appenders so sequence numbers never race.

    It also carries the Merkle frontier of the ledger's ``size`` entries (JSON list of
    hex subtree roots, see :func:`archive.custody.merkle.frontier_append`), kept current by each
    append, so the tree head costs O(log n) instead of rehashing every entry. NULL in a
    ledger written before it existed: the next append computes it once.
    """

    __tablename__ = "ledger_lock"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    frontier: Mapped[list[str] | None] = mapped_column(JSON)


class LedgerNode(Base):
    """The hash of one complete subtree of the ledger's RFC 9162 Merkle tree.

    Node ``(level, idx)`` covers entries ``idx * 2**level + 1`` to ``(idx + 1) * 2**level``
    (level 0 holds each entry's leaf hash). :func:`archive.custody.ledger.append` writes the
    nodes each entry completes, in its transaction; proofs and older tree heads then
    read O(log n) of them (:func:`archive.custody.merkle.subtrees`), and ``ledger verify``
    recomputes every one from the entries.
    """

    __tablename__ = "ledger_nodes"
    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class Upload(Base):
    """A resumable (tus) upload in progress; it becomes evidence only when complete."""

    __tablename__ = "uploads"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    length: Mapped[int | None] = mapped_column(BigInteger)
    offset: Mapped[int] = mapped_column(BigInteger, default=0)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """kind, filename, sha256, device_id, recorded_start... as given in Upload-Metadata."""
    state: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """Backend bookkeeping (multipart upload id and parts, staging path)."""
    status: Mapped[str] = mapped_column(String(16), default="open")
    """open, complete, failed, expired."""
    item_id: Mapped[str | None] = mapped_column(String(36))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(AwareDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(AwareDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(AwareDateTime())


class IdempotencyKey(Base):
    """An ``Idempotency-Key`` a user sent, and the answer its request got (see :mod:`archive.idempotency`).

    Keyed by (user, key): keys of different users never meet. ``in_flight`` while the first
    request runs (its ``token`` holds the claim until ``lease_until``), ``done`` once the
    answer was recorded in the transaction that committed what the request created.
    """

    __tablename__ = "idempotency_keys"
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    """SHA-256 of what identifies the request (method, path, parameters, body or its digest)."""
    token: Mapped[str] = mapped_column(String(36))
    """Random id of the request holding (or that held) the claim."""
    state: Mapped[str] = mapped_column(String(16), default="in_flight")
    """in_flight, done."""
    lease_until: Mapped[datetime] = mapped_column(AwareDateTime())
    """An in-flight claim not renewed by then belongs to a request that died; a retry takes it over."""
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)
    """The JSON text answered, byte for byte."""
    response_headers: Mapped[dict[str, str] | None] = mapped_column(JSON)
    content_sha256: Mapped[str | None] = mapped_column(String(64))
    """For uploads: SHA-256 of the body stored, so a retry's body can be compared."""
    created_at: Mapped[datetime] = mapped_column(AwareDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(AwareDateTime(), index=True)


class TrustedCertificate(Base):
    """Every certificate that ever sealed or time-stamped for us; kept forever."""

    __tablename__ = "certificates"
    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    """SHA-256 of the DER certificate, hex."""
    role: Mapped[str] = mapped_column(String(20))
    """root, seal, tsa, sm2."""
    subject: Mapped[str] = mapped_column(String(1000))
    pem: Mapped[str] = mapped_column(Text)
    not_before: Mapped[datetime | None] = mapped_column(AwareDateTime())
    not_after: Mapped[datetime | None] = mapped_column(AwareDateTime())
    added_at: Mapped[datetime] = mapped_column(AwareDateTime(), default=utcnow)


class Checkpoint(Base):
    """A sealed, time-stamped Merkle tree head of the custody ledger."""

    __tablename__ = "checkpoints"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tree_size: Mapped[int] = mapped_column(BigInteger, unique=True)
    root_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(AwareDateTime(), default=utcnow)
    statement: Mapped[str] = mapped_column(Text)
    """Canonical JSON that was signed (tree size, root, time, previous checkpoint)."""
    cades: Mapped[bytes] = mapped_column(LargeBinary)
    """Detached CAdES-B-T signature over ``statement``."""
    sm2: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    timestamp_time: Mapped[datetime | None] = mapped_column(AwareDateTime())


class ExportRequest(Base):
    """A certified export of a case, requested, approved, then built by a worker."""

    __tablename__ = "exports"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    requested_by: Mapped[str] = mapped_column(ForeignKey("users.id"))
    recipient_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"), index=True)
    items: Mapped[list[str] | None] = mapped_column(JSON)
    """Selected item ids, or None for every item of the case."""
    include_derived: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(16), default="requested")
    """requested, approved, building, ready, failed."""
    approved_by: Mapped[str | None] = mapped_column(ForeignKey("users.id"))
    approved_at: Mapped[datetime | None] = mapped_column(AwareDateTime())
    progress: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    storage_key: Mapped[str | None] = mapped_column(String(1000))
    storage_version: Mapped[str | None] = mapped_column(String(200))
    size: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(AwareDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(AwareDateTime())


class VerificationReceipt(Base):
    """The outcome of a reviewer's verification of an item or a case."""

    __tablename__ = "verification_receipts"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    item_id: Mapped[str | None] = mapped_column(String(36))
    requested_by: Mapped[str] = mapped_column(ForeignKey("users.id"))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    """queued, running, passed, incomplete, failed."""
    checks: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    """One entry per check: what, subject, outcome, detail."""
    pending: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    """Why an ``incomplete`` verification is not ``passed``: what, subject, reason, detail."""
    created_at: Mapped[datetime] = mapped_column(AwareDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(AwareDateTime())


class Work(Base):
    """Background work still to do: the durable record of it (the broker only rings the bell).

    Written in the same transaction as what asks for it (an item received, an export
    approved...). A worker takes a lease before it runs the task and renews it while it
    runs; the row goes when the task is done. A reconciler sends the task again when a
    row is due: never picked up (a lost message), its lease ran out (a dead worker), or a
    transient failure's back-off has passed. After ``attempts`` reach the limit the row
    stays ``failed`` with its reason, for operators to see.
    """

    __tablename__ = "work"
    task: Mapped[str] = mapped_column(String(100), primary_key=True)
    subject: Mapped[str] = mapped_column(String(100), primary_key=True)
    """The id the task takes (item, case, export, receipt)."""
    state: Mapped[str] = mapped_column(String(16), default="pending")
    """pending or failed."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    due_at: Mapped[datetime] = mapped_column(AwareDateTime(), index=True)
    """When the reconciler should (re)send the task if nothing has happened by then."""
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_until: Mapped[datetime | None] = mapped_column(AwareDateTime())
    again: Mapped[bool] = mapped_column(default=False)
    """Asked for again while running: run once more after this run."""
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(AwareDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(AwareDateTime(), default=utcnow, onupdate=utcnow)


class WorkPulse(Base):
    """When a worker last took up background work (one row, ``id`` 1), so that ``/healthz``
    tells a backlog being drained from work nobody takes (:func:`archive.work.counts`).
    Written by :func:`archive.work.claim` at most once a second."""

    __tablename__ = "work_pulse"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    taken_at: Mapped[datetime | None] = mapped_column(AwareDateTime())
