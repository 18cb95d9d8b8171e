"""Receiving originals: checking an upload, refusing duplicates, storing, locking, registering.

Receiving is *object first, row second*: bytes stream into the case's vault while
SHA-256 is computed; only when the declared hash (if any) matches is the object locked
and the row and custody entry written, in one transaction that first checks that the case
is open and does not hold this content yet (:func:`keep_original`). A mismatch, a broken
upload or a refusal discards the unlocked object, so nothing is kept as evidence.
"""

from __future__ import annotations

import logging
import mimetypes
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from archive import work
from archive.custody import ledger
from archive.db import Database, hold_name, share_row
from archive.timefmt import given_time, in_range_utc
from archive.errors import (
    ArchiveError, CaseClosed, Conflict, DatabaseBusy, HashMismatch, InvalidInput, NotFound, ObjectLocked,
    UploadIncomplete,
)
from archive.evidence.filenames import check_filename
from archive.evidence.media_types import HEAD, sniff_bytes
from archive.evidence.items import ALIKE, EMPTY_SHA256, add_flag, original_key, same_evidence
from archive.models import Case, CaseStage, EvidenceItem, EvidenceKind, ItemStatus, User, new_id, utcnow
from archive.storage import ObjectStore, StoredObject
from archive.storage.streams import HashingStream
from archive.identity.users import actor_name, check_user_may_sign_in, load_case, unit_scope

log = logging.getLogger(__name__)

HEX64 = set("0123456789abcdef")


def normalise_sha256(value: str | None) -> str | None:
    """A declared SHA-256 in lower-case hex, or InvalidInput when it is not one (an empty
    ``sha256=`` too: a client that meant to declare one must not pass unchecked)."""
    if value is None:
        return None
    value = value.strip().lower()
    if len(value) != 64 or not set(value) <= HEX64:
        raise InvalidInput("sha256 must be 64 hexadecimal characters", code="invalid_sha256")
    return value


def parse_recorded_start(value: str | None) -> datetime | None:
    """A recording start as sent (ISO 8601 text; None: not given), or InvalidInput
    (``invalid_recorded_start``) naming what is wrong with it. Whether it has a zone and
    lies on the calendar is checked with the rest of the upload (:func:`check_incoming`)."""
    if value is None:
        return None
    try:
        return given_time(value)
    except ValueError as exc:
        raise InvalidInput(f"recorded_start: {exc}", code="invalid_recorded_start") from exc


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
    refuse_closed(case)
    check_filename(incoming.filename)
    normalise_sha256(incoming.declared_sha256)
    device = incoming.device_id
    # Checked before any byte is stored: a row refused after the upload would leave a locked orphan.
    if device is not None and (not device.strip() or len(device) > 200 or not device.isprintable()):
        raise InvalidInput("device id must be 1-200 printable characters", code="invalid_device_id")
    if incoming.recorded_start is not None and incoming.recorded_start.tzinfo is None:
        raise InvalidInput("recorded_start needs a time zone (e.g. Z or +08:00)", code="invalid_recorded_start")
    if incoming.recorded_start is not None and in_range_utc(incoming.recorded_start) is None:
        raise InvalidInput("recorded_start must fall within the years 1900-2999",
                           code="invalid_recorded_start")
    return case.vault.name


class DuplicateEvidence(Conflict):
    """The same content (SHA-256) is already evidence of this case: one piece of evidence
    is one item. The new copy was discarded before it was locked; ``existing_id`` names
    the item that holds it."""

    code = "duplicate_evidence"

    def __init__(self, message: str, *, existing_id: str):
        super().__init__(message)
        self.existing_id = existing_id


