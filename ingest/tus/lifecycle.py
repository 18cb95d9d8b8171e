"""The upload lifecycle: creation, status, appending, completion into evidence,
termination, expiry and the sweep of leftovers (design in :mod:`ingest.tus`)."""

from __future__ import annotations

import hashlib
import logging
import os
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from archive import metrics
from archive.evidence import items as evidence
from archive.evidence import receiving
from archive.evidence.media_types import HEAD, sniff_bytes
from archive.custody import ledger
from archive.db import Database, lock_row
from archive.errors import ArchiveError, CaseClosed, Conflict, HashMismatch, InvalidInput, NotFound, Unauthenticated
from archive.evidence.filenames import check_filename
from archive.models import EvidenceKind, Upload, User, new_id, utcnow
from archive.storage import ObjectStore, StageHandle, StoredObject
from archive.storage.streams import hash_chunks
from archive.timefmt import given_time
from archive.identity.users import actor_name, load_case
from ingest.tus.streaming import receive
from ingest.tus.errors import UploadBusy, UploadGone
from ingest.tus.hashing import LiveUploads
from ingest.tus.headers import MAX_SIZE

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UploadInfo:
    """An upload as its creator sees it."""

    id: str
    case_id: str
    length: int
    offset: int
    status: str
    """open, complete, failed, expired or terminated."""
    expires_at: datetime
    item_id: str | None
    """The evidence item, once complete."""
    error: str | None
    metadata: dict[str, str]

    @classmethod
    def of(cls, upload: Upload) -> UploadInfo:
        return cls(
            id=upload.id, case_id=upload.case_id, length=upload.length or 0, offset=upload.offset,
            status=upload.status, expires_at=upload.expires_at, item_id=upload.item_id, error=upload.error,
            metadata=dict(upload.params or {}),
        )



def _incoming(upload_id: str, params: dict[str, str]) -> receiving.IncomingEvidence:
    """The evidence description an upload's metadata gives."""
    recorded_start = receiving.parse_recorded_start(params.get("recorded_start") or None)
    try:
        kind = EvidenceKind(params.get("kind") or "")
    except ValueError as exc:
        raise InvalidInput(
            f"metadata kind must be one of {[k.value for k in EvidenceKind]}", code="invalid_kind"
        ) from exc
    return receiving.IncomingEvidence(
        case_id=params.get("case_id") or "", kind=kind, filename=params.get("filename") or params.get("name") or "",
        declared_sha256=params.get("sha256") or None, device_id=params.get("device_id") or None,
        recorded_start=recorded_start, details={"upload": upload_id},
    )



def create_upload(
    session: Session, *, user: User, store: ObjectStore, length: int, metadata: dict[str, str], expiry_hours: float
) -> Upload:
    """Open an upload of ``length`` bytes described by tus ``metadata``.

    Metadata keys: ``case_id``, ``kind``, ``filename`` (or ``name``), optional
    ``sha256`` (declared, hex), ``device_id``, ``recorded_start`` (ISO 8601 with zone).
    The caller commits.
    """
    if length < 0 or length > MAX_SIZE:
        raise InvalidInput(f"Upload-Length must be between 0 and {MAX_SIZE}", code="invalid_upload_length", status=400)
    if not metadata.get("case_id"):
        raise InvalidInput("Upload-Metadata needs case_id", code="missing_case_id")
    upload_id = new_id()
    incoming = _incoming(upload_id, metadata)
    vault = receiving.check_incoming(session, user=user, incoming=incoming)
    declared = receiving.normalise_sha256(incoming.declared_sha256)
    filename = check_filename(incoming.filename)
    item_id = new_id()
    handle = store.staging.begin(evidence.original_key(vault, item_id), content_type=receiving.guess_media_type(filename))
    params = {k: v for k, v in metadata.items() if k in {"case_id", "kind", "device_id", "recorded_start"} and v}
    params.update(filename=filename, **({"sha256": declared} if declared else {}))
    now = utcnow()
    upload = Upload(
        id=upload_id, case_id=incoming.case_id, user_id=user.id, length=length, offset=0, params=params,
        state={"handle": handle, "item_id": item_id}, status="open", created_at=now, updated_at=now,
        expires_at=now + timedelta(hours=expiry_hours),
    )
    session.add(upload)
    session.flush()
    return upload


