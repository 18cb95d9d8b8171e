"""Staged objects of the S3 store: real S3 multipart uploads aimed at the final key,
driven through minio's low-level multipart calls. S3 parts must be at least 5 MiB
(except the last) while a resumable client may send far smaller pieces. Incoming bytes
fill part buffers in memory, after the bytes the *spool file* on local disk
(``EVIDENCE_UPLOAD_DIR``) holds from earlier writes; each full part is uploaded while the
next bytes arrive (at most ``s3_parallel_parts`` at once), and at the end of each write
what is left after the last full part goes to a new spool file named by its starting
offset. Memory holds the parts in flight (``s3_part_size`` each); the spool holds less than
a part, except for a write held retractable (``hold``), which is spooled whole until it is
flushed.
The handle (upload id, part etags, bytes already in parts) lives in the database, so
a restarted API process carries on; re-uploading a part number after a crash simply
replaces that part. Caveats, honestly: the spool is local, so several API replicas
must share ``EVIDENCE_UPLOAD_DIR`` (or route an upload to one replica); and parts of
an unfinished multipart upload cannot be read back from S3, so a caller that lost its
running hash must re-hash the committed object instead.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from minio.datatypes import Part
from minio.error import S3Error

from archive.errors import ObjectExists, ObjectNotFound, StorageError
from archive.storage.protocol import PROGRESS_EVERY, Progress, StageHandle, StoredObject
from archive.storage.s3_parts import ChunkReader, PartSender
from archive.storage.files import os_failure
from archive.storage.s3_errors import NOT_FOUND, VENDOR_ERRORS, translate

if TYPE_CHECKING:
    from archive.storage.s3 import S3Store

log = logging.getLogger(__name__)


class S3Staging:
    """The :class:`~archive.storage.Staging` of an :class:`~archive.storage.s3.S3Store`."""

    def __init__(self, store: S3Store):
        self.store = store

    def _spool(self, handle: StageHandle, start: int | None = None) -> Path:
        name = str(handle.get("spool", ""))
        if len(name) != 32 or not name.isalnum():
            raise StorageError(f"malformed staging handle {handle!r}")
        return self.store.spool_dir / name / f"{handle['flushed'] if start is None else start}.spool"

    def begin(self, key: str, *, content_type: str) -> StageHandle:
        self.store._ensure_bucket()
        try:
            upload_id = self.store.client._create_multipart_upload(self.store.bucket, key, {"Content-Type": content_type})
        except VENDOR_ERRORS as exc:
            raise translate(exc, f"start multipart upload of {key}") from exc
        handle: StageHandle = {
            "backend": "s3", "key": key, "upload_id": upload_id, "parts": [], "flushed": 0,
            "content_type": content_type, "spool": hashlib.sha256(upload_id.encode()).hexdigest()[:32],
        }
        path = self._spool(handle)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        except OSError as exc:
            raise os_failure(f"cannot create spool for {key}", exc) from exc
        return handle

    def _open_spool(self, handle: StageHandle, offset: int):  # type: ignore[no-untyped-def]
        """The current spool file, positioned at ``offset`` with anything after it dropped."""
        path = self._spool(handle)
        rel = offset - handle["flushed"]
        # Spool files of other offsets are leftovers: older ones were flushed and recorded,
        # newer ones belong to progress that was never recorded (a killed request).
        for other in path.parent.glob("*.spool"):
            if other != path:
                other.unlink(missing_ok=True)
        try:
            f = open(path, "r+b")
        except FileNotFoundError as exc:
            raise StorageError(
                f"the spool of {handle['key']} is missing (another API host, or a lost disk)",
                code="staging_lost", status=409,
            ) from exc
        held = os.fstat(f.fileno()).st_size
        if rel < 0 or held < rel:
            f.close()
            raise StorageError(
                f"{handle['flushed'] + held} bytes of {handle['key']} are staged, not {offset}",
                code="staging_lost", status=409,
            )
        f.truncate(rel)
        f.seek(rel)
        return f

    def _flush(self, handle: StageHandle, *, final: bool = False) -> StageHandle:
        """Upload every full part in the spool (and the rest when ``final``); new handle."""
        with open(self._spool(handle), "rb") as f:
            with self._sender(handle) as sender:
                sent = self._send_parts(f, sender, 0, os.fstat(f.fileno()).st_size, final=final)
                if not sent:
                    return handle
                parts = sender.finish()
                f.seek(sent)
                return self._moved(handle, sent, parts, f.read())

    def _sender(self, handle: StageHandle) -> PartSender:
        """A sender of the stage's next parts (numbered after those recorded in ``handle``)."""
        return PartSender(self.store, handle["key"], handle["upload_id"], first=len(handle["parts"]) + 1)

    def _send_parts(self, f: BinaryIO, sender: PartSender, sent: int, held: int, *, final: bool = False) -> int:
        """Hand ``sender`` each full part of the spool ``f`` from byte ``sent`` on (and the rest
        when ``final``), read back from the file (the page cache); the bytes sent by then."""
        while held - sent >= self.store.part_size or (final and held > sent):
            buffer = sender.buffer()
            length = os.preadv(f.fileno(), [buffer], sent)
            sender.send(buffer, length)
            sent += length
        return sent

    def _moved(self, handle: StageHandle, sent: int, parts: list[Part], rest: bytes | memoryview) -> StageHandle:
        """The handle once the first ``sent`` bytes of the spool are the uploaded ``parts``,
        with ``rest`` (less than a part) written to a new spool named by its offset and
        fsynced. The old spool stays until the next write: the database may still name it."""
        new = dict(handle, parts=[*handle["parts"], *([p.part_number, p.etag] for p in parts)],
                   flushed=handle["flushed"] + sent)
        with open(self._spool(new), "wb") as out:
            out.write(rest)
            out.flush()
            os.fsync(out.fileno())
        return new

    def write(
        self, handle: StageHandle, *, offset: int, chunks: Iterable[bytes], hold: bool = False,
        progress: Progress | None = None, every: int = PROGRESS_EVERY,
    ) -> StageHandle:
        try:
            with self._open_spool(handle, offset) as f:
                if hold:  # retractable until the caller flushes: every byte to the spool
                    for chunk in chunks:
                        f.write(chunk)
                    f.flush()
                    os.fsync(f.fileno())
                    return handle
                with self._sender(handle) as sender:
                    return self._write_parts(handle, f, ChunkReader(chunks), sender, progress, every)
        except OSError as exc:
            raise os_failure(f"cannot spool bytes of {handle['key']}", exc) from exc

    def _write_parts(
        self, handle: StageHandle, f: BinaryIO, reader: ChunkReader, sender: PartSender,
        progress: Progress | None, every: int,
    ) -> StageHandle:
        """Write the bytes of ``reader`` after those held in the spool ``f`` (positioned at
        its end): each full part goes straight from memory to S3 while the next bytes arrive
        (at most ``parallel_parts`` at once), and only what is left after the last full part
        is spooled (fsynced). Writing every byte to the spool and reading it back cost a
        third more CPU than a plain upload and wrote each GiB to the local disk once more
        (``bench/bench_ingest.py --store s3``).

        Progress is the parts uploaded so far one after another from the first, reported
        (with an empty spool at their end) while later parts are still in flight: a write
        cut into segments waited at each one for its slowest part (tus 0.53-0.6x of the
        baseline at 1 GiB, 0.96x without the waits). A failure leaves the stage as the
        database records it."""
        spooled = f.tell()
        buffer = sender.buffer()
        held = os.preadv(f.fileno(), [memoryview(buffer)[:spooled]], 0) if spooled else 0
        if held != spooled:
            raise StorageError(f"the spool of {handle['key']} does not hold the {spooled} bytes written to it",
                               code="staging_lost", status=409)
        sent = reported = 0
        while (held := held + reader.readinto(memoryview(buffer)[held:])) == len(buffer):
            sender.send(buffer, held)
            sent += held
            buffer, held = sender.buffer(), 0
            if progress is not None and (len(ready := sender.uploaded()) - reported) * len(buffer) >= every:
                staged = self._moved(handle, len(ready) * len(buffer), ready, b"")
                progress(staged["flushed"], staged)
                reported = len(ready)
        if not sent:  # not a part's worth yet: the new bytes join the spool
            f.write(memoryview(buffer)[spooled:held])
            f.flush()
            os.fsync(f.fileno())
            return handle
        return self._moved(handle, sent, sender.finish(), memoryview(buffer)[:held])

    def truncate(self, handle: StageHandle, *, size: int) -> StageHandle:
        try:
            self._open_spool(handle, size).close()
        except OSError as exc:
            raise os_failure(f"cannot truncate spool of {handle['key']}", exc) from exc
        return handle

    def flush(self, handle: StageHandle) -> StageHandle:
        try:
            return self._flush(handle)
        except OSError as exc:
            raise os_failure(f"cannot flush spool of {handle['key']}", exc) from exc

    def _committed(self, key: str, size: int) -> StoredObject | None:
        try:
            obj = self.store.stat(key)
        except ObjectNotFound:
            return None
        if obj.size != size:
            raise ObjectExists(f"object {key} already exists with another size; originals are never overwritten")
        return obj

    def commit(self, handle: StageHandle, *, size: int) -> StoredObject:
        key = handle["key"]
        done = self._committed(key, size)
        if done is not None:
            self.abort(handle)  # only the spool remains to be cleaned
            return done
        path = self._spool(handle)
        try:
            held = path.stat().st_size
        except FileNotFoundError as exc:
            raise StorageError(f"the spool of {key} is missing", code="staging_lost", status=409) from exc
        if handle["flushed"] + held != size:
            raise StorageError(
                f"{handle['flushed'] + held} bytes of {key} are staged, expected {size}",
                code="staging_incomplete", status=409,
            )
        if size == 0:
            # S3 cannot complete a multipart upload without parts; an empty object is a plain put.
            self.abort(handle)
            return self.store.put(key, [], content_type=handle.get("content_type") or "application/octet-stream")
        try:
            handle = self._flush(handle, final=True)
        except OSError as exc:
            raise os_failure(f"cannot flush spool of {key}", exc) from exc
        try:
            result = self.store.client._complete_multipart_upload(
                self.store.bucket, key, handle["upload_id"], [Part(n, etag) for n, etag in handle["parts"]]
            )
        except S3Error as exc:
            if exc.code == "NoSuchUpload":
                done = self._committed(key, size)
                if done is not None:
                    return done
            raise translate(exc, f"complete upload of {key}") from exc
        except VENDOR_ERRORS as exc:
            raise translate(exc, f"complete upload of {key}") from exc
        shutil.rmtree(path.parent, ignore_errors=True)
        return StoredObject(key=key, size=size, version_id=result.version_id)

    def sweep_debris(self, *, older_than: datetime, live: Iterable[StageHandle]) -> dict[str, int]:
        handles = [h for h in live if h.get("backend") == "s3"]
        live_ids = {str(h.get("upload_id")) for h in handles}
        live_spools = {str(h.get("spool")) for h in handles}
        removed = {"multipart_upload": 0, "spool": 0}
        # Multipart uploads no open upload names, started before the cutoff: a killed
        # direct put (minio's multipart), or a resumable upload whose row never committed.
        key_marker = upload_id_marker = None
        try:
            while True:
                page = self.store.client._list_multipart_uploads(
                    self.store.bucket, key_marker=key_marker, upload_id_marker=upload_id_marker, max_uploads=1000
                )
                for upload in page.uploads:
                    if (upload.upload_id in live_ids or upload.initiated_time is None
                            or upload.initiated_time >= older_than):
                        continue
                    try:
                        self.store.client._abort_multipart_upload(self.store.bucket, upload.object_name, upload.upload_id)
                    except S3Error as exc:
                        if exc.code != "NoSuchUpload":  # another sweeper (or the upload) finished it first
                            raise
                        continue
                    removed["multipart_upload"] += 1
                    log.info("aborted abandoned multipart upload of %s", upload.object_name)
                if not page.is_truncated or not page.uploads:
                    break
                key_marker, upload_id_marker = page.uploads[-1].object_name, page.uploads[-1].upload_id
        except S3Error as exc:
            if exc.code != "NoSuchBucket":  # no bucket yet: nothing was ever uploaded
                raise translate(exc, "sweep multipart uploads") from exc
        except VENDOR_ERRORS as exc:
            raise translate(exc, "sweep multipart uploads") from exc
        # Spool directories of stages nobody names any more.
        if self.store.spool_dir.is_dir():
            for path in self.store.spool_dir.iterdir():
                if (path.is_dir() and len(path.name) == 32 and path.name not in live_spools
                        and path.stat().st_mtime < older_than.timestamp()):
                    shutil.rmtree(path, ignore_errors=True)
                    removed["spool"] += 1
        return removed

    def abort(self, handle: StageHandle) -> None:
        try:
            self.store.client._abort_multipart_upload(self.store.bucket, handle["key"], handle["upload_id"])
        except S3Error as exc:
            if exc.code not in NOT_FOUND | {"NoSuchUpload"}:
                raise translate(exc, f"abort upload of {handle['key']}") from exc
        except VENDOR_ERRORS as exc:
            raise translate(exc, f"abort upload of {handle['key']}") from exc
        shutil.rmtree(self._spool(handle).parent, ignore_errors=True)
