"""One interface suite that every object-store backend must pass."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from archive.errors import ObjectExists, ObjectLocked, ObjectNotFound, StorageError, StoreUnavailable
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


def test_s3_compliance_retention_refuses_delete(s3_server):
    """Not even the owner's credentials can delete a version under COMPLIANCE retention."""
    store = S3Store(
        endpoint=s3_server.endpoint, access_key=s3_server.access_key, secret_key=s3_server.secret_key,
        bucket="lock-" + uuid.uuid4().hex[:8], secure=False,
    )
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