def same_content_in_case(session: Session, *, case_id: str, sha256: str,
                         like: IncomingEvidence | None = None) -> EvidenceItem | None:
    """The case's first item holding exactly this content, if any.

    No bytes are no content to be one piece of evidence by: an empty file is itself a fact
    (a camera that produced nothing), so with ``like`` it is the same evidence only as an
    empty item described alike (kind, device, declared start and file name: the same file
    sent again), not any empty file of the case."""
    query = select(EvidenceItem).where(EvidenceItem.case_id == case_id, EvidenceItem.sha256 == sha256)
    if sha256 == EMPTY_SHA256 and like is not None:
        query = query.where(EvidenceItem.kind == like.kind, EvidenceItem.original_filename == like.filename)
        found = session.execute(query.order_by(EvidenceItem.received_at, EvidenceItem.id)).scalars()
        return next((item for item in found if item.device_id == like.device_id
                     and item.recorded_start == like.recorded_start), None)
    return session.execute(query.order_by(EvidenceItem.received_at, EvidenceItem.id).limit(1)).scalar_one_or_none()


def refuse_closed(case: Case) -> None:
    """Raise CaseClosed (409 ``case_closed``) when the case is closed: its vault accepts nothing new."""
    if case.stage == CaseStage.closed:
        raise CaseClosed(f"case {case.case_number} is closed: its vault accepts no new evidence "
                         "(a legal reviewer may reopen it)")


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
    recheck_uploader: bool = False,
) -> EvidenceItem:
    """Stream an original into its case's vault and register it as evidence.

    No database transaction is held while bytes flow. Raises HashMismatch (nothing
    kept) when the declared SHA-256 differs, UploadIncomplete when fewer bytes than
    announced arrived, DuplicateEvidence when the case holds this content already
    (:func:`keep_original`). ``on_registered(session, item)`` runs in the transaction that
    commits the item (to record something with it, e.g. an idempotent answer); if it
    raises, nothing is registered. With ``recheck_uploader`` (a person's upload, which may
    stream for hours), the uploader is checked again when the item is kept
    (:func:`still_admitted`).
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
    head = bytearray()

    def noting_head(chunks: Iterable[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            if len(head) < HEAD:
                head.extend(chunk[:HEAD - len(head)])
            yield chunk

    stream = HashingStream(noting_head(chunks), "sha256")
    stored = store.put(key, stream, content_type=guess_media_type(filename))
    sha256 = stream.hexdigest("sha256")
    check_received(store=store, stored=stored, size=stream.size, sha256=sha256,
                   declared=incoming.declared_sha256, expected_size=expected_size)
    media_type = sniff_bytes(bytes(head), name=filename)

    def registered(session: Session) -> EvidenceItem | None:
        return session.get(EvidenceItem, item_id)  # a commit whose answer was lost

    def register(session: Session, locked: StoredObject) -> EvidenceItem:
        item = register_original(session, user_id=user_id, actor=actor, incoming=incoming, item_id=item_id,
                                 stored=locked, sha256=sha256, media_type=media_type)
        if on_registered is not None:
            on_registered(session, item)
        return item

    item = keep_original(db=db, store=store, stored=stored, size=stream.size, incoming=incoming, sha256=sha256,
                         actor=actor, retention_days=retention_days, what=f"registering item {item_id}",
                         registered=registered, register=register,
                         admit=(lambda session: still_admitted(session, user_id=user_id, incoming=incoming))
                         if recheck_uploader else None)
    log.info("received item %s (%d bytes) into %s", item_id, stream.size, vault)
    return item


T = TypeVar("T")


def with_patience(db: Database, what: str, write: Callable[[Session], T]) -> T:
    """``write(session)`` in a writing session, tried again for up to :data:`REGISTER_PATIENCE`
    seconds while the database is busy (back-off 0.2-2 s). For what follows an original
    already stored and locked for decades: a database lost for a moment then must not leave
    the object without its item. ``write`` must be safe to run again."""
    delay, deadline = 0.2, time.monotonic() + REGISTER_PATIENCE
    while True:
        try:
            with db.session() as session:
                return write(session)
        except DatabaseBusy:
            if time.monotonic() + delay > deadline:
                log.error("%s: the database stayed busy for %.0f s", what, REGISTER_PATIENCE)
                raise
            log.warning("%s: the database is busy; trying again in %.1f s", what, delay)
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


REGISTER_PATIENCE = 30.0
"""Seconds an original already stored and locked waits for the database to register it."""


def check_received(
    *,
    store: ObjectStore,
    stored: StoredObject,
    size: int,
    sha256: str,
    declared: str | None,
    expected_size: int | None = None,
) -> None:
    """Check a stored, still unlocked original against what was announced.

    ``size`` and ``sha256`` are what was measured while the bytes went in. On a short
    upload (UploadIncomplete) or a declared-hash mismatch (HashMismatch) the object is
    discarded, so nothing is kept.
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
    except ArchiveError:
        _discard_refused(store, stored)
        raise


