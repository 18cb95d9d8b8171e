"""The object store protocol (:class:`ObjectStore`) and its staging protocol (:class:`Staging`).

See the package docstring for what they promise; the backends implement them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from archive.wording import Sentences


CHUNK = 1024 * 1024

STORE_OPERATIONS = Sentences("store_operation", {
    "read": "read {key}",
    "stat": "stat {key}",
    "check": "check {key}",
    "upload": "upload {key}",
    "write": "write {key}",
    "lock": "lock {key}",
    "discard": "discard {key}",
    "list": "list {key}",
}, fields={"key": r"\S+"})
"""What a backend was doing with an object (or a prefix) when it failed: the ``operation`` of
a :data:`STORE_ERRORS` sentence. A backend may name a rarer operation in words of its own."""

STORE_ERRORS = Sentences("store_error", {
    "not_found": "{operation}: not found ({code})",
    "refused": "{operation}: S3 refused ({code}: {detail})",
    "server_error": "{operation}: S3 server error ({detail})",
    "unreachable": "{operation}: S3 server unreachable ({error})",
    "full": "{operation}: the S3 server's storage is full ({code}); nothing was kept (an administrator must free space)",
    "failing": "{operation}: S3 server failing: it answered every attempt with a server error ({detail}); its log "
               "says why (a full disk is one cause)",
    "no_object": "no object {key} in the store",
    "absent": "no object {key}",
    "cannot": "cannot {operation}: {detail}",
}, fields={"operation": r"(?:read|stat|check|upload|write|lock|discard|list|prepare|place|lift|start|complete|abort)"
                     r"(?: \S+)+?",
           "code": r"\w+", "error": r"\w+", "key": r"\S+"})
"""The messages of the backends' errors (:class:`archive.errors.StorageError` and its kinds),
which a step, an export or background work keeps as its reason; ``code`` is the S3 server's
error code, ``error`` the class of a connection's failure, ``detail`` the server's or the
system's own words. An ``operation`` begins with the verb of one of
:data:`STORE_OPERATIONS` or of the rarer ones the S3 backend names in its own words."""

StageHandle = dict[str, Any]
"""A staged object's bookkeeping, JSON-serialisable, owned by the backend."""

Progress = Callable[[int, StageHandle], None]
"""``progress(offset, handle)``: a write's bytes up to ``offset`` are durably staged, and
``handle`` names them (what a caller records, to resume from there after a crash)."""

PROGRESS_EVERY = 64 * 1024 * 1024
"""A long staged write reports its progress at least this often (bytes), by default."""


class Pieces:
    """An iterator of byte chunks taken ``limit`` bytes at a time (a chunk that crosses the
    limit is split, its rest kept for the next take)."""

    def __init__(self, chunks: Iterable[bytes]):
        self._it = iter(chunks)
        self._pending = b""
        self.ended = False

    def take(self, limit: float) -> Iterator[bytes]:
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
            if taken + len(chunk) > limit:
                cut = int(limit - taken)
                chunk, self._pending = chunk[:cut], chunk[cut:]
            taken += len(chunk)
            yield chunk


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

    def set_legal_hold(self, vault: str, *, on: bool) -> int:
        """Place (``on``) or lift the legal hold on a whole vault; idempotent.

        While it is placed the store removes nothing in the vault, whatever its retention,
        objects locked later included. On S3 every object version under the vault carries
        an S3 object legal hold; locally a marker in the vault that :meth:`discard` honours.
        Returns how many object versions the vault holds.
        """

    def legal_hold(self, key: str, *, version_id: str | None = None) -> bool:
        """True when the store holds the object (version) under legal hold."""

    def check(self) -> None:
        """Raise StoreUnavailable unless the store answers."""


@runtime_checkable
class Staging(Protocol):
    """Staged objects of a store: built up over many requests, then committed under their key."""

    def begin(self, key: str, *, content_type: str) -> StageHandle:
        """Start staging a new object that will appear under ``key`` on commit."""

    def write(
        self, handle: StageHandle, *, offset: int, chunks: Iterable[bytes], hold: bool = False,
        progress: Progress | None = None, every: int = PROGRESS_EVERY,
    ) -> StageHandle:
        """Write ``chunks`` at ``offset`` (dropping staged bytes past it); return the new handle.

        Raises StorageError (code ``staging_lost``) when fewer than ``offset`` bytes are
        staged. With ``hold`` the written bytes stay retractable by ``truncate``
        until ``flush``. Without it, a long write calls ``progress`` (in the writing
        thread) each time about ``every`` more bytes are durably staged, without holding up
        the bytes still arriving; the returned handle covers the whole write.
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
