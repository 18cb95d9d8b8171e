"""Evidence items: receiving originals, reading them back, deriving objects from them.

Receiving is *object first, row second*: bytes stream into the case's vault while
SHA-256 is computed; only when the declared hash (if any) matches is the object locked
and the row and custody entry written in one transaction. A mismatch or a broken
upload discards the unlocked object, so nothing is kept as evidence.
"""

from __future__ import annotations

import logging
import re
import mimetypes
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from archive import work
from archive.custody import ledger
from archive.db import Database, lock_row
from archive.errors import (
    ArchiveError, Conflict, HashMismatch, InvalidInput, NotFound, UploadIncomplete, VerificationError,
)
from archive.evidence.filenames import check_filename
from archive.models import Case, DerivedObject, EvidenceItem, EvidenceKind, ItemStatus, User, new_id, utcnow
from archive.storage import ObjectStore, StoredObject
from archive.storage.streams import HashingStream, hash_chunks
from archive.identity.users import CASE_READERS, actor_name, load_case, require_role, unit_scope

log = logging.getLogger(__name__)

HEX64 = set("0123456789abcdef")
_BYTES_RANGE = re.compile(r"bytes=\s*([0-9]{0,18})\s*-\s*([0-9]{0,18})", re.ASCII)


def original_key(vault: str, item_id: str) -> str:
    """Where an original lives: inside its vault, named by its item id."""
    return f"{vault}/originals/{item_id}"


def derived_key(vault: str, item_id: str, role: str, suffix: str = "") -> str:
    """Where an object derived from an original lives (same vault, names its original)."""
    return f"{vault}/derived/{item_id}/{role}{suffix}"


def normalise_sha256(value: str | None) -> str | None:
    """A declared SHA-256 in lower-case hex, or InvalidInput when it is not one."""
    if value is None or value == "":
        return None
    value = value.strip().lower()
    if len(value) != 64 or not set(value) <= HEX64:
        raise InvalidInput("sha256 must be 64 hexadecimal characters", code="invalid_sha256")
    return value


def guess_media_type(filename: str) -> str:
    """A media type from the file name; workers refine it from the bytes."""
    guessed, _ = mimetypes.guess_type(filename, strict=False)
    return guessed or "application/octet-stream"


@dataclass(frozen=True)
class IncomingEvidence:
    """What the uploader says about a file before its bytes arrive."""

    case_id: str
    kind: EvidenceKind
    filename: str
    declared_sha256: str | None = None
    device_id: str | None = None
    recorded_start: datetime | None = None
    details: dict[str, Any] | None = None
    parent_id: str | None = None


def check_incoming(session: Session, *, user: User, incoming: IncomingEvidence) -> str:
    """Validate an upload before any byte is stored; return the vault name to write to."""
    case = load_case(session, user=user, case_id=incoming.case_id, write=True)
    check_filename(incoming.filename)
    normalise_sha256(incoming.declared_sha256)
    device = incoming.device_id
    # Checked before any byte is stored: a row refused after the upload would leave a locked orphan.
    if device is not None and (not device.strip() or len(device) > 200 or not device.isprintable()):
        raise InvalidInput("device id must be 1-200 printable characters", code="invalid_device_id")
    if incoming.recorded_start is not None and incoming.recorded_start.tzinfo is None:
        raise InvalidInput("recorded_start needs a time zone (e.g. Z or +08:00)", code="invalid_recorded_start")
    if incoming.recorded_start is not None:
        try:
            # Stored in UTC: a time at the edge of the calendar (0001-01-01+14:00) has no UTC form.
            incoming.recorded_start.astimezone(timezone.utc)
        except OverflowError as exc:
            raise InvalidInput("recorded_start must fall within years 1-9999 in UTC",
                               code="invalid_recorded_start") from exc
    return case.vault.name


class DuplicateEvidence(Conflict):
    """The same content (SHA-256) is already evidence of this case: one piece of evidence
    is one item. The new copy was discarded before it was locked; ``existing_id`` names
    the item that holds it."""

    code = "duplicate_evidence"

    def __init__(self, message: str, *, existing_id: str):
        super().__init__(message)
        self.existing_id = existing_id


def same_content_in_case(session: Session, *, case_id: str, sha256: str) -> EvidenceItem | None:
    """The case's first item holding exactly this content, if any."""
    return session.execute(
        select(EvidenceItem).where(EvidenceItem.case_id == case_id, EvidenceItem.sha256 == sha256)
        .order_by(EvidenceItem.received_at, EvidenceItem.id).limit(1)
    ).scalar_one_or_none()


