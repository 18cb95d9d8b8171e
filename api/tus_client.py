"""The client side of ``evidence upload``: tus uploads with tuspy, resumable across runs.

Per file: SHA-256 first (progress bar), then a tus upload in bounded chunks (progress
bar), each chunk carrying ``Upload-Checksum: sha256``. The first pass also hashes each
chunk (the whole file and the chunk in two threads, so it takes no longer), and the
upload sends those digests instead of hashing every byte a second time; a chunk the
pass did not see (a resumed upload, starting at the server's offset) is hashed as it
is sent. The upload URL and the hash are
kept in a small JSON state file keyed by absolute path, size and mtime, so running the
same command again after an interruption resumes where the server says it stopped; a
changed file gets a new upload. tuspy reads one chunk at a time into memory, so memory
is bounded by ``chunk_size``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import requests
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn
from tusclient.client import TusClient
from tusclient.exceptions import TusCommunicationError, TusUploadFailed
from tusclient.uploader import Uploader


class UploadError(Exception):
    """An upload the server refused or that cannot continue; the message says why."""


class Interrupted(Exception):
    """The upload was stopped before the end (Ctrl-C); running again resumes it."""


class _Digest:
    def __init__(self, digest: bytes):
        self._digest = digest

    def digest(self) -> bytes:
        return self._digest


class _Sha256Uploader(Uploader):
    """tuspy's uploader with sha256 per-chunk checksums (tuspy defaults to sha1), taken
    from ``known`` (offset -> (length, digest), from the hashing pass) when it has the
    chunk being sent. tuspy asks for the checksum of a chunk it has just read at
    ``self.offset``; a chunk not in ``known`` is hashed then."""

    CHECKSUM_ALGORITHM_PAIR = ("sha256", hashlib.sha256)

    def __init__(self, *args, known: dict[int, tuple[int, bytes]] | None = None, **kwargs):  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self._known = known or {}

    @property
    def checksum_algorithm(self) -> Callable[[bytes], _Digest]:
        def sha256(chunk: bytes) -> _Digest:
            length, digest = self._known.get(self.offset, (-1, b""))
            return _Digest(digest if length == len(chunk) else hashlib.sha256(chunk).digest())

        return sha256


def state_path() -> Path:
    """Where upload URLs are remembered between runs."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "evidence" / "uploads.json"


class UploadState:
    """The JSON state file: ``{"<path>|<size>|<mtime_ns>": {"url", "sha256"}}``."""

    def __init__(self, path: Path):
        self.path = path

    def load(self) -> dict[str, dict[str, str]]:
        try:
            return json.loads(self.path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def update(self, key: str, value: dict[str, str] | None) -> None:
        data = self.load()
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Write-then-rename: an interrupted run never leaves a half-written state file.
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".uploads.")
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1)
        os.replace(tmp, self.path)


@dataclass(frozen=True)
class UploadRequest:
    """One file to upload and what to say about it."""

    case_id: str
    path: Path
    kind: str
    device_id: str | None = None
    recorded_start: str | None = None


def _progress(console: Console) -> Progress:
    return Progress(
        "[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        TimeRemainingColumn(), console=console, transient=False,
    )


def _hash_file(path: Path, size: int, chunk_size: int, console: Console) -> tuple[str, dict[int, tuple[int, bytes]]]:
    """The file's SHA-256, and each ``chunk_size`` chunk's: offset -> (length, digest).

    One read of the file; the whole-file hash runs in a second thread (hashlib lets go
    of the GIL on large buffers) while this one hashes the chunks.
    """
    whole = hashlib.sha256()
    chunks: dict[int, tuple[int, bytes]] = {}
    piece, start, offset = hashlib.sha256(), 0, 0
    step = min(chunk_size, 4 * 1024 * 1024)
    with _progress(console) as progress, open(path, "rb") as f, ThreadPoolExecutor(1) as other:
        task = progress.add_task(f"hashing {path.name}", total=size)
        while block := f.read(min(step, chunk_size - (offset - start))):
            pending = other.submit(whole.update, block)
            piece.update(block)
            offset += len(block)
            if offset - start == chunk_size:
                chunks[start] = (chunk_size, piece.digest())
                piece, start = hashlib.sha256(), offset
            pending.result()
            progress.advance(task, len(block))
    if offset > start:
        chunks[start] = (offset - start, piece.digest())
    return whole.hexdigest(), chunks


def _explain(exc: Exception) -> str:
    content = getattr(exc, "response_content", None)
    try:
        error = json.loads(content)["error"]
        return f"{error['message']} ({error['code']})"
    except Exception:  # noqa: BLE001 - not our JSON error: say what tuspy said
        return str(exc) or type(exc).__name__


def upload_file(
    request: UploadRequest,
    *,
    base_url: str,
    token: str,
    chunk_size: int,
    console: Console,
    state: UploadState,
    say: Callable[[str], None] | None = None,
) -> str:
    """Upload (or resume) one file; return the evidence item id."""
    say = say or console.print
    st = request.path.stat()
    key = f"{request.path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    saved = state.load().get(key) or {}
    known: dict[int, tuple[int, bytes]] = {}
    sha256 = saved.get("sha256")
    if not sha256:
        sha256, known = _hash_file(request.path, st.st_size, chunk_size, console)
    headers = {"Authorization": f"Bearer {token}"}
    client = TusClient(base_url.rstrip("/") + "/api/v1/uploads", headers=headers)
    metadata = {"case_id": request.case_id, "kind": request.kind, "filename": request.path.name, "sha256": sha256}
    if request.device_id:
        metadata["device_id"] = request.device_id
    if request.recorded_start:
        metadata["recorded_start"] = request.recorded_start
    with open(request.path, "rb") as stream:
        uploader = None
        if saved.get("url"):
            try:
                uploader = _Sha256Uploader(
                    file_stream=stream, client=client, chunk_size=chunk_size, metadata=metadata,
                    url=saved["url"], upload_checksum=True, retries=3, retry_delay=1, known=known,
                )
                say(f"{request.path.name}: resuming at {uploader.offset} of {st.st_size} bytes")
            except TusCommunicationError:
                say(f"{request.path.name}: the earlier upload is gone (expired or failed); starting again")
                uploader = None
        try:
            if uploader is None:
                uploader = _Sha256Uploader(
                    file_stream=stream, client=client, chunk_size=chunk_size, metadata=metadata,
                    upload_checksum=True, retries=3, retry_delay=1, known=known,
                )
                uploader.set_url(uploader.create_url())
                uploader.offset = 0
                state.update(key, {"url": uploader.url, "sha256": sha256})
            uploader.stop_at = st.st_size
            with _progress(console) as progress:
                task = progress.add_task(f"uploading {request.path.name}", total=st.st_size, completed=uploader.offset)
                try:
                    while uploader.offset < st.st_size:
                        uploader.upload_chunk()
                        progress.update(task, completed=uploader.offset)
                except KeyboardInterrupt:
                    raise Interrupted(f"interrupted at {uploader.offset} bytes") from None
        except (TusCommunicationError, TusUploadFailed) as exc:
            raise UploadError(f"{request.path.name}: {_explain(exc)}") from exc
    try:
        response = requests.get(uploader.url, headers=headers, timeout=60)
        info = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise UploadError(f"{request.path.name}: cannot read the upload's state: {exc}") from exc
    if response.status_code != 200 or info.get("status") != "complete" or not info.get("item_id"):
        raise UploadError(f"{request.path.name}: upload did not complete: {info}")
    state.update(key, None)
    return str(info["item_id"])
