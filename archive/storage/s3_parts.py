"""The parts of a multipart upload to S3, sent in parallel while the next are read: used by
the store's puts of unknown length (:mod:`archive.storage.s3`) and by resumable uploads'
stages (:mod:`archive.storage.s3_staging`)."""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from minio.datatypes import Part

from archive.storage.s3_errors import VENDOR_ERRORS, translate

if TYPE_CHECKING:
    from archive.storage.s3 import S3Store


class PartSender:
    """The parts of one multipart upload, each uploaded while the caller reads the next, at
    most the store's ``parallel_parts`` at once (by a pool of threads of its own), numbered
    from ``first``.

    The caller fills a part-sized buffer from :meth:`buffer` and hands it to :meth:`send`;
    :meth:`send` waits while ``parallel_parts`` are in flight, and a part's buffer is given
    out again once the part is uploaded. So an upload holds ``parallel_parts + 1`` buffers,
    made once, whatever its size: no part is copied, and no memory is mapped and zeroed anew
    for each part (what a fresh 8 MiB ``bytes`` per part costs: about a second of CPU per
    GiB, measured by ``bench/bench_ingest.py``). :meth:`finish` waits for the rest and
    returns the parts. Leaving the block otherwise (a failure) cancels the parts not started
    and waits for those in flight; a part's failure is raised (as our StorageError) by the
    next call."""

    def __init__(self, store: S3Store, key: str, upload_id: str, *, first: int = 1):
        self._upload = (store.bucket, key, upload_id)
        self._client = store.client
        self._parallel = store.parallel_parts
        self._part_size = store.part_size
        self._number = first
        self._in_flight: deque[tuple[int, Future[str], bytearray]] = deque()
        self._free: list[bytearray] = []
        self._made = 0
        self._done: list[Part] = []
        self._pool = ThreadPoolExecutor(max_workers=self._parallel, thread_name_prefix="s3-part")

    def __enter__(self) -> PartSender:
        return self

    def __exit__(self, *_exc: object) -> None:
        for _number, sending, _buffer in self._in_flight:
            sending.cancel()
        self._pool.shutdown(wait=True)

    def buffer(self) -> bytearray:
        """A part-sized buffer to fill: a free one, a new one while the upload has fewer than
        ``parallel_parts + 1``, else the oldest part's once that part is uploaded."""
        while not self._free:
            if self._made <= self._parallel or not self._in_flight:
                self._made += 1
                return bytearray(self._part_size)
            self._settle()
        return self._free.pop()

    def send(self, buffer: bytearray, length: int) -> None:
        """Upload the first ``length`` bytes of ``buffer`` as the next part (once fewer than
        ``parallel_parts`` are in flight). The buffer is the sender's until :meth:`buffer`
        gives it out again; one made by the caller joins the upload's buffers."""
        while len(self._in_flight) >= self._parallel:
            self._settle()
        bucket, key, upload_id = self._upload
        self._in_flight.append((self._number, self._pool.submit(
            self._client._upload_part, bucket, key, memoryview(buffer)[:length], None, upload_id, self._number,
        ), buffer))
        self._number += 1

    def finish(self) -> list[Part]:
        """Every part sent, in order, once all are uploaded."""
        while self._in_flight:
            self._settle()
        return self._done

    def _settle(self) -> None:
        number, sending, buffer = self._in_flight.popleft()
        try:
            etag = sending.result()
        except VENDOR_ERRORS as exc:
            raise translate(exc, f"upload part {number} of {self._upload[1]}") from exc
        self._done.append(Part(number, etag))
        self._free.append(buffer)
