"""The one streaming hasher: SHA-256, SM3 and SHA-512 of a stream in one pass."""

from __future__ import annotations

import hashlib

from archive.storage.streams import hash_chunks
from signing.hashing import sm3_hex


def test_one_pass_matches_one_shot_digests():
    data = bytes(range(256)) * 5000
    stream = hash_chunks((data[i : i + 4096] for i in range(0, len(data), 4096)), "sha256", "sm3", "sha512")
    assert stream.hexdigest("sha256") == hashlib.sha256(data).hexdigest()
    assert stream.hexdigest("sha512") == hashlib.sha512(data).hexdigest()
    assert stream.hexdigest("sm3") == sm3_hex(data) and stream.size == len(data)
