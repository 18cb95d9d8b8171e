"""S3 vendor errors (``minio``, ``urllib3``) translated into ours, for the S3 store and its
staging: none of them leaves these modules."""

from __future__ import annotations

from http import HTTPStatus

import urllib3
from minio.error import InvalidResponseError, MinioException, S3Error, ServerError

from archive.errors import ObjectNotFound, StorageError, StoreFull, StoreUnavailable
from archive.storage.protocol import STORE_ERRORS

NOT_FOUND = {"NoSuchKey", "NoSuchVersion", "NoSuchObject", "NoSuchBucket"}
NO_RETENTION = {
    "NoSuchObjectLockConfiguration", "ObjectLockConfigurationNotFoundError", "NoSuchObjectRetention",
}
NO_LEGAL_HOLD = {"NoSuchObjectLegalHold", "NoSuchObjectLockConfiguration"}
"""How servers say "this version never had a legal hold" (SeaweedFS, MinIO)."""
LOCKED = {"AccessDenied", "ObjectLocked", "InvalidRequest"}
FULL = {"XMinioStorageFull"}
"""How a server says its disks are full: MinIO's code (below its free-space threshold), sent
with HTTP 507 Insufficient Storage (RFC 4918), which any server may send for the same. SeaweedFS
says only ``InternalError`` (500) when a volume cannot be written, as for any other fault of
its own, so what it means is left to its log (see ``failing``), never guessed to be "full"."""
INSUFFICIENT_STORAGE = HTTPStatus.INSUFFICIENT_STORAGE


def translate(exc: Exception, what: str) -> StorageError:
    """Our error for a vendor error raised while doing ``what`` (a
    :data:`archive.storage.protocol.STORE_OPERATIONS` sentence where there is one)."""
    if isinstance(exc, S3Error):
        if exc.code in NOT_FOUND:
            return ObjectNotFound(STORE_ERRORS.say("not_found", operation=what, code=exc.code))
        if exc.code in FULL or getattr(exc.response, "status", None) == INSUFFICIENT_STORAGE:
            return StoreFull(STORE_ERRORS.say("full", operation=what, code=exc.code))
        return StorageError(STORE_ERRORS.say("refused", operation=what, code=exc.code, detail=exc.message))
    if isinstance(exc, ServerError) and exc.status_code == INSUFFICIENT_STORAGE:
        return StoreFull(STORE_ERRORS.say("full", operation=what, code=INSUFFICIENT_STORAGE.name))
    if isinstance(exc, (ServerError, InvalidResponseError)):
        return StoreUnavailable(STORE_ERRORS.say("server_error", operation=what, detail=exc))
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and isinstance(exc.reason, urllib3.exceptions.ResponseError):
        # It answered, with a server error every time (minio-py retries those): not unreachable.
        return StoreUnavailable(STORE_ERRORS.say("failing", operation=what, detail=exc.reason))
    return StoreUnavailable(STORE_ERRORS.say("unreachable", operation=what, error=type(exc).__name__))


VENDOR_ERRORS = (MinioException, urllib3.exceptions.HTTPError, OSError, ValueError)
