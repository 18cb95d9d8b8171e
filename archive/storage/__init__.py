"""Object storage: one small protocol, two backends, chosen by settings.

Keys are ``<vault>/<area>/<name>``; a vault is a key prefix owned by exactly one case.
Originals are written once, then *locked*: COMPLIANCE retention on S3, read-only files
locally. Nothing in the service deletes a locked object; :meth:`ObjectStore.discard`
exists only for objects that failed their checks before being locked.

*Staged objects* serve resumable uploads only, so they are a protocol of their own,
:class:`Staging`, which every store hands out as ``store.staging``: an object is built
up over many requests (possibly across restarts of the API process) before it exists
under its key. ``begin`` returns a JSON-serialisable *handle* that the caller persists
(the ``uploads.state`` column) and passes back to every later call; the backend keeps
its bookkeeping in it. Bytes are appended at an explicit offset (anything staged beyond
that offset — left by a killed request — is discarded first); ``hold=True`` keeps the
bytes of one write retractable with ``truncate`` until the caller has checked them;
``commit`` makes the object appear under its key (unlocked, like ``put``) and is safe
to call again after a crash. Locally the stage is an append file in a staging directory
outside every vault, hard-linked into place (:mod:`archive.storage.local_staging`); on
S3 it is a real multipart upload whose parts are filled through a small local spool
(:mod:`archive.storage.s3_staging`). Neither holds more than one part in memory.
"""

from __future__ import annotations

from archive.settings import Settings
from archive.storage.protocol import CHUNK, ObjectStore, StageHandle, Staging, StoredObject

__all__ = ["CHUNK", "ObjectStore", "StageHandle", "Staging", "StoredObject", "open_store"]


def open_store(settings: Settings) -> ObjectStore:
    """The object store the settings name."""
    if settings.storage_backend == "s3":
        from archive.storage.s3 import S3Store

        return S3Store.from_settings(settings)
    from archive.storage.local import LocalStore

    return LocalStore(
        settings.resolved_storage_dir, staging_dir=settings.resolved_upload_dir, direct_io=settings.storage_direct_io
    )