def refuse_duplicate(db: Database, *, incoming: IncomingEvidence, sha256: str, actor: str) -> None:
    """Raise DuplicateEvidence when the case already holds this content (before locking).

    The refused copy is recorded in the custody ledger (``duplicate_received``), so the
    attempt is part of the record although its bytes are not kept. Bundle members are
    parts of their capture and are never refused.
    """
    if incoming.parent_id is not None:
        return
    with db.session() as session:
        existing = same_content_in_case(session, case_id=incoming.case_id, sha256=sha256)
        if existing is None:
            return
        ledger.append(
            session, actor=actor, action="duplicate_received", case_id=incoming.case_id, item_id=existing.id,
            details={"filename": incoming.filename, "sha256": sha256, "existing_item": existing.id,
                     "device_id": incoming.device_id, "kept": False},
        )
        existing_id, existing_name = existing.id, existing.original_filename
    raise DuplicateEvidence(
        f"this content (sha256 {sha256}) is already item {existing_id} ({existing_name}) of this case; "
        "the new copy was not kept", existing_id=existing_id,
    )


def case_items(session: Session, *, case_id: str) -> list[EvidenceItem]:
    """Every evidence item of a case, oldest first (the caller has checked access to the case)."""
    query = select(EvidenceItem).where(EvidenceItem.case_id == case_id).order_by(EvidenceItem.received_at)
    return list(session.execute(query).scalars().unique())


def duplicates_of(session: Session, *, user: User, items: Iterable[EvidenceItem]) -> dict[str, list[str]]:
    """For each item, the other items with the same content in cases the user may see."""
    items = list(items)
    hashes = {i.sha256 for i in items}
    if not hashes:
        return {}
    query = select(EvidenceItem.id, EvidenceItem.sha256).join(Case, Case.id == EvidenceItem.case_id).where(
        EvidenceItem.sha256.in_(hashes)
    ).order_by(EvidenceItem.received_at, EvidenceItem.id).where(unit_scope(user))
    holders: dict[str, list[str]] = {}
    for item_id, sha in session.execute(query):
        holders.setdefault(sha, []).append(item_id)
    return {i.id: [other for other in holders.get(i.sha256, []) if other != i.id] for i in items}


def receive_original(
    *,
    db: Database,
    store: ObjectStore,
    user_id: str,
    incoming: IncomingEvidence,
    chunks: Iterable[bytes],
    retention_days: int,
    expected_size: int | None = None,
    on_registered: Callable[[Session, EvidenceItem], None] | None = None,
) -> EvidenceItem:
    """Stream an original into its case's vault and register it as evidence.

    No database transaction is held while bytes flow. Raises HashMismatch (nothing
    kept) when the declared SHA-256 differs, UploadIncomplete when fewer bytes than
    announced arrived. ``on_registered(session, item)`` runs in the transaction that
    commits the item (to record something with it, e.g. an idempotent answer); if it
    raises, nothing is registered.
    """
    with db.session() as session:
        user = session.get(User, user_id)
        if user is None:
            raise NotFound("user vanished", code="user_not_found")
        vault = check_incoming(session, user=user, incoming=incoming)
        actor = actor_name(user)
    filename = check_filename(incoming.filename)
    item_id = new_id()
    key = original_key(vault, item_id)
    stream = HashingStream(chunks, "sha256")
    stored = store.put(key, stream, content_type=guess_media_type(filename))
    locked = accept_original(
        store=store, stored=stored, size=stream.size, sha256=stream.hexdigest("sha256"),
        declared=incoming.declared_sha256, expected_size=expected_size, retention_days=retention_days,
        before_lock=lambda: refuse_duplicate(db, incoming=incoming, sha256=stream.hexdigest("sha256"), actor=actor),
    )
    with db.session() as session:
        item = register_original(
            session, user_id=user_id, actor=actor, incoming=incoming, item_id=item_id, stored=locked,
            sha256=stream.hexdigest("sha256"),
        )
        if on_registered is not None:
            on_registered(session, item)
    log.info("received item %s (%d bytes) into %s", item_id, stream.size, vault)
    return item


def accept_original(
    *,
    store: ObjectStore,
    stored: StoredObject,
    size: int,
    sha256: str,
    declared: str | None,
    retention_days: int,
    expected_size: int | None = None,
    before_lock: Callable[[], None] | None = None,
) -> StoredObject:
    """Check a stored, still unlocked original against what was announced, then lock it.

    ``size`` and ``sha256`` are what was measured while the bytes went in. On a short
    upload (UploadIncomplete) or a declared-hash mismatch (HashMismatch) the object is
    discarded, so nothing is kept. ``before_lock`` runs last before locking: an
    ArchiveError from it (e.g. DuplicateEvidence) discards the object the same way.
    Returns the object as locked (COMPLIANCE retention).
    """
    declared = normalise_sha256(declared)
    try:
        if expected_size is not None and size != expected_size:
            raise UploadIncomplete(
                f"received {size} of {expected_size} bytes; nothing was kept", code="upload_incomplete"
            )
        if declared is not None and declared != sha256:
            raise HashMismatch(
                f"declared sha256 {declared} but received bytes hash to {sha256}; nothing was kept",
                code="hash_mismatch",
            )
        if before_lock is not None:
            before_lock()
    except ArchiveError:
        store.discard(stored.key, version_id=stored.version_id)
        raise
    until = utcnow() + timedelta(days=retention_days)
    locked = store.lock(stored.key, version_id=stored.version_id, until=until)
    return replace(locked, size=size, retention_until=locked.retention_until or until)


