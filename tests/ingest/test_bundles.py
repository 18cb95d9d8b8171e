"""Capture bundles: valid ones hash correctly, each kind of bad one is rejected by name."""

from __future__ import annotations

import hashlib
import io
import json
import random
import tarfile
import warnings
import zipfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from ingest.bundles import BundleLimits, iter_member, read_bundle
from ingest.errors import BundleInvalid, IngestError

MANIFEST = {
    "target_url": "https://shop.example.cn/live/123",
    "capture_start": "2024-05-01T10:00:00+08:00",
    "capture_end": "2024-05-01T10:20:00+08:00",
    "operator": "Officer Li (0421)",
    "tool": "WebCapture 3.2",
}
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 20
WARC = b"WARC/1.1\r\nWARC-Type: response\r\n\r\n" + b"x" * 5000
# Incompressible, like real video, so the ratio check leaves it alone.
VIDEO = b"\x00\x00\x00\x18ftypisom" + random.Random(5).randbytes(3_000_000)


def make_zip(path: Path, entries: dict[str, bytes] | list[tuple[str, bytes]], manifest=MANIFEST) -> Path:
    items = list(entries.items()) if isinstance(entries, dict) else list(entries)
    with warnings.catch_warnings(), zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        # Some bad bundles need duplicate names, which zipfile warns about when writing.
        warnings.simplefilter("ignore", UserWarning)
        if manifest is not None:
            zf.writestr("manifest.json", json.dumps(manifest) if isinstance(manifest, dict) else manifest)
        for name, data in items:
            if name.endswith("/"):
                zf.mkdir(name) if hasattr(zf, "mkdir") else zf.writestr(name, b"")
            else:
                zf.writestr(zipfile.ZipInfo(name), data, compress_type=zipfile.ZIP_DEFLATED)
    return path


@pytest.fixture
def valid_zip(tmp_path: Path) -> Path:
    return make_zip(
        tmp_path / "capture.zip",
        {"shots/001.png": PNG, "page.warc": WARC, "screen.mp4": VIDEO, "logs/": b""},
    )


def test_valid_bundle_manifest_and_hashes(valid_zip: Path) -> None:
    bundle = read_bundle(valid_zip)
    assert bundle.archive_format == "zip"
    assert bundle.target_url == MANIFEST["target_url"]
    assert bundle.capture_start == datetime(2024, 5, 1, 2, 0, tzinfo=timezone.utc)
    assert bundle.capture_end - bundle.capture_start == timedelta(minutes=20)
    assert (bundle.operator, bundle.tool) == (MANIFEST["operator"], MANIFEST["tool"])
    by_name = {m.name: m for m in bundle.members}
    assert set(by_name) == {"shots/001.png", "page.warc", "screen.mp4"}
    for name, data in (("shots/001.png", PNG), ("page.warc", WARC), ("screen.mp4", VIDEO)):
        member = by_name[name]
        assert member.size == len(data)
        assert member.sha256 == hashlib.sha256(data).hexdigest()
        assert member.sm3 == hashlib.new("sm3", data).hexdigest()
    assert by_name["shots/001.png"].media_type == "image/png"
    assert by_name["page.warc"].media_type == "application/warc"
    assert by_name["screen.mp4"].media_type == "video/mp4"
    with zipfile.ZipFile(valid_zip) as zf:
        assert bundle.manifest_sha256 == hashlib.sha256(zf.read("manifest.json")).hexdigest()


def test_iter_member_streams_exact_bytes(valid_zip: Path) -> None:
    chunks = list(iter_member(valid_zip, "screen.mp4", chunk_size=1 << 16))
    assert len(chunks) > 1
    assert b"".join(chunks) == VIDEO
    with pytest.raises(BundleInvalid, match="no member 'nope'"):
        list(iter_member(valid_zip, "nope"))


def test_tar_gz_bundle_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "capture.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for name, data in (("manifest.json", json.dumps(MANIFEST).encode()), ("a.png", PNG)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    bundle = read_bundle(path)
    assert bundle.archive_format == "tar"
    (member,) = bundle.members
    assert member.sha256 == hashlib.sha256(PNG).hexdigest()
    assert b"".join(iter_member(path, "a.png")) == PNG


def test_tar_with_symlink_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "capture.tar"
    with tarfile.open(path, "w") as tf:
        data = json.dumps(MANIFEST).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("passwd")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tf.addfile(link)
    with pytest.raises(BundleInvalid, match="'passwd' is a link or special file"):
        read_bundle(path)


