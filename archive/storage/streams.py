"""Byte streams to and from the store: hashing on the way, comparing, spooling to files.

Nothing here holds a whole object in memory: streams are read chunk by chunk.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO

from archive.errors import ArchiveError, ObjectExists
from archive.storage import CHUNK, ObjectStore, StoredObject


class HashingStream:
    """Passes chunks through while hashing them and counting bytes.

    Each algorithm hashes in a thread of its own, fed through a small bounded queue,
    while the caller writes the same chunk: hashlib releases the GIL for large
    buffers, so hashing overlaps the write (or the network send) instead of adding to
    it, and memory stays bounded by the queues. Chunks go to the hashing threads in
    batches of about :data:`BATCH` bytes: a network body arrives in pieces of tens of
    KiB, and waking a thread for each piece cost more than hashing it. The threads start
    with the first whole batch: a stream shorter than one is hashed in the caller's
    thread. Digests are final once the iteration has ended (normally or not).
    """

    BATCH = 1024 * 1024
    QUEUE_BATCHES = 8

    def __init__(self, chunks: Iterable[bytes], *algorithms: str, feed: Iterable[Any] = ()):
        """Hash with new ``algorithms`` (see :meth:`hexdigest`) and update the hashlib
        objects in ``feed`` (for a hash carried over from earlier bytes)."""
        self.chunks_of = chunks
        self.hashers = {name: hashlib.new(name) for name in algorithms}
        self._all = [*self.hashers.values(), *(h for h in feed if h is not None)]
        self.size = 0

    @staticmethod
    def _drain(hasher, batches: queue.Queue) -> None:  # type: ignore[no-untyped-def]
        update = hasher.update
        while (batch := batches.get()) is not None:
            for chunk in batch:
                update(chunk)

    def __iter__(self) -> Iterator[bytes]:
        queues: list[queue.Queue] = []
        threads: list[threading.Thread] = []
        batch: list[bytes] = []
        batched = 0
        try:
            for chunk in self.chunks_of:
                batch.append(chunk)
                batched += len(chunk)
                self.size += len(chunk)
                if batched >= self.BATCH:
                    if not threads:  # started with the first whole batch
                        queues, threads = self._start()
                    for q in queues:
                        q.put(batch)
                    batch, batched = [], 0
                yield chunk
        finally:
            if threads:
                for q in queues:
                    if batch:
                        q.put(batch)
                    q.put(None)
                for thread in threads:
                    thread.join()
            else:
                # Less than a batch in all (a seal, a manifest, a small document): hashed
                # here; starting and joining a thread per algorithm cost more than hashing it.
                for hasher in self._all:
                    for chunk in batch:
                        hasher.update(chunk)

    def _start(self) -> tuple[list[queue.Queue], list[threading.Thread]]:
        """A bounded queue and a hashing thread per algorithm, started."""
        queues = [queue.Queue(maxsize=self.QUEUE_BATCHES) for _ in self._all]
        threads = [
            threading.Thread(target=self._drain, args=(hasher, q), daemon=True, name=f"hash-{hasher.name}")
            for hasher, q in zip(self._all, queues)
        ]
        for thread in threads:
            thread.start()
        return queues, threads

    def hexdigest(self, name: str) -> str:
        return self.hashers[name].hexdigest()


def hash_chunks(chunks: Iterable[bytes], *algorithms: str) -> HashingStream:
    """Consume ``chunks`` and return the finished hashers (with the byte count)."""
    stream = HashingStream(chunks, *algorithms)
    for _ in stream:
        pass
    return stream


Content = bytes | BinaryIO | Iterable[bytes]
"""Bytes, a seekable binary file (read from its start), or a stream of chunks."""

def chunks_of(content: Content) -> Iterator[bytes]:
    if isinstance(content, (bytes, bytearray, memoryview)):
        yield bytes(content)
    elif hasattr(content, "read"):
        content.seek(0)
        while chunk := content.read(CHUNK):
            yield chunk
    else:
        yield from content


def starts_with(content: Content, prefix: Content, *, exactly: bool = False) -> bool:
    """True when ``content`` begins with the bytes of ``prefix`` (all of it with ``exactly``).

    Both are streamed side by side, whatever their chunk sizes: only one chunk of
    each is held at a time.
    """
    data, want_chunks = chunks_of(content), chunks_of(prefix)
    try:
        pending = memoryview(b"")
        for chunk in want_chunks:
            want = memoryview(chunk)
            while want:
                while not pending:
                    got = next(data, None)
                    if got is None:
                        return False  # content ended first
                    pending = memoryview(got)
                n = min(len(want), len(pending))
                if want[:n] != pending[:n]:
                    return False
                want, pending = want[n:], pending[n:]
        return not exactly or (not pending and not any(data))
    finally:
        data.close()
        want_chunks.close()


def spool(chunks: Iterable[bytes], into: BinaryIO, *algorithms: str) -> HashingStream:
    """Copy ``chunks`` to the file ``into`` while hashing them; rewind it and return the hashers."""
    stream = HashingStream(chunks, *algorithms)
    for chunk in stream:
        into.write(chunk)
    into.flush()
    into.seek(0)
    return stream


@dataclass(frozen=True)
class Written:
    """An object written (or found identical) and locked by :func:`put_locked`."""

    key: str
    media_type: str
    sha256: str
    size: int
    stored: StoredObject


def put_locked(store: ObjectStore, key: str, content: bytes | BinaryIO, *, media_type: str,
                until: datetime) -> Written:
    """Stream an object into the store, hashing it on the way, and lock it.

    An identical object already there (a retry) is reused; a different one raises
    ObjectExists. ``content`` is bytes or a seekable binary file.
    """
    stream = HashingStream(chunks_of(content), "sha256")
    try:
        stored = store.put(key, stream, content_type=media_type)
    except ObjectExists:
        current = store.stat(key)
        stream = HashingStream(chunks_of(content), "sha256")
        if not starts_with(store.read(key, version_id=current.version_id), stream, exactly=True):
            raise
        stored = current
    if not stored.locked:
        stored = store.lock(key, version_id=stored.version_id, until=until)
    return Written(key=key, media_type=media_type, sha256=stream.hexdigest("sha256"), size=stream.size,
                    stored=stored)


@dataclass(frozen=True)
class VaultCopy:
    """An object a vault keeps as a copy of a database record (a sealed checkpoint, a case
    archive record, their seals): the writer puts it with :func:`put_copies`, verification
    compares what the store holds under ``key`` with ``data``."""

    key: str
    data: bytes
    """The bytes the database holds, which the stored object must equal."""
    media_type: str


def put_copies(store: ObjectStore, copies: Iterable[VaultCopy], *, until: datetime) -> None:
    """Write each copy, locked until ``until`` (an identical one already there is reused)."""
    for copy in copies:
        put_locked(store, copy.key, copy.data, media_type=copy.media_type, until=until)


def read_small(store: ObjectStore, key: str) -> bytes | None:
    """The current (small) object at ``key``, or None when there is none."""
    try:
        current = store.stat(key)
    except ArchiveError:
        return None
    return b"".join(store.read(key, version_id=current.version_id))


def spool_existing(store: ObjectStore, key: str, into: BinaryIO) -> bool:
    """Spool the current object at ``key`` into the file ``into``; False when there is none."""
    try:
        current = store.stat(key)
    except ArchiveError:
        return False
    spool(store.read(key, version_id=current.version_id), into)
    return True
