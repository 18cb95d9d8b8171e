"""Incremental hashing with SHA-256, SM3 and SHA-512 in one pass.

SM3 comes from OpenSSL through :mod:`hashlib`; this module fails at import if
the linked OpenSSL lacks it, rather than at the first upload.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import BinaryIO, Iterable

hashlib.new("sm3")  # fail fast on an OpenSSL without SM3

__all__ = ["Digests", "MultiHasher", "Sm3", "sm3_hex"]


def Sm3(data: bytes = b""):  # noqa: N802 - reads like the hashlib constructors
    """Return a new incremental SM3 hash object (``update``/``digest``/``hexdigest``)."""
    return hashlib.new("sm3", data)


def sm3_hex(data: bytes) -> str:
    """Lower-case hex SM3 of ``data``."""
    return hashlib.new("sm3", data).hexdigest()


@dataclass(frozen=True)
class Digests:
    """Hex digests of one byte stream."""

    sha256: str
    """SHA-256, hex."""
    sm3: str
    """SM3, hex."""
    sha512: str
    """SHA-512, hex."""
    size: int
    """Number of bytes hashed."""


class MultiHasher:
    """Feed bytes once, get SHA-256, SM3 and SHA-512 together."""

    def __init__(self) -> None:
        self._hashes = {"sha256": hashlib.sha256(), "sm3": hashlib.new("sm3"), "sha512": hashlib.sha512()}
        self._size = 0

    def update(self, chunk: bytes) -> None:
        """Add ``chunk`` to every digest."""
        for h in self._hashes.values():
            h.update(chunk)
        self._size += len(chunk)

    def result(self) -> Digests:
        """The digests so far (the hasher can keep being updated)."""
        return Digests(size=self._size, **{k: h.hexdigest() for k, h in self._hashes.items()})

    @classmethod
    def of_stream(cls, stream: BinaryIO, *, chunk_size: int = 1 << 20) -> Digests:
        """Hash a binary stream to its end."""
        hasher = cls()
        while chunk := stream.read(chunk_size):
            hasher.update(chunk)
        return hasher.result()

    @classmethod
    def of_chunks(cls, chunks: Iterable[bytes]) -> Digests:
        """Hash an iterable of byte chunks."""
        hasher = cls()
        for chunk in chunks:
            hasher.update(chunk)
        return hasher.result()
