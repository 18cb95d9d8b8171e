"""Writing a BagIt bag (RFC 8493) as one ZIP stream, hashing every member as it goes.

The ZIP is written to a *non-seekable* sink: each member's bytes go out once, in order,
and its CRC and sizes follow in a data descriptor. Nothing is ever held whole in memory
and nothing is written twice, so a 20 GB export costs one read of each original and one
write of the archive. Originals are stored (``ZIP_STORED``): video is already compressed
and recompressing it would only burn time. Tag files (small text) are deflated.

SHA-512 of each payload runs on a helper thread: :mod:`hashlib` releases the GIL on
large buffers, so it overlaps with SHA-256, CRC-32 and the write on the main thread. An
original whose SHA-512 was recorded after receipt is not hashed with it again: its
SHA-256, recomputed as it streams, must equal the recorded one, and so the bytes are the
very bytes the recorded SHA-512 was taken from. SHA-512 runs at about half SHA-256's
speed here, so it was the largest single cost of an export.
"""

from __future__ import annotations

import hashlib
import queue
import threading
import unicodedata
import zipfile
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from archive.errors import ArchiveError, StorageError

SINK_CHUNK = 1024 * 1024
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul"} | {f"com{i}" for i in range(1, 10)} | {f"lpt{i}" for i in range(1, 10)}


def safe_member_name(name: str, *, fallback: str = "file", limit: int = 160) -> str:
    """A file name that is one path component, portable, and needs no escaping in a bag.

    Letters and digits of any script are kept (NFC); ``. _ - ( ) +`` are kept; everything
    else (separators, ``%``, spaces, control characters) becomes ``_``. It can never be
    ``.``/``..``, start with a dot or dash, or be a reserved Windows device name.
    """
    name = unicodedata.normalize("NFC", name.replace("\\", "/").rsplit("/", 1)[-1])
    kept = "".join(ch if (ch.isalnum() or ch in "._-()+") else "_" for ch in name)
    kept = kept.lstrip(".-") or fallback
    if kept.split(".", 1)[0].lower() in _WINDOWS_RESERVED:
        kept = "_" + kept
    encoded = kept.encode()
    if len(encoded) > limit:
        stem, dot, ext = kept.rpartition(".")
        ext = ext if dot and len(ext.encode()) <= 16 else ""
        room = limit - len(ext.encode()) - (1 if ext else 0)
        stem = (stem if dot else kept).encode()[:room].decode("utf-8", "ignore")
        kept = f"{stem}.{ext}" if ext else stem
    return kept


@dataclass(frozen=True)
class MemberDigest:
    """A member written into the bag."""

    path: str
    """Path relative to the bag's top directory, with ``/`` separators."""
    size: int
    sha256: str
    sha512: str


class MemberChanged(ArchiveError):
    """A member's bytes are not the ones on record (fixity failure); the bag is void."""

    code = "fixity_failed"
    status = 409


class SinkAborted(ArchiveError):
    """The consumer of the ZIP stream failed; the message says why."""

    code = "export_sink_failed"
    status = 503


class StorePipe:
    """A write-only, non-seekable file object whose bytes are consumed by another thread.

    ``consume(chunks)`` runs on a thread of its own (typically ``store.put``) and receives
    the bytes in ``SINK_CHUNK`` pieces through a bounded queue, so memory stays flat. The
    SHA-256 of everything written is computed on the consumer's side.
    """

    def __init__(self, consume: Callable[[Iterable[bytes]], object], *, depth: int = 8):
        self._queue: queue.Queue[bytes | None | BaseException] = queue.Queue(maxsize=depth)
        self._buffer = bytearray()
        self._consume = consume
        self._error: BaseException | None = None
        self._result: object = None
        self.size = 0
        self._sha256 = hashlib.sha256()
        self._thread = threading.Thread(target=self._run, name="export-sink", daemon=True)
        self._thread.start()

    def _chunks(self) -> Iterator[bytes]:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            self._sha256.update(item)
            yield item

    def _run(self) -> None:
        try:
            self._result = self._consume(self._chunks())
        except BaseException as exc:  # noqa: BLE001 - handed to the writer thread
            self._error = exc
            # Drain so a writer blocked on a full queue wakes up and sees the error.
            while True:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break

    def _send(self, item: bytes | None | BaseException) -> None:
        while True:
            if self._error is not None:
                if isinstance(self._error, ArchiveError):
                    raise self._error
                raise SinkAborted(f"writing the export failed: {self._error}") from self._error
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                if not self._thread.is_alive():
                    raise SinkAborted("the export's storage writer stopped") from self._error

    def write(self, data: bytes) -> int:  # noqa: D102 - file protocol
        n = len(data)
        self.size += n
        if not self._buffer and n >= SINK_CHUNK // 2 and isinstance(data, bytes):
            # Payload chunks pass straight through (bytes are immutable): no copy.
            self._send(data)
            return n
        self._buffer += data
        if len(self._buffer) >= SINK_CHUNK:
            self._send(bytes(self._buffer))
            self._buffer.clear()
        return n

    def flush(self) -> None:  # noqa: D102 - file protocol; data leaves in SINK_CHUNK pieces
        return None

    def close_and_wait(self) -> tuple[object, str]:
        """Send the rest, wait for the consumer; return its result and the stream's SHA-256."""
        if self._buffer:
            self._send(bytes(self._buffer))
            self._buffer.clear()
        self._send(None)
        self._thread.join()
        if self._error is not None:
            if isinstance(self._error, ArchiveError):
                raise self._error
            raise SinkAborted(f"writing the export failed: {self._error}") from self._error
        return self._result, self._sha256.hexdigest()

    def abort(self, reason: str) -> None:
        """Make the consumer fail (so a half-written object is discarded) and wait for it."""
        if self._thread.is_alive():
            try:
                self._queue.put(StorageError(f"export aborted: {reason}"), timeout=5)
            except queue.Full:
                pass
            self._thread.join(30)