def _lock_upload(session: Session, upload_id: str) -> Upload:
    upload = lock_row(session, Upload, upload_id)
    assert upload is not None, f"upload {upload_id} was created in an earlier transaction"
    return upload


def load_upload(session: Session, *, user: User, upload_id: str, lock: bool = False) -> Upload:
    """An upload of ``user``'s; anyone else's (or a terminated one) is NotFound."""
    upload = lock_row(session, Upload, upload_id) if lock else session.get(Upload, upload_id)
    if upload is None or upload.user_id != user.id or upload.status == "terminated":
        raise NotFound(f"no upload {upload_id} of yours", code="upload_not_found")
    return upload


def _usable(upload: Upload, now: datetime) -> None:
    """Raise unless the upload can still receive bytes or report completion."""
    if upload.status == "open" and upload.expires_at <= now:
        raise UploadGone(f"upload {upload.id} expired at {ledger.iso_utc(upload.expires_at)}", code="upload_expired")
    if upload.status == "expired":
        raise UploadGone(f"upload {upload.id} expired; start a new one", code="upload_expired")
    if upload.status == "failed":
        raise UploadGone(f"upload {upload.id} failed: {upload.error}", code="upload_failed")


def status(session: Session, *, user: User, upload_id: str) -> UploadInfo:
    """What a HEAD reports: offset and length of an open or completed upload."""
    upload = load_upload(session, user=user, upload_id=upload_id)
    _usable(upload, utcnow())
    return UploadInfo.of(upload)


@dataclass(frozen=True)
class AppendResult:
    """The upload after a PATCH; ``item_id`` is set once it became evidence."""

    upload: UploadInfo
    item_id: str | None


LEASE_RENEW_SECONDS = 10.0
"""How often a PATCH in progress renews its hold on its upload (:func:`_take_lease`)."""


def _lease_stale_after(idle_seconds: float) -> timedelta:
    """When a writer's hold lapses unrenewed: its body sends nothing for ``idle_seconds``
    before it is ended (408) and the hold released, so only a writer whose process died
    leaves one this old."""
    return timedelta(seconds=idle_seconds + 3 * LEASE_RENEW_SECONDS)


def _process_mark(pid: int | None = None) -> str:
    """This host, and a process of it by its id and start time (an id can be reused)."""
    pid = pid or os.getpid()
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            started = stat.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        started = "?"
    return f"{socket.gethostname()}:{pid}:{started}"


def _writer_gone(mark: str) -> bool:
    """Whether the process ``mark`` names is known to have ended: one of this host that no
    longer runs (restarted after a crash, its client resuming). Another host's is not known."""
    host, _, rest = mark.partition(":")
    pid, _, started = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit() or started == "?" or not os.path.isdir("/proc/self"):
        return False
    return _process_mark(int(pid)) != mark


def _take_lease(upload: Upload, now: datetime, *, stale_after: timedelta) -> str:
    """Hold the (row-locked) upload for one PATCH, across every process of every host: the
    stage takes one writer at a time (two writers at the same offset would each write the
    stage's parts, and the bytes kept would not be the ones hashed). 423 ``upload_locked``
    while another PATCH holds it and renews its hold, unless its process is known to have
    ended (:func:`_writer_gone`). The caller commits."""
    writer = (upload.state or {}).get("writer")
    if writer and now - given_time(writer["at"]) < stale_after \
            and not _writer_gone(writer.get("process", "")):
        raise UploadBusy(f"another request is writing upload {upload.id}; retry after it ends")
    lease = new_id()
    upload.state = {**upload.state, "writer": _writer(lease, now)}
    return lease


def _writer(lease: str, now: datetime) -> dict[str, str]:
    return {"id": lease, "at": ledger.iso_utc(now), "process": _process_mark()}


def _held(upload: Upload, lease: str) -> bool:
    return ((upload.state or {}).get("writer") or {}).get("id") == lease


def _renew_lease(db: Database, upload_id: str, lease: str) -> None:
    """Renew the PATCH's hold; 409 ``upload_changed`` when it lost it (it lapsed, and another
    PATCH took the upload): this one must not write another byte."""
    with db.session() as session:
        upload = _lock_upload(session, upload_id)
        if upload.status != "open" or not _held(upload, lease):
            raise Conflict(f"upload {upload_id} changed while receiving ({upload.status})", code="upload_changed")
        upload.state = {**upload.state, "writer": _writer(lease, utcnow())}


