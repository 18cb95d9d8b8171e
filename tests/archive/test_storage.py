"""One interface suite that every object-store backend must pass."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

import pytest
import urllib3

from archive.errors import (
    ObjectExists, ObjectLocked, ObjectNotFound, StorageError, StoreFull, StoreUnavailable, UploadIncomplete,
)
from archive.storage import ObjectStore
from archive.storage.local import LocalStore
from archive.storage.s3 import S3Store


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def store(request, tmp_path) -> ObjectStore:
    if request.param == "local":
        return LocalStore(tmp_path / "objects")
    s3 = request.getfixturevalue("s3_server")
    return S3Store(
        endpoint=s3.endpoint, access_key=s3.access_key, secret_key=s3.secret_key,
        bucket="iface-" + uuid.uuid4().hex[:8], secure=False, part_size=5 * 1024 * 1024,
        spool_dir=tmp_path / "spool",
    )


def _chunks(data: bytes, size: int = 1 << 20):
    for i in range(0, len(data), size):
        yield data[i : i + size]


def _key(vault: str = "vault-a") -> str:
    return f"{vault}/originals/{uuid.uuid4()}"


def test_put_read_stat_roundtrip_multipart(store):
    data = os.urandom(11 * 1024 * 1024 + 123)  # more than two 5 MiB parts
    store.ensure_vault("vault-a")
    key = _key()
    put = store.put(key, _chunks(data), content_type="video/mp4")
    assert put.size == len(data)
    assert hashlib.sha256(b"".join(store.read(key))).digest() == hashlib.sha256(data).digest()
    assert store.stat(key).size == len(data)


@pytest.mark.slow  # several 5 MiB parts through the S3 server
def test_s3_parts_go_up_in_parallel_and_a_broken_stream_leaves_nothing(s3_server, tmp_path):
    """Parts are sent while the next are read (more than one in flight, never more than the
    setting); a stream that breaks after several parts leaves no object, no unfinished
    multipart upload and no thread behind; the store then takes the same key whole."""
    import threading

    store = S3Store(
        endpoint=s3_server.endpoint, access_key=s3_server.access_key, secret_key=s3_server.secret_key,
        bucket="parts-" + uuid.uuid4().hex[:8], secure=False, part_size=5 * 1024 * 1024, parallel_parts=3,
        spool_dir=tmp_path / "spool",
    )
    store.ensure_vault("vault-a")
    sending, most, lock = 0, 0, threading.Lock()
    real = store.client._upload_part

    def counted(*args):  # type: ignore[no-untyped-def]
        nonlocal sending, most
        with lock:
            sending += 1
            most = max(most, sending)
        try:
            return real(*args)
        finally:
            with lock:
                sending -= 1

    store.client._upload_part = counted  # the real upload, counted
    data = os.urandom(31 * 1024 * 1024 + 7)  # seven parts
    key = _key()
    assert store.put(key, _chunks(data), content_type="video/mp4").size == len(data)
    assert hashlib.sha256(b"".join(store.read(key))).digest() == hashlib.sha256(data).digest()
    assert 2 <= most <= 3, most

    def broken():  # type: ignore[no-untyped-def]
        yield from _chunks(data[: 17 * 1024 * 1024])
        raise UploadIncomplete("the client disconnected before the whole body arrived", code="upload_incomplete")

    before = set(threading.enumerate())
    cut = _key()
    with pytest.raises(UploadIncomplete):
        store.put(cut, broken(), content_type="video/mp4")
    with pytest.raises(ObjectNotFound):
        store.stat(cut)
    unfinished = store.client._list_multipart_uploads(store.bucket, prefix=cut).uploads
    assert unfinished == [], unfinished
    assert set(threading.enumerate()) - before == set()  # no upload thread left waiting
    assert store.put(cut, _chunks(data), content_type="video/mp4").size == len(data)


def test_s3_stage_parts_go_up_while_the_body_arrives_and_a_failed_part_keeps_the_stage(s3_server, tmp_path):
    """A resumable upload's write sends each full part while the next bytes arrive (more than
    one in flight, never more than the setting). A part that fails fails the write with our
    error; the stage stays as recorded before it, and writing again from there completes it."""
    import threading

    store = S3Store(
        endpoint=s3_server.endpoint, access_key=s3_server.access_key, secret_key=s3_server.secret_key,
        bucket="stage-" + uuid.uuid4().hex[:8], secure=False, part_size=5 * 1024 * 1024, parallel_parts=3,
        spool_dir=tmp_path / "spool",
    )
    store.ensure_vault("vault-a")
    sending, most, calls, lock = 0, 0, 0, threading.Lock()
    real = store.client._upload_part
    fail_at: int | None = None
    arrived_while_sending = []

    def counted(*args):  # type: ignore[no-untyped-def]
        nonlocal sending, most, calls
        with lock:
            sending += 1
            calls += 1
            most = max(most, sending)
            failing = calls == fail_at
        try:
            if failing:
                raise urllib3.exceptions.ProtocolError("connection reset by peer")
            return real(*args)
        finally:
            with lock:
                sending -= 1

    def body(data: bytes):  # type: ignore[no-untyped-def]
        for chunk in _chunks(data):
            if calls:
                arrived_while_sending.append(len(chunk))
            yield chunk

    store.client._upload_part = counted  # the real upload, counted (and failed once below)
    data = os.urandom(31 * 1024 * 1024 + 7)
    key = _key()
    first = _roundtrip(store.staging.begin(key, content_type="video/mp4"))
    recorded = _roundtrip(store.staging.write(first, offset=0, chunks=body(data[: 3 * 1024 * 1024])))
    fail_at = calls + 3
    with pytest.raises(StorageError):
        store.staging.write(recorded, offset=3 * 1024 * 1024, chunks=body(data[3 * 1024 * 1024 :]))
    fail_at = None
    handle = _roundtrip(store.staging.write(recorded, offset=3 * 1024 * 1024, chunks=body(data[3 * 1024 * 1024 :])))
    assert 2 <= most <= 3, most
    assert sum(arrived_while_sending) > 10 * 1024 * 1024  # the body went on arriving while parts went up
    assert store.staging.commit(handle, size=len(data)).size == len(data)
    assert hashlib.sha256(b"".join(store.read(key))).digest() == hashlib.sha256(data).digest()


def test_s3_stage_sends_parts_from_memory_and_spools_only_the_rest(s3_server, tmp_path):
    """A resumable upload's bytes go to S3 from memory: the local spool never holds more than
    a part (it held every byte of each write, and the disk wrote each GiB once more), and the
    part buffers of one write are those of the next (no fresh buffers per PATCH segment)."""
    part = 5 * 1024 * 1024
    store = S3Store(
        endpoint=s3_server.endpoint, access_key=s3_server.access_key, secret_key=s3_server.secret_key,
        bucket="spool-" + uuid.uuid4().hex[:8], secure=False, part_size=part, parallel_parts=2,
        spool_dir=tmp_path / "spool",
    )
    store.ensure_vault("vault-a")
    real = store.client._upload_part
    buffers_used: dict[int, bytearray] = {}  # kept alive, so that no id is reused
    spooled_most = 0

    def watched(bucket, key, data, headers, upload_id, number):  # type: ignore[no-untyped-def]
        nonlocal spooled_most
        buffers_used[id(data.obj)] = data.obj
        spooled_most = max(spooled_most, sum(f.stat().st_size for f in (tmp_path / "spool").rglob("*.spool")))
        return real(bucket, key, data, headers, upload_id, number)

    store.client._upload_part = watched
    data = os.urandom(4 * part + 3 * part // 2 + 11)
    key = _key()
    handle = _roundtrip(store.staging.begin(key, content_type="video/mp4"))
    offset = 0
    for size in (part // 3, 2 * part, len(data)):  # the first write leaves a third of a part spooled
        piece = data[offset : offset + size]
        handle = _roundtrip(store.staging.write(handle, offset=offset, chunks=_chunks(piece, 100_000)))
        offset += len(piece)
        spooled = sum(f.stat().st_size for f in (tmp_path / "spool").rglob("*.spool"))
        assert spooled < 2 * part, spooled  # the old spool (until the next write) and the new one
    assert offset == len(data)
    assert spooled_most < 2 * part, spooled_most
    assert len(buffers_used) == 2 + 1  # parallel_parts in flight and one filling, for the whole upload
    assert store.staging.commit(handle, size=len(data)).size == len(data)
    assert hashlib.sha256(b"".join(store.read(key))).digest() == hashlib.sha256(data).digest()
    assert not list((tmp_path / "spool").rglob("*.spool"))


def test_range_reads(store):
    data = os.urandom(100_000)
    store.ensure_vault("vault-a")
    key = _key()
    store.put(key, [data], content_type="application/octet-stream")
    assert b"".join(store.read(key, start=10, end=19)) == data[10:20]
    assert b"".join(store.read(key, start=99_990)) == data[99_990:]


def test_never_overwrites(store):
    store.ensure_vault("vault-a")
    key = _key()
    store.put(key, [b"first"], content_type="text/plain")
    with pytest.raises(ObjectExists):
        store.put(key, [b"second"], content_type="text/plain")
    assert b"".join(store.read(key)) == b"first"


def test_locked_object_cannot_be_discarded(store):
    store.ensure_vault("vault-a")
    key = _key()
    put = store.put(key, [b"evidence"], content_type="text/plain")
    locked = store.lock(key, version_id=put.version_id, until=datetime.now(timezone.utc) + timedelta(days=1))
    assert locked.locked
    with pytest.raises(ObjectLocked):
        store.discard(key, version_id=put.version_id)
    assert b"".join(store.read(key)) == b"evidence"


def test_unlocked_object_can_be_discarded(store):
    store.ensure_vault("vault-a")
    key = _key()
    put = store.put(key, [b"rejected"], content_type="text/plain")
    store.discard(key, version_id=put.version_id)
    with pytest.raises(ObjectNotFound):
        store.stat(key)


def test_missing_object(store):
    store.ensure_vault("vault-a")
    with pytest.raises(ObjectNotFound):
        store.stat(_key())
    with pytest.raises(ObjectNotFound):
        b"".join(store.read(_key()))


def test_list_is_per_vault(store):
    store.ensure_vault("vault-a")
    store.ensure_vault("vault-b")
    a, b = _key("vault-a"), _key("vault-b")
    store.put(a, [b"a"], content_type="text/plain")
    store.put(b, [b"b"], content_type="text/plain")
    keys = {o.key for o in store.list("vault-a/")}
    assert a in keys and b not in keys


def _s3_store(s3_server, prefix: str) -> S3Store:
    """An S3 store on a bucket of its own."""
    return S3Store(
        endpoint=s3_server.endpoint, access_key=s3_server.access_key, secret_key=s3_server.secret_key,
        bucket=prefix + uuid.uuid4().hex[:8], secure=False,
    )


def test_legal_hold_covers_the_vault_and_later_objects(store):
    """A held vault gives up nothing, not even an object never locked; lifting restores discard."""
    store.ensure_vault("vault-h")
    store.ensure_vault("vault-free")
    until = datetime.now(timezone.utc) + timedelta(days=1)
    first = _key("vault-h")
    put = store.put(first, [b"before"], content_type="text/plain")
    store.lock(first, version_id=put.version_id, until=until)
    assert store.legal_hold(first, version_id=put.version_id) is False
    assert store.set_legal_hold("vault-h", on=True) == 1
    assert store.set_legal_hold("vault-h", on=True) == 1  # idempotent
    assert store.legal_hold(first, version_id=put.version_id) is True
    later = _key("vault-h")
    later_put = store.put(later, [b"after"], content_type="text/plain")
    store.lock(later, version_id=later_put.version_id, until=until)
    assert store.legal_hold(later, version_id=later_put.version_id) is True
    unlocked = _key("vault-h")
    unlocked_put = store.put(unlocked, [b"never locked"], content_type="text/plain")
    # Locally the marker holds all the vault; S3 holds each version it locked or found.
    assert store.legal_hold(unlocked, version_id=unlocked_put.version_id) is store.description.startswith("local")
    with pytest.raises(ObjectLocked, match="legal hold"):
        store.discard(unlocked, version_id=unlocked_put.version_id)
    # Another vault is not held, and the marker is no object of the vault.
    free = _key("vault-free")
    free_put = store.put(free, [b"free"], content_type="text/plain")
    assert store.legal_hold(free, version_id=free_put.version_id) is False
    assert {o.key for o in store.list("vault-h/")} == {first, later, unlocked}

    assert store.set_legal_hold("vault-h", on=False) == 3
    assert store.legal_hold(first, version_id=put.version_id) is False
    assert store.legal_hold(later, version_id=later_put.version_id) is False
    store.discard(unlocked, version_id=unlocked_put.version_id)
    with pytest.raises(ObjectLocked):  # the retention still holds the originals
        store.discard(first, version_id=put.version_id)
    assert b"".join(store.read(first)) == b"before"
    # A vault can be held again (a new hold after the first was lifted).
    assert store.set_legal_hold("vault-h", on=True) == 2
    assert store.legal_hold(later, version_id=later_put.version_id) is True
    store.set_legal_hold("vault-h", on=False)
    assert store.legal_hold(later, version_id=later_put.version_id) is False


def test_s3_legal_hold_is_an_object_legal_hold(s3_server):
    """Read back from the S3 server itself: the version carries a legal hold (ON) and the
    server refuses its deletion, even without any retention; after lifting it is OFF."""
    from minio import Minio
    from minio.error import S3Error

    store = _s3_store(s3_server, "hold-")
    store.ensure_vault("v")
    key = _key("v")
    put = store.put(key, [b"original"], content_type="text/plain")
    store.set_legal_hold("v", on=True)
    server = Minio(s3_server.endpoint, s3_server.access_key, s3_server.secret_key, secure=False)
    assert server.is_object_legal_hold_enabled(store.bucket, key, version_id=put.version_id) is True
    with pytest.raises(S3Error) as refused:
        server.remove_object(store.bucket, key, version_id=put.version_id)
    assert refused.value.code == "AccessDenied"
    store.set_legal_hold("v", on=False)
    assert server.is_object_legal_hold_enabled(store.bucket, key, version_id=put.version_id) is False
    assert b"".join(store.read(key, version_id=put.version_id)) == b"original"


def test_s3_compliance_retention_refuses_delete(s3_server):
    """Not even the owner's credentials can delete a version under COMPLIANCE retention."""
    store = _s3_store(s3_server, "lock-")
    store.ensure_vault("v")
    key = _key("v")
    put = store.put(key, [b"original"], content_type="text/plain")
    store.lock(key, version_id=put.version_id, until=datetime.now(timezone.utc) + timedelta(days=30))
    retention = store.client.get_object_retention(store.bucket, key, version_id=put.version_id)
    assert retention.mode == "COMPLIANCE"
    from minio.error import S3Error

    with pytest.raises(S3Error):
        store.client.remove_object(store.bucket, key, version_id=put.version_id)
    assert b"".join(store.read(key, version_id=put.version_id)) == b"original"


