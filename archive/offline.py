"""The offline verifier of certified exports: no server, no database, no settings.

A court runs ``evidence verify-export EXPORT.zip --trust ROOT.pem`` on its own machine.
This module needs only the standard library, :mod:`signing` (pyHanko, asn1crypto,
gmssl), :mod:`archive.custody.merkle` and :mod:`archive.custody.ledger_format` — nothing that opens a
database or reads our settings. It checks, and names every member that fails:

* the bag (RFC 8493): ``bagit.txt``, ``Payload-Oxum``, both payload manifests and both
  tag manifests, strictly parsed — every file listed, nothing extra, nothing missing,
  every hash equal;
* every detached seal beside the file it seals: CAdES-B-T ``<file>.p7s`` (signature,
  e-seal chain to ``--trust``, RFC 3161 time-stamp) and SM2 ``<file>.sm2.json`` (with the
  SM2 keys the CAdES-sealed export manifest vouches for, or one given with ``--sm2-key``);
* the sealed export manifest: every file of the bag with its SHA-256 and size;
* each item manifest (sealed at ingest) states the SHA-256 and size of its original;
* each custody entry recomputes to its hash, consecutive entries chain, and each has an
  RFC 9162 inclusion proof against the sealed checkpoint's root; every item's
  ``evidence_received`` entry states the item's hash;
* ``certificate.pdf`` carries a valid PAdES-B-T seal covering the whole file.

:func:`check_export` returns the full list of findings; :func:`verify_export` returns the
report only when everything holds and raises :class:`ExportInvalid` otherwise.
"""

from __future__ import annotations

import hashlib
import json
import re
import stat
import unicodedata
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import signing
from archive.custody import merkle
from archive.custody.ledger_format import compute_entry_hash, entry_bytes
from signing.certs import load_certificates
from signing.sm2 import Sm2PublicKey, load_sm2_public_key

EXPORT_FORMAT = "evidence-export/1"
BAGIT_TXT = b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"
TAG_LIMIT = 256 * 1024 * 1024
"""Tag files larger than this are refused rather than read into memory."""
CHUNK = 1024 * 1024
ALGORITHMS = {"sha256": 64, "sha512": 128}
SEALED = ("export-manifest.json", "ledger/checkpoint.json", "continuity/report.json")
"""Files that must carry both seals (item manifests too)."""


class ExportInvalid(Exception):
    """The export does not verify; ``report`` holds every finding, ``failures`` the bad ones."""

    def __init__(self, report: ExportReport):
        self.report = report
        names = sorted({f.member or "(bag)" for f in report.failures})
        super().__init__(f"{len(report.failures)} check(s) failed on: {', '.join(names)}")


@dataclass(frozen=True)
class Finding:
    """One check on one member of the export."""

    check: str
    """What was checked: bag, manifest, tagmanifest, export-manifest, cades, sm2, item, ledger, pdf."""
    member: str
    """Path inside the bag ('' for the bag as a whole)."""
    ok: bool
    detail: str


@dataclass(frozen=True)
class ExportReport:
    """Everything the verifier found about one export."""

    source: str
    bag: str
    """Name of the bag's top directory."""
    files: int
    payload_bytes: int
    findings: tuple[Finding, ...]
    case_number: str | None = None
    export_id: str | None = None
    checkpoint_tree_size: int | None = None
    sealed_at: str | None = None
    """Time-stamp time of the export manifest's CAdES seal."""

    @property
    def ok(self) -> bool:
        return bool(self.findings) and all(f.ok for f in self.findings)

    @property
    def failures(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if not f.ok)