def _release_lease(db: Database, upload_id: str, lease: str) -> None:
    """Let go of the PATCH's hold (kept if another has taken it since)."""
    try:
        with db.session() as session:
            upload = _lock_upload(session, upload_id)
            if _held(upload, lease):
                upload.state = {k: v for k, v in upload.state.items() if k != "writer"}
    except Exception as exc:  # noqa: BLE001 - the hold lapses on its own (_lease_stale_after)
        log.warning("upload %s: the PATCH's hold was not released (%s); it lapses", upload_id, type(exc).__name__)


def append(
    *,
    db: Database,
    store: ObjectStore,
    live: LiveUploads,
    user_id: str,
    upload_id: str,
    offset: int,
    chunks: Iterable[bytes],
    checksum: tuple[str, bytes] | None,
    content_length: int | None,
    retention_days: int,
    expiry_hours: float,
    idle_seconds: float = 60.0,
    still_allowed: Callable[[], None] | None = None,
) -> AppendResult:
    """Receive one PATCH body at ``offset``; complete the upload when it is all there.

    Raises Conflict (``offset_mismatch``, 409) when ``offset`` is not the upload's,
    UploadBusy (423) while another PATCH (of any process) writes it, ChecksumMismatch (460,
    the body is discarded), UploadGone (410) for an expired or failed upload, HashMismatch
    when the completed file is not the declared one.

    ``still_allowed`` checks the request's credential again (raising Unauthenticated) while
    the body streams, with every renewal of the PATCH's hold, and before the upload
    completes: a token revoked or a user disabled mid-body fails the upload
    (:data:`~archive.identity.users.WITHDRAWN`), and what arrived is discarded, not kept as
    evidence.
    """
    def renew(lease: str) -> None:
        if still_allowed is not None:
            still_allowed()
        _renew_lease(db, upload_id, lease)

    with live.writing(upload_id, f"another request is writing upload {upload_id}; retry after it ends"):
        with db.session() as session:
            user, upload = _own_upload(session, user_id, upload_id)
            now = utcnow()
            _usable(upload, now)
            load_case(session, user=user, case_id=upload.case_id, write=True)
            length = upload.length or 0
            if upload.offset != offset:
                raise Conflict(
                    f"Upload-Offset {offset} does not match the upload's offset {upload.offset}",
                    code="offset_mismatch",
                )
            if content_length is not None and offset + content_length > length:
                # Also on a complete upload: bytes past its end are not taken silently.
                raise InvalidInput("the body goes past Upload-Length", code="exceeds_upload_length", status=413)
            if upload.status == "complete":  # a retried last PATCH: nothing more to take
                return AppendResult(UploadInfo.of(upload), upload.item_id)
            handle: StageHandle = upload.state["handle"]
            # A PATCH in progress keeps its upload alive, so expiry never pulls the stage away.
            upload.expires_at = now + timedelta(hours=expiry_hours)
            lease = _take_lease(upload, now, stale_after=_lease_stale_after(idle_seconds))
        try:
            hasher = live.take(upload_id, offset)
            if hasher is None and offset == 0:
                hasher = hashlib.sha256()
            try:
                pos = receive(
                    store, live, upload_id, handle, offset, length,
                    # The PATCH's hold renewed (and its credential checked) every LEASE_RENEW_SECONDS.
                    receiving.checked_while_streaming(chunks, lambda: renew(lease), every=LEASE_RENEW_SECONDS,
                                                      at_end=False), hasher, checksum,
                    record=lambda old, new, staged: _record(db, upload_id, old, new, staged, expiry_hours, lease),
                )
                if pos < length:
                    with db.session() as session:
                        return AppendResult(UploadInfo.of(session.get(Upload, upload_id)), None)
                if still_allowed is not None:
                    still_allowed()
            except Unauthenticated as exc:
                # Withdrawn (WITHDRAWN): bytes sent by someone no longer allowed never become evidence.
                _fail(db, store, live, upload_id, exc)
                raise
            item_id = complete(db=db, store=store, live=live, upload_id=upload_id, retention_days=retention_days)
        finally:
            _release_lease(db, upload_id, lease)
        with db.session() as session:
            return AppendResult(UploadInfo.of(session.get(Upload, upload_id)), item_id)


