"""How the local store writes bytes: direct I/O for the aligned middle, the page cache
for an odd head and tail, and the page cache throughout when direct I/O is off or the
kernel refuses it. Whatever the path, the stored bytes are the bytes sent."""

from __future__ import annotations

import logging
import os
import random
import shutil
import subprocess
import uuid

import pytest

from archive.storage import files
from archive.storage.files import ALIGN, DIRECT_BLOCK, DIRECT_BUFFERS
from archive.storage.local import LocalStore

MiB = 1024 * 1024


def pieces(data: bytes, rng: random.Random, largest: int = 300 * 1024):
    """``data`` in chunks of random sizes, as a network body arrives."""
    i = 0
    while i < len(data):
        n = rng.randint(1, largest)
        yield data[i : i + n]
        i += n


@pytest.fixture(params=[True, False], ids=["direct", "buffered"])
def store(request, tmp_path) -> LocalStore:
    s = LocalStore(tmp_path / "objects", direct_io=request.param)
    s.ensure_vault("vault-a")
    return s


def staged_file(store: LocalStore, handle) -> bytes:
    return (store.staging_dir / handle["file"]).read_bytes()


@pytest.mark.parametrize(
    "size",
    [0, 1, ALIGN - 1, ALIGN, ALIGN + 1, DIRECT_BLOCK - 1, DIRECT_BLOCK, DIRECT_BLOCK + 1,
     # more blocks than the writer has buffers, so each buffer is filled more than once
     (DIRECT_BUFFERS + 2) * DIRECT_BLOCK + 12_345],
)
def test_put_stores_the_bytes_sent(store, size):
    data = os.urandom(size)
    key = f"vault-a/originals/{uuid.uuid4()}"
    stored = store.put(key, pieces(data, random.Random(size)), content_type="application/octet-stream")
    assert stored.size == size
    assert b"".join(store.read(key)) == data


def test_appends_at_odd_offsets_store_the_bytes_sent(store, caplog):
    """A resumable upload appends at whatever offset the last request reached: the head up
    to the next block boundary goes through the page cache, the rest direct (and the
    kernel never has to refuse a misaligned direct write)."""
    caplog.set_level(logging.WARNING, logger="archive.storage.files")
    rng = random.Random(7)
    data = os.urandom(3 * DIRECT_BLOCK + 999)
    handle = store.staging.begin(f"vault-a/originals/{uuid.uuid4()}", content_type="video/mp4")
    offset = 0
    for size in (1, ALIGN - 2, 3, ALIGN, DIRECT_BLOCK + 5, 1, 2 * ALIGN + 1, len(data)):
        piece = data[offset : offset + size]
        handle = store.staging.write(handle, offset=offset, chunks=pieces(piece, rng))
        offset += len(piece)
        assert staged_file(store, handle) == data[:offset]
    # A killed request leaves bytes past the recorded offset; the next write drops them.
    store.staging.write(handle, offset=offset - 100, chunks=[os.urandom(50_000)])
    handle = store.staging.write(handle, offset=offset - 100, chunks=[data[offset - 100 :]])
    assert store.staging.commit(handle, size=len(data)).size == len(data)
    assert "direct I/O refused" not in caplog.text


def test_a_body_cut_off_mid_write_leaves_nothing_and_returns_the_buffers(store):
    class Cut(Exception):
        pass

    def body():
        yield os.urandom(DIRECT_BLOCK + 3 * ALIGN)
        yield os.urandom(1000)
        raise Cut("client went away")

    key = f"vault-a/originals/{uuid.uuid4()}"
    for _ in range(3):
        with pytest.raises(Cut):
            store.put(key, body(), content_type="application/octet-stream")
    assert not list(store.list("vault-a/"))
    assert not [p for p in store.root.rglob("*") if p.is_file()]
    assert len(files._BUFFERS) <= files._BUFFERS_KEPT


@pytest.mark.skipif(not shutil.which("fincore"), reason="needs util-linux fincore")
def test_direct_writes_stay_out_of_the_page_cache(tmp_path):
    """The point of direct I/O: an original does not pass through the page cache (the
    buffered path drops all but its first 16 MiB once they are on disk)."""
    store = LocalStore(tmp_path / "objects", direct_io=True)
    key = "vault-a/originals/x"
    store.put(key, pieces(os.urandom(24 * MiB + 100), random.Random(1)), content_type="application/octet-stream")
    out = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES", str(store.root / key)],
                         capture_output=True, text=True, check=True).stdout
    assert int(out.split()[0]) <= 2 * ALIGN, out  # at most the unaligned tail's page


def test_kernel_refusing_direct_io_falls_back_to_the_page_cache(tmp_path, monkeypatch, caplog):
    """Pretend blocks need no alignment: the kernel then refuses a direct write at an odd
    offset (EINVAL), and the rest of the write goes through the page cache, intact."""
    monkeypatch.setattr(files, "ALIGN", 1)
    store = LocalStore(tmp_path / "objects", direct_io=True)
    handle = store.staging.begin("vault-a/originals/y", content_type="application/octet-stream")
    data = os.urandom(2 * DIRECT_BLOCK + 77)
    handle = store.staging.write(handle, offset=0, chunks=[data[:1]])
    with caplog.at_level(logging.WARNING, logger="archive.storage.files"):
        handle = store.staging.write(handle, offset=1, chunks=pieces(data[1:], random.Random(3)))
    assert "direct I/O refused" in caplog.text
    assert store.staging.commit(handle, size=len(data)).size == len(data)
    assert b"".join(store.read("vault-a/originals/y")) == data
