"""SM3 through :mod:`hashlib`.

SM3 comes from OpenSSL; this module fails at import if the linked OpenSSL lacks it,
rather than at the first upload. Hashing a stream with SHA-256 and SM3 (and SHA-512)
in one pass has one home, :class:`archive.evidence.items.HashingStream`.
"""

from __future__ import annotations

import hashlib

hashlib.new("sm3")  # fail fast on an OpenSSL without SM3

__all__ = ["Sm3", "sm3_hex"]


def Sm3(data: bytes = b""):  # noqa: N802 - reads like the hashlib constructors
    """Return a new incremental SM3 hash object (``update``/``digest``/``hexdigest``)."""
    return hashlib.new("sm3", data)


def sm3_hex(data: bytes) -> str:
    """Lower-case hex SM3 of ``data``."""
    return hashlib.new("sm3", data).hexdigest()
