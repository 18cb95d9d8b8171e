"""S3 object store through the ``minio`` client (MinIO in production, any S3 server).

Vaults are prefixes of one bucket created with object lock (and therefore versioning).
Every original gets COMPLIANCE retention: until it expires, nobody — administrator or
root account included — can delete that version. Uploads of unknown length go up as a
multipart upload with a bounded part size, so memory stays flat whatever the file size.
``minio``/``urllib3`` errors never leave this module; callers see ours.

Staged objects (resumable uploads) are real S3 multipart uploads aimed at the final
key, driven through minio's low-level multipart calls. S3 parts must be at least 5 MiB
(except the last) while a resumable client may send far smaller pieces, so incoming
bytes first go to a *spool file* on local disk (``EVIDENCE_UPLOAD_DIR``); every time
it holds a full part, that part is uploaded and the remainder moves to a new spool
file named by its starting offset. Memory holds at most one part (``s3_part_size``).
The handle (upload id, part etags, bytes already in parts) lives in the database, so
a restarted API process carries on; re-uploading a part number after a crash simply
replaces that part. Caveats, honestly: the spool is local, so several API replicas
must share ``EVIDENCE_UPLOAD_DIR`` (or route an upload to one replica); and parts of
an unfinished multipart upload cannot be read back from S3, so a caller that lost its
running hash must re-hash the committed object instead.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path

import urllib3
from minio import Minio
from minio.commonconfig import COMPLIANCE
from minio.datatypes import Part
from minio.error import InvalidResponseError, MinioException, S3Error, ServerError
from minio.retention import Retention

from archive.errors import ObjectExists, ObjectLocked, ObjectNotFound, StorageError, StoreUnavailable
from archive.settings import Settings
from archive.storage import CHUNK, StageHandle, StoredObject

log = logging.getLogger(__name__)

_NOT_FOUND = {"NoSuchKey", "NoSuchVersion", "NoSuchObject", "NoSuchBucket"}
_NO_RETENTION = {
    "NoSuchObjectLockConfiguration", "ObjectLockConfigurationNotFoundError", "NoSuchObjectRetention",
}
_LOCKED = {"AccessDenied", "ObjectLocked", "InvalidRequest"}


def _translate(exc: Exception, what: str) -> StorageError:
    """Our error for a vendor error raised while doing ``what``."""
    if isinstance(exc, S3Error):
        if exc.code in _NOT_FOUND:
            return ObjectNotFound(f"{what}: not found ({exc.code})")
        return StorageError(f"{what}: S3 refused ({exc.code}: {exc.message})")
    if isinstance(exc, (ServerError, InvalidResponseError)):
        return StoreUnavailable(f"{what}: S3 server error ({exc})")
    return StoreUnavailable(f"{what}: S3 server unreachable ({type(exc).__name__})")


_VENDOR = (MinioException, urllib3.exceptions.HTTPError, OSError, ValueError)


class _ChunkReader(io.RawIOBase):
    """A file-like view of an iterator of byte chunks (what minio's put_object reads)."""

    def __init__(self, chunks: Iterable[bytes]):
        self._it = iter(chunks)
        self._buf = b""
        self.size = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        parts = []
        have = len(self._buf)
        parts.append(self._buf)
        while n < 0 or have < n:
            try:
                chunk = next(self._it)
            except StopIteration:
                break
            parts.append(chunk)
            have += len(chunk)
        data = b"".join(parts)
        if n >= 0:
            data, self._buf = data[:n], data[n:]
        else:
            self._buf = b""
        self.size += len(data)
        return data


class S3Store:
    """Objects in one bucket with object lock; vault = key prefix."""

    supports_lock = True

    def __init__(
        self,
        *,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        secure: bool = True,
        region: str | None = None,
        part_size: int = 16 * 1024 * 1024,
        spool_dir: Path | None = None,
        timeout: float | None = None,
    ):
        # ``timeout`` (start-up checks) answers quickly instead of retrying a dead server.
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=timeout or 5, read=timeout or 120),
            retries=urllib3.Retry(total=0 if timeout else 3, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
            maxsize=10,
        )
        self.client = Minio(
            endpoint, access_key=access_key, secret_key=secret_key, secure=secure, region=region,
            http_client=http,
        )
        self.bucket = bucket
        self.part_size = part_size
        self.description = f"S3 {'https' if secure else 'http'}://{endpoint}/{bucket}"
        self._bucket_ready = False
        self.spool_dir = Path(spool_dir or Path(tempfile.gettempdir()) / "evidence-s3-spool").resolve()

    @classmethod
    def from_settings(cls, settings: Settings, *, timeout: float | None = None) -> S3Store:
        """Build from settings; the endpoint and both keys are required."""
        if not (settings.s3_endpoint and settings.s3_access_key and settings.s3_secret_key):
            raise StorageError("S3 storage needs EVIDENCE_S3_ENDPOINT, _ACCESS_KEY and _SECRET_KEY")
        return cls(
            endpoint=settings.s3_endpoint,
            access_key=settings.s3_access_key.get_secret_value(),
            secret_key=settings.s3_secret_key.get_secret_value(),
            bucket=settings.s3_bucket,
            secure=settings.s3_secure,
            region=settings.s3_region,
            part_size=settings.s3_part_size,
            spool_dir=settings.resolved_upload_dir,
            timeout=timeout,
        )

    def _ensure_bucket(self) -> None:
        if self._bucket_ready:
            return
        try:
            if not self.client.bucket_exists(self.bucket):
                self.client.make_bucket(self.bucket, object_lock=True)
                log.info("created bucket %s with object lock", self.bucket)
            if self.client.get_object_lock_config(self.bucket) is None:
                raise StorageError(f"bucket {self.bucket} has no object lock; originals could be deleted")
        except S3Error as exc:
            if exc.code == "ObjectLockConfigurationNotFoundError":
                raise StorageError(
                    f"bucket {self.bucket} exists without object lock; originals could be deleted"
                ) from exc
            if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise _translate(exc, f"prepare bucket {self.bucket}") from exc
        except _VENDOR as exc:
            raise _translate(exc, f"prepare bucket {self.bucket}") from exc
        self._bucket_ready = True

    def ensure_vault(self, vault: str) -> None:
        self._ensure_bucket()

    def put(self, key: str, chunks: Iterable[bytes], *, content_type: str) -> StoredObject:
        self._ensure_bucket()
        try:
            self.client.stat_object(self.bucket, key)
        except S3Error as exc:
            if exc.code not in _NOT_FOUND:
                raise _translate(exc, f"check {key}") from exc
        except _VENDOR as exc:
            raise _translate(exc, f"check {key}") from exc
        else:
            raise ObjectExists(f"object {key} already exists; originals are never overwritten")
        reader = _ChunkReader(chunks)
        try:
            result = self.client.put_object(
                self.bucket, key, reader, length=-1, content_type=content_type,
                part_size=self.part_size, num_parallel_uploads=1,
            )
        except StorageError:
            raise
        except _VENDOR as exc:
            raise _translate(exc, f"upload {key}") from exc
        return StoredObject(key=key, size=reader.size, version_id=result.version_id)

    def lock(self, key: str, *, version_id: str | None, until: datetime) -> StoredObject:
        try:
            self.client.set_object_retention(
                self.bucket, key, Retention(COMPLIANCE, until), version_id=version_id
            )
        except _VENDOR as exc:
            raise _translate(exc, f"lock {key}") from exc
        return self.stat(key, version_id=version_id)

    def discard(self, key: str, *, version_id: str | None) -> None:
        if self.stat(key, version_id=version_id).locked:
            raise ObjectLocked(f"object {key} is under retention and cannot be removed")
        try:
            self.client.remove_object(self.bucket, key, version_id=version_id)
        except S3Error as exc:
            if exc.code in _LOCKED:
                raise ObjectLocked(f"object {key} is under retention and cannot be removed") from exc
            if exc.code not in _NOT_FOUND:
                raise _translate(exc, f"discard {key}") from exc
        except _VENDOR as exc:
            raise _translate(exc, f"discard {key}") from exc

    def read(
        self, key: str, *, version_id: str | None = None, start: int = 0, end: int | None = None
    ) -> Iterator[bytes]:
        length = 0 if end is None else end - start + 1
        try:
            response = self.client.get_object(
                self.bucket, key, offset=start, length=length, version_id=version_id
            )
        except _VENDOR as exc:
            raise _translate(exc, f"read {key}") from exc
        return self._iter(response, key)

    @staticmethod
    def _iter(response, key: str) -> Iterator[bytes]:  # type: ignore[no-untyped-def]
        try:
            yield from response.stream(CHUNK)
        except _VENDOR as exc:
            raise _translate(exc, f"read {key}") from exc
        finally:
            response.close()
            response.release_conn()

    def stat(self, key: str, *, version_id: str | None = None) -> StoredObject:
        try:
            obj = self.client.stat_object(self.bucket, key, version_id=version_id)
        except _VENDOR as exc:
            raise _translate(exc, f"stat {key}") from exc
        try:
            retention = self.client.get_object_retention(self.bucket, key, version_id=obj.version_id)
        except S3Error as exc:
            # Servers differ in how they say "this object has no retention".
            if exc.code not in _NO_RETENTION:
                raise _translate(exc, f"stat {key}") from exc
            retention = None
        except _VENDOR as exc:
            raise _translate(exc, f"stat {key}") from exc
        until = retention.retain_until_date if retention else None
        locked = bool(retention and retention.mode == COMPLIANCE and until)
        return StoredObject(
            key=key, size=obj.size or 0, version_id=obj.version_id, retention_until=until, locked=locked
        )

    def list(self, prefix: str) -> Iterator[StoredObject]:
        try:
            for obj in self.client.list_objects(self.bucket, prefix=prefix, recursive=True):
                yield StoredObject(key=obj.object_name, size=obj.size or 0, version_id=obj.version_id)
        except _VENDOR as exc:
            raise _translate(exc, f"list {prefix}") from exc

    def check(self) -> None:
        self._bucket_ready = False
        self._ensure_bucket()

    # Staged objects: a multipart upload to the final key, fed through a local spool.

    def _spool(self, handle: StageHandle, start: int | None = None) -> Path:
        name = str(handle.get("spool", ""))
        if len(name) != 32 or not name.isalnum():
            raise StorageError(f"malformed staging handle {handle!r}")
        return self.spool_dir / name / f"{handle['flushed'] if start is None else start}.spool"

    def stage_begin(self, key: str, *, content_type: str) -> StageHandle:
        self._ensure_bucket()
        try:
            upload_id = self.client._create_multipart_upload(self.bucket, key, {"Content-Type": content_type})
        except _VENDOR as exc:
            raise _translate(exc, f"start multipart upload of {key}") from exc
        handle: StageHandle = {
            "backend": "s3", "key": key, "upload_id": upload_id, "parts": [], "flushed": 0,
            "content_type": content_type, "spool": hashlib.sha256(upload_id.encode()).hexdigest()[:32],
        }
        path = self._spool(handle)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        except OSError as exc:
            raise StorageError(f"cannot create spool for {key}: {exc.strerror}") from exc
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
        path = self._spool(handle)
        parts = [list(p) for p in handle["parts"]]
        flushed = handle["flushed"]
        key = handle["key"]
        with open(path, "rb") as f:
            held = os.fstat(f.fileno()).st_size
            used = 0
            while held - used >= self.part_size or (final and held > used):
                data = f.read(self.part_size)
                number = len(parts) + 1
                try:
                    etag = self.client._upload_part(self.bucket, key, data, None, handle["upload_id"], number)
                except _VENDOR as exc:
                    raise _translate(exc, f"upload part {number} of {key}") from exc
                parts.append([number, etag])
                used += len(data)
            if not used:
                return handle
            new = dict(handle, parts=parts, flushed=flushed + used)
            # The old spool stays until the next write: the database may still name it.
            with open(self._spool(new), "wb") as out:
                shutil.copyfileobj(f, out, CHUNK)
                out.flush()
                os.fsync(out.fileno())
        return new

    def stage_write(
        self, handle: StageHandle, *, offset: int, chunks: Iterable[bytes], hold: bool = False
    ) -> StageHandle:
        try:
            f = self._open_spool(handle, offset)
            try:
                size = f.tell()
                for chunk in chunks:
                    f.write(chunk)
                    size += len(chunk)
                    if not hold and size >= self.part_size:
                        f.flush()
                        f.close()
                        handle = self._flush(handle)
                        f = open(self._spool(handle), "r+b")
                        size = f.seek(0, os.SEEK_END)
                f.flush()
                os.fsync(f.fileno())
            finally:
                f.close()
        except OSError as exc:
            raise StorageError(f"cannot spool bytes of {handle['key']}: {exc.strerror}") from exc
        return handle

    def stage_truncate(self, handle: StageHandle, *, size: int) -> StageHandle:
        try:
            self._open_spool(handle, size).close()
        except OSError as exc:
            raise StorageError(f"cannot truncate spool of {handle['key']}: {exc.strerror}") from exc
        return handle

    def stage_flush(self, handle: StageHandle) -> StageHandle:
        try:
            return self._flush(handle)
        except OSError as exc:
            raise StorageError(f"cannot flush spool of {handle['key']}: {exc.strerror}") from exc

    def _committed(self, key: str, size: int) -> StoredObject | None:
        try:
            obj = self.stat(key)
        except ObjectNotFound:
            return None
        if obj.size != size:
            raise ObjectExists(f"object {key} already exists with another size; originals are never overwritten")
        return obj

    def stage_commit(self, handle: StageHandle, *, size: int) -> StoredObject:
        key = handle["key"]
        done = self._committed(key, size)
        if done is not None:
            self.stage_abort(handle)  # only the spool remains to be cleaned
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
            self.stage_abort(handle)
            return self.put(key, [], content_type=handle.get("content_type") or "application/octet-stream")
        try:
            handle = self._flush(handle, final=True)
        except OSError as exc:
            raise StorageError(f"cannot flush spool of {key}: {exc.strerror}") from exc
        try:
            result = self.client._complete_multipart_upload(
                self.bucket, key, handle["upload_id"], [Part(n, etag) for n, etag in handle["parts"]]
            )
        except S3Error as exc:
            if exc.code == "NoSuchUpload":
                done = self._committed(key, size)
                if done is not None:
                    return done
            raise _translate(exc, f"complete upload of {key}") from exc
        except _VENDOR as exc:
            raise _translate(exc, f"complete upload of {key}") from exc
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
                page = self.client._list_multipart_uploads(
                    self.bucket, key_marker=key_marker, upload_id_marker=upload_id_marker, max_uploads=1000
                )
                for upload in page.uploads:
                    if (upload.upload_id in live_ids or upload.initiated_time is None
                            or upload.initiated_time >= older_than):
                        continue
                    try:
                        self.client._abort_multipart_upload(self.bucket, upload.object_name, upload.upload_id)
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
                raise _translate(exc, "sweep multipart uploads") from exc
        except _VENDOR as exc:
            raise _translate(exc, "sweep multipart uploads") from exc
        # Spool directories of stages nobody names any more.
        if self.spool_dir.is_dir():
            for path in self.spool_dir.iterdir():
                if (path.is_dir() and len(path.name) == 32 and path.name not in live_spools
                        and path.stat().st_mtime < older_than.timestamp()):
                    shutil.rmtree(path, ignore_errors=True)
                    removed["spool"] += 1
        return removed

    def stage_abort(self, handle: StageHandle) -> None:
        try:
            self.client._abort_multipart_upload(self.bucket, handle["key"], handle["upload_id"])
        except S3Error as exc:
            if exc.code not in _NOT_FOUND | {"NoSuchUpload"}:
                raise _translate(exc, f"abort upload of {handle['key']}") from exc
        except _VENDOR as exc:
            raise _translate(exc, f"abort upload of {handle['key']}") from exc
        shutil.rmtree(self._spool(handle).parent, ignore_errors=True)