def keep_original(
    *,
    db: Database,
    store: ObjectStore,
    stored: StoredObject,
    size: int,
    incoming: IncomingEvidence,
    sha256: str,
    actor: str,
    retention_days: int,
    what: str,
    registered: Callable[[Session], T | None],
    register: Callable[[Session, StoredObject], T],
    admit: Callable[[Session], None] | None = None,
) -> T:
    """Lock a checked original (COMPLIANCE retention) and register it, or refuse it, in one
    write transaction; return what ``register`` (or ``registered``) returned. ``size`` is what
    was measured while the bytes went in.

    The case must be open (CaseClosed) and must not hold this content already
    (DuplicateEvidence, recorded as a ``duplicate_received`` custody entry; bundle members are
    parts of their capture and are never refused). Both are checked in the transaction that
    writes the item, under a hold on the content (:func:`~archive.db.hold_name`; on SQLite
    the write transaction), and the case row shared: copies of one content arriving at once
    are kept once, whichever route each came by, and the others are refused exactly as a copy
    arriving later is. Copies of one content into different cases are kept each, and the later
    knows of the earlier (flagged ``duplicate_content``, as when they come one after the other;
    held per case, two at once each missed the other). Only copies of the same content wait
    for each other, and only for this transaction: no byte is streamed or hashed under it.

    A refused copy is discarded before it was ever locked, so nothing of it is kept.
    ``registered(session)`` is what an earlier attempt already committed (its answer lost),
    if anything; ``register(session, locked)`` writes the item (e.g. :func:`register_original`).
    A busy database is waited out as in :func:`with_patience`: once locked, the original
    must not be left without its item. ``admit(session)``, if given, may refuse the original
    (raising) in that transaction, before it is locked: then too nothing of it is kept.
    """
    until = utcnow() + timedelta(days=retention_days)
    locked: StoredObject | None = None
    locking = False
    refused: DuplicateEvidence | None = None

    def keep(session: Session) -> T | None:
        nonlocal locked, locking, refused
        refused = None
        refusable = incoming.parent_id is None
        if refusable:
            hold_name(session, "content", sha256)
        # Shared, not locked: uploads to one case do not wait for each other, but a close (which
        # locks the case row) cannot slip between this check and the item's commit.
        refuse_closed(share_row(session, Case, incoming.case_id))
        done = registered(session)
        if done is None and admit is not None:
            admit(session)
        if done is not None:
            return done
        existing = (same_content_in_case(session, case_id=incoming.case_id, sha256=sha256, like=incoming)
                    if refusable else None)
        if existing is not None:
            ledger.append(
                session, actor=actor, action="duplicate_received", case_id=incoming.case_id, item_id=existing.id,
                details={"filename": incoming.filename, "sha256": sha256, "existing_item": existing.id,
                         "device_id": incoming.device_id, "kept": False},
            )
            refused = DuplicateEvidence(
                f"this content (sha256 {sha256}) is already item {existing.id} ({existing.original_filename}) "
                "of this case; the new copy was not kept", existing_id=existing.id,
            )
            return None
        if locked is None:
            locking = True
            done_locking = store.lock(stored.key, version_id=stored.version_id, until=until)
            locked = replace(done_locking, size=size, retention_until=done_locking.retention_until or until)
        return register(session, locked)

    try:
        kept = with_patience(db, what, keep)
    except ArchiveError:
        if not locking:  # refused (closed case, busy database) before the lock was tried
            _discard_refused(store, stored)
        raise
    if refused is not None:
        if locked is not None:
            # Locked by an attempt whose commit was lost, while another copy was registered.
            log.warning("kept refused object %s: it was locked before its copy was found a duplicate", stored.key)
        else:
            _discard_refused(store, stored)
        raise refused
    assert kept is not None
    return kept


