"""S3 object store through the ``minio`` client (MinIO in production, any S3 server).

Vaults are prefixes of one bucket created with object lock (and therefore versioning).
Every original gets COMPLIANCE retention: until it expires, nobody — administrator or
root account included — can delete that version. Uploads of unknown length go up as a
multipart upload with a bounded part size: parts received are uploaded while the next ones
arrive, at most ``parallel_parts`` in flight, so memory stays flat (that many parts plus the
one being read) whatever the file size. The parts are sent by :class:`~archive.storage.s3_parts.PartSender`, not
minio's ``put_object(num_parallel_uploads=N)``: minio's upload pool leaves its threads waiting
forever when the stream fails (a client that goes away mid-upload), one set per failed upload.
``minio``/``urllib3`` errors never leave this module and its staging; callers see ours.

A vault under legal hold has a marker object (``<vault>/.legal-hold``); while it is there
every object version under the vault carries an S3 object legal hold, and :meth:`S3Store.lock`
gives one to each object it locks, so nothing arriving later escapes the hold.

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
from archive.storage.files import check_room
from archive.storage.protocol import CHUNK, STORE_OPERATIONS, StoredObject
from archive.storage.s3_errors import LOCKED, NO_LEGAL_HOLD, NO_RETENTION, NOT_FOUND, VENDOR_ERRORS, translate
from archive.storage.s3_parts import ChunkReader, PartBuffers, PartSender
from archive.storage.s3_staging import S3Staging

log = logging.getLogger(__name__)

HOLD_MARKER = ".legal-hold"
"""Name, inside a vault, of the marker object that says the vault is under legal hold."""


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
        part_size: int = 8 * 1024 * 1024,
        parallel_parts: int = 4,
        spool_dir: Path | None = None,
        timeout: float | None = None,
    ):
        # ``timeout`` (start-up checks) answers quickly instead of retrying a dead server.
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=timeout or 5, read=timeout or 120),
            retries=urllib3.Retry(total=0 if timeout else 3, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
            maxsize=max(10, 2 * parallel_parts),
        )
        self.client = Minio(
            endpoint, access_key=access_key, secret_key=secret_key, secure=secure, region=region,
            http_client=http,
        )
        self.bucket = bucket
        self.part_size = part_size
        self.parallel_parts = parallel_parts
        self.part_buffers = PartBuffers(part_size, keep=parallel_parts + 1)
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
            parallel_parts=settings.s3_parallel_parts,
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
                raise translate(exc, STORE_OPERATIONS.say("check", key=key)) from exc
        except VENDOR_ERRORS as exc:
            raise translate(exc, STORE_OPERATIONS.say("check", key=key)) from exc
        else:
            raise ObjectExists(f"object {key} already exists; originals are never overwritten")
        reader = ChunkReader(chunks)
        first, mine = self.part_buffers.take(), True
        try:
            length = reader.readinto(first)
            if length < self.part_size:  # the whole object fits in one part: one plain PUT
                data = memoryview(first)[:length]
                result = self.client.put_object(self.bucket, key, io.BytesIO(data), length, content_type=content_type)
                return StoredObject(key=key, size=length, version_id=result.version_id)
            mine = False  # the upload's sender gives it back
            return self._put_parts(key, reader, first, content_type=content_type)
        except StorageError:
            raise
        except VENDOR_ERRORS as exc:
            raise translate(exc, STORE_OPERATIONS.say("upload", key=key)) from exc
        finally:
            if mine:
                self.part_buffers.give([first])

    def _put_parts(self, key: str, reader: ChunkReader, first: bytearray, *, content_type: str) -> StoredObject:
        """A multipart upload of ``first`` (a full part read already) then the rest of
        ``reader``, through a :class:`PartSender`. Any failure (of a part, or of the stream)
        waits for the parts in flight, aborts the upload and re-raises."""
        upload_id = self.client._create_multipart_upload(self.bucket, key, {"Content-Type": content_type})
        try:
            with PartSender(self, key, upload_id) as sender:
                sender.send(first, len(first))
                del first
                while length := reader.readinto(buffer := sender.buffer()):
                    sender.send(buffer, length)
                done = sender.finish()
            result = self.client._complete_multipart_upload(self.bucket, key, upload_id, done)
        except BaseException:
            try:
                self.client._abort_multipart_upload(self.bucket, key, upload_id)
            except VENDOR_ERRORS as exc:  # the stale parts are debris for the sweep, not a second error
                log.warning("could not abort the multipart upload of %s: %s", key, exc)
            raise
        return StoredObject(key=key, size=reader.size, version_id=result.version_id)

    def lock(self, key: str, *, version_id: str | None, until: datetime) -> StoredObject:
        try:
            self.client.set_object_retention(
                self.bucket, key, Retention(COMPLIANCE, until), version_id=version_id
            )
            # Checked after the retention: a hold placed meanwhile has its marker written
            # before it lists the vault, so an object is covered by one or the other.
            if self._held(key.split("/", 1)[0]):
                self.client.enable_object_legal_hold(self.bucket, key, version_id=version_id)
        except VENDOR_ERRORS as exc:
            raise translate(exc, STORE_OPERATIONS.say("lock", key=key)) from exc
        return self.stat(key, version_id=version_id)

    def _held(self, vault: str) -> bool:
        try:
            self.client.stat_object(self.bucket, f"{vault}/{HOLD_MARKER}")
        except S3Error as exc:
            if exc.code in NOT_FOUND:
                return False
            raise
        return True

    def set_legal_hold(self, vault: str, *, on: bool) -> int:
        self._ensure_bucket()
        marker = f"{vault}/{HOLD_MARKER}"
        try:
            # Placing: the marker first, so whatever is locked from now on is held by lock().
            # Lifting: the marker first too, so nothing locked after the listing stays held.
            if on:
                self.client.put_object(self.bucket, marker, io.BytesIO(b"legal hold\n"), 11, content_type="text/plain")
            else:
                # A delete marker on top, not the removal of a version: that works even where
                # the bucket gives every new version a default retention.
                self.client.remove_object(self.bucket, marker)
            count = 0
            for obj in self.client.list_objects(self.bucket, prefix=f"{vault}/", recursive=True, include_version=True):
                if obj.is_delete_marker or obj.object_name == marker:
                    continue
                if on:
                    self.client.enable_object_legal_hold(self.bucket, obj.object_name, version_id=obj.version_id)
                else:
                    self.client.disable_object_legal_hold(self.bucket, obj.object_name, version_id=obj.version_id)
                count += 1
        except VENDOR_ERRORS as exc:
            raise translate(exc, f"{'place' if on else 'lift'} the legal hold on {vault}") from exc
        return count

    def legal_hold(self, key: str, *, version_id: str | None = None) -> bool:
        try:
            return bool(self.client.is_object_legal_hold_enabled(self.bucket, key, version_id=version_id))
        except S3Error as exc:
            if exc.code in NO_LEGAL_HOLD:
                return False
            raise translate(exc, f"read the legal hold of {key}") from exc
        except VENDOR_ERRORS as exc:
            raise translate(exc, f"read the legal hold of {key}") from exc

    def discard(self, key: str, *, version_id: str | None) -> None:
        if self.stat(key, version_id=version_id).locked:
            raise ObjectLocked(f"object {key} is under retention and cannot be removed")
        try:
            held = self._held(key.split("/", 1)[0]) or self.legal_hold(key, version_id=version_id)
        except VENDOR_ERRORS as exc:
            raise translate(exc, STORE_OPERATIONS.say("discard", key=key)) from exc
        if held:
            raise ObjectLocked(f"object {key} is under legal hold and cannot be removed")
        try:
            self.client.remove_object(self.bucket, key, version_id=version_id)
        except S3Error as exc:
            if exc.code in LOCKED:
                raise ObjectLocked(f"object {key} is under retention and cannot be removed") from exc
            if exc.code not in NOT_FOUND:
                raise translate(exc, STORE_OPERATIONS.say("discard", key=key)) from exc
        except VENDOR_ERRORS as exc:
            raise translate(exc, STORE_OPERATIONS.say("discard", key=key)) from exc

    def read(
        self, key: str, *, version_id: str | None = None, start: int = 0, end: int | None = None
    ) -> Iterator[bytes]:
        length = 0 if end is None else end - start + 1
        try:
            response = self.client.get_object(
                self.bucket, key, offset=start, length=length, version_id=version_id
            )
        except VENDOR_ERRORS as exc:
            raise translate(exc, STORE_OPERATIONS.say("read", key=key)) from exc
        return self._iter(response, key)

    @staticmethod
    def _iter(response, key: str) -> Iterator[bytes]:  # type: ignore[no-untyped-def]
        try:
            yield from response.stream(CHUNK)
        except VENDOR_ERRORS as exc:
            raise translate(exc, STORE_OPERATIONS.say("read", key=key)) from exc
        finally:
            response.close()
            response.release_conn()

    def stat(self, key: str, *, version_id: str | None = None) -> StoredObject:
        try:
            obj = self.client.stat_object(self.bucket, key, version_id=version_id)
        except VENDOR_ERRORS as exc:
            raise translate(exc, STORE_OPERATIONS.say("stat", key=key)) from exc
        try:
            retention = self.client.get_object_retention(self.bucket, key, version_id=obj.version_id)
        except S3Error as exc:
            # Servers differ in how they say "this object has no retention".
            if exc.code not in NO_RETENTION:
                raise translate(exc, STORE_OPERATIONS.say("stat", key=key)) from exc
            retention = None
        except VENDOR_ERRORS as exc:
            raise translate(exc, STORE_OPERATIONS.say("stat", key=key)) from exc
        until = retention.retain_until_date if retention else None
        locked = bool(retention and retention.mode == COMPLIANCE and until)
        return StoredObject(
            key=key, size=obj.size or 0, version_id=obj.version_id, retention_until=until, locked=locked
        )

    def list(self, prefix: str) -> Iterator[StoredObject]:
        try:
            for obj in self.client.list_objects(self.bucket, prefix=prefix, recursive=True):
                if obj.object_name.endswith(f"/{HOLD_MARKER}"):
                    continue
                yield StoredObject(key=obj.object_name, size=obj.size or 0, version_id=obj.version_id)
        except VENDOR_ERRORS as exc:
            raise translate(exc, STORE_OPERATIONS.say("list", key=prefix)) from exc

    def check(self) -> None:
        self._bucket_ready = False
        self._ensure_bucket()
        check_room(self.spool_dir, "the upload spool directory")