def _fail(db: Database, store: ObjectStore, live: LiveUploads, upload_id: str, refusal: ArchiveError) -> None:
    """End an open upload for good because its uploader may no longer add evidence: the upload
    is ``failed`` (410 ``upload_failed`` from then on), with a custody entry saying why, and
    its staged bytes are discarded. The mark comes first: an upload left open by a store that
    failed to discard would be completed by HEAD or the hourly task; staged bytes no open
    upload names are swept later (:func:`sweep_debris`)."""
    with db.session() as session:
        upload = _lock_upload(session, upload_id)
        if upload.status != "open":
            return
        user = session.get(User, upload.user_id)
        handle = upload.state["handle"]
        upload.status, upload.updated_at = "failed", utcnow()
        upload.error = f"its uploader may no longer add evidence ({refusal.code}); what arrived was discarded"
        ledger.append(
            session, actor=actor_name(user) if user is not None else "system:uploads", action="upload_failed",
            case_id=upload.case_id,
            details={"upload": upload_id, "reason": refusal.code, "offset": upload.offset, "length": upload.length},
        )
    live.forget(upload_id)
    log.warning("upload %s failed: its uploader may no longer add evidence (%s)", upload_id, refusal.code)
    try:
        store.staging.abort(handle)
    except ArchiveError as exc:
        log.warning("upload %s: its staged bytes stay until the debris sweep (%s)", upload_id, exc.code)


def _uploader_refused(session: Session, user: User, incoming: receiving.IncomingEvidence) -> ArchiveError | None:
    """Why ``user`` may no longer turn an upload into evidence (disabled, or no longer a
    writer of its case: another unit, another role; :func:`receiving.still_admitted`), or None."""
    try:
        receiving.still_admitted(session, user_id=user.id, incoming=incoming)
    except ArchiveError as exc:
        return exc
    return None


def _record(db: Database, upload_id: str, old: int, new: int, handle: StageHandle, expiry_hours: float,
            lease: str) -> None:
    """Commit durable progress (the stage was fsynced before this is called), renewing the
    PATCH's hold."""
    with db.session() as session:
        upload = _lock_upload(session, upload_id)
        if upload.status != "open" or upload.offset != old or not _held(upload, lease):
            raise Conflict(f"upload {upload_id} changed while receiving ({upload.status})", code="upload_changed")
        now = utcnow()
        upload.offset = new
        upload.state = {**upload.state, "handle": handle, "writer": _writer(lease, now)}
        upload.updated_at = now
        upload.expires_at = now + timedelta(hours=expiry_hours)


def _own_upload(session: Session, user_id: str, upload_id: str) -> tuple[User, Upload]:
    """The user and their upload, its row locked for writing."""
    user = _user(session, user_id)
    return user, load_upload(session, user=user, upload_id=upload_id, lock=True)


def _user(session: Session, user_id: str) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("user vanished", code="user_not_found")
    return user