def register_original(
    session: Session,
    *,
    user_id: str,
    actor: str,
    incoming: IncomingEvidence,
    item_id: str,
    stored: StoredObject,
    sha256: str,
) -> EvidenceItem:
    """Write the evidence row and its ``evidence_received`` custody entry for a locked original.

    The caller commits; enqueue processing only after that commit. The row's primary key
    is ``item_id``, so registering the same original twice fails in the database.
    """
    filename = check_filename(incoming.filename)
    declared = normalise_sha256(incoming.declared_sha256)
    item = EvidenceItem(
        id=item_id,
        case_id=incoming.case_id,
        vault_id=session.get(Case, incoming.case_id).vault.id,
        parent_id=incoming.parent_id,
        kind=incoming.kind,
        original_filename=filename,
        media_type=guess_media_type(filename),
        size=stored.size,
        sha256=sha256,
        storage_key=stored.key,
        storage_version=stored.version_id,
        retention_until=stored.retention_until,
        uploaded_by=user_id,
        device_id=incoming.device_id,
        recorded_start=incoming.recorded_start,
        details=incoming.details or {},
        status=ItemStatus.received,
        flags=["empty_file"] if stored.size == 0 else [],
        processing={},
    )
    elsewhere = _held_elsewhere(session, user_id=user_id, case_id=incoming.case_id, sha256=sha256)
    if elsewhere:
        add_flag(item, "duplicate_content")
    session.add(item)
    session.flush()
    # Recorded with the item, so its processing survives a lost message or a dead worker.
    work.want(session, task=work.PROCESS_ITEM, subject=item_id)
    ledger.append(
        session, actor=actor, action="evidence_received", case_id=incoming.case_id, item_id=item_id,
        details={
            "filename": filename, "kind": incoming.kind.value, "size": stored.size, "sha256": sha256,
            "declared_sha256": declared, "storage_key": stored.key, "storage_version": stored.version_id,
            "device_id": incoming.device_id,
            "recorded_start": incoming.recorded_start.isoformat() if incoming.recorded_start else None,
            "retention_until": item.retention_until.isoformat(), "parent": incoming.parent_id,
            "duplicate_elsewhere": elsewhere,
        },
    )
    return item


def _held_elsewhere(session: Session, *, user_id: str, case_id: str, sha256: str) -> bool:
    """True when another case the uploader may see already holds this content."""
    user = session.get(User, user_id)
    query = select(EvidenceItem.id).join(Case, Case.id == EvidenceItem.case_id).where(
        EvidenceItem.sha256 == sha256, EvidenceItem.case_id != case_id
    )
    if user is not None:
        query = query.where(unit_scope(user))
    return session.execute(query.limit(1)).first() is not None


def load_item(session: Session, *, user: User, item_id: str) -> EvidenceItem:
    """An item the user may read (its case must be visible to them)."""
    require_role(user, CASE_READERS, doing="read evidence")
    item = session.get(EvidenceItem, item_id)
    if item is None:
        raise NotFound(f"no evidence item {item_id} visible to you", code="item_not_found")
    load_case(session, user=user, case_id=item.case_id)
    return item


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end) inclusive from a single-range ``Range`` header; None for the whole file.

    As RFC 9110 section 14.2 has it, a Range that is not one ``bytes`` range (another unit,
    several ranges, bad syntax) is ignored and the whole file served; only a well-formed
    range that lies outside the file is refused (416).
    """
    match = _BYTES_RANGE.fullmatch((header or "").strip())
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.group(1), match.group(2)
    if first == "":
        length = int(last)
        if length <= 0:
            raise InvalidInput(f"range {header!r} asks for no bytes", code="range_not_satisfiable", status=416)
        start, end = max(size - length, 0), size - 1
    else:
        start = int(first)
        end = int(last) if last else size - 1
    end = min(end, size - 1)
    if start > end:
        raise InvalidInput(f"range {header!r} outside 0..{size - 1}", code="range_not_satisfiable", status=416)
    return start, end


def record_read(
    session: Session, *, user: User, item: EvidenceItem, byte_range: tuple[int, int] | None, purpose: str = "content"
) -> None:
    """Custody entry for a read of evidence (written before the first byte leaves)."""
    ledger.append(
        session, actor=actor_name(user), action="content_read", case_id=item.case_id, item_id=item.id,
        details={"purpose": purpose, "range": list(byte_range) if byte_range else None, "sha256": item.sha256},
    )


def lock_item(session: Session, item_id: str) -> EvidenceItem:
    """Load an item and lock its row until the transaction ends (serialises workers)."""

    item = lock_row(session, EvidenceItem, item_id)
    if item is None:
        raise NotFound(f"no evidence item {item_id}", code="item_not_found")
    return item


def set_task_state(item: EvidenceItem, task: str, state: str, reason: str | None = None) -> None:
    """Record a processing task's state on the item (shown in the API as ``processing``)."""
    processing = dict(item.processing or {})
    processing[task] = {"state": state, "reason": reason, "at": ledger.iso_utc(datetime.now(timezone.utc))}
    item.processing = processing


