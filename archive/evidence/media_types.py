"""What kind of content an original is, from its first bytes (magic numbers), never from
the name or type an uploader gives: used as an original is received (its record says what it
is from the start) and again by the worker's probe, which reads the whole file's structure.
"""

from __future__ import annotations

import codecs
import re
import zlib
from pathlib import Path

__all__ = ["DOCX", "HEAD", "OFFICE_PREFIX", "PPTX", "XLSX", "sniff_bytes"]

HEAD = 8192
"""Bytes of an original's start that :func:`sniff_bytes` needs."""

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
OFFICE_PREFIX = {"word/": DOCX, "xl/": XLSX, "ppt/": PPTX}
"""The part-name prefix that tells an Office Open XML file's kind."""
_OFFICE_EXT = {".docx": DOCX, ".xlsx": XLSX, ".pptx": PPTX}


def sniff_bytes(head: bytes, *, name: str | None = None) -> str:
    """Return the media type of content starting with ``head`` (a few KB suffice).

    ``name`` breaks ties the bytes cannot (an Office file whose first entry does not
    reveal its kind).
    """
    lower_name = (name or "").lower()
    if len(head) >= 12 and head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand == b"qt  ":
            return "video/quicktime"
        if brand in (b"heic", b"heix", b"mif1", b"msf1"):
            return "image/heic"
        if brand in (b"M4A ", b"M4B "):
            return "audio/mp4"
        return "video/mp4"
    if head[4:8] in (b"moov", b"mdat", b"wide", b"free") and len(head) >= 8:
        return "video/quicktime"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm" if b"webm" in head[:64] else "video/x-matroska"
    if head.startswith(b"RIFF") and len(head) >= 12:
        return {b"AVI ": "video/x-msvideo", b"WAVE": "audio/wav", b"WEBP": "image/webp"}.get(
            head[8:12], "application/octet-stream"
        )
    if _is_ts(head, 188, 0) or _is_ts(head, 192, 4):
        return "video/mp2t"
    if head.startswith(b"\x00\x00\x01\xba"):
        return "video/mpeg"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "image/tiff"
    if head.startswith(b"ID3") or head[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        return "audio/mpeg"
    if 0 <= head.find(b"%PDF-") < 1024:
        return "application/pdf"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _office_from_head(head) or _OFFICE_EXT.get(Path(lower_name).suffix, "application/zip")
    if head.startswith(b"WARC/"):
        return "application/warc"
    if head.startswith(b"\x1f\x8b"):
        return "application/warc" if _gunzip_head(head).startswith(b"WARC/") else "application/gzip"
    if len(head) > 262 and head[257:262] == b"ustar":
        return "application/x-tar"
    if head.startswith(b"7z\xbc\xaf\x27\x1c"):
        return "application/x-7z-compressed"
    text = _as_text(head)
    if text is not None:
        probe = text.lstrip("\ufeff \t\r\n").lower()
        if probe.startswith(("<!doctype html", "<html")) or "<html" in probe[:1024]:
            return "text/html"
        return "text/plain"
    return "application/octet-stream"


def _is_ts(head: bytes, size: int, skip: int) -> bool:
    # Three sync bytes at packet spacing: one 0x47 alone is common in any binary.
    return len(head) >= skip + 2 * size + 1 and all(
        head[skip + i * size] == 0x47 for i in range(3)
    )


def _gunzip_head(head: bytes) -> bytes:
    try:
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 64)
    except zlib.error:
        return b""


def _as_text(head: bytes) -> str | None:
    if not head:
        return None
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return head[: len(head) // 2 * 2].decode("utf-16")
        except UnicodeDecodeError:
            return None
    if b"\x00" in head:
        return None
    for encoding in ("utf-8", "gb18030"):
        decoder = codecs.getincrementaldecoder(encoding)()
        try:
            # Not final: the head may end in the middle of a multi-byte character.
            text = decoder.decode(head, final=False)
        except UnicodeDecodeError:
            continue
        if not any(ch < " " and ch not in "\t\r\n\f" for ch in text):
            return text
    return None


def _office_from_head(head: bytes) -> str | None:
    # The first local headers usually name the parts; Word writes [Content_Types].xml
    # then word/..., so the head often reveals the kind without opening the archive.
    for prefix, kind in OFFICE_PREFIX.items():
        if re.search(rb"PK\x03\x04.{26}" + re.escape(prefix.encode()), head, re.S):
            return kind
    return None
