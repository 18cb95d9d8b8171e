"""Checks of the bag itself (RFC 8493): every member hashed, bagit.txt, Payload-Oxum and the
payload and tag manifests, strictly parsed: every file listed, nothing extra, nothing
missing, every hash equal."""

from __future__ import annotations

import hashlib
import re
import unicodedata
import zipfile

from .layout import ALGORITHMS, BAG_INFO, BAGIT, BAGIT_TXT, PAYLOAD_DIR, payload_manifest, tag_manifest
from .run import Run
from .source import unsafe_name

TAG_LIMIT = 256 * 1024 * 1024
"""Tag files larger than this are refused rather than read into memory."""
CHUNK = 1024 * 1024


def hash_all(run: Run) -> None:
    """Read every member once: SHA-256 and SHA-512, and keep tag files in memory."""
    for name in sorted(run.source.sizes):
        h256, h512 = hashlib.sha256(), hashlib.sha512()
        keep = not name.startswith(PAYLOAD_DIR)
        if keep and run.source.sizes[name] > TAG_LIMIT:
            run.fail("bag", name, f"tag file larger than {TAG_LIMIT} bytes")
            keep = False
        buf = bytearray() if keep else None
        size = 0
        try:
            with run.source.open(name) as f:
                while chunk := f.read(CHUNK):
                    h256.update(chunk)
                    h512.update(chunk)
                    size += len(chunk)
                    if buf is not None:
                        buf += chunk
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            run.fail("bag", name, f"cannot be read ({exc})")
            run.unreadable.add(name)
            continue
        run.digests[name] = {"sha256": h256.hexdigest(), "sha512": h512.hexdigest(), "size": str(size)}
        if buf is not None:
            run.tags[name] = bytes(buf)


def check_bagit(run: Run) -> None:
    """bagit.txt is the declaration this format writes; bag-info.txt's Payload-Oxum is the payload's."""
    got = run.tags.get(BAGIT)
    if got is None:
        run.fail("bag", BAGIT, "missing")
    elif got != BAGIT_TXT:
        run.fail("bag", BAGIT, "not the BagIt 1.0 declaration this format writes")
    else:
        run.add("bag", BAGIT, True, "BagIt 1.0, UTF-8")
    info = run.tags.get(BAG_INFO)
    if info is None:
        run.fail("bag", BAG_INFO, "missing")
        return
    try:
        fields = dict(line.split(": ", 1) for line in info.decode("utf-8").splitlines())
    except (UnicodeDecodeError, ValueError):
        run.fail("bag", BAG_INFO, "not 'Label: value' lines in UTF-8")
        return
    payload = [n for n in run.source.sizes if n.startswith(PAYLOAD_DIR)]
    octets = sum(run.source.sizes[n] for n in payload)
    expected = f"{octets}.{len(payload)}"
    if fields.get("Payload-Oxum") != expected:
        run.fail("bag", BAG_INFO, f"Payload-Oxum {fields.get('Payload-Oxum')} but the payload is {expected}")
    else:
        run.add("bag", BAG_INFO, True, f"Payload-Oxum {expected}")


def _parse_manifest(run: Run, name: str, algorithm: str) -> dict[str, str] | None:
    raw = run.tags.get(name)
    if raw is None:
        run.fail("manifest", name, "missing")
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        run.fail("manifest", name, "not UTF-8")
        return None
    if text and not text.endswith("\n"):
        run.fail("manifest", name, "does not end with a newline")
        return None
    pattern = re.compile(rf"([0-9a-f]{{{ALGORITHMS[algorithm]}}})  ([^\r\n]+)")
    entries: dict[str, str] = {}
    for number, line in enumerate(text.split("\n")[:-1], 1):
        m = pattern.fullmatch(line)
        if not m or unsafe_name(m.group(2)) or unicodedata.normalize("NFC", m.group(2)) != m.group(2):
            run.fail("manifest", name, f"line {number} is not '<{algorithm} hex>  <path>'")
            return None
        if m.group(2) in entries:
            run.fail("manifest", name, f"line {number}: {m.group(2)} listed twice")
            return None
        entries[m.group(2)] = m.group(1)
    return entries


def check_manifests(run: Run) -> None:
    """Payload and tag manifests list every member of their kind, nothing else, every hash equal."""
    files = set(run.source.sizes)
    payload = {n for n in files if n.startswith(PAYLOAD_DIR)}
    tagmanifests = {tag_manifest(a) for a in ALGORITHMS}
    tags = files - payload - tagmanifests
    for kind, members, manifest_name in (("manifest", payload, payload_manifest),
                                         ("tagmanifest", tags, tag_manifest)):
        for algorithm in ALGORITHMS:
            name = manifest_name(algorithm)
            listed = _parse_manifest(run, name, algorithm)
            if listed is None:
                continue
            bad = False
            for path, digest in listed.items():
                if kind == "manifest" and not path.startswith(PAYLOAD_DIR):
                    run.fail(kind, path, f"listed in {name} but outside {PAYLOAD_DIR}")
                    bad = True
                elif kind == "tagmanifest" and (path.startswith(PAYLOAD_DIR) or path in tagmanifests):
                    run.fail(kind, path, f"listed in {name} but not a tag file")
                    bad = True
                elif path not in files:
                    run.fail(kind, path, f"listed in {name} but missing from the bag")
                    bad = True
                elif path in run.digests and run.digests[path][algorithm] != digest:
                    run.fail(kind, path, f"{algorithm} differs from {name}")
                    bad = True
            for path in sorted(members - set(listed)):
                run.fail(kind, path, f"present in the bag but not listed in {name}")
                bad = True
            if bad:
                run.fail(kind, name, "does not match the bag (the files concerned are named)")
            else:
                run.add(kind, name, True, f"{len(listed)} files, every {algorithm} equal")
