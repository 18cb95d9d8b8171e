"""Local-directory object store: for one machine only (development, embedded default).

Objects are files under a root directory; a put writes a temporary file and links it
into place only when complete, so a reader never sees a partial object. Files are
written with direct I/O where the filesystem has it (``EVIDENCE_STORAGE_DIRECT_IO``,
default on): originals are written once and read rarely, and passing them through the
page cache costs more CPU than anything else in an upload (see :func:`archive.storage.files.write_durably`). Locking makes
the file read-only (0444) — a courtesy, not a guarantee: anyone with root on the machine
can still change it, which is why production uses S3 object lock. A legal hold is a marker
file in the vault's directory (``.legal-hold``): while it is there :meth:`LocalStore.discard`
removes nothing in that vault.

How bytes reach the disk is :mod:`archive.storage.files`; staged objects (resumable
uploads) are :mod:`archive.storage.local_staging`.
"""

from __future__ import annotations

import fcntl
import logging
import os
import stat as stat_mod
import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path

from archive.errors import ObjectExists, ObjectLocked, ObjectNotFound, StorageError, StoreFull
from archive.storage.protocol import CHUNK, STORE_ERRORS, STORE_OPERATIONS, StoredObject
from archive.storage.files import PARTIAL, check_room, disk_full, os_failure, write_durably
from archive.storage.local_staging import LocalStaging

log = logging.getLogger(__name__)

HOLD_MARKER = ".legal-hold"
"""Name, inside a vault's directory, of the marker that puts the vault under legal hold."""


def _cannot(operation: str, key: str, exc: OSError) -> StorageError:
    """Our error for the system refusing :data:`STORE_OPERATIONS` ``operation`` on ``key``
    (:class:`StoreFull` when the disk has no room left)."""
    if disk_full(exc):
        return StoreFull(STORE_ERRORS.say("cannot", operation=STORE_OPERATIONS.say(operation, key=key),
                                          detail="no space left on the disk; nothing was kept"))
    return StorageError(STORE_ERRORS.say("cannot", operation=STORE_OPERATIONS.say(operation, key=key),
                                         detail=exc.strerror))


