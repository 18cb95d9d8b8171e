"""No debris: leftovers of uploads that never finished are removed once older than the
upload expiry, and nothing live or original is ever touched."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from archive import metrics
from archive.models import Upload, utcnow
from ingest import tus
from tests.conftest import ROOT
from tests.api.test_metrics import _value
from tests.ingest.test_tus import _create, _patch

MiB = 1024 * 1024


def _sweep(stack, *, hours_ahead: float = 0.0) -> dict[str, int]:
    """The expiry task's debris sweep, as if run ``hours_ahead`` past the upload expiry."""
    now = utcnow() + timedelta(hours=stack.settings.upload_expiry_hours + hours_ahead) if hours_ahead else None
    return tus.sweep_debris(db=stack.services.db, store=stack.services.store,
                            expiry_hours=stack.settings.upload_expiry_hours, now=now)


def _age(path: Path, hours: float) -> None:
    old = time.time() - hours * 3600
    os.utime(path, (old, old))


def _local_only(stack) -> None:
    if stack.name != "embedded":
        pytest.skip("local store only")


def _s3_only(stack) -> None:
    if stack.name != "services":
        pytest.skip("S3 store only")


def test_leftover_partial_older_than_expiry_is_removed_fresh_and_locked_kept(stack):
    _local_only(stack)
    store = stack.services.store
    vault = store.root / f"vault-{uuid.uuid4().hex[:8]}" / "originals"
    vault.mkdir(parents=True)
    old, fresh, locked = (vault / f".item{i}.{uuid.uuid4().hex}.partial" for i in range(3))
    original = vault / "item-original"
    for path in (old, fresh, locked, original):
        path.write_bytes(b"x" * 1000)
    hours = stack.settings.upload_expiry_hours + 1
    for path in (old, locked, original):
        _age(path, hours)
    counted = _value(metrics.exposition()[0].decode(), "evidence_debris_removed_total", kind="partial_file")
    with open(locked, "rb") as held:  # a live writer holds its lock
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        removed = _sweep(stack)
    assert removed["partial_file"] == 1
    exposition = metrics.exposition()[0].decode()
    assert _value(exposition, "evidence_debris_removed_total", kind="partial_file") == counted + 1
    assert not old.exists() and fresh.exists() and locked.exists() and original.exists()
    for path in (fresh, locked, original):
        path.unlink()  # leave nothing for the other tests' sweeps


def test_partial_of_a_killed_direct_upload_is_removed_only_once_its_writer_is_dead(stack):
    """The real thing: a process dies mid-put; its partial file is kept while it lives, removed after."""
    _local_only(stack)
    store = stack.services.store
    key = f"vault-{uuid.uuid4().hex[:8]}/originals/{uuid.uuid4().hex}"
    writer = subprocess.Popen([sys.executable, "-c", f"""
import sys, time
from pathlib import Path
from archive.storage.local import LocalStore
def body():
    yield b"x" * 1_000_000
    print("writing", flush=True)
    time.sleep(600)
LocalStore(Path({str(store.root)!r}), direct_io=False).put({key!r}, body(), content_type="x")
"""], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "writing"
        (partial,) = (store.root / key).parent.glob("*.partial")
        _age(partial, stack.settings.upload_expiry_hours + 1)
        _sweep(stack)
        assert partial.exists()  # its writer is alive
    finally:
        writer.kill()
        writer.wait()
        writer.stdout.close()
    assert _sweep(stack)["partial_file"] >= 1
    assert not partial.exists() and not (store.root / key).exists()


def test_orphan_staging_file_removed_open_upload_kept(stack, officer, case):
    _local_only(stack)
    store = stack.services.store
    data = os.urandom(MiB)
    with stack.client(officer) as c:
        url = _create(c, case["id"], data)
        assert _patch(c, url, 0, data[:1000]).status_code == 204
    with stack.services.db.session() as s:
        live = store.staging_dir / s.get(Upload, url.rsplit("/", 1)[-1]).state["handle"]["file"]
    orphan = store.staging_dir / f"{uuid.uuid4().hex}.upload"  # its upload row never committed
    orphan.write_bytes(b"y" * 1000)
    for path in (live, orphan):
        _age(path, stack.settings.upload_expiry_hours + 1)
    assert _sweep(stack)["staged_file"] >= 1
    assert not orphan.exists() and live.exists()


def test_abandoned_multipart_upload_is_aborted(stack, officer, case):
    _s3_only(stack)
    store = stack.services.store
    client = store.client
    key = f"abandoned/{uuid.uuid4().hex}"
    abandoned = client._create_multipart_upload(store.bucket, key, {"Content-Type": "application/octet-stream"})
    client._upload_part(store.bucket, key, b"z" * (5 * MiB), None, abandoned, 1)
    data = os.urandom(MiB)
    with stack.client(officer) as c:
        url = _create(c, case["id"], data)
        assert _patch(c, url, 0, data[:1000]).status_code == 204
    with stack.services.db.session() as s:
        handle = s.get(Upload, url.rsplit("/", 1)[-1]).state["handle"]

    def pending() -> set[str]:
        return {u.upload_id for u in client._list_multipart_uploads(store.bucket, max_uploads=1000).uploads}

    assert _sweep(stack)["multipart_upload"] == 0  # fresh: kept
    assert {abandoned, handle["upload_id"]} <= pending()
    assert _sweep(stack, hours_ahead=1)["multipart_upload"] >= 1
    left = pending()
    assert abandoned not in left and handle["upload_id"] in left  # the open upload's stage is live
    assert (store.spool_dir / handle["spool"]).exists()
