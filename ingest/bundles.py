"""Remote-inspection capture bundles: a ZIP (or tar) with ``manifest.json`` at its root.

The manifest says what was captured, when and by whom; every other regular file is a
member (screenshots, screen recordings, WARC page captures, logs). Members are hashed
while streaming out of the archive, never extracted to disk or read whole.

Untrusted archives are checked before any member is read: path traversal, duplicate
names, path components that are not plain file names (:func:`archive.evidence.filenames.check_filename`), links and device files, and declared sizes that would make a decompression bomb.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from archive.errors import InvalidInput
from archive.evidence.filenames import check_filename
from archive.timefmt import given_time
from ingest.documents import sniff_bytes
from ingest.errors import BundleInvalid
from ingest.zips import ZipReader

__all__ = [
    "Bundle",
    "BundleLimits",
    "BundleMember",
    "MANIFEST_NAME",
    "iter_member",
    "read_bundle",
]

MANIFEST_NAME = "manifest.json"
REQUIRED_FIELDS = ("target_url", "capture_start", "capture_end", "operator", "tool")
_CHUNK = 1 << 20
_MANIFEST_MAX = 1 << 20


@dataclass(frozen=True, slots=True)
class BundleLimits:
    """Caps that keep a hostile archive from exhausting disk, memory or time."""

    max_total_bytes: int = 64 << 30
    """Largest total declared uncompressed size of all members."""
    max_members: int = 10_000
    """Most entries the archive may hold. Each member becomes an item processed like an
    upload (a worker takes a few a second), so this bounds the work one bundle queues."""
    max_ratio: float = 1000.0
    """Largest uncompressed/compressed ratio of a ZIP member bigger than 1 MiB."""


@dataclass(frozen=True, slots=True)
class BundleMember:
    """One captured file inside a bundle."""

    name: str
    """Path inside the archive, ``/``-separated, relative."""
    size: int
    """Uncompressed size in bytes."""
    sha256: str
    """SHA-256 of the member's bytes, lowercase hex."""
    sm3: str
    """SM3 of the member's bytes, lowercase hex."""
    media_type: str
    """Media type sniffed from the member's first bytes (and name when ambiguous)."""


@dataclass(frozen=True, slots=True)
class Bundle:
    """A validated capture bundle."""

    archive_format: str
    """``zip`` or ``tar`` (plain or compressed)."""
    target_url: str
    """What was inspected (absolute URL)."""
    capture_start: datetime
    """When capture started (timezone-aware, as the manifest states it)."""
    capture_end: datetime
    """When capture ended (timezone-aware, not before ``capture_start``)."""
    operator: str
    """Who captured (as the manifest names them)."""
    tool: str
    """Capture tool and version."""
    manifest: dict[str, Any] = field(hash=False)
    """The whole manifest as parsed, including fields beyond the required ones."""
    manifest_sha256: str
    """SHA-256 of ``manifest.json`` exactly as stored."""
    members: tuple[BundleMember, ...]
    """Every member except the manifest, in archive order."""


def read_bundle(path: Path, *, limits: BundleLimits = BundleLimits()) -> Bundle:
    """Validate the bundle at ``path`` and hash each member (SHA-256 and SM3).

    Raises:
        BundleInvalid: not a ZIP/tar archive, unsafe or duplicate names, links or device
            files, too large or too compressed, no or invalid ``manifest.json``, or a
            corrupt member; the message names the problem and the member.
    """
    path = Path(path)
    # Messages say "the bundle", never ``path.name``: the pipeline reads a workspace copy named
    # original.<ext>, and a reason naming it told reviewers of a file the case does not hold.
    if zipfile.is_zipfile(path):
        return _read_zip(path, limits)
    if _is_tar(path):
        return _read_tar(path, limits)
    raise BundleInvalid(message="the bundle is not a ZIP or tar archive")


def iter_member(path: Path, name: str, *, chunk_size: int = _CHUNK) -> Iterator[bytes]:
    """Yield the bytes of member ``name`` of the bundle at ``path`` in chunks.

    Call :func:`read_bundle` first: this checks only that the member exists.

    Raises:
        BundleInvalid: the archive cannot be read or has no such member.
    """
    path = Path(path)
    if zipfile.is_zipfile(path):
        try:
            with ZipReader(path) as zf:
                try:
                    info = zf.getinfo(name)
                except KeyError:
                    raise BundleInvalid(message=f"no member {name!r} in the bundle") from None
                with zf.open(info) as fh:
                    yield from _chunks(fh, name, chunk_size)
        except (zipfile.BadZipFile, OSError, zlib.error) as exc:
            raise BundleInvalid(message=f"cannot read the bundle: {exc}") from exc
        return
    if _is_tar(path):
        try:
            with tarfile.open(path, mode="r:*") as tf:
                try:
                    info = tf.getmember(name)
                except KeyError:
                    raise BundleInvalid(message=f"no member {name!r} in the bundle") from None
                fh = tf.extractfile(info) if info.isreg() else None
                if fh is None:
                    raise BundleInvalid(message=f"member {name!r} is not a regular file")
                with fh:
                    yield from _chunks(fh, name, chunk_size)
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            raise BundleInvalid(message=f"cannot read the bundle: {exc}") from exc
        return
    raise BundleInvalid(message="the bundle is not a ZIP or tar archive")


