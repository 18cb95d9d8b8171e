"""Streaming a PATCH body into an upload's stage: the body as a byte budget, progress
recorded every :data:`SEGMENT` bytes (as the stage reports it), and bodies with
``Upload-Checksum`` held retractable until their checksum is verified. Knows nothing of
the database: the caller records progress through the ``record`` callback."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from archive.errors import InvalidInput, UploadIncomplete, UploadStalled
from archive.storage import ObjectStore, StageHandle
from archive.storage.protocol import PROGRESS_EVERY
from ingest.tus.errors import ChecksumMismatch
from ingest.tus.hashing import LiveUploads, hashed

SEGMENT = PROGRESS_EVERY
"""Progress of a long PATCH is recorded about this often (bytes), as its stage reports it."""

Record = Callable[[int, int, StageHandle], None]
"""``record(old, new, handle)``: commit durable progress from offset ``old`` to ``new``
(the stage was fsynced before it is called)."""


class _Body:
    """The PATCH body as a byte budget: stops quietly when the client goes away."""

    def __init__(self, chunks: Iterable[bytes], budget: int):
        self._it = iter(chunks)
        self.budget = budget
        self.count = 0
        self.interrupted: type[UploadIncomplete] | None = None
        """How the body ended early (cut short, or fallen silent), if it did."""

    def __iter__(self) -> Iterator[bytes]:
        """The body's bytes, ending quietly (``interrupted`` set) when the client went away;
        raises 413 when the body outgrows the upload's length."""
        try:
            for chunk in self._it:
                if self.count + len(chunk) > self.budget:
                    raise InvalidInput("the body goes past Upload-Length", code="exceeds_upload_length", status=413)
                self.count += len(chunk)
                yield chunk
        except UploadIncomplete as exc:
            self.interrupted = type(exc)


def receive(
    store: ObjectStore, live: LiveUploads, upload_id: str, handle: StageHandle, offset: int, length: int,
    chunks: Iterable[bytes], hasher: Any | None, checksum: tuple[str, bytes] | None, record: Record,
) -> int:
    """Stream one PATCH body into the stage at ``offset``; return the offset reached.

    The running hash is kept in ``live`` at the last recorded offset. Raises
    ChecksumMismatch (the body is discarded) and UploadIncomplete when the body ends
    early (what arrived is recorded unless the body was checked).
    """
    if checksum is not None:
        pos, handle = _append_checked(store, live, upload_id, handle, offset, length, chunks, hasher, checksum)
        record(offset, pos, handle)
        live.keep(upload_id, pos, hasher)
        return pos
    pos = offset

    def progress(reached: int, staged: StageHandle) -> None:
        nonlocal pos
        record(pos, reached, staged)
        pos = reached

    try:
        # One hashing pass and one staged write over the whole body: the store reports
        # durable progress on the way without stopping the bytes (a write per segment
        # waited at each for the stage's slowest part). The running hash is kept for the
        # next PATCH only once the pass has ended, at the last recorded offset.
        with hashed(chunks, [hasher]) as stream:
            body = _Body(stream, length - offset)
            handle = store.staging.write(handle, offset=offset, chunks=body, progress=progress, every=SEGMENT)
            if body.count + offset != pos:
                record(pos, body.count + offset, handle)
                pos = body.count + offset
        live.keep(upload_id, pos, hasher)
    except BaseException:
        # The hasher may have seen bytes that were never recorded.
        live.keep(upload_id, pos, None)
        raise
    if body.interrupted and pos < length:
        # What arrived is recorded (tus resumes from it), but the client must hear
        # that its body was cut short rather than a 204 that looks like success.
        how = "fell silent" if issubclass(body.interrupted, UploadStalled) else "ended early"
        raise body.interrupted(f"the body {how}; the upload resumes at offset {pos}")
    return pos


def _append_checked(
    store: ObjectStore, live: LiveUploads, upload_id: str, handle: StageHandle, offset: int, length: int,
    chunks: Iterable[bytes], hasher: Any | None, checksum: tuple[str, bytes],
) -> tuple[int, StageHandle]:
    """A PATCH with Upload-Checksum: held until verified, discarded whole otherwise."""
    algorithm, expected = checksum
    before = hasher.copy() if hasher is not None else None
    check = hashlib.new(algorithm)
    body = _Body(chunks, length - offset)
    try:
        with hashed(body, [hasher, check]) as stream:
            handle = store.staging.write(handle, offset=offset, chunks=stream, hold=True)
    except BaseException:
        live.keep(upload_id, offset, before)  # the next write at ``offset`` drops what was staged
        raise
    if body.interrupted or check.digest() != expected:
        handle = store.staging.truncate(handle, size=offset)
        live.keep(upload_id, offset, before)
        if body.interrupted:
            raise body.interrupted("the body was cut off before its checksum could be verified; it was discarded")
        raise ChecksumMismatch(f"the body's {algorithm} does not match Upload-Checksum; it was discarded")
    return offset + body.count, store.staging.flush(handle)

