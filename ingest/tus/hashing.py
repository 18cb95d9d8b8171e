"""The per-process hash registry of uploads being received, and hashing a body while
it streams (see :mod:`ingest.tus` on why running hashes live only in this process)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from archive.storage.streams import HashingStream
from ingest.tus.errors import UploadBusy


class LiveUploads:
    """Per-process state of uploads being received: a running SHA-256 and a write lock.

    A hasher is only trusted at the exact offset it was recorded at; anything else
    (restart, eviction, a failed write) makes completion re-hash the committed object.
    """

    def __init__(self, max_entries: int = 10_000):
        self._max = max_entries
        self._hashers: OrderedDict[str, tuple[int, Any]] = OrderedDict()
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    @contextmanager
    def writing(self, upload_id: str, refusal: str) -> Iterator[None]:
        """Hold the upload's write lock for the block; UploadBusy (``refusal``) when another
        request of this process holds it."""
        with self._guard:
            lock = self._locks.setdefault(upload_id, threading.Lock())
        if not lock.acquire(blocking=False):
            raise UploadBusy(refusal)
        try:
            yield
        finally:
            lock.release()

    def take(self, upload_id: str, offset: int) -> Any | None:
        """The hasher that has consumed exactly ``offset`` bytes of the upload, if any."""
        with self._guard:
            entry = self._hashers.get(upload_id)
        return entry[1] if entry and entry[0] == offset else None

    def keep(self, upload_id: str, offset: int, hasher: Any | None) -> None:
        with self._guard:
            if hasher is None:
                self._hashers.pop(upload_id, None)
                return
            self._hashers[upload_id] = (offset, hasher)
            self._hashers.move_to_end(upload_id)
            while len(self._hashers) > self._max:
                self._hashers.popitem(last=False)  # evicted: completion re-hashes instead

    def forget(self, upload_id: str) -> None:
        with self._guard:
            self._hashers.pop(upload_id, None)
            self._locks.pop(upload_id, None)



@contextmanager
def hashed(chunks: Iterable[bytes], hashers: list[Any]) -> Iterator[Iterator[bytes]]:
    """``chunks`` passed through while ``hashers`` hash them in threads of their own
    (overlapping the write); when the block ends the hashers have seen every byte passed."""
    stream = iter(HashingStream(chunks, feed=hashers))
    try:
        yield stream
    finally:
        stream.close()  # type: ignore[attr-defined]