def _read_zip(path: Path, limits: BundleLimits) -> Bundle:
    try:
        with ZipReader(path) as zf:
            infos = zf.infolist()
            _check_count(len(infos), limits)
            files: list[zipfile.ZipInfo] = []
            total = 0
            seen: set[str] = set()
            for info in infos:
                name = _safe_name(info.filename, seen)
                if info.is_dir():
                    continue
                if info.flag_bits & 0x1:
                    raise BundleInvalid(message=f"member {name!r} is encrypted")
                total += info.file_size
                if total > limits.max_total_bytes:
                    raise BundleInvalid(
                        message=f"declared uncompressed size exceeds the limit of "
                        f"{limits.max_total_bytes} bytes (possible zip bomb)"
                    )
                if (
                    info.file_size > (1 << 20)
                    and info.file_size > limits.max_ratio * max(info.compress_size, 1)
                ):
                    raise BundleInvalid(
                        message=f"member {name!r} expands {info.file_size} bytes from "
                        f"{info.compress_size} (ratio above {limits.max_ratio:g}, possible zip bomb)"
                    )
                files.append(info)
            manifest_info = _manifest_entry({i.filename: (i, i.file_size) for i in files}, path)
            with zf.open(manifest_info) as fh:
                raw = fh.read(_MANIFEST_MAX + 1)
            members = []
            for info in files:
                if info is manifest_info:
                    continue
                with zf.open(info) as fh:
                    members.append(_hash_member(fh, info.filename))
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        NotImplementedError,
        OSError,
        EOFError,
        zlib.error,
    ) as exc:
        raise BundleInvalid(message=f"cannot read the bundle: {exc}") from exc
    return _bundle("zip", raw, members)


def _manifest_entry(entries: dict[str, tuple[Any, int]], path: Path) -> Any:
    """The manifest's entry among ``entries`` (name -> (entry, declared size)), checked."""
    found = entries.get(MANIFEST_NAME)
    if found is None:
        raise BundleInvalid(message=f"no {MANIFEST_NAME} at the root of the bundle")
    entry, size = found
    if size > _MANIFEST_MAX:
        raise BundleInvalid(message=f"{MANIFEST_NAME} is larger than {_MANIFEST_MAX} bytes")
    return entry


def _read_tar(path: Path, limits: BundleLimits) -> Bundle:
    try:
        with tarfile.open(path, mode="r:*") as tf:
            infos = []
            total = 0
            seen: set[str] = set()
            # Headers are checked before any member is hashed, so a hostile archive is
            # rejected without reading its contents.
            for info in tf:
                _check_count(len(infos) + 1, limits)
                name = _safe_name(info.name, seen)
                if info.isdir():
                    continue
                if not info.isreg():
                    raise BundleInvalid(
                        message=f"member {name!r} is a link or special file, not a regular file"
                    )
                total += info.size
                if total > limits.max_total_bytes:
                    raise BundleInvalid(
                        message=f"declared uncompressed size exceeds the limit of "
                        f"{limits.max_total_bytes} bytes (possible archive bomb)"
                    )
                infos.append(info)
            manifest_info = _manifest_entry({i.name: (i, i.size) for i in infos}, path)
            raw = b""
            members = []
            for info in infos:
                fh = tf.extractfile(info)
                assert fh is not None  # regular files always have data
                with fh:
                    if info is manifest_info:
                        raw = fh.read(_MANIFEST_MAX + 1)
                    else:
                        members.append(_hash_member(fh, info.name))
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise BundleInvalid(message=f"cannot read the bundle: {exc}") from exc
    return _bundle("tar", raw, members)


def _is_tar(path: Path) -> bool:
    try:
        return path.is_file() and path.stat().st_size > 0 and tarfile.is_tarfile(path)
    except (OSError, tarfile.TarError, EOFError):
        return False