CREDENTIAL_CHECK_SECONDS = 10.0
"""How often a body streaming in checks that its request's credential still holds."""


def checked_while_streaming(chunks: Iterable[bytes], check: Callable[[], None], *,
                            every: float = CREDENTIAL_CHECK_SECONDS, at_end: bool = True) -> Iterator[bytes]:
    """A body's chunks, calling ``check`` (which raises to stop the body: a token revoked
    mid-upload) every ``every`` seconds of them and, ``at_end``, once more after the last,
    before the store takes the object as whole: an upload streams for hours, and a credential
    withdrawn meanwhile must not see its bytes kept."""
    checked = time.monotonic()
    for chunk in chunks:
        if time.monotonic() - checked >= every:
            check()
            checked = time.monotonic()
        yield chunk
    if at_end:
        check()


def still_admitted(session: Session, *, user_id: str, incoming: IncomingEvidence) -> None:
    """Raise unless the uploader may still add evidence to the case: checked when a person's
    upload is kept as well as when it began, since a large one streams for hours. A user
    disabled meanwhile is refused (401 ``user_disabled``), one moved to another unit or role
    as anyone else would be (404 ``case_not_found``, 403); nothing of the upload is kept."""
    user = session.get(User, user_id)
    check_user_may_sign_in(user)
    load_case(session, user=user, case_id=incoming.case_id, write=True)


def _discard_refused(store: ObjectStore, stored: StoredObject) -> None:
    """Remove a refused, never locked original, so nothing of it is kept."""
    try:
        store.discard(stored.key, version_id=stored.version_id)
    except ObjectLocked:
        # The case is under legal hold, and a held vault gives up nothing: the refused
        # bytes stay, unregistered (never evidence); the answer is still the refusal.
        log.warning("kept refused object %s: its vault is under legal hold", stored.key)


def register_original(
    session: Session,
    *,
    user_id: str,
    actor: str,
    incoming: IncomingEvidence,
    item_id: str,
    stored: StoredObject,
    sha256: str,
    media_type: str,
) -> EvidenceItem:
    """Write the evidence row and its ``evidence_received`` custody entry for a locked original.

    ``media_type`` is what the original's first bytes say it is (:func:`sniff_bytes`), never
    the uploader's name or claim; the worker's probe may refine it from the whole file.

    The caller commits; enqueue processing only after that commit. The row's primary key
    is ``item_id``, so registering the same original twice fails in the database.
    """
    filename = check_filename(incoming.filename)
    declared = normalise_sha256(incoming.declared_sha256)
    # Shared, not locked: uploads to one case do not wait for each other, but a close (which
    # locks the case row) cannot slip between this check and the item's commit.
    case = share_row(session, Case, incoming.case_id)
    refuse_closed(case)
    item = EvidenceItem(
        id=item_id,
        case_id=incoming.case_id,
        vault_id=case.vault.id,
        parent_id=incoming.parent_id,
        kind=incoming.kind,
        original_filename=filename,
        media_type=media_type,
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
    elsewhere = _held_elsewhere(session, user_id=user_id, item=item)
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


def _held_elsewhere(session: Session, *, user_id: str, item: EvidenceItem) -> bool:
    """True when another case the uploader may see already holds this evidence: its content,
    or for an empty file an empty item described alike (:func:`~archive.evidence.items.same_evidence`)."""
    user = session.get(User, user_id)
    query = select(EvidenceItem.sha256, *(getattr(EvidenceItem, a) for a in ALIKE)).join(
        Case, Case.id == EvidenceItem.case_id,
    ).where(EvidenceItem.sha256 == item.sha256, EvidenceItem.case_id != item.case_id)
    if user is not None:
        query = query.where(unit_scope(user))
    if item.sha256 != EMPTY_SHA256:
        return session.execute(query.limit(1)).first() is not None
    return any(same_evidence(item, other) for other in session.execute(query))
