"""S3 vendor errors (``minio``, ``urllib3``) translated into ours, for the S3 store and its
staging: none of them leaves these modules."""

from __future__ import annotations

import urllib3
from minio.error import InvalidResponseError, MinioException, S3Error, ServerError

from archive.errors import ObjectNotFound, StorageError, StoreUnavailable
from archive.storage.protocol import STORE_ERRORS

NOT_FOUND = {"NoSuchKey", "NoSuchVersion", "NoSuchObject", "NoSuchBucket"}
NO_RETENTION = {
    "NoSuchObjectLockConfiguration", "ObjectLockConfigurationNotFoundError", "NoSuchObjectRetention",
}
NO_LEGAL_HOLD = {"NoSuchObjectLegalHold", "NoSuchObjectLockConfiguration"}
"""How servers say "this version never had a legal hold" (SeaweedFS, MinIO)."""
LOCKED = {"AccessDenied", "ObjectLocked", "InvalidRequest"}


def translate(exc: Exception, what: str) -> StorageError:
    """Our error for a vendor error raised while doing ``what`` (a
    :data:`archive.storage.protocol.STORE_OPERATIONS` sentence where there is one)."""
    if isinstance(exc, S3Error):
        if exc.code in NOT_FOUND:
            return ObjectNotFound(STORE_ERRORS.say("not_found", operation=what, code=exc.code))
        return StorageError(STORE_ERRORS.say("refused", operation=what, code=exc.code, detail=exc.message))
    if isinstance(exc, (ServerError, InvalidResponseError)):
        return StoreUnavailable(STORE_ERRORS.say("server_error", operation=what, detail=exc))
    return StoreUnavailable(STORE_ERRORS.say("unreachable", operation=what, error=type(exc).__name__))


VENDOR_ERRORS = (MinioException, urllib3.exceptions.HTTPError, OSError, ValueError)