def add_flag(row: EvidenceItem | Case, flag: str) -> None:
    """Add a flag to an item or a case (kept as a sorted set); the one way flags are added."""
    row.flags = sorted(set(row.flags or []) | {flag})


def compute_sm3(*, db: Database, store: ObjectStore, item_id: str) -> str:
    """Hash the stored original with SM3 (and SHA-512) and record both; safe to run twice.

    SHA-512 rides along in a thread of its own during the same read, so it costs no extra
    time (SM3 is the slower), and exports need not hash every original with it again.
    """
    with db.session() as session:
        item = session.get(EvidenceItem, item_id)
        if item is None:
            raise NotFound(f"no evidence item {item_id}", code="item_not_found")
        if item.sm3:
            return item.sm3
    stream = hash_chunks(store.read(item.storage_key, version_id=item.storage_version), "sha256", "sm3", "sha512")
    if stream.hexdigest("sha256") != item.sha256:
        raise VerificationError(f"stored original of item {item_id} no longer matches its sha256", code="fixity_failed")
    digest, sha512 = stream.hexdigest("sm3"), stream.hexdigest("sha512")
    with db.session() as session:
        item = lock_item(session, item_id)
        if item.sm3:
            return item.sm3
        item.sm3, item.sha512 = digest, sha512
        ledger.append(
            session, actor="system:worker", action="sm3_computed", case_id=item.case_id, item_id=item_id,
            details={"sm3": digest, "sha512": sha512},
        )
    return digest


def find_derived(session: Session, *, item_id: str, role: str) -> DerivedObject | None:
    """The object of ``role`` derived from an item, if one was stored."""

    return session.execute(
        select(DerivedObject).where(DerivedObject.item_id == item_id, DerivedObject.role == role)
    ).scalar_one_or_none()


def store_derived(
    *,
    db: Database,
    store: ObjectStore,
    item_id: str,
    role: str,
    chunks: Iterable[bytes],
    media_type: str,
    suffix: str = "",
    actor: str = "system:worker",
    details: dict[str, Any] | None = None,
) -> DerivedObject:
    """Store a new object made from an original in the original's vault, then its row.

    Object first, row second: a crash in between leaves a harmless orphan. The key
    carries a fresh id, so a retry never collides with such an orphan. The object is
    locked like its original. Safe to run twice: when the item already has an object
    of ``role`` it is returned and nothing new is stored or recorded. The row and its
    ``derived_created`` custody entry are written in one transaction.
    """
    with db.session() as session:
        item = session.get(EvidenceItem, item_id)
        if item is None:
            raise NotFound(f"no evidence item {item_id}", code="item_not_found")
        existing = find_derived(session, item_id=item_id, role=role)
        if existing is not None:
            return existing
        vault, retention = item.vault.name, item.retention_until
    key = derived_key(vault, item_id, role, f".{new_id()}{suffix}")
    stream = HashingStream(chunks, "sha256")
    stored = store.put(key, stream, content_type=media_type)
    until = retention or utcnow() + timedelta(days=1)
    store.lock(key, version_id=stored.version_id, until=until)
    with db.session() as session:
        item = lock_item(session, item_id)
        existing = find_derived(session, item_id=item_id, role=role)
        if existing is not None:
            # Another worker won the race; our object stays an unreferenced orphan.
            return existing
        derived = DerivedObject(
            item_id=item_id, role=role, media_type=media_type, sha256=stream.hexdigest("sha256"),
            size=stream.size, storage_key=key, storage_version=stored.version_id,
        )
        session.add(derived)
        session.flush()
        ledger.append(
            session, actor=actor, action="derived_created", case_id=item.case_id, item_id=item_id,
            details={
                "role": role, "derived_id": derived.id, "media_type": media_type, "sha256": derived.sha256,
                "size": derived.size, "storage_key": key, "storage_version": stored.version_id,
                "original_sha256": item.sha256, **(details or {}),
            },
        )
    return derived