class LocalStore:
    """Objects as files under ``root``; ``<key>`` maps to ``root/<key>``."""

    supports_lock = True

    def __init__(self, root: Path, *, staging_dir: Path | None = None, direct_io: bool = True):
        self.root = Path(root).resolve()
        self.direct_io = direct_io
        self.root.mkdir(parents=True, exist_ok=True)
        self.staging_dir = Path(staging_dir).resolve() if staging_dir else self.root.parent / (self.root.name + "-staging")
        self.staging = LocalStaging(self)
        self.description = f"local directory {self.root} (single machine only)"
        log.warning(
            "object store is a local directory (%s): for a single machine only; "
            "retention is file permissions, not an object lock",
            self.root,
        )

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise StorageError(f"object key escapes the store: {key!r}")
        return path

    def ensure_vault(self, vault: str) -> None:
        self._path(vault).mkdir(parents=True, exist_ok=True)

    def put(self, key: str, chunks: Iterable[bytes], *, content_type: str) -> StoredObject:
        path = self._path(key)
        if path.exists():
            raise ObjectExists(f"object {key} already exists; originals are never overwritten")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}{PARTIAL}")
        try:
            with open(tmp, "xb") as f:
                # Held while the file is written: the debris sweep never removes a locked one.
                fcntl.flock(f.fileno(), fcntl.LOCK_EX)
                size = write_durably(tmp, f, chunks, 0, direct_io=self.direct_io)
                # link() fails if the target exists, unlike rename(): no overwrite race.
                os.link(tmp, path)
        except FileExistsError as exc:
            raise ObjectExists(f"object {key} already exists; originals are never overwritten") from exc
        except OSError as exc:
            raise _cannot("write", key, exc) from exc
        finally:
            tmp.unlink(missing_ok=True)
        return StoredObject(key=key, size=size, version_id=None)

    def lock(self, key: str, *, version_id: str | None, until: datetime) -> StoredObject:
        path = self._path(key)
        try:
            path.chmod(stat_mod.S_IRUSR | stat_mod.S_IRGRP | stat_mod.S_IROTH)
        except FileNotFoundError as exc:
            raise ObjectNotFound(STORE_ERRORS.say("absent", key=key)) from exc
        except OSError as exc:
            raise _cannot("lock", key, exc) from exc
        return self.stat(key)

    def discard(self, key: str, *, version_id: str | None) -> None:
        path = self._path(key)
        if self._hold_marker(key).exists():
            raise ObjectLocked(f"object {key} is under legal hold and cannot be removed")
        try:
            if not os.access(path, os.W_OK) or not (path.stat().st_mode & stat_mod.S_IWUSR):
                raise ObjectLocked(f"object {key} is locked and cannot be removed")
            path.unlink()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise _cannot("discard", key, exc) from exc

    def read(
        self, key: str, *, version_id: str | None = None, start: int = 0, end: int | None = None
    ) -> Iterator[bytes]:
        path = self._path(key)
        try:
            f = open(path, "rb")
        except FileNotFoundError as exc:
            raise ObjectNotFound(STORE_ERRORS.say("no_object", key=key)) from exc
        except OSError as exc:
            raise _cannot("read", key, exc) from exc
        return self._iter(f, key, start, end)

    @staticmethod
    def _iter(f, key: str, start: int, end: int | None) -> Iterator[bytes]:  # type: ignore[no-untyped-def]
        with f:
            try:
                f.seek(start)
                remaining = None if end is None else end - start + 1
                while remaining is None or remaining > 0:
                    chunk = f.read(CHUNK if remaining is None else min(CHUNK, remaining))
                    if not chunk:
                        return
                    if remaining is not None:
                        remaining -= len(chunk)
                    yield chunk
            except OSError as exc:
                # Callers (workers, fixity) handle our errors only; a raw OSError would crash them.
                raise _cannot("read", key, exc) from exc

    def stat(self, key: str, *, version_id: str | None = None) -> StoredObject:
        path = self._path(key)
        try:
            st = path.stat()
        except FileNotFoundError as exc:
            raise ObjectNotFound(STORE_ERRORS.say("no_object", key=key)) from exc
        except OSError as exc:
            raise _cannot("stat", key, exc) from exc
        return StoredObject(
            key=key, size=st.st_size, version_id=None, locked=not (st.st_mode & stat_mod.S_IWUSR)
        )

    def list(self, prefix: str) -> Iterator[StoredObject]:
        base = self._path(prefix.rstrip("/")) if prefix.strip("/") else self.root
        if not base.exists():
            return
        for dirpath, _dirs, files in os.walk(base):
            for name in sorted(files):
                if name.endswith(PARTIAL) or name == HOLD_MARKER:
                    continue
                key = str((Path(dirpath) / name).relative_to(self.root))
                if key.startswith(prefix):
                    yield self.stat(key)

    def _hold_marker(self, key: str) -> Path:
        return self._path(key.split("/", 1)[0]) / HOLD_MARKER

    def set_legal_hold(self, vault: str, *, on: bool) -> int:
        marker = self._hold_marker(vault)
        try:
            if on:
                self.ensure_vault(vault)
                marker.write_text("legal hold\n", encoding="ascii")
            else:
                marker.unlink(missing_ok=True)
        except OSError as exc:
            raise os_failure(f"cannot {'place' if on else 'lift'} the legal hold on {vault}", exc) from exc
        return sum(1 for _ in self.list(f"{vault}/"))

    def legal_hold(self, key: str, *, version_id: str | None = None) -> bool:
        self.stat(key)
        return self._hold_marker(key).exists()

    def check(self) -> None:
        if not os.access(self.root, os.W_OK):
            raise StorageError(f"object directory {self.root} is not writable")
        check_room(self.root, "the object directory")
        check_room(self.staging_dir, "the upload staging directory")

    # Staged objects: an append file per upload, linked into place on commit.