class BagZipWriter:
    """Writes the members of one bag under ``root/`` into a ZIP stream.

    Every member's SHA-256 and SHA-512 are kept (``payload`` for ``data/``, ``tags`` for
    the rest) so the manifests can be written last.
    """

    def __init__(self, fileobj, *, root: str, when: datetime):  # type: ignore[no-untyped-def]
        self.root = root.strip("/")
        self.when = when
        self.zip = zipfile.ZipFile(fileobj, mode="w", allowZip64=True)
        self.payload: list[MemberDigest] = []
        self.tags: list[MemberDigest] = []
        self._names: set[str] = set()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="sha512")

    def _info(self, path: str, *, size: int | None, compress: bool) -> zipfile.ZipInfo:
        if path in self._names or path.startswith("/") or ".." in path.split("/"):
            raise ArchiveError(f"bag member {path!r} is not a fresh relative path", code="export_layout")
        self._names.add(path)
        info = zipfile.ZipInfo(f"{self.root}/{path}", date_time=self.when.timetuple()[:6])
        info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        info.external_attr = 0o644 << 16
        if size is not None:
            info.file_size = size
        return info

    def _record(self, digest: MemberDigest) -> MemberDigest:
        (self.payload if digest.path.startswith("data/") else self.tags).append(digest)
        return digest

    def add_stream(
        self, path: str, chunks: Iterable[bytes], *, size: int, compress: bool = False,
        on_progress: Callable[[int], None] | None = None, sha256: str | None = None, sha512: str | None = None,
    ) -> MemberDigest:
        """Stream one member of ``size`` bytes (the size decides ZIP64 up front).

        ``sha256``, when given, is the hash on record for these bytes: a streamed SHA-256
        that differs raises MemberChanged (after the member was written; the caller
        aborts the whole ZIP). ``sha512`` is the SHA-512 on record for the same bytes; it
        is used instead of hashing again, and only with ``sha256``, which vouches for it.
        """
        if sha512 is not None and sha256 is None:
            raise ValueError("a recorded sha512 is only taken together with the recorded sha256 that vouches for it")
        info = self._info(path, size=size, compress=compress)
        hasher256 = hashlib.sha256()
        hasher512 = hashlib.sha512() if sha512 is None else None
        written = 0
        pending = None
        with self.zip.open(info, mode="w", force_zip64=size >= zipfile.ZIP64_LIMIT * 0.9) as out:
            for chunk in chunks:
                if hasher512 is not None:
                    if pending is not None:
                        pending.result()
                    pending = self._pool.submit(hasher512.update, chunk)
                hasher256.update(chunk)
                out.write(chunk)
                written += len(chunk)
                if on_progress is not None:
                    on_progress(len(chunk))
            if pending is not None:
                pending.result()
        if written != size:
            raise ArchiveError(
                f"bag member {path}: read {written} bytes where {size} were expected", code="export_source_changed",
            )
        if sha256 is not None and hasher256.hexdigest() != sha256:
            raise MemberChanged(
                f"bag member {path}: sha256 {hasher256.hexdigest()} differs from the recorded {sha256}"
            )
        digest512 = sha512 if hasher512 is None else hasher512.hexdigest()
        return self._record(MemberDigest(path, written, hasher256.hexdigest(), digest512))

    def add_bytes(self, path: str, data: bytes, *, compress: bool = True) -> MemberDigest:
        """Write a small member held in memory (tag files, seals, the certificate)."""
        info = self._info(path, size=len(data), compress=compress)
        self.zip.writestr(info, data)
        return self._record(
            MemberDigest(path, len(data), hashlib.sha256(data).hexdigest(), hashlib.sha512(data).hexdigest())
        )

    def close(self) -> None:
        """Write the central directory."""
        self._pool.shutdown(wait=True)
        self.zip.close()


def manifest_text(digests: Iterable[MemberDigest], algorithm: str) -> bytes:
    """A BagIt manifest in the ``sha256sum`` format: ``<hex>  <path>`` per line, sorted."""
    lines = sorted(f"{getattr(d, algorithm)}  {d.path}\n" for d in digests)
    return "".join(lines).encode()
