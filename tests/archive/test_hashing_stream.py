"""The one streaming hasher: SHA-256, SM3 and SHA-512 of a stream in one pass."""

from __future__ import annotations

import hashlib

import pytest

from archive.storage.streams import HashingStream, hash_chunks
from signing.hashing import sm3_hex


def test_one_pass_matches_one_shot_digests():
    data = bytes(range(256)) * 5000
    stream = hash_chunks((data[i : i + 4096] for i in range(0, len(data), 4096)), "sha256", "sm3", "sha512")
    assert stream.hexdigest("sha256") == hashlib.sha256(data).hexdigest()
    assert stream.hexdigest("sha512") == hashlib.sha512(data).hexdigest()
    assert stream.hexdigest("sm3") == sm3_hex(data) and stream.size == len(data)


def _digests(data: bytes) -> dict[str, str]:
    return {"sha256": hashlib.sha256(data).hexdigest(), "sha512": hashlib.sha512(data).hexdigest(),
            "sm3": sm3_hex(data)}


@pytest.mark.parametrize("size", [0, 1, 4095, HashingStream.BATCH - 1, HashingStream.BATCH, HashingStream.BATCH + 1,
                                  3 * HashingStream.BATCH + 12345])
def test_every_length_around_a_batch_hashes_as_one_shot(size):
    data = bytes(range(256)) * (size // 256 + 1)
    data = data[:size]
    stream = hash_chunks((data[i : i + 65536] for i in range(0, len(data), 65536)), "sha256", "sm3", "sha512")
    assert {name: stream.hexdigest(name) for name in ("sha256", "sha512", "sm3")} == _digests(data)
    assert stream.size == size


def test_a_stream_shorter_than_a_batch_starts_no_thread(monkeypatch):
    """A seal or a manifest is hashed in the caller's thread: starting and joining a thread per
    algorithm for it cost more than the hashing (case verification reads four objects an item)."""
    def refuse(self):  # type: ignore[no-untyped-def]
        raise AssertionError("a hashing thread was started")

    monkeypatch.setattr(HashingStream, "_start", refuse)
    data = b"manifest " * 1000
    stream = hash_chunks([data[:100], data[100:]], "sha256", "sm3", "sha512")
    assert {name: stream.hexdigest(name) for name in ("sha256", "sha512", "sm3")} == _digests(data)


def test_a_stream_left_part_way_has_the_digests_of_what_passed():
    """A reader that stops (a client gone, a refused size) still gets final digests of the
    bytes it took, with threads started or not."""
    for piece, pieces in ((1000, 3), (HashingStream.BATCH // 2, 5)):
        stream = HashingStream(iter([bytes([n]) * piece for n in range(10)]), "sha256")
        taken = b""
        for chunk in stream:
            taken += chunk
            if len(taken) >= piece * pieces:
                break
        assert stream.hexdigest("sha256") == hashlib.sha256(taken).hexdigest() and stream.size == len(taken)
