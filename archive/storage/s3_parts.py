"""The parts of a multipart upload to S3, sent in parallel while the next are read: used by
the store's puts of unknown length (:mod:`archive.storage.s3`) and by resumable uploads'
stages (:mod:`archive.storage.s3_staging`)."""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from minio.datatypes import Part

if TYPE_CHECKING:
    from archive.storage.s3 import S3Store


class PartSender:
    """The parts of one multipart upload, each uploaded while the caller reads the next, at
    most the store's ``parallel_parts`` at once (by a pool of threads of its own), numbered
    from ``first``. :meth:`send` waits while that many are in flight; :meth:`finish` waits for
    the rest and returns them all. Leaving the block otherwise (a failure) cancels the parts
    not started and waits for those in flight; a part's failure is raised by the next call.
    Memory: the parts in flight, whatever the object's size."""

    def __init__(self, store: S3Store, key: str, upload_id: str, *, first: int = 1):
        self._upload = (store.bucket, key, upload_id)
        self._client = store.client
        self._parallel = store.parallel_parts
        self._number = first
        self._in_flight: deque[tuple[int, Future[str]]] = deque()
        self._done: list[Part] = []
        self._pool = ThreadPoolExecutor(max_workers=self._parallel, thread_name_prefix="s3-part")

    def __enter__(self) -> PartSender:
        return self

    def __exit__(self, *_exc: object) -> None:
        for _number, sending in self._in_flight:
            sending.cancel()
        self._pool.shutdown(wait=True)

    def send(self, data: bytes) -> None:
        """Upload ``data`` as the next part (once fewer than ``parallel_parts`` are in flight)."""
        while len(self._in_flight) >= self._parallel:
            self._settle()
        bucket, key, upload_id = self._upload
        self._in_flight.append((self._number, self._pool.submit(
            self._client._upload_part, bucket, key, data, None, upload_id, self._number)))
        self._number += 1

    def finish(self) -> list[Part]:
        """Every part sent, in order, once all are uploaded."""
        while self._in_flight:
            self._settle()
        return self._done

    def _settle(self) -> None:
        number, sending = self._in_flight.popleft()
        self._done.append(Part(number, sending.result()))