@contextmanager
def _s3_refusing_writes(status: int, code: str) -> Iterator[str]:
    """An S3 endpoint on 127.0.0.1 whose bucket exists, with object lock, and holds no object,
    and which answers every write (PUT, POST) with HTTP ``status`` and an S3 error document of
    ``code``, as a server in that state does; yields its address."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    lock = (b"<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled>"
            b"</ObjectLockConfiguration>")
    refusal = f"<Error><Code>{code}</Code><Message>as the server says</Message></Error>".encode()

    class Answer(BaseHTTPRequestHandler):
        def _send(self, status: int, body: bytes = b"") -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_HEAD(self) -> None:  # the bucket is there, no object is
            self._send(200 if self.path.strip("/").count("/") == 0 else 404)

        def do_GET(self) -> None:
            query = self.path.partition("?")[2]
            self._send(200, b"<LocationConstraint>us-east-1</LocationConstraint>" if "location" in query else lock)

        def do_PUT(self) -> None:
            self._send(status, refusal)

        do_POST = do_PUT

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_an_s3_server_out_of_space_is_store_full_and_a_failing_one_is_not():
    """An S3 server whose disks are full (MinIO: 507 ``XMinioStorageFull``) made an upload 503
    ``storage_error``, "S3 refused", a failure for good that background work never retried.
    Now it is :class:`StoreFull` (503 ``store_full``, Retry-After, retried), as the local store
    says. A server answering ``InternalError`` to every attempt (SeaweedFS's only answer when
    its volume cannot be written, as for any other fault of its own) was "S3 server
    unreachable" and is now said to be failing: not unreachable, and not known to be full; a
    server that does not answer stays unreachable (the test below)."""
    for status, code in ((507, "XMinioStorageFull"), (507, "InsufficientStorage")):
        with _s3_refusing_writes(status, code) as endpoint:
            store = S3Store(endpoint=endpoint, access_key="x", secret_key="y", bucket="vaults", secure=False)
            with pytest.raises(StoreFull, match="storage is full"):
                store.put("v/originals/x", [b"x"], content_type="text/plain")
    with _s3_refusing_writes(500, "InternalError") as endpoint:
        store = S3Store(endpoint=endpoint, access_key="x", secret_key="y", bucket="vaults", secure=False)
        with pytest.raises(StoreUnavailable, match="failing") as failing:
            store.put("v/originals/x", [b"x"], content_type="text/plain")
        assert "unreachable" not in failing.value.message


def test_s3_unreachable_is_our_error():
    from tests.servers import free_port

    store = S3Store(endpoint=f"127.0.0.1:{free_port()}", access_key="x", secret_key="y", bucket="b", secure=False)
    with pytest.raises(StoreUnavailable):
        store.put("v/originals/x", [b"x"], content_type="text/plain")
    with pytest.raises(StoreUnavailable):
        store.check()


# Staged objects (resumable uploads): the handle goes through JSON between calls, as it
# does through the database.


def _roundtrip(handle):
    return json.loads(json.dumps(handle))


def test_staged_object_built_in_pieces(store):
    data = os.urandom(12 * 1024 * 1024 + 77)  # crosses two 5 MiB part boundaries
    store.ensure_vault("vault-a")
    key = _key()
    handle = _roundtrip(store.staging.begin(key, content_type="video/mp4"))
    offset = 0
    for size in (100, 3 * 1024 * 1024, 4 * 1024 * 1024, 1, len(data)):
        piece = data[offset : offset + size]
        handle = _roundtrip(store.staging.write(handle, offset=offset, chunks=_chunks(piece, 64 * 1024)))
        offset += len(piece)
    with pytest.raises(ObjectNotFound):
        store.stat(key)  # nothing under the key before commit
    committed = store.staging.commit(handle, size=len(data))
    assert committed.size == len(data) and not committed.locked
    assert hashlib.sha256(b"".join(store.read(key))).digest() == hashlib.sha256(data).digest()
    # A retried commit (crash before the caller recorded it) returns the same object.
    assert store.staging.commit(handle, size=len(data)).size == len(data)
    locked = store.lock(key, version_id=committed.version_id, until=datetime.now(timezone.utc) + timedelta(days=1))
    assert locked.locked


def test_a_long_staged_write_reports_progress_that_a_later_write_resumes_from(store):
    """A long write reports durable progress while its bytes still arrive; when the writer
    dies after that, a new write from the last offset reported (with its handle) completes
    the object, byte for byte."""
    import time

    mib = 1024 * 1024
    data = os.urandom(33 * mib + 5)
    store.ensure_vault("vault-a")
    key = _key()
    handle = _roundtrip(store.staging.begin(key, content_type="video/mp4"))
    handle = _roundtrip(store.staging.write(handle, offset=0, chunks=[data[:mib // 2]]))
    reports: list[tuple[int, dict]] = []
    started, uploaded = [], []
    if isinstance(store, S3Store):  # parts counted as they go up
        real = store.client._upload_part

        def counted(*args):  # type: ignore[no-untyped-def]
            started.append(args[-1])
            uploaded.append(real(*args))
            return uploaded[-1]

        store.client._upload_part = counted

    def dying_body():  # the process dies once 27 MiB have arrived, slowly enough for parts to go up
        for i in range(mib // 2, 27 * mib, mib):
            deadline = time.monotonic() + 30  # a slow link: the parts sent are uploaded by now
            while len(uploaded) < len(started) and time.monotonic() < deadline:
                time.sleep(0.01)
            yield data[i : i + mib]
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        store.staging.write(handle, offset=mib // 2, chunks=dying_body(),
                            progress=lambda offset, staged: reports.append((offset, _roundtrip(staged))), every=4 * mib)
    offsets = [offset for offset, _ in reports]
    assert offsets == sorted(set(offsets)) and len(offsets) >= 2, offsets
    assert 4 * mib <= offsets[0] and offsets[-1] <= 27 * mib, offsets
    offset, handle = reports[-1]
    handle = _roundtrip(store.staging.write(handle, offset=offset, chunks=_chunks(data[offset:])))
    assert store.staging.commit(handle, size=len(data)).size == len(data)
    assert hashlib.sha256(b"".join(store.read(key))).digest() == hashlib.sha256(data).digest()


def test_staged_write_drops_unrecorded_bytes(store):
    """A request killed mid-body leaves bytes past the recorded offset; the next write drops them."""
    store.ensure_vault("vault-a")
    key = _key()
    handle = store.staging.begin(key, content_type="application/octet-stream")
    first = os.urandom(2 * 1024 * 1024)
    recorded = store.staging.write(handle, offset=0, chunks=[first])
    store.staging.write(recorded, offset=len(first), chunks=[b"junk" * 1000])  # never recorded
    rest = os.urandom(1024 * 1024)
    handle = store.staging.write(recorded, offset=len(first), chunks=[rest])
    store.staging.commit(handle, size=len(first) + len(rest))
    assert b"".join(store.read(key)) == first + rest


def test_staged_hold_can_be_retracted(store):
    store.ensure_vault("vault-a")
    key = _key()
    handle = store.staging.begin(key, content_type="application/octet-stream")
    good = os.urandom(1024 * 1024)
    handle = store.staging.write(handle, offset=0, chunks=[good])
    handle = store.staging.write(handle, offset=len(good), chunks=_chunks(os.urandom(6 * 1024 * 1024)), hold=True)
    handle = store.staging.truncate(handle, size=len(good))
    tail = os.urandom(6 * 1024 * 1024)
    handle = store.staging.write(handle, offset=len(good), chunks=_chunks(tail), hold=True)
    handle = store.staging.flush(handle)
    store.staging.commit(handle, size=len(good) + len(tail))
    assert hashlib.sha256(b"".join(store.read(key))).digest() == hashlib.sha256(good + tail).digest()


def test_staged_commit_refuses_wrong_size_and_gap(store):
    store.ensure_vault("vault-a")
    key = _key()
    handle = store.staging.begin(key, content_type="application/octet-stream")
    handle = store.staging.write(handle, offset=0, chunks=[b"abc"])
    with pytest.raises(StorageError) as gap:
        store.staging.write(handle, offset=10, chunks=[b"def"])
    assert gap.value.code == "staging_lost"
    with pytest.raises(StorageError) as short:
        store.staging.commit(handle, size=10)
    assert short.value.code == "staging_incomplete"
    with pytest.raises(ObjectNotFound):
        store.stat(key)


def test_staged_abort_leaves_nothing(store):
    store.ensure_vault("vault-a")
    key = _key()
    handle = store.staging.begin(key, content_type="application/octet-stream")
    handle = store.staging.write(handle, offset=0, chunks=_chunks(os.urandom(6 * 1024 * 1024)))
    store.staging.abort(handle)
    store.staging.abort(handle)  # idempotent
    with pytest.raises(StorageError):
        store.staging.commit(handle, size=6 * 1024 * 1024)
    with pytest.raises(ObjectNotFound):
        store.stat(key)
    assert not [o for o in store.list("vault-a/") if o.key == key]


def test_staged_empty_object(store):
    store.ensure_vault("vault-a")
    key = _key()
    handle = store.staging.begin(key, content_type="application/octet-stream")
    assert store.staging.commit(handle, size=0).size == 0
    assert b"".join(store.read(key)) == b""
