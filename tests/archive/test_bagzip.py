"""The bag's ZIP writer: members hashed as they stream, recorded digests honoured only
when the streamed SHA-256 vouches for them."""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from datetime import datetime, timezone

import pytest

from archive.exports.bagzip import BagZipWriter, MemberChanged

WHEN = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)


def chunks(data: bytes, size: int = 64 * 1024):
    return (data[i : i + size] for i in range(0, len(data), size))


def written(sink: io.BytesIO, path: str) -> bytes:
    with zipfile.ZipFile(io.BytesIO(sink.getvalue())) as z:
        assert z.testzip() is None
        return z.read(f"bag/{path}")


def test_member_is_hashed_with_both_algorithms_while_it_streams():
    data = os.urandom(300_000)
    sink = io.BytesIO()
    bag = BagZipWriter(sink, root="bag", when=WHEN)
    digest = bag.add_stream("data/a.bin", chunks(data), size=len(data))
    bag.close()
    assert digest.sha256 == hashlib.sha256(data).hexdigest()
    assert digest.sha512 == hashlib.sha512(data).hexdigest()
    assert written(sink, "data/a.bin") == data


def test_recorded_sha512_is_taken_when_the_streamed_sha256_matches():
    data = os.urandom(300_000)
    sink = io.BytesIO()
    bag = BagZipWriter(sink, root="bag", when=WHEN)
    recorded = hashlib.sha512(data).hexdigest()
    digest = bag.add_stream("data/a.bin", chunks(data), size=len(data),
                            sha256=hashlib.sha256(data).hexdigest(), sha512=recorded)
    bag.close()
    assert digest.sha512 == recorded and bag.payload == [digest]


def test_bytes_that_are_not_the_recorded_ones_are_refused():
    data = os.urandom(300_000)
    rotten = data[:1000] + bytes([data[1000] ^ 1]) + data[1001:]
    bag = BagZipWriter(io.BytesIO(), root="bag", when=WHEN)
    with pytest.raises(MemberChanged) as caught:
        bag.add_stream("data/a.bin", chunks(rotten), size=len(rotten),
                       sha256=hashlib.sha256(data).hexdigest(), sha512=hashlib.sha512(data).hexdigest())
    bag.close()
    assert caught.value.code == "fixity_failed" and "data/a.bin" in caught.value.message
    assert bag.payload == []  # nothing recorded for the manifests


def test_a_recorded_sha512_needs_the_sha256_that_vouches_for_it():
    bag = BagZipWriter(io.BytesIO(), root="bag", when=WHEN)
    with pytest.raises(ValueError):
        bag.add_stream("data/a.bin", chunks(b"x"), size=1, sha512=hashlib.sha512(b"x").hexdigest())
    bag.close()
