"""Checks of the records the export carries: the sealed export manifest lists every file
with its hash, each item manifest (sealed at ingest) states its original's hash and size,
and each custody entry recomputes to its hash, chains to the one before and has an RFC
9162 inclusion proof against the sealed checkpoint."""

from __future__ import annotations

import json
from typing import Any

from . import merkle
from .layout import (
    ALGORITHMS, CADES_SUFFIX, CHECKPOINT, EXPORT_FORMAT, EXPORT_MANIFEST, LEDGER_ENTRIES, SM2_SUFFIX, item_manifest,
    tag_manifest,
)
from .ledger_format import compute_entry_hash, entry_bytes
from .run import Run


def read_json(run: Run, name: str, check: str) -> Any:
    """Member ``name`` parsed as JSON, or None after recording why not (under ``check``)."""
    raw = run.tags.get(name)
    if raw is None:
        run.fail(check, name, "missing")
        return None
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        run.fail(check, name, f"not valid JSON ({exc})")
        return None


def check_export_manifest(run: Run, manifest: Any) -> set[str]:
    """Every file (but the manifest, its seals and the tag manifests) listed with its hash."""
    name = EXPORT_MANIFEST
    good: set[str] = set()
    if not isinstance(manifest, dict) or manifest.get("format") != EXPORT_FORMAT or \
            not isinstance(manifest.get("files"), list):
        run.fail("export-manifest", name, f"not an {EXPORT_FORMAT} manifest")
        return good
    if manifest.get("bag") != run.source.bag:
        # Court clerks rename folders; the directory's name is not content (every file is
        # checked under its path inside the bag), so a rename is said, not failed.
        run.warn("export-manifest", name, f"names bag directory {manifest.get('bag')!r}, the export has "
                                          f"{run.source.bag!r} (renamed; the files are checked as they are)")
    excluded = {name, name + CADES_SUFFIX, name + SM2_SUFFIX, *(tag_manifest(a) for a in ALGORITHMS)}
    listed: dict[str, dict[str, Any]] = {}
    for entry in manifest["files"]:
        path = entry.get("path") if isinstance(entry, dict) else None
        if not isinstance(path, str) or path in listed:
            run.fail("export-manifest", name, f"bad or repeated file entry {entry!r}")
            continue
        listed[path] = entry
    bad = False
    for path, entry in sorted(listed.items()):
        digest = run.digests.get(path)
        if path not in run.source.sizes:
            run.fail("export-manifest", path, f"listed in {name} but missing from the bag")
            bad = True
        elif digest is None:
            bad = True  # unreadable; already reported
        elif digest["sha256"] != entry.get("sha256") or digest["size"] != str(entry.get("size")):
            run.fail("export-manifest", path, f"SHA-256 or size differs from the sealed {name}")
            bad = True
        else:
            good.add(path)
    for path in sorted(set(run.source.sizes) - excluded - set(listed)):
        run.fail("export-manifest", path, f"present in the bag but not in the sealed {name}")
        bad = True
    if not bad:
        run.add("export-manifest", name, True, f"{len(listed)} files, every SHA-256 and size equal")
    return good


def check_items(run: Run, manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Each item's sealed manifest states the SHA-256 and size of its original; return the items."""
    items = manifest.get("items") if isinstance(manifest.get("items"), list) else []
    for item in items:
        item_id, path = item.get("id"), item.get("path")
        mpath = item_manifest(item_id)
        sealed = read_json(run, mpath, "item")
        if sealed is None:
            continue
        digest = run.digests.get(path or "")
        if digest is None:
            run.fail("item", path or mpath, "the original named by the export manifest is missing")
            continue
        problems = []
        if sealed.get("item_id") != item_id:
            problems.append(f"states item {sealed.get('item_id')}")
        if sealed.get("sha256") != digest["sha256"]:
            problems.append(f"states sha256 {sealed.get('sha256')}, {path} hashes to {digest['sha256']}")
        if str(sealed.get("size")) != digest["size"]:
            problems.append(f"states size {sealed.get('size')}, {path} is {digest['size']} bytes")
        if problems:
            run.fail("item", path, f"{mpath} " + "; ".join(problems))
        else:
            run.add("item", path, True, f"equals its sealed manifest (sha256 {digest['sha256'][:16]}…)")
    return items


def check_proven_entry(
    record: Any, *, case_id: Any, previous: tuple[int, str] | None, tree_size: int, root: bytes,
) -> dict[str, Any]:
    """Check one ``{"entry", "entry_hash", "proof"}`` record against the sealed tree; return its fields.

    The entry recomputes to its hash, belongs to ``case_id``, follows ``previous`` (seq and
    hash of the entry before it in the list: in order, and chained when consecutive), and
    its RFC 9162 inclusion proof leads to ``root``. Raises ValueError, KeyError or
    TypeError naming the entry, or :class:`merkle.ProofError`.
    """
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
    return fields


def check_ledger(run: Run, manifest: dict[str, Any], items: list[dict[str, Any]]) -> int | None:
    """Each custody entry recomputes, chains and is proven in the sealed checkpoint; return its tree size.

    Every item's ``evidence_received`` entry must state the item's SHA-256.
    """
    statement = read_json(run, CHECKPOINT, "ledger")
    if not isinstance(statement, dict):
        return None
    try:
        tree_size = int(statement["tree_size"])
        root = bytes.fromhex(statement["root_hash"])
    except (KeyError, TypeError, ValueError):
        run.fail("ledger", CHECKPOINT, "no tree_size and root_hash")
        return None
    stated = manifest.get("checkpoint") or {}
    if stated.get("tree_size") != tree_size or stated.get("root_hash") != statement["root_hash"]:
        run.fail("ledger", CHECKPOINT, "differs from the checkpoint the export manifest names")
    member = LEDGER_ENTRIES
    raw = run.tags.get(member)
    if raw is None:
        run.fail("ledger", member, "missing")
        return tree_size
    case_id = (manifest.get("case") or {}).get("id")
    received: dict[str, str] = {}
    previous: tuple[int, str] | None = None
    count, bad = 0, False
    try:
        lines = raw.decode("utf-8").split("\n")
    except UnicodeDecodeError:
        run.fail("ledger", member, "not UTF-8")
        return tree_size
    if lines[-1] != "":
        run.fail("ledger", member, "does not end with a newline")
        return tree_size
    for number, line in enumerate(lines[:-1], 1):
        where = f"line {number}"
        try:
            record = json.loads(line)
            fields = check_proven_entry(record, case_id=case_id, previous=previous, tree_size=tree_size, root=root)
        except merkle.ProofError as exc:
            run.fail("ledger", member, f"{where}: inclusion proof fails ({exc})")
            bad = True
            continue
        except (ValueError, KeyError, TypeError) as exc:
            run.fail("ledger", member, f"{where}: {exc}")
            bad = True
            continue
        previous = (int(fields["seq"]), record["entry_hash"])
        count += 1
        if fields["action"] == "evidence_received" and fields["item"]:
            try:
                received[fields["item"]] = json.loads(fields["details"]).get("sha256")
            except ValueError:
                pass
    for item in items:
        if received.get(item.get("id")) != item.get("sha256"):
            run.fail("ledger", member, f"no custody entry records the receipt of item {item.get('id')} "
                                       f"with sha256 {item.get('sha256')}")
            bad = True
    if not bad:
        run.add("ledger", member, True, f"{count} custody entries, each proven in the sealed tree of {tree_size}")
    return tree_size
