"""Staged objects of the local store: an append file per upload in a staging directory
outside every vault (``EVIDENCE_UPLOAD_DIR``, default ``DATA_DIR/uploads``). Each write is
fsynced before it returns, so an offset the caller records is durable; commit
hard-links the file under its key (no copy), falling back to a streamed copy only when
the staging directory is on another filesystem.
"""

from __future__ import annotations

import errno
import logging
import os
import uuid
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from archive.errors import ObjectExists, StorageError
from archive.storage.protocol import CHUNK, PROGRESS_EVERY, Pieces, Progress, StageHandle, StoredObject
from archive.storage.files import PARTIAL, disk_full, os_failure, remove_unused, write_durably

if TYPE_CHECKING:
    from archive.storage.local import LocalStore

log = logging.getLogger(__name__)


class LocalStaging:
    """The :class:`~archive.storage.Staging` of a :class:`~archive.storage.local.LocalStore`."""

    def __init__(self, store: LocalStore):
        self.store = store

    def _staged(self, handle: StageHandle) -> Path:
        name = str(handle.get("file", ""))
        if not name or "/" in name or name.startswith("."):
            raise StorageError(f"malformed staging handle {handle!r}")
        return self.store.staging_dir / name

    def begin(self, key: str, *, content_type: str) -> StageHandle:
        self.store._path(key)  # refuse keys escaping the store before anything is staged
        self.store.staging_dir.mkdir(parents=True, exist_ok=True)
        name = f"{uuid.uuid4().hex}.upload"
        try:
            with open(self.store.staging_dir / name, "xb"):
                pass
        except OSError as exc:
            raise os_failure(f"cannot create staging file for {key}", exc) from exc
        return {"backend": "local", "key": key, "file": name, "content_type": content_type}

    def write(
        self, handle: StageHandle, *, offset: int, chunks: Iterable[bytes], hold: bool = False,
        progress: Progress | None = None, every: int = PROGRESS_EVERY,
    ) -> StageHandle:
        # ``hold`` needs nothing here: every byte stays retractable until commit. Progress is
        # reported after each ``every`` bytes written and on disk.
        path = self._staged(handle)
        try:
            f = open(path, "r+b")
        except FileNotFoundError as exc:
            raise StorageError(f"staged bytes of {handle['key']} are gone", code="staging_lost", status=409) from exc
        pos = offset
        try:
            with f:
                if os.fstat(f.fileno()).st_size < offset:
                    raise StorageError(
                        f"only {os.fstat(f.fileno()).st_size} bytes of {handle['key']} are staged, not {offset}",
                        code="staging_lost", status=409,
                    )
                # A request killed mid-body may have left bytes past the recorded offset.
                f.truncate(offset)
                report = progress if not hold else None
                pieces = Pieces(chunks)
                while not pieces.ended:
                    pos += write_durably(path, f, pieces.take(every if report else float("inf")),
                                         pos, direct_io=self.store.direct_io)
                    if report and not pieces.ended:
                        report(pos, handle)
        except OSError as exc:
            if disk_full(exc):
                # The bytes past the last whole write are lost with this request (the next
                # PATCH cuts them off anyway): give their room back now, or one upload that
                # filled the disk would keep it full for everyone until it expires.
                try:
                    os.truncate(path, pos)
                except OSError:
                    log.warning("could not give back the room of %s's unwritten bytes", handle["key"], exc_info=True)
            raise os_failure(f"cannot write staged bytes of {handle['key']}", exc) from exc
        return handle

    def truncate(self, handle: StageHandle, *, size: int) -> StageHandle:
        try:
            os.truncate(self._staged(handle), size)
        except FileNotFoundError as exc:
            raise StorageError(f"staged bytes of {handle['key']} are gone", code="staging_lost", status=409) from exc
        return handle

    def flush(self, handle: StageHandle) -> StageHandle:
        return handle

    def commit(self, handle: StageHandle, *, size: int) -> StoredObject:
        key = handle["key"]
        path, staged = self.store._path(key), self._staged(handle)
        if not staged.exists():
            # Committed before a crash: the object is there and the staging file is not.
            existing = self.store.stat(key)
            if existing.size != size:
                raise StorageError(f"staged bytes of {key} are gone", code="staging_lost", status=409)
            return existing
        actual = staged.stat().st_size
        if actual != size:
            raise StorageError(f"{actual} bytes of {key} are staged, expected {size}", code="staging_incomplete", status=409)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(staged, path)
        except FileExistsError as exc:
            if path.samefile(staged):
                pass  # linked before a crash, staging file not yet removed
            else:
                raise ObjectExists(f"object {key} already exists; originals are never overwritten") from exc
        except OSError as exc:
            if exc.errno != errno.EXDEV:  # staging on another filesystem: copy instead
                raise os_failure(f"cannot commit {key}", exc) from exc
            with open(staged, "rb") as src:
                self.store.put(key, iter(lambda: src.read(CHUNK), b""), content_type=handle.get("content_type", ""))
        staged.unlink(missing_ok=True)
        return self.store.stat(key)

    def abort(self, handle: StageHandle) -> None:
        try:
            self._staged(handle).unlink(missing_ok=True)
        except OSError as exc:
            raise os_failure(f"cannot remove staged bytes of {handle.get('key')}", exc) from exc

    def sweep_debris(self, *, older_than: datetime, live: Iterable[StageHandle]) -> dict[str, int]:
        cutoff = older_than.timestamp()
        removed = {"partial_file": 0, "staged_file": 0}
        # Temporary files of direct uploads (a process killed mid-put leaves them).
        for dirpath, _dirs, files in os.walk(self.store.root):
            for name in files:
                if name.startswith(".") and name.endswith(PARTIAL):
                    removed["partial_file"] += remove_unused(Path(dirpath) / name, cutoff)
        # Staging files of resumable uploads that no open upload names.
        kept = {str(h.get("file")) for h in live if h.get("backend") == "local"}
        if self.store.staging_dir.is_dir():
            for path in self.store.staging_dir.glob("*.upload"):
                if path.name not in kept:
                    removed["staged_file"] += remove_unused(path, cutoff)
        return removed
