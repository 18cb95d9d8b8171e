"""The tus protocol's constants and the request headers the service side parses
(``Upload-Metadata``, ``Upload-Checksum``)."""

from __future__ import annotations

import base64
import hashlib

from archive.errors import InvalidInput

TUS_VERSION = "1.0.0"
EXTENSIONS = ("creation", "creation-with-upload", "termination", "checksum", "expiration")
CHECKSUM_ALGORITHMS = ("sha256", "sha1", "md5")
MAX_SIZE = 5 * 1024**4
"""Largest upload accepted (5 TiB, S3's largest object)."""


def parse_metadata(header: str | None) -> dict[str, str]:
    """``Upload-Metadata``: comma-separated ``key base64value`` pairs (value optional). Every
    key is given once (tus 1.0.0: keys "MUST be unique"): a key given twice is refused, not
    read as its last value (a filename checked as one thing and kept as another)."""
    result: dict[str, str] = {}
    for pair in (header or "").split(","):
        pair = pair.strip()
        if not pair:
            continue
        key, _, value = pair.partition(" ")
        if key in result:
            raise InvalidInput(f"Upload-Metadata gives {key!r} more than once", code="invalid_metadata", status=400)
        try:
            result[key] = base64.b64decode(value.strip(), validate=True).decode("utf-8") if value.strip() else ""
        except ValueError as exc:  # binascii.Error, UnicodeDecodeError, or non-ASCII characters
            raise InvalidInput(f"Upload-Metadata value of {key!r} is not base64 UTF-8", code="invalid_metadata", status=400) from exc
    return result


def parse_checksum(header: str | None) -> tuple[str, bytes] | None:
    """``Upload-Checksum: <algorithm> <base64 digest>``, or None when absent."""
    if not header:
        return None
    algorithm, _, value = header.strip().partition(" ")
    algorithm = algorithm.lower()
    if algorithm not in CHECKSUM_ALGORITHMS:
        raise InvalidInput(
            f"checksum algorithm {algorithm!r} not supported; use one of {', '.join(CHECKSUM_ALGORITHMS)}",
            code="checksum_algorithm_unsupported", status=400,
        )
    try:
        digest = base64.b64decode(value.strip(), validate=True)
    except ValueError as exc:  # binascii.Error, or non-ASCII characters
        raise InvalidInput("Upload-Checksum digest is not base64", code="invalid_checksum", status=400) from exc
    if len(digest) != hashlib.new(algorithm).digest_size:
        raise InvalidInput(f"Upload-Checksum digest has the wrong length for {algorithm}", code="invalid_checksum", status=400)
    return algorithm, digest