def _check_count(count: int, limits: BundleLimits) -> None:
    if count > limits.max_members:
        raise BundleInvalid(message=f"more than {limits.max_members} entries in the archive")


def _safe_name(raw: str, seen: set[str]) -> str:
    # Archives made on Windows may use backslashes; treat them as separators so that
    # "..\\x" is caught as traversal.
    name = raw.replace("\\", "/")
    if any("\udc80" <= ch <= "\udcff" for ch in raw):
        # tarfile keeps name bytes that are not UTF-8 as lone surrogates (surrogateescape).
        raise BundleInvalid(message=f"member {raw!r}: its name is not valid UTF-8")
    if not name or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise BundleInvalid(message=f"member {raw!r} has an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise BundleInvalid(message=f"member {raw!r} escapes the archive root (path traversal)")
    for part in parts:
        try:
            check_filename(part, what=f"member {raw!r}: path component")
        except InvalidInput as exc:
            raise BundleInvalid(message=exc.message) from exc
    normal = posixpath.join(*parts) if parts else ""
    if normal in seen:
        raise BundleInvalid(message=f"duplicate member name {raw!r}")
    if normal:
        seen.add(normal)
    return raw


def _hash_member(fh: IO[bytes], name: str) -> BundleMember:
    sha = hashlib.sha256()
    sm3 = hashlib.new("sm3")
    size = 0
    head = b""
    for chunk in _chunks(fh, name, _CHUNK):
        if not head:
            head = chunk[:8192]
        sha.update(chunk)
        sm3.update(chunk)
        size += len(chunk)
    return BundleMember(
        name=name,
        size=size,
        sha256=sha.hexdigest(),
        sm3=sm3.hexdigest(),
        media_type=sniff_bytes(head, name=name),
    )


def _chunks(fh: IO[bytes], name: str, chunk_size: int) -> Iterator[bytes]:
    try:
        while chunk := fh.read(chunk_size):
            yield chunk
    except (zipfile.BadZipFile, EOFError, OSError, tarfile.TarError, zlib.error) as exc:
        raise BundleInvalid(message=f"member {name!r} is corrupt: {exc}") from exc
    except RuntimeError as exc:  # zipfile: encrypted member, password required
        raise BundleInvalid(message=f"member {name!r} cannot be read: {exc}") from exc


def _bundle(archive_format: str, raw: bytes, members: list[BundleMember]) -> Bundle:
    if len(raw) > _MANIFEST_MAX:
        raise BundleInvalid(message=f"{MANIFEST_NAME} is larger than {_MANIFEST_MAX} bytes")
    try:
        manifest = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleInvalid(message=f"{MANIFEST_NAME} is not valid UTF-8 JSON: {exc}") from exc
    if not isinstance(manifest, dict):
        raise BundleInvalid(message=f"{MANIFEST_NAME} must be a JSON object")
    missing = [f for f in REQUIRED_FIELDS if f not in manifest]
    if missing:
        raise BundleInvalid(message=f"{MANIFEST_NAME} lacks required fields: {', '.join(missing)}")
    for field_name in REQUIRED_FIELDS:
        value = manifest[field_name]
        if not isinstance(value, str) or not value.strip():
            raise BundleInvalid(message=f"{MANIFEST_NAME}: {field_name} must be a non-empty string")
    url = urlsplit(manifest["target_url"])
    if not url.scheme or not (url.netloc or url.path):
        raise BundleInvalid(
            message=f"{MANIFEST_NAME}: target_url {manifest['target_url']!r} is not an absolute URL"
        )
    start = _manifest_time(manifest, "capture_start")
    end = _manifest_time(manifest, "capture_end")
    if end < start:
        raise BundleInvalid(message=f"{MANIFEST_NAME}: capture_end is before capture_start")
    return Bundle(
        archive_format=archive_format,
        target_url=manifest["target_url"],
        capture_start=start,
        capture_end=end,
        operator=manifest["operator"],
        tool=manifest["tool"],
        manifest=manifest,
        manifest_sha256=hashlib.sha256(raw).hexdigest(),
        members=tuple(members),
    )


def _manifest_time(manifest: dict[str, Any], field_name: str) -> datetime:
    value = manifest[field_name]
    try:
        moment = given_time(value)  # strict, as the API's times: no stray character before the zone
    except ValueError as exc:
        raise BundleInvalid(
            message=f"{MANIFEST_NAME}: {field_name} {value!r} is not an ISO 8601 time"
        ) from exc
    if moment.tzinfo is None:
        # A capture time without a zone cannot be placed on the case timeline.
        raise BundleInvalid(message=f"{MANIFEST_NAME}: {field_name} {value!r} has no time zone")
    return moment