def complete(*, db: Database, store: ObjectStore, live: LiveUploads, upload_id: str, retention_days: int) -> str:
    """Turn a fully received upload into an evidence item; return the item id.

    Idempotent: a completed upload returns its item; a crash anywhere in here is
    recovered by calling it again (each step is repeatable, the row is written once).
    """
    with db.session() as session:
        upload = session.get(Upload, upload_id)
        if upload is None:
            raise NotFound(f"no upload {upload_id}", code="upload_not_found")
        if upload.status == "complete":
            return upload.item_id or ""
        if upload.status != "open":
            raise UploadGone(f"upload {upload_id} is {upload.status}: {upload.error or 'no reason given'}", code=f"upload_{upload.status}")
        if upload.offset != upload.length:
            raise Conflict(f"upload {upload_id} has {upload.offset} of {upload.length} bytes", code="upload_incomplete")
        user = _user(session, upload.user_id)
        actor = actor_name(user)
        user_id, length, handle = user.id, upload.length or 0, upload.state["handle"]
        item_id: str = upload.state["item_id"]
        incoming = _incoming(upload_id, upload.params or {})
        refused = _uploader_refused(session, user, incoming)
    if refused is not None:
        # Disabled or moved since its bytes began to arrive (also on HEAD and the hourly task).
        _fail(db, store, live, upload_id, refused)
        raise UploadGone(f"upload {upload_id} failed: its uploader may no longer add evidence ({refused.code})",
                         code="upload_failed")
    stored = store.staging.commit(handle, size=length)
    hasher = live.take(upload_id, length)
    if hasher is not None:
        sha256 = hasher.hexdigest()
    else:
        # No running hash in this process (restart, another replica): hash what was stored.
        committed = store.read(stored.key, version_id=stored.version_id)
        sha256 = hash_chunks(committed, "sha256").hexdigest("sha256")
        log.info("upload %s: hashed the committed object (no running hash in this process)", upload_id)
    def registered(session: Session) -> str | None:
        upload = _lock_upload(session, upload_id)  # the case row was shared before it: the lock order
        return (upload.item_id or "") if upload.status == "complete" else None

    def register(session: Session, locked: StoredObject) -> str:
        receiving.register_original(
            session, user_id=user_id, actor=actor, incoming=incoming, item_id=item_id, stored=locked, sha256=sha256,
            media_type=media_type,
        )
        upload = _lock_upload(session, upload_id)
        upload.status, upload.item_id, upload.updated_at = "complete", item_id, utcnow()
        return item_id

    try:
        receiving.check_received(store=store, stored=stored, size=length, sha256=sha256,
                                 declared=incoming.declared_sha256)
        # What the original is, from its first bytes (read back once, outside any transaction).
        head = b"".join(store.read(stored.key, version_id=stored.version_id, start=0, end=HEAD - 1)) if length else b""
        media_type = sniff_bytes(head, name=incoming.filename)
        kept = receiving.keep_original(
            db=db, store=store, stored=stored, size=length, incoming=incoming, sha256=sha256, actor=actor,
            retention_days=retention_days, what=f"registering upload {upload_id} as item {item_id}",
            registered=registered, register=register,
        )
    except receiving.DuplicateEvidence as dup:
        # The case already holds this content: the upload completes as that item, and the
        # copy (discarded before it was locked) is not kept.
        with db.session() as session:
            upload = _lock_upload(session, upload_id)
            upload.status, upload.item_id, upload.updated_at = "complete", dup.existing_id, utcnow()
        live.forget(upload_id)
        log.info("upload %s duplicates item %s: not kept", upload_id, dup.existing_id)
        return dup.existing_id
    except (HashMismatch, CaseClosed) as exc:
        with db.session() as session:
            upload = _lock_upload(session, upload_id)
            upload.status, upload.error, upload.updated_at = "failed", exc.message, utcnow()
            ledger.append(
                session, actor=actor, action="upload_failed", case_id=upload.case_id,
                details={"upload": upload_id, "reason": exc.code, "declared_sha256": incoming.declared_sha256,
                         "received_sha256": sha256, "size": length},
            )
        live.forget(upload_id)
        raise
    if kept != item_id:  # another completion of this upload registered it first
        live.forget(upload_id)
        return kept
    live.forget(upload_id)
    log.info("upload %s complete: item %s (%d bytes)", upload_id, item_id, length)
    return item_id


def finish_received(*, db: Database, store: ObjectStore, live: LiveUploads, upload_id: str, retention_days: int,
                    idle_seconds: float = 60.0) -> str | None:
    """Complete an upload that holds all its bytes but is not evidence yet, when no PATCH
    is writing it: its last PATCH's completion failed after the bytes were recorded (the
    store down for a moment, the process killed). A tus client asks HEAD, reads an offset
    equal to the length, and sends nothing more: the server finishes it (on HEAD, and in
    the hourly upload task). The item's id; None when nothing was to be done or another
    request is at it. A completion refused for good (a declared hash that differs) fails
    the upload, as its PATCH would have."""
    try:
        with live.writing(upload_id, f"a request is writing upload {upload_id}"):
            with db.session() as session:
                upload = _lock_upload(session, upload_id)
                if upload.status != "open" or upload.offset != upload.length:
                    return None
                lease = _take_lease(upload, utcnow(), stale_after=_lease_stale_after(idle_seconds))
            try:
                item_id = complete(db=db, store=store, live=live, upload_id=upload_id, retention_days=retention_days)
            finally:
                _release_lease(db, upload_id, lease)
    except UploadBusy:
        return None
    log.info("upload %s held all its bytes without becoming evidence: completed as item %s", upload_id, item_id)
    return item_id


