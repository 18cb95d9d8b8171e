"""Resumable uploads: the tus 1.0 protocol's service side (core, creation,
creation-with-upload, termination, checksum, expiration).

How an upload travels
---------------------
* **Creation** validates the metadata exactly as a direct upload is validated
  (:func:`archive.evidence.items.check_incoming`), reserves the future item id, and opens a
  *staged object* in the store aimed at that item's final key
  (:meth:`archive.storage.ObjectStore.stage_begin`: an append file outside the vaults
  locally, a real S3 multipart upload fed through a one-part local spool on S3). The
  backend's handle is kept in ``uploads.state`` so any process can carry on.
* **PATCH** bodies stream straight into the stage in blocks of about 1 MiB; nothing
  holds a whole file (or a whole PATCH) in memory. During a long PATCH progress is
  recorded every :data:`SEGMENT` bytes (stage fsynced, then the offset committed), so
  a process killed mid-request loses at most one segment; a client's next HEAD tells it
  where to resume, and bytes staged past the recorded offset are dropped on the next
  write. With ``Upload-Checksum`` the whole PATCH is held retractable until its
  checksum is verified; a mismatch (460) or a cut-off body discards that PATCH.
* **Hash state.** hashlib objects cannot be serialised, so the running SHA-256 lives
  only in this process (:class:`LiveUploads`, keyed by upload id, tagged with the
  offset it has consumed). When it is missing or behind — the API process restarted,
  or another replica took the upload over — hashing is not attempted on the rest
  alone: at completion the committed object is streamed back from the store once and
  hashed in full. That costs one extra read of the file, only on that path, and is
  always correct; S3 cannot read back parts of an unfinished multipart upload, so
  "re-derive at resume" would not work there.
* **Completion** (offset reaches Upload-Length) commits the stage under the item's key
  (unlocked), checks the declared SHA-256 and locks the object with COMPLIANCE
  retention through the same code as the direct upload
  (:func:`archive.evidence.items.accept_original` and :func:`~archive.evidence.items.register_original`:
  one row, one ``evidence_received`` entry). The item id was reserved at creation and
  the upload row is locked while the item is written, so a retried last PATCH or two
  racing ones yield one item. A mismatch discards the object and fails the upload
  (``hash_mismatch``): nothing is kept, and the ledger says so.
* **Expiry**: an open upload untouched for ``upload_expiry_hours`` is removed by
  :func:`expire_uploads` (Celery beat task ``evidence.expire_uploads``; safe at any
  time) and never becomes evidence; the same task then removes older leftovers no
  upload names (:func:`sweep_debris`).

Limits, honestly: concurrent PATCHes of one upload are refused (423) within a process;
across API replicas only the offset check protects them, so replicas should route an
upload to one process (they must share ``EVIDENCE_UPLOAD_DIR`` for the S3 spool anyway).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from archive import metrics
from archive.evidence import items as evidence
from archive.custody import ledger
from archive.db import Database
from archive.errors import ArchiveError, Conflict, HashMismatch, InvalidInput, NotFound, UploadIncomplete
from archive.evidence.filenames import check_filename
from archive.models import EvidenceKind, Upload, User, new_id, utcnow
from archive.storage import ObjectStore, StageHandle
from archive.identity.users import actor_name, load_case

log = logging.getLogger(__name__)

TUS_VERSION = "1.0.0"
EXTENSIONS = ("creation", "creation-with-upload", "termination", "checksum", "expiration")
CHECKSUM_ALGORITHMS = ("sha256", "sha1", "md5")
MAX_SIZE = 5 * 1024**4
"""Largest upload accepted (5 TiB, S3's largest object)."""
SEGMENT = 64 * 1024 * 1024
"""Progress of a long PATCH is recorded at least this often (bytes)."""


class ChecksumMismatch(ArchiveError):
    """A PATCH body does not have the checksum its ``Upload-Checksum`` declared (tus: 460)."""

    code = "checksum_mismatch"
    status = 460


class UploadGone(ArchiveError):
    """The upload expired or failed; it can no longer be resumed (410)."""

    code = "upload_gone"
    status = 410


class UploadBusy(ArchiveError):
    """Another request of this process is writing the same upload (423)."""

    code = "upload_locked"
    status = 423


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


class LiveUploads:
    """Per-process state of uploads being received: a running SHA-256 and a write lock.

    A hasher is only trusted at the exact offset it was recorded at; anything else
    (restart, eviction, a failed write) makes completion re-hash the committed object.
    """

    def __init__(self, max_entries: int = 10_000):
        self._max = max_entries
        self._hashers: OrderedDict[str, tuple[int, Any]] = OrderedDict()
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def lock(self, upload_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(upload_id, threading.Lock())

    def take(self, upload_id: str, offset: int) -> Any | None:
        """The hasher that has consumed exactly ``offset`` bytes of the upload, if any."""
        with self._guard:
            entry = self._hashers.get(upload_id)
        return entry[1] if entry and entry[0] == offset else None

    def keep(self, upload_id: str, offset: int, hasher: Any | None) -> None:
        with self._guard:
            if hasher is None:
                self._hashers.pop(upload_id, None)
                return
            self._hashers[upload_id] = (offset, hasher)
            self._hashers.move_to_end(upload_id)
            while len(self._hashers) > self._max:
                self._hashers.popitem(last=False)  # evicted: completion re-hashes instead

    def forget(self, upload_id: str) -> None:
        with self._guard:
            self._hashers.pop(upload_id, None)
            self._locks.pop(upload_id, None)


# --- parsing -----------------------------------------------------------------------


def parse_metadata(header: str | None) -> dict[str, str]:
    """``Upload-Metadata``: comma-separated ``key base64value`` pairs (value optional)."""
    result: dict[str, str] = {}
    for pair in (header or "").split(","):
        pair = pair.strip()
        if not pair:
            continue
        key, _, value = pair.partition(" ")
        try:
            result[key] = base64.b64decode(value.strip(), validate=True).decode("utf-8") if value.strip() else ""
        except ValueError as exc:  # binascii.Error, UnicodeDecodeError, or non-ASCII characters
            raise InvalidInput(f"Upload-Metadata value of {key!r} is not base64 UTF-8", code="invalid_metadata", status=400) from exc
    return result


def parse_checksum(header: str | None) -> tuple[str, bytes] | None:
    """``Upload-Checksum: <algorithm> <base64 digest>``, or None when absent."""
    if not header:
        return None
    algorithm, _, value = header.strip().partition(" ")
    algorithm = algorithm.lower()
    if algorithm not in CHECKSUM_ALGORITHMS:
        raise InvalidInput(
            f"checksum algorithm {algorithm!r} not supported; use one of {', '.join(CHECKSUM_ALGORITHMS)}",
            code="checksum_algorithm_unsupported", status=400,
        )
    try:
        digest = base64.b64decode(value.strip(), validate=True)
    except ValueError as exc:  # binascii.Error, or non-ASCII characters
        raise InvalidInput("Upload-Checksum digest is not base64", code="invalid_checksum", status=400) from exc
    if len(digest) != hashlib.new(algorithm).digest_size:
        raise InvalidInput(f"Upload-Checksum digest has the wrong length for {algorithm}", code="invalid_checksum", status=400)
    return algorithm, digest


def _incoming(upload_id: str, params: dict[str, str]) -> evidence.IncomingEvidence:
    """The evidence description an upload's metadata gives."""
    recorded = params.get("recorded_start") or None
    try:
        recorded_start = datetime.fromisoformat(recorded) if recorded else None
    except ValueError as exc:
        raise InvalidInput("recorded_start is not ISO 8601", code="invalid_recorded_start") from exc
    try:
        kind = EvidenceKind(params.get("kind") or "")
    except ValueError as exc:
        raise InvalidInput(
            f"metadata kind must be one of {[k.value for k in EvidenceKind]}", code="invalid_kind"
        ) from exc
    return evidence.IncomingEvidence(
        case_id=params.get("case_id") or "", kind=kind, filename=params.get("filename") or params.get("name") or "",
        declared_sha256=params.get("sha256") or None, device_id=params.get("device_id") or None,
        recorded_start=recorded_start, details={"upload": upload_id},
    )


# --- the protocol's operations --------------------------------------------------------


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
    vault = evidence.check_incoming(session, user=user, incoming=incoming)
    declared = evidence.normalise_sha256(incoming.declared_sha256)
    filename = check_filename(incoming.filename)
    item_id = new_id()
    handle = store.stage_begin(evidence.original_key(vault, item_id), content_type=evidence.guess_media_type(filename))
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
    return session.execute(select(Upload).where(Upload.id == upload_id).with_for_update(key_share=True)).scalar_one()


def load_upload(session: Session, *, user: User, upload_id: str, lock: bool = False) -> Upload:
    """An upload of ``user``'s; anyone else's (or a terminated one) is NotFound."""
    query = select(Upload).where(Upload.id == upload_id)
    if lock:
        query = query.with_for_update(key_share=True)
    upload = session.execute(query).scalar_one_or_none()
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


@contextmanager
def _hashed(chunks: Iterable[bytes], hashers: list[Any]) -> Iterator[Iterator[bytes]]:
    """``chunks`` passed through while ``hashers`` hash them in threads of their own
    (overlapping the write); when the block ends the hashers have seen every byte passed."""
    stream = iter(evidence.HashingStream(chunks, feed=hashers))
    try:
        yield stream
    finally:
        stream.close()  # type: ignore[attr-defined]


class _Body:
    """The PATCH body as a byte budget: stops quietly when the client goes away."""

    def __init__(self, chunks: Iterable[bytes], budget: int):
        self._it = iter(chunks)
        self._pending = b""
        self.budget = budget
        self.count = 0
        self.interrupted = False
        self.ended = False

    def take(self, limit: int) -> Iterator[bytes]:
        """Up to ``limit`` bytes; raises 413 when the body outgrows the upload's length."""
        taken = 0
        while taken < limit:
            if self._pending:
                chunk, self._pending = self._pending, b""
            else:
                try:
                    chunk = next(self._it)
                except StopIteration:
                    self.ended = True
                    return
                except UploadIncomplete:
                    self.interrupted = self.ended = True
                    return
            if self.count + len(chunk) > self.budget:
                raise InvalidInput("the body goes past Upload-Length", code="exceeds_upload_length", status=413)
            if taken + len(chunk) > limit:
                chunk, self._pending = chunk[: limit - taken], chunk[limit - taken :]
            taken += len(chunk)
            self.count += len(chunk)
            yield chunk
        if self.count == self.budget and not self.ended:
            self._expect_end()

    def _expect_end(self) -> None:
        """The budget is used up: the body must end here (a cut-off is fine too)."""
        while True:
            try:
                chunk = self._pending or next(self._it)
            except StopIteration:
                self.ended = True
                return
            except UploadIncomplete:
                self.interrupted = self.ended = True
                return
            self._pending = b""
            if chunk:
                raise InvalidInput("the body goes past Upload-Length", code="exceeds_upload_length", status=413)


@dataclass(frozen=True)
class AppendResult:
    """The upload after a PATCH; ``item_id`` is set once it became evidence."""

    upload: UploadInfo
    item_id: str | None


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
) -> AppendResult:
    """Receive one PATCH body at ``offset``; complete the upload when it is all there.

    Raises Conflict (``offset_mismatch``, 409) when ``offset`` is not the upload's,
    ChecksumMismatch (460, the body is discarded), UploadGone (410) for an expired or
    failed upload, HashMismatch when the completed file is not the declared one.
    """
    lock = live.lock(upload_id)
    if not lock.acquire(blocking=False):
        raise UploadBusy(f"another request is writing upload {upload_id}; retry after it ends")
    try:
        with db.session() as session:
            user = _user(session, user_id)
            upload = load_upload(session, user=user, upload_id=upload_id, lock=True)
            now = utcnow()
            _usable(upload, now)
            load_case(session, user=user, case_id=upload.case_id, write=True)
            length = upload.length or 0
            if upload.offset != offset:
                raise Conflict(
                    f"Upload-Offset {offset} does not match the upload's offset {upload.offset}",
                    code="offset_mismatch",
                )
            if upload.status == "complete":
                return AppendResult(UploadInfo.of(upload), upload.item_id)
            if content_length is not None and offset + content_length > length:
                raise InvalidInput("the body goes past Upload-Length", code="exceeds_upload_length", status=413)
            handle: StageHandle = upload.state["handle"]
            # A PATCH in progress keeps its upload alive, so expiry never pulls the stage away.
            upload.expires_at = now + timedelta(hours=expiry_hours)
        hasher = live.take(upload_id, offset)
        if hasher is None and offset == 0:
            hasher = hashlib.sha256()
        if checksum is not None:
            pos, handle = _append_checked(store, live, upload_id, handle, offset, length, chunks, hasher, checksum)
            _record(db, upload_id, offset, pos, handle, expiry_hours)
            live.keep(upload_id, pos, hasher)
        else:
            pos = offset
            try:
                # One hashing pass over the whole body, cut into segments for the store:
                # its threads run on across segment boundaries (joined at each one, they
                # stalled the body there). The running hash is kept for the next PATCH
                # only once the pass has ended, at the last recorded offset.
                with _hashed(chunks, [hasher]) as hashed:
                    body = _Body(hashed, length - offset)
                    while True:
                        handle = store.stage_write(handle, offset=pos, chunks=body.take(min(SEGMENT, length - pos)))
                        if body.count + offset != pos:
                            _record(db, upload_id, pos, body.count + offset, handle, expiry_hours)
                            pos = body.count + offset
                        if body.ended or pos == length:
                            break
                live.keep(upload_id, pos, hasher)
            except BaseException:
                # The hasher may have seen bytes that were never recorded.
                live.keep(upload_id, pos, None)
                raise
            if body.interrupted and pos < length:
                # What arrived is recorded (tus resumes from it), but the client must hear
                # that its body was cut short rather than a 204 that looks like success.
                raise UploadIncomplete(
                    f"the body ended early; the upload resumes at offset {pos}", code="upload_incomplete"
                )
        if pos < length:
            with db.session() as session:
                return AppendResult(UploadInfo.of(session.get(Upload, upload_id)), None)
        item_id = complete(db=db, store=store, live=live, upload_id=upload_id, retention_days=retention_days)
        with db.session() as session:
            return AppendResult(UploadInfo.of(session.get(Upload, upload_id)), item_id)
    finally:
        lock.release()


def _append_checked(
    store: ObjectStore, live: LiveUploads, upload_id: str, handle: StageHandle, offset: int, length: int,
    chunks: Iterable[bytes], hasher: Any | None, checksum: tuple[str, bytes],
) -> tuple[int, StageHandle]:
    """A PATCH with Upload-Checksum: held until verified, discarded whole otherwise."""
    algorithm, expected = checksum
    before = hasher.copy() if hasher is not None else None
    check = hashlib.new(algorithm)
    body = _Body(chunks, length - offset)
    try:
        with _hashed(body.take(length - offset), [hasher, check]) as hashed:
            handle = store.stage_write(handle, offset=offset, chunks=hashed, hold=True)
    except BaseException:
        live.keep(upload_id, offset, before)  # the next write at ``offset`` drops what was staged
        raise
    if body.interrupted or check.digest() != expected:
        handle = store.stage_truncate(handle, size=offset)
        live.keep(upload_id, offset, before)
        if body.interrupted:
            raise UploadIncomplete("the body was cut off before its checksum could be verified; it was discarded")
        raise ChecksumMismatch(f"the body's {algorithm} does not match Upload-Checksum; it was discarded")
    return offset + body.count, store.stage_flush(handle)


def _record(db: Database, upload_id: str, old: int, new: int, handle: StageHandle, expiry_hours: float) -> None:
    """Commit durable progress (the stage was fsynced before this is called)."""
    with db.session() as session:
        upload = _lock_upload(session, upload_id)
        if upload.status != "open" or upload.offset != old:
            raise Conflict(f"upload {upload_id} changed while receiving ({upload.status})", code="upload_changed")
        now = utcnow()
        upload.offset = new
        upload.state = {**upload.state, "handle": handle}
        upload.updated_at = now
        upload.expires_at = now + timedelta(hours=expiry_hours)


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
    stored = store.stage_commit(handle, size=length)
    hasher = live.take(upload_id, length)
    if hasher is not None:
        sha256 = hasher.hexdigest()
    else:
        # No running hash in this process (restart, another replica): hash what was stored.
        stream = evidence.HashingStream(store.read(stored.key, version_id=stored.version_id), "sha256")
        for _ in stream:
            pass
        sha256 = stream.hexdigest("sha256")
        log.info("upload %s: hashed the committed object (no running hash in this process)", upload_id)
    try:
        locked = evidence.accept_original(
            store=store, stored=stored, size=length, sha256=sha256, declared=incoming.declared_sha256,
            retention_days=retention_days,
            before_lock=lambda: evidence.refuse_duplicate(db, incoming=incoming, sha256=sha256, actor=actor),
        )
    except evidence.DuplicateEvidence as dup:
        # The case already holds this content: the upload completes as that item, and the
        # copy (discarded before it was locked) is not kept.
        with db.session() as session:
            upload = _lock_upload(session, upload_id)
            upload.status, upload.item_id, upload.updated_at = "complete", dup.existing_id, utcnow()
        live.forget(upload_id)
        log.info("upload %s duplicates item %s: not kept", upload_id, dup.existing_id)
        return dup.existing_id
    except HashMismatch as exc:
        with db.session() as session:
            upload = _lock_upload(session, upload_id)
            upload.status, upload.error, upload.updated_at = "failed", exc.message, utcnow()
            ledger.append(
                session, actor=actor, action="upload_failed", case_id=upload.case_id,
                details={"upload": upload_id, "reason": "hash_mismatch", "declared_sha256": incoming.declared_sha256,
                         "received_sha256": sha256, "size": length},
            )
        live.forget(upload_id)
        raise
    with db.session() as session:
        upload = _lock_upload(session, upload_id)
        if upload.status != "complete":
            evidence.register_original(
                session, user_id=user_id, actor=actor, incoming=incoming, item_id=item_id, stored=locked, sha256=sha256,
            )
            upload.status, upload.item_id, upload.updated_at = "complete", item_id, utcnow()
    live.forget(upload_id)
    log.info("upload %s complete: item %s (%d bytes)", upload_id, item_id, length)
    return item_id


def terminate(*, db: Database, store: ObjectStore, live: LiveUploads, user_id: str, upload_id: str) -> None:
    """tus termination: remove an open upload's staged bytes. Refused once it is evidence."""
    lock = live.lock(upload_id)
    if not lock.acquire(blocking=False):
        raise UploadBusy(f"a request is writing upload {upload_id}; terminate after it ends")
    try:
        with db.session() as session:
            user = _user(session, user_id)
            upload = load_upload(session, user=user, upload_id=upload_id, lock=True)
            if upload.status == "complete":
                raise Conflict(
                    f"upload {upload_id} became evidence item {upload.item_id}; evidence is never deleted",
                    code="upload_is_evidence",
                )
            if upload.status == "open":
                store.stage_abort(upload.state["handle"])
                upload.status, upload.updated_at = "terminated", utcnow()
                ledger.append(
                    session, actor=actor_name(user), action="upload_terminated", case_id=upload.case_id,
                    details={"upload": upload_id, "offset": upload.offset, "length": upload.length},
                )
        live.forget(upload_id)
    finally:
        lock.release()


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
            store.stage_abort(upload.state["handle"])
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
    removed = store.sweep_debris(older_than=now - timedelta(hours=expiry_hours), live=live)
    for kind, count in removed.items():
        metrics.record_debris(kind, count)
    if any(removed.values()):
        log.info("debris sweep removed %s", removed)
    return removed