@dataclass
class SealCache:
    """Remembers seal verifications by the digests of data and seal (same trust, same run).

    Only for callers that verify many near-identical exports in one process (tests);
    a verification result is reused only for byte-identical data and seal.
    """

    results: dict[tuple[str, ...], Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- sources


class _Source:
    """The files of a bag, by path relative to its top directory."""

    label: str
    bag: str
    sizes: dict[str, int]
    problems: list[Finding]

    def open(self, name: str) -> BinaryIO:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        return None


def _unsafe(name: str) -> str | None:
    parts = name.split("/")
    if name.startswith("/") or "\\" in name or any(p in ("", ".", "..") for p in parts):
        return "unsafe or non-normalised member name"
    if any(ord(ch) < 32 for ch in name):
        return "control character in member name"
    return None


class _ZipSource(_Source):
    def __init__(self, path: Path):
        self.label = str(path)
        self.zip = zipfile.ZipFile(path)
        self.problems = []
        self.sizes = {}
        self.infos: dict[str, zipfile.ZipInfo] = {}
        tops = {i.filename.split("/", 1)[0] for i in self.zip.infolist()}
        self.bag = sorted(tops)[0] if len(tops) == 1 else ""
        if len(tops) != 1:
            self.problems.append(Finding("bag", "", False, f"the ZIP must hold one top directory, found {sorted(tops)}"))
        for info in self.zip.infolist():
            if info.is_dir():
                continue
            top, _, rel = info.filename.partition("/")
            bad = _unsafe(info.filename) or (None if rel else "member outside the bag directory")
            if top != self.bag and not bad:
                bad = "member outside the bag directory"
            if bad:
                self.problems.append(Finding("bag", info.filename, False, bad))
                continue
            if rel in self.sizes:
                self.problems.append(Finding("bag", rel, False, "member appears twice in the ZIP"))
                continue
            self.sizes[rel] = info.file_size
            self.infos[rel] = info

    def open(self, name: str) -> BinaryIO:
        return self.zip.open(self.infos[name])

    def close(self) -> None:
        self.zip.close()


class _DirSource(_Source):
    def __init__(self, path: Path):
        self.problems = []
        self.sizes = {}
        if not (path / "bagit.txt").exists():
            subdirs = [p for p in path.iterdir() if p.is_dir()]
            others = [p for p in path.iterdir() if not p.is_dir()]
            if len(subdirs) == 1 and not others:
                path = subdirs[0]
        self.root = path
        self.label = str(path)
        self.bag = path.name
        for p in sorted(path.rglob("*")):
            rel = p.relative_to(path).as_posix()
            mode = p.lstat().st_mode
            if stat.S_ISDIR(mode):
                continue
            if not stat.S_ISREG(mode):
                self.problems.append(Finding("bag", rel, False, "not a regular file (symlink or device)"))
                continue
            bad = _unsafe(rel)
            if bad:
                self.problems.append(Finding("bag", rel, False, bad))
                continue
            self.sizes[rel] = p.stat().st_size

    def open(self, name: str) -> BinaryIO:
        return open(self.root / name, "rb")


def _open_source(path: Path) -> _Source:
    if path.is_dir():
        return _DirSource(path)
    return _ZipSource(path)


# ----------------------------------------------------------------------------- checks


@dataclass
class _State:
    source: _Source
    roots: list[Any]
    tsa_roots: list[Any] | None
    sm2_pinned: list[Sm2PublicKey] | None
    cache: SealCache | None
    findings: list[Finding] = field(default_factory=list)
    digests: dict[str, dict[str, str]] = field(default_factory=dict)
    tags: dict[str, bytes] = field(default_factory=dict)
    unreadable: set[str] = field(default_factory=set)

    def add(self, check: str, member: str, ok: bool, detail: str) -> None:
        self.findings.append(Finding(check, member, ok, detail))

    def fail(self, check: str, member: str, detail: str) -> None:
        self.add(check, member, False, detail)


def _hash_all(st: _State) -> None:
    """Read every member once: SHA-256 and SHA-512, and keep tag files in memory."""
    for name in sorted(st.source.sizes):
        h256, h512 = hashlib.sha256(), hashlib.sha512()
        keep = not name.startswith("data/")
        if keep and st.source.sizes[name] > TAG_LIMIT:
            st.fail("bag", name, f"tag file larger than {TAG_LIMIT} bytes")
            keep = False
        buf = bytearray() if keep else None
        size = 0
        try:
            with st.source.open(name) as f:
                while chunk := f.read(CHUNK):
                    h256.update(chunk)
                    h512.update(chunk)
                    size += len(chunk)
                    if buf is not None:
                        buf += chunk
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            st.fail("bag", name, f"cannot be read ({exc})")
            st.unreadable.add(name)
            continue
        st.digests[name] = {"sha256": h256.hexdigest(), "sha512": h512.hexdigest(), "size": str(size)}
        if buf is not None:
            st.tags[name] = bytes(buf)


def _check_bagit(st: _State) -> None:
    got = st.tags.get("bagit.txt")
    if got is None:
        st.fail("bag", "bagit.txt", "missing")
    elif got != BAGIT_TXT:
        st.fail("bag", "bagit.txt", "not the BagIt 1.0 declaration this format writes")
    else:
        st.add("bag", "bagit.txt", True, "BagIt 1.0, UTF-8")
    info = st.tags.get("bag-info.txt")
    if info is None:
        st.fail("bag", "bag-info.txt", "missing")
        return
    try:
        fields = dict(line.split(": ", 1) for line in info.decode("utf-8").splitlines())
    except (UnicodeDecodeError, ValueError):
        st.fail("bag", "bag-info.txt", "not 'Label: value' lines in UTF-8")
        return
    payload = [n for n in st.source.sizes if n.startswith("data/")]
    octets = sum(st.source.sizes[n] for n in payload)
    expected = f"{octets}.{len(payload)}"
    if fields.get("Payload-Oxum") != expected:
        st.fail("bag", "bag-info.txt", f"Payload-Oxum {fields.get('Payload-Oxum')} but the payload is {expected}")
    else:
        st.add("bag", "bag-info.txt", True, f"Payload-Oxum {expected}")


def _parse_manifest(st: _State, name: str, algorithm: str) -> dict[str, str] | None:
    raw = st.tags.get(name)
    if raw is None:
        st.fail("manifest", name, "missing")
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        st.fail("manifest", name, "not UTF-8")
        return None
    if text and not text.endswith("\n"):
        st.fail("manifest", name, "does not end with a newline")
        return None
    pattern = re.compile(rf"([0-9a-f]{{{ALGORITHMS[algorithm]}}})  ([^\r\n]+)")
    entries: dict[str, str] = {}
    for number, line in enumerate(text.split("\n")[:-1], 1):
        m = pattern.fullmatch(line)
        if not m or _unsafe(m.group(2)) or unicodedata.normalize("NFC", m.group(2)) != m.group(2):
            st.fail("manifest", name, f"line {number} is not '<{algorithm} hex>  <path>'")
            return None
        if m.group(2) in entries:
            st.fail("manifest", name, f"line {number}: {m.group(2)} listed twice")
            return None
        entries[m.group(2)] = m.group(1)
    return entries


def _check_manifests(st: _State) -> None:
    files = set(st.source.sizes)
    payload = {n for n in files if n.startswith("data/")}
    tagmanifests = {f"tagmanifest-{a}.txt" for a in ALGORITHMS}
    tags = files - payload - tagmanifests
    for kind, members, prefix in (("manifest", payload, "manifest"), ("tagmanifest", tags, "tagmanifest")):
        for algorithm in ALGORITHMS:
            name = f"{prefix}-{algorithm}.txt"
            listed = _parse_manifest(st, name, algorithm)
            if listed is None:
                continue
            bad = False
            for path, digest in listed.items():
                if kind == "manifest" and not path.startswith("data/"):
                    st.fail(kind, path, f"listed in {name} but outside data/")
                    bad = True
                elif kind == "tagmanifest" and (path.startswith("data/") or path in tagmanifests):
                    st.fail(kind, path, f"listed in {name} but not a tag file")
                    bad = True
                elif path not in files:
                    st.fail(kind, path, f"listed in {name} but missing from the bag")
                    bad = True
                elif path in st.digests and st.digests[path][algorithm] != digest:
                    st.fail(kind, path, f"{algorithm} differs from {name}")
                    bad = True
            for path in sorted(members - set(listed)):
                st.fail(kind, path, f"present in the bag but not listed in {name}")
                bad = True
            if bad:
                st.fail(kind, name, "does not match the bag (the files concerned are named)")
            else:
                st.add(kind, name, True, f"{len(listed)} files, every {algorithm} equal")


def _cades(st: _State, member: str, data: bytes, seal: bytes) -> signing.SealReport | str:
    key = ("cades", hashlib.sha256(data).hexdigest(), hashlib.sha256(seal).hexdigest())
    if st.cache is not None and key in st.cache.results:
        return st.cache.results[key]  # type: ignore[return-value]
    try:
        report: signing.SealReport | str = signing.verify_detached(
            data=data, seal=seal, trust_roots=st.roots, tsa_trust_roots=st.tsa_roots
        )
    except signing.VerificationError as exc:
        report = exc.reason
    if st.cache is not None:
        st.cache.results[key] = report  # type: ignore[assignment]
    return report


def _sm2_keys(st: _State, manifest_ok: bool, files_ok: set[str]) -> tuple[list[Sm2PublicKey], str]:
    if st.sm2_pinned is not None:
        return st.sm2_pinned, "the SM2 key given on the command line"
    raw = st.tags.get("trust/sm2-public.pem")
    if raw is None or not manifest_ok or "trust/sm2-public.pem" not in files_ok:
        return [], "no SM2 key vouched for by a verified export manifest"
    keys = []
    for block in re.findall(rb"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----\n?", raw, re.S):
        try:
            keys.append(load_sm2_public_key(block))
        except signing.SigningError:
            continue
    return keys, "the SM2 keys in trust/sm2-public.pem, vouched for by the CAdES-sealed export manifest"


def _check_seals(st: _State) -> tuple[bool, str | None]:
    """CAdES on every ``.p7s``; return whether the export manifest's seal held, and when it was stamped."""
    manifest_ok, sealed_at = False, None
    for name in sorted(n for n in st.tags if n.endswith(".p7s")):
        target = name[: -len(".p7s")]
        if target not in st.tags:
            st.fail("cades", name, f"seals {target}, which is missing or unreadable")
            continue
        report = _cades(st, name, st.tags[target], st.tags[name])
        if isinstance(report, str):
            st.fail("cades", name, f"seal over {target} does not verify: {report}")
            continue
        st.add("cades", name, True, f"{report.signer_subject}; time-stamped {report.timestamp_time:%Y-%m-%d %H:%M:%S} "
                                    f"by {report.tsa_subject}")
        if target == "export-manifest.json":
            manifest_ok, sealed_at = True, report.timestamp_time.isoformat()
    required = [*SEALED, *sorted(n for n in st.tags if re.fullmatch(r"items/[^/]+/manifest\.json", n))]
    for target in required:
        for suffix in (".p7s", ".sm2.json"):
            if target in st.tags and target + suffix not in st.source.sizes:
                st.fail("cades" if suffix == ".p7s" else "sm2", target + suffix, f"the seal of {target} is missing")
        if target not in st.source.sizes and target in SEALED:
            st.fail("bag", target, "missing")
    return manifest_ok, sealed_at


def _check_sm2(st: _State, keys: list[Sm2PublicKey], source: str) -> None:
    for name in sorted(n for n in st.tags if n.endswith(".sm2.json")):
        target = name[: -len(".sm2.json")]
        if target not in st.tags:
            st.fail("sm2", name, f"seals {target}, which is missing or unreadable")
            continue
        try:
            record = json.loads(st.tags[name])
            embedded = load_sm2_public_key(str(record.get("public_key", "")).encode("ascii"))
        except (ValueError, AttributeError, UnicodeEncodeError, signing.SigningError):
            st.fail("sm2", name, "not an SM2 seal record")
            continue
        if embedded not in keys:
            st.fail("sm2", name, f"made with an SM2 key that is not trusted ({source})")
            continue
        try:
            signing.verify_sm2(data=st.tags[target], seal=record, expected_public_key=embedded)
        except signing.VerificationError as exc:
            st.fail("sm2", name, f"seal over {target} does not verify: {exc.reason}")
            continue
        st.add("sm2", name, True, f"SM2/SM3 key {embedded.fingerprint()[:16]}")


def _json(st: _State, name: str, check: str) -> Any:
    raw = st.tags.get(name)
    if raw is None:
        st.fail(check, name, "missing")
        return None
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        st.fail(check, name, f"not valid JSON ({exc})")
        return None


def _check_export_manifest(st: _State, manifest: Any) -> set[str]:
    """Every file (but the manifest, its seals and the tag manifests) listed with its hash."""
    name = "export-manifest.json"
    good: set[str] = set()
    if not isinstance(manifest, dict) or manifest.get("format") != EXPORT_FORMAT or \
            not isinstance(manifest.get("files"), list):
        st.fail("export-manifest", name, f"not an {EXPORT_FORMAT} manifest")
        return good
    if manifest.get("bag") != st.source.bag:
        st.fail("export-manifest", name, f"names bag directory {manifest.get('bag')!r}, the export has {st.source.bag!r}")
    excluded = {name, name + ".p7s", name + ".sm2.json", *(f"tagmanifest-{a}.txt" for a in ALGORITHMS)}
    listed: dict[str, dict[str, Any]] = {}
    for entry in manifest["files"]:
        path = entry.get("path") if isinstance(entry, dict) else None
        if not isinstance(path, str) or path in listed:
            st.fail("export-manifest", name, f"bad or repeated file entry {entry!r}")
            continue
        listed[path] = entry
    bad = False
    for path, entry in sorted(listed.items()):
        digest = st.digests.get(path)
        if path not in st.source.sizes:
            st.fail("export-manifest", path, f"listed in {name} but missing from the bag")
            bad = True
        elif digest is None:
            bad = True  # unreadable; already reported
        elif digest["sha256"] != entry.get("sha256") or digest["size"] != str(entry.get("size")):
            st.fail("export-manifest", path, f"SHA-256 or size differs from the sealed {name}")
            bad = True
        else:
            good.add(path)
    for path in sorted(set(st.source.sizes) - excluded - set(listed)):
        st.fail("export-manifest", path, f"present in the bag but not in the sealed {name}")
        bad = True
    if not bad:
        st.add("export-manifest", name, True, f"{len(listed)} files, every SHA-256 and size equal")
    return good


def _check_items(st: _State, manifest: dict[str, Any]) -> list[dict[str, Any]]:
    items = manifest.get("items") if isinstance(manifest.get("items"), list) else []
    for item in items:
        item_id, path = item.get("id"), item.get("path")
        mpath = f"items/{item_id}/manifest.json"
        sealed = _json(st, mpath, "item")
        if sealed is None:
            continue
        digest = st.digests.get(path or "")
        if digest is None:
            st.fail("item", path or mpath, "the original named by the export manifest is missing")
            continue
        problems = []
        if sealed.get("item_id") != item_id:
            problems.append(f"states item {sealed.get('item_id')}")
        if sealed.get("sha256") != digest["sha256"]:
            problems.append(f"states sha256 {sealed.get('sha256')}, {path} hashes to {digest['sha256']}")
        if str(sealed.get("size")) != digest["size"]:
            problems.append(f"states size {sealed.get('size')}, {path} is {digest['size']} bytes")
        if problems:
            st.fail("item", path, f"{mpath} " + "; ".join(problems))
        else:
            st.add("item", path, True, f"equals its sealed manifest (sha256 {digest['sha256'][:16]}…)")
    return items


def _check_ledger(st: _State, manifest: dict[str, Any], items: list[dict[str, Any]]) -> int | None:
    statement = _json(st, "ledger/checkpoint.json", "ledger")
    if not isinstance(statement, dict):
        return None
    try:
        tree_size = int(statement["tree_size"])
        root = bytes.fromhex(statement["root_hash"])
    except (KeyError, TypeError, ValueError):
        st.fail("ledger", "ledger/checkpoint.json", "no tree_size and root_hash")
        return None
    stated = manifest.get("checkpoint") or {}
    if stated.get("tree_size") != tree_size or stated.get("root_hash") != statement["root_hash"]:
        st.fail("ledger", "ledger/checkpoint.json", "differs from the checkpoint the export manifest names")
    raw = st.tags.get("ledger/entries.jsonl")
    if raw is None:
        st.fail("ledger", "ledger/entries.jsonl", "missing")
        return tree_size
    member = "ledger/entries.jsonl"
    case_id = (manifest.get("case") or {}).get("id")
    received: dict[str, str] = {}
    previous: tuple[int, str] | None = None
    count, bad = 0, False
    try:
        lines = raw.decode("utf-8").split("\n")
    except UnicodeDecodeError:
        st.fail("ledger", member, "not UTF-8")
        return tree_size
    if lines[-1] != "":
        st.fail("ledger", member, "does not end with a newline")
        return tree_size
    for number, line in enumerate(lines[:-1], 1):
        where = f"line {number}"
        try:
            record = json.loads(line)
            fields, proof = record["entry"], record["proof"]
            seq = int(fields["seq"])
            leaf = merkle.leaf_hash(entry_bytes(fields))
            if compute_entry_hash(fields) != record["entry_hash"]:
                raise ValueError(f"entry {seq} does not recompute to its hash")
            if fields["case"] != case_id:
                raise ValueError(f"entry {seq} belongs to another case")
            if previous is not None and seq <= previous[0]:
                raise ValueError(f"entry {seq} out of order")
            if previous is not None and seq == previous[0] + 1 and fields["prev"] != previous[1]:
                raise ValueError(f"entry {seq} does not chain to entry {previous[0]}")
            if proof["tree_size"] != tree_size or proof["leaf_index"] != seq - 1:
                raise ValueError(f"entry {seq}: proof is not against the sealed checkpoint")
            merkle.verify_inclusion(
                leaf_hash=leaf, index=seq - 1, tree_size=tree_size,
                proof=[bytes.fromhex(p) for p in proof["path"]], root=root,
            )
        except merkle.ProofError as exc:
            st.fail("ledger", member, f"{where}: inclusion proof fails ({exc})")
            bad = True
            continue
        except (ValueError, KeyError, TypeError) as exc:
            st.fail("ledger", member, f"{where}: {exc}")
            bad = True
            continue
        previous = (seq, record["entry_hash"])
        count += 1
        if fields["action"] == "evidence_received" and fields["item"]:
            try:
                received[fields["item"]] = json.loads(fields["details"]).get("sha256")
            except ValueError:
                pass
    for item in items:
        if received.get(item.get("id")) != item.get("sha256"):
            st.fail("ledger", member, f"no custody entry records the receipt of item {item.get('id')} "
                                      f"with sha256 {item.get('sha256')}")
            bad = True
    if not bad:
        st.add("ledger", member, True, f"{count} custody entries, each proven in the sealed tree of {tree_size}")
    return tree_size


def _check_pdf(st: _State) -> None:
    name = "certificate.pdf"
    data = st.tags.get(name)
    if data is None:
        if name not in st.unreadable:
            st.fail("pdf", name, "missing")
        return
    key = ("pdf", hashlib.sha256(data).hexdigest())
    cached = st.cache.results.get(key, False) if st.cache is not None else False
    if cached is False:
        try:
            report = signing.verify_pdf(data=data, trust_roots=st.roots, tsa_trust_roots=st.tsa_roots)
            cached = f"PAdES-B-T by {report.signer_subject}, time-stamped {report.timestamp_time:%Y-%m-%d %H:%M:%S}"
        except signing.VerificationError as exc:
            cached = "FAIL:" + exc.reason
        if st.cache is not None:
            st.cache.results[key] = cached
    ok = not cached.startswith("FAIL:")
    st.add("pdf", name, ok, cached.removeprefix("FAIL:"))


def _load_roots(trust: Iterable[Path | str]) -> list[Any]:
    roots: list[Any] = []
    for path in trust:
        roots.extend(load_certificates(Path(path)))
    return roots


def check_export(
    path: Path | str, *, trust: Iterable[Path | str], tsa_trust: Iterable[Path | str] | None = None,
    sm2_keys: Iterable[Path | str] | None = None, cache: SealCache | None = None,
) -> ExportReport:
    """Check an export (a .zip or its unpacked directory) and return every finding.

    ``trust`` are PEM files of the roots the court trusts for e-seals (and, unless
    ``tsa_trust`` is given, for time-stamps). ``sm2_keys`` pins the SM2 public keys;
    without it, the keys vouched for by the CAdES-sealed export manifest are used.
    """
    path = Path(path)
    roots = _load_roots(trust)
    if not roots:
        raise ValueError("no trust roots given: nothing can be trusted")
    tsa_roots = _load_roots(tsa_trust) if tsa_trust else None
    pinned = [load_sm2_public_key(Path(p).read_bytes()) for p in sm2_keys] if sm2_keys else None
    source = _open_source(path)
    try:
        st = _State(source=source, roots=roots, tsa_roots=tsa_roots, sm2_pinned=pinned, cache=cache)
        st.findings.extend(source.problems)
        _hash_all(st)
        _check_bagit(st)
        _check_manifests(st)
        manifest_ok, sealed_at = _check_seals(st)
        manifest = _json(st, "export-manifest.json", "export-manifest")
        files_ok = _check_export_manifest(st, manifest) if manifest is not None else set()
        manifest = manifest if isinstance(manifest, dict) else {}
        keys, key_source = _sm2_keys(st, manifest_ok, files_ok)
        _check_sm2(st, keys, key_source)
        items = _check_items(st, manifest)
        tree_size = _check_ledger(st, manifest, items)
        _check_pdf(st)
        payload = sum(v for k, v in source.sizes.items() if k.startswith("data/"))
        return ExportReport(
            source=source.label, bag=source.bag, files=len(source.sizes), payload_bytes=payload,
            findings=tuple(st.findings), case_number=(manifest.get("case") or {}).get("number"),
            export_id=manifest.get("export"), checkpoint_tree_size=tree_size, sealed_at=sealed_at,
        )
    finally:
        source.close()


def verify_export(path: Path | str, **kwargs: Any) -> ExportReport:
    """Like :func:`check_export`, but raise :class:`ExportInvalid` unless every check holds."""
    report = check_export(path, **kwargs)
    if not report.ok:
        raise ExportInvalid(report)
    return report


def summarise(report: ExportReport) -> Iterator[tuple[str, int, int]]:
    """(check, passed, failed) per kind of check, in a fixed order."""
    order = ["bag", "manifest", "tagmanifest", "export-manifest", "cades", "sm2", "item", "ledger", "pdf"]
    for check in order:
        passed = sum(1 for f in report.findings if f.check == check and f.ok)
        failed = sum(1 for f in report.findings if f.check == check and not f.ok)
        if passed or failed:
            yield check, passed, failed


__all__ = [
    "ExportInvalid", "ExportReport", "Finding", "SealCache", "check_export", "summarise",
    "verify_export",
]
