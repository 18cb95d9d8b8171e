"""The parts of a multipart upload to S3, sent in parallel while the next are read: used by
the store's puts of unknown length (:mod:`archive.storage.s3`) and by resumable uploads'
stages (:mod:`archive.storage.s3_staging`)."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING

from minio.datatypes import Part

from archive.storage.s3_errors import VENDOR_ERRORS, translate

if TYPE_CHECKING:
    from archive.storage.s3 import S3Store


class ChunkReader(io.RawIOBase):
    """A file-like view of an iterator of byte chunks: :meth:`readinto` fills a buffer (a
    part) straight from the chunks, one copy of each byte."""

    def __init__(self, chunks: Iterable[bytes]):
        self._it = iter(chunks)
        self._left = memoryview(b"")
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        """Fill ``buffer`` as far as the chunks go; the number of bytes (0 at the end)."""
        view = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(view):
            if not self._left:
                try:
                    self._left = memoryview(next(self._it))
                except StopIteration:
                    break
                continue
            take = min(len(self._left), len(view) - filled)
            view[filled:filled + take] = self._left[:take]
            self._left = self._left[take:]
            filled += take
        self.size += filled
        return filled


class PartBuffers:
    """Part-sized buffers kept from one upload for the next, at most ``keep`` of them.

    A fresh 8 MiB ``bytearray`` is memory mapped and zeroed anew by the kernel as it is
    first written: about a second of CPU per GiB uploaded (measured by
    ``bench/bench_ingest.py``). Each upload, and each PATCH of a resumable client that sends
    its file in pieces, has a sender of its own; without this each paid for its buffers
    again. What is kept stays resident: ``keep`` parts per process at most."""

    def __init__(self, size: int, keep: int):
        self.size = size
        self._keep = keep
        self._spare: list[bytearray] = []
        self._lock = threading.Lock()

    def take(self) -> bytearray:
        with self._lock:
            if self._spare:
                return self._spare.pop()
        return bytearray(self.size)

    def give(self, buffers: Iterable[bytearray]) -> None:
        """Keep ``buffers`` (no longer used by their giver) for later uploads, as many as fit."""
        with self._lock:
            for buffer in buffers:
                if len(self._spare) < self._keep and len(buffer) == self.size:
                    self._spare.append(buffer)


class PartSender:
    """The parts of one multipart upload, each uploaded while the caller reads the next, at
    most the store's ``parallel_parts`` at once (by a pool of threads of its own), numbered
    from ``first``.

    The caller fills a part-sized buffer from :meth:`buffer` and hands it to :meth:`send`;
    :meth:`send` waits while ``parallel_parts`` are in flight, and a part's buffer is given
    out again once the part is uploaded. So an upload holds ``parallel_parts + 1`` buffers,
    taken from the store's :class:`PartBuffers` and given back when the block ends, whatever
    its size: no part is copied, and no memory is mapped and zeroed anew for each part.
    :meth:`finish` waits for the rest and returns the parts. Leaving the block otherwise (a
    failure) cancels the parts not started and waits for those in flight; a part's failure
    is raised (as our StorageError) by the next call. Buffers are the sender's again once
    the block ends: the caller must not use them after it."""

    def __init__(self, store: S3Store, key: str, upload_id: str, *, first: int = 1):
        self._upload = (store.bucket, key, upload_id)
        self._client = store.client
        self._parallel = store.parallel_parts
        self._first = self._number = first
        self._in_flight: dict[Future[str], tuple[int, bytearray]] = {}
        self._free: list[bytearray] = []
        self._buffers = store.part_buffers
        self._held: list[bytearray] = []
        self._done: list[Part] = []
        self._pool = ThreadPoolExecutor(max_workers=self._parallel, thread_name_prefix="s3-part")

    def __enter__(self) -> PartSender:
        return self

    def __exit__(self, *_exc: object) -> None:
        for sending in self._in_flight:
            sending.cancel()
        self._pool.shutdown(wait=True)
        self._buffers.give(self._held)
        self._held.clear()

    def buffer(self) -> bytearray:
        """A part-sized buffer to fill: a free one, a new one while the upload has fewer than
        ``parallel_parts + 1``, else the first part's to be uploaded."""
        while not self._free:
            if len(self._held) <= self._parallel or not self._in_flight:
                buffer = self._buffers.take()
                self._held.append(buffer)
                return buffer
            self._settle()
        return self._free.pop()

    def send(self, buffer: bytearray, length: int) -> None:
        """Upload the first ``length`` bytes of ``buffer`` as the next part (once fewer than
        ``parallel_parts`` are in flight). The buffer is the sender's until :meth:`buffer`
        gives it out again; one made by the caller joins the upload's buffers."""
        while len(self._in_flight) >= self._parallel:
            self._settle()
        if not any(held is buffer for held in self._held):
            self._held.append(buffer)
        bucket, key, upload_id = self._upload
        sending = self._pool.submit(
            self._client._upload_part, bucket, key, memoryview(buffer)[:length], None, upload_id, self._number,
        )
        self._in_flight[sending] = (self._number, buffer)
        self._number += 1

    def uploaded(self) -> list[Part]:
        """The parts uploaded so far that follow one another from the first sent, in order:
        those a stage can record while later ones are in flight."""
        self._take([sending for sending in self._in_flight if sending.done()])
        run: list[Part] = []
        for part in sorted(self._done, key=lambda part: part.part_number):
            if part.part_number != self._first + len(run):
                break
            run.append(part)
        return run

    def finish(self) -> list[Part]:
        """Every part sent, in order, once all are uploaded."""
        while self._in_flight:
            self._settle()
        return sorted(self._done, key=lambda part: part.part_number)

    def _settle(self) -> None:
        """Wait for the first of the parts in flight to be uploaded, whichever it is, and take
        every part uploaded by then. Waiting for the oldest let one part that took a second
        hold up the parts behind it while the others were done: a 1 GiB put into SeaweedFS
        ran at 60-67 MiB/s, against 107-124 for minio's own parallel upload on the same
        client; 103-111 since."""
        self._take(wait(self._in_flight, return_when=FIRST_COMPLETED).done)

    def _take(self, finished: Iterable[Future[str]]) -> None:
        for sending in sorted(finished, key=lambda done: self._in_flight[done][0]):
            number, buffer = self._in_flight.pop(sending)
            try:
                etag = sending.result()
            except VENDOR_ERRORS as exc:
                raise translate(exc, f"upload part {number} of {self._upload[1]}") from exc
            self._done.append(Part(number, etag))
            self._free.append(buffer)
