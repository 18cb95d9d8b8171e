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

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from archive.settings import Settings

CHUNK = 1024 * 1024

StageHandle = dict[str, Any]
"""A staged object's bookkeeping, JSON-serialisable, owned by the backend."""


@dataclass(frozen=True)
class StoredObject:
    """What the store says about an object it holds."""

    key: str
    size: int
    version_id: str | None
    """The store's version id (S3 with versioning), None for the local backend."""
    retention_until: datetime | None = None
    """End of COMPLIANCE retention (S3) or None; locally, ``locked`` tells."""
    locked: bool = False
    """True when the store itself refuses to delete or change the object."""


@runtime_checkable
class ObjectStore(Protocol):
    """What the archive needs of an object store."""

    description: str
    """Human description (backend and location), for logs and health checks."""
    supports_lock: bool
    """True when the store enforces retention (S3 object lock) or read-only files."""
    staging: Staging
    """Where objects are built up over many requests before they appear (resumable uploads)."""

    def ensure_vault(self, vault: str) -> None:
        """Create the vault's space (idempotent)."""

    def put(self, key: str, chunks: Iterable[bytes], *, content_type: str) -> StoredObject:
        """Stream ``chunks`` into a new object; refuse (ObjectExists) to overwrite."""

    def lock(self, key: str, *, version_id: str | None, until: datetime) -> StoredObject:
        """Put the object under retention until ``until``; afterwards no one may delete it."""

    def discard(self, key: str, *, version_id: str | None) -> None:
        """Remove an object that was never locked (failed checks). Refuses locked ones."""

    def read(
        self, key: str, *, version_id: str | None = None, start: int = 0, end: int | None = None
    ) -> Iterator[bytes]:
        """Stream bytes ``start``..``end`` (inclusive, None = to the end) of an object."""

    def stat(self, key: str, *, version_id: str | None = None) -> StoredObject:
        """Size, version and lock of an object; ObjectNotFound when absent."""

    def list(self, prefix: str) -> Iterator[StoredObject]:
        """Every current object whose key starts with ``prefix``."""

    def check(self) -> None:
        """Raise StoreUnavailable unless the store answers."""


@runtime_checkable
class Staging(Protocol):
    """Staged objects of a store: built up over many requests, then committed under their key."""

    def begin(self, key: str, *, content_type: str) -> StageHandle:
        """Start staging a new object that will appear under ``key`` on commit."""

    def write(
        self, handle: StageHandle, *, offset: int, chunks: Iterable[bytes], hold: bool = False
    ) -> StageHandle:
        """Write ``chunks`` at ``offset`` (dropping staged bytes past it); return the new handle.

        Raises StorageError (code ``staging_lost``) when fewer than ``offset`` bytes are
        staged. With ``hold`` the written bytes stay retractable by ``truncate``
        until ``flush``.
        """

    def truncate(self, handle: StageHandle, *, size: int) -> StageHandle:
        """Drop staged bytes past ``size`` (only bytes written with ``hold`` or not yet flushed)."""

    def flush(self, handle: StageHandle) -> StageHandle:
        """Move held bytes towards their final place; afterwards they cannot be retracted."""

    def commit(self, handle: StageHandle, *, size: int) -> StoredObject:
        """Make the staged ``size`` bytes the object under the handle's key (unlocked).

        Idempotent: after a crash between commit and the caller's bookkeeping, a second
        call returns the object already committed.
        """

    def abort(self, handle: StageHandle) -> None:
        """Remove everything staged (idempotent); the key is left untouched."""

    def sweep_debris(self, *, older_than: datetime, live: Iterable[StageHandle]) -> dict[str, int]:
        """Remove what writes that never finished left behind, last touched before ``older_than``.

        Leftovers are temporary files of direct uploads of a killed process, staged
        uploads no ``live`` handle names (their row was never written, or is gone) and
        abandoned S3 multipart uploads. Never an object under its key, never a stage a
        ``live`` handle names, never a file a live process is still writing. Returns the
        count removed by kind (``partial_file``, ``staged_file``, ``spool``, ``multipart_upload``).
        """


def open_store(settings: Settings) -> ObjectStore:
    """The object store the settings name."""
    if settings.storage_backend == "s3":
        from archive.storage.s3 import S3Store

        return S3Store.from_settings(settings)
    from archive.storage.local import LocalStore

    return LocalStore(
        settings.resolved_storage_dir, staging_dir=settings.resolved_upload_dir, direct_io=settings.storage_direct_io
    )
