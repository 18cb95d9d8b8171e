"""S3 object store through the ``minio`` client (MinIO in production, any S3 server).

Vaults are prefixes of one bucket created with object lock (and therefore versioning).
Every original gets COMPLIANCE retention: until it expires, nobody — administrator or
root account included — can delete that version. Uploads of unknown length go up as a
multipart upload with a bounded part size, so memory stays flat whatever the file size.
``minio``/``urllib3`` errors never leave this module and its staging; callers see ours.

Staged objects (resumable uploads) are :mod:`archive.storage.s3_staging`; vendor
errors are translated in :mod:`archive.storage.s3_errors`.
"""

from __future__ import annotations

import io
import logging
import tempfile
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path

import urllib3
from minio import Minio
from minio.commonconfig import COMPLIANCE
from minio.error import S3Error
from minio.retention import Retention

from archive.errors import ObjectExists, ObjectLocked, StorageError
from archive.settings import Settings
from archive.storage.protocol import CHUNK, StoredObject
from archive.storage.s3_errors import LOCKED, NO_RETENTION, NOT_FOUND, VENDOR_ERRORS, translate
from archive.storage.s3_staging import S3Staging

log = logging.getLogger(__name__)


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
        self.staging = S3Staging(self)

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
                raise translate(exc, f"prepare bucket {self.bucket}") from exc
        except VENDOR_ERRORS as exc:
            raise translate(exc, f"prepare bucket {self.bucket}") from exc
        self._bucket_ready = True

    def ensure_vault(self, vault: str) -> None:
        self._ensure_bucket()

    def put(self, key: str, chunks: Iterable[bytes], *, content_type: str) -> StoredObject:
        self._ensure_bucket()
        try:
            self.client.stat_object(self.bucket, key)
        except S3Error as exc:
            if exc.code not in NOT_FOUND:
                raise translate(exc, f"check {key}") from exc
        except VENDOR_ERRORS as exc:
            raise translate(exc, f"check {key}") from exc
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
        except VENDOR_ERRORS as exc:
            raise translate(exc, f"upload {key}") from exc
        return StoredObject(key=key, size=reader.size, version_id=result.version_id)

    def lock(self, key: str, *, version_id: str | None, until: datetime) -> StoredObject:
        try:
            self.client.set_object_retention(
                self.bucket, key, Retention(COMPLIANCE, until), version_id=version_id
            )
        except VENDOR_ERRORS as exc:
            raise translate(exc, f"lock {key}") from exc
        return self.stat(key, version_id=version_id)

    def discard(self, key: str, *, version_id: str | None) -> None:
        if self.stat(key, version_id=version_id).locked:
            raise ObjectLocked(f"object {key} is under retention and cannot be removed")
        try:
            self.client.remove_object(self.bucket, key, version_id=version_id)
        except S3Error as exc:
            if exc.code in LOCKED:
                raise ObjectLocked(f"object {key} is under retention and cannot be removed") from exc
            if exc.code not in NOT_FOUND:
                raise translate(exc, f"discard {key}") from exc
        except VENDOR_ERRORS as exc:
            raise translate(exc, f"discard {key}") from exc

    def read(
        self, key: str, *, version_id: str | None = None, start: int = 0, end: int | None = None
    ) -> Iterator[bytes]:
        length = 0 if end is None else end - start + 1
        try:
            response = self.client.get_object(
                self.bucket, key, offset=start, length=length, version_id=version_id
            )
        except VENDOR_ERRORS as exc:
            raise translate(exc, f"read {key}") from exc
        return self._iter(response, key)

    @staticmethod
    def _iter(response, key: str) -> Iterator[bytes]:  # type: ignore[no-untyped-def]
        try:
            yield from response.stream(CHUNK)
        except VENDOR_ERRORS as exc:
            raise translate(exc, f"read {key}") from exc
        finally:
            response.close()
            response.release_conn()

    def stat(self, key: str, *, version_id: str | None = None) -> StoredObject:
        try:
            obj = self.client.stat_object(self.bucket, key, version_id=version_id)
        except VENDOR_ERRORS as exc:
            raise translate(exc, f"stat {key}") from exc
        try:
            retention = self.client.get_object_retention(self.bucket, key, version_id=obj.version_id)
        except S3Error as exc:
            # Servers differ in how they say "this object has no retention".
            if exc.code not in NO_RETENTION:
                raise translate(exc, f"stat {key}") from exc
            retention = None
        except VENDOR_ERRORS as exc:
            raise translate(exc, f"stat {key}") from exc
        until = retention.retain_until_date if retention else None
        locked = bool(retention and retention.mode == COMPLIANCE and until)
        return StoredObject(
            key=key, size=obj.size or 0, version_id=obj.version_id, retention_until=until, locked=locked
        )

    def list(self, prefix: str) -> Iterator[StoredObject]:
        try:
            for obj in self.client.list_objects(self.bucket, prefix=prefix, recursive=True):
                yield StoredObject(key=obj.object_name, size=obj.size or 0, version_id=obj.version_id)
        except VENDOR_ERRORS as exc:
            raise translate(exc, f"list {prefix}") from exc

    def check(self) -> None:
        self._bucket_ready = False
        self._ensure_bucket()