def finish_received_uploads(*, db: Database, store: ObjectStore, live: LiveUploads, retention_days: int,
                            idle_seconds: float = 60.0) -> list[str]:
    """:func:`finish_received` of every open upload that holds all its bytes (the hourly
    upload task); the items made."""
    with db.read() as session:
        waiting = session.execute(
            select(Upload.id).where(Upload.status == "open", Upload.offset == Upload.length)).scalars().all()
    made = []
    for upload_id in waiting:
        try:
            item_id = finish_received(db=db, store=store, live=live, upload_id=upload_id,
                                      retention_days=retention_days, idle_seconds=idle_seconds)
        except ArchiveError as exc:  # the upload says why (failed), or the next run tries again
            log.warning("upload %s could not be completed: %s", upload_id, exc.message)
            continue
        if item_id:
            made.append(item_id)
    return made


def terminate(*, db: Database, store: ObjectStore, live: LiveUploads, user_id: str, upload_id: str,
              idle_seconds: float = 60.0) -> None:
    """tus termination: remove an open upload's staged bytes. Refused once it is evidence, and
    (423) while a PATCH of any process writes it."""
    with live.writing(upload_id, f"a request is writing upload {upload_id}; terminate after it ends"):
        with db.session() as session:
            user, upload = _own_upload(session, user_id, upload_id)
            if upload.status == "open":
                _take_lease(upload, utcnow(), stale_after=_lease_stale_after(idle_seconds))
            if upload.status == "complete":
                raise Conflict(
                    f"upload {upload_id} became evidence item {upload.item_id}; evidence is never deleted",
                    code="upload_is_evidence",
                )
            if upload.status == "open":
                store.staging.abort(upload.state["handle"])
                upload.status, upload.updated_at = "terminated", utcnow()
                ledger.append(
                    session, actor=actor_name(user), action="upload_terminated", case_id=upload.case_id,
                    details={"upload": upload_id, "offset": upload.offset, "length": upload.length},
                )
        live.forget(upload_id)


def expire_uploads(*, db: Database, store: ObjectStore, now: datetime | None = None) -> list[str]:
    """Remove every open upload past its expiry (staged bytes first, then the mark).

    Safe at any time and from any process: each upload is re-checked under its row
    lock, and a PATCH in progress keeps its upload's expiry in the future.
    """
    now = now or utcnow()
    with db.session() as session:
        candidates = session.execute(
            select(Upload.id).where(Upload.status == "open", Upload.expires_at <= now)
        ).scalars().all()
    expired = []
    for upload_id in candidates:
        with db.session() as session:
            upload = _lock_upload(session, upload_id)
            if upload.status != "open" or upload.expires_at > now:
                continue
            # Staged bytes go before the mark: if removing them fails, the next run retries.
            store.staging.abort(upload.state["handle"])
            upload.status, upload.updated_at = "expired", utcnow()
            upload.error = f"expired at {ledger.iso_utc(upload.expires_at)} with {upload.offset} of {upload.length} bytes"
            ledger.append(
                session, actor="system:expiry", action="upload_expired", case_id=upload.case_id,
                details={"upload": upload_id, "offset": upload.offset, "length": upload.length},
            )
        expired.append(upload_id)
        log.info("expired upload %s", upload_id)
    metrics.record_expired_uploads(len(expired))
    return expired


def sweep_debris(*, db: Database, store: ObjectStore, expiry_hours: float, now: datetime | None = None) -> dict[str, int]:
    """Remove leftovers of writes that never finished and are older than ``expiry_hours``.

    Run after :func:`expire_uploads` (same beat task). What it removes: temporary files of
    direct uploads whose process died (the local store keeps a lock on a file while it
    writes it, so a live one is never touched), staged bytes and S3 multipart uploads that
    no open upload names (e.g. a crash between staging and committing the upload row, or a
    killed direct put to S3). Open uploads' stages are passed as live and always kept;
    objects under their keys are never touched. Returns counts by kind, also counted in
    the ``evidence_debris_removed`` metric.
    """
    now = now or utcnow()
    with db.session() as session:
        states = session.execute(select(Upload.state).where(Upload.status == "open")).scalars().all()
    live = [state["handle"] for state in states if state and "handle" in state]
    removed = store.staging.sweep_debris(older_than=now - timedelta(hours=expiry_hours), live=live)
    for kind, count in removed.items():
        metrics.record_debris(kind, count)
    if any(removed.values()):
        log.info("debris sweep removed %s", removed)
    return removed