@pytest.mark.parametrize(
    ("entries", "manifest", "message"),
    [
        ({"a.png": PNG}, None, "no manifest.json at the root"),
        ({"sub/manifest.json": b"{}"}, None, "no manifest.json at the root"),
        ({}, {k: v for k, v in MANIFEST.items() if k != "operator"}, "lacks required fields: operator"),
        ({}, {**MANIFEST, "tool": ""}, "tool must be a non-empty string"),
        ({}, {**MANIFEST, "capture_start": "yesterday"}, "capture_start 'yesterday' is not an ISO 8601 time"),
        ({}, {**MANIFEST, "capture_start": "2024-05-01T10:00:00\x00+08:00"}, r"capture_start .* is not an ISO 8601 time"),
        ({}, {**MANIFEST, "capture_end": "2024-05-01T10:20:00"}, "capture_end .* has no time zone"),
        ({}, {**MANIFEST, "capture_end": "2024-05-01T09:00:00+08:00"}, "capture_end is before capture_start"),
        ({}, {**MANIFEST, "target_url": "not a url"}, "target_url 'not a url' is not an absolute URL"),
        ({}, "{not json", "not valid UTF-8 JSON"),
        ({}, "[1, 2]", "must be a JSON object"),
        ({"../evil.sh": b"x"}, MANIFEST, r"'../evil.sh' escapes the archive root \(path traversal\)"),
        ({"a/../../evil": b"x"}, MANIFEST, "path traversal"),
        ({"..\\evil": b"x"}, MANIFEST, "path traversal"),
        ({"/etc/cron.d/x": b"x"}, MANIFEST, "'/etc/cron.d/x' has an absolute path"),
        ({"C:/x": b"x"}, MANIFEST, "has an absolute path"),
        ([("a.png", PNG), ("a.png", PNG)], MANIFEST, "duplicate member name 'a.png'"),
        ([("a.png", PNG), ("./a.png", PNG)], MANIFEST, "duplicate member name './a.png'"),
        ([("manifest.json", b"{}")], MANIFEST, "duplicate member name 'manifest.json'"),
        # Path components follow the one file-name rule (archive/evidence/filenames.py).
        ({"shots/report\u202egnp.exe": b"x"}, MANIFEST, r"bidirectional formatting character \(U\+202E\)"),
        ({"con/a.png": b"x"}, MANIFEST, "'con' is a reserved device name"),
        ({"a\x1b.png": b"x"}, MANIFEST, r"control character \(U\+001B\)"),
        ({"dir./a.png": b"x"}, MANIFEST, "must not end with a dot or a space"),
    ],
)
def test_invalid_bundles_are_rejected_precisely(
    tmp_path: Path, entries, manifest, message: str
) -> None:
    path = make_zip(tmp_path / "bad.zip", entries, manifest=manifest)
    with pytest.raises(BundleInvalid, match=message) as err:
        read_bundle(path)
    assert isinstance(err.value, IngestError)


def test_declared_size_over_limit_is_a_bomb(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "big.zip", {"a.bin": b"\x00" * 200_000})
    with pytest.raises(BundleInvalid, match="exceeds the limit of 100000 bytes"):
        read_bundle(path, limits=BundleLimits(max_total_bytes=100_000))


def test_extreme_compression_ratio_is_a_bomb(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "bomb.zip", {"zeros.bin": bytes(50 << 20)})
    with pytest.raises(BundleInvalid, match="ratio above 1000.*zip bomb"):
        read_bundle(path)


def test_too_many_members(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "many.zip", {f"f{i}": b"x" for i in range(20)})
    with pytest.raises(BundleInvalid, match="more than 10 entries"):
        read_bundle(path, limits=BundleLimits(max_members=10))


def test_default_member_limit_bounds_the_work_one_bundle_queues(tmp_path: Path) -> None:
    """Every member becomes an item to process: 10,000 are accepted, one more is refused."""
    path = make_zip(tmp_path / "many.zip", [(f"m/{i}.txt", b"x") for i in range(9_999)])
    assert len(read_bundle(path).members) == 9_999  # 10,000 entries with the manifest
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("m/one-more.txt", b"x")
    with pytest.raises(BundleInvalid, match="more than 10000 entries"):
        read_bundle(path)


@pytest.mark.parametrize("content", [b"", b"plain text, not an archive", bytes(range(256)) * 10])
def test_non_archives_are_rejected(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "capture.zip"
    path.write_bytes(content)
    with pytest.raises(BundleInvalid, match="is not a ZIP or tar archive"):
        read_bundle(path)


def test_corrupt_member_is_rejected(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "c.zip", {"shot.png": PNG * 10})
    data = bytearray(path.read_bytes())
    at = data.find(b"shot.png") + len(b"shot.png") + 40  # inside the compressed data
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(BundleInvalid, match="'shot.png'|cannot read"):
        read_bundle(path)


def not_utf8_names_zip(path: Path, *, local_header_only: bool = False, manifest=MANIFEST) -> Path:
    """A ZIP whose member ``\\xff\\xfe\\xfd\\xfc.txt`` is named in bytes that are not UTF-8
    although the archive's flag 0x800 says its names are UTF-8 (zipfile writes the flag
    for "éé.txt", whose 8 UTF-8 bytes are then overwritten). With ``local_header_only``
    the central directory keeps the valid name and only the member's own header lies."""
    make_zip(path, {"\u00e9\u00e9.txt": b"hello"}, manifest=manifest)
    good, bad = "\u00e9\u00e9.txt".encode(), b"\xff\xfe\xfd\xfc.txt"
    data = path.read_bytes()
    assert data.count(good) == 2  # the local header, then the central directory
    path.write_bytes(data.replace(good, bad, 1) if local_header_only else data.replace(good, bad))
    return path


@pytest.mark.parametrize("local_header_only", [False, True], ids=["central-directory", "local-header"])
def test_member_name_not_utf8_is_an_invalid_bundle(tmp_path: Path, local_header_only: bool) -> None:
    path = not_utf8_names_zip(tmp_path / "names.zip", local_header_only=local_header_only)
    with pytest.raises(BundleInvalid, match="member name is not valid UTF-8 although the archive marks"):
        read_bundle(path)
    if local_header_only:
        with pytest.raises(BundleInvalid, match="not valid UTF-8"):
            list(iter_member(path, "\u00e9\u00e9.txt"))


def test_tar_member_name_not_utf8_is_an_invalid_bundle(tmp_path: Path) -> None:
    path = tmp_path / "capture.tar"
    # Names written in Latin-1 bytes: read back as UTF-8 they are not UTF-8.
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT, encoding="latin-1") as tf:
        for name, data in (("manifest.json", json.dumps(MANIFEST).encode()), ("\xff\xfe\xfd\xfc.txt", b"hello")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    with pytest.raises(BundleInvalid, match="name is not valid UTF-8"):
        read_bundle(path)
