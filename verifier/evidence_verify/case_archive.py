"""Checking a sealed case archive record (written when a case closes), offline.

``evidence-verify RECORD --trust ROOT.pem``, where RECORD is a directory or ZIP holding
``record.json`` with ``record.json.p7s`` (CAdES-B-T) and ``record.json.sm2.json`` beside
it, or the path of ``record.json`` itself. It checks, naming what fails:

* ``cades``: the record's detached CAdES-B-T seal (signature, e-seal chain to ``--trust``,
  RFC 3161 time-stamp); ``sm2``: its SM2/SM3 seal, with the SM2 keys the CAdES-sealed
  record vouches for (or those given with ``--sm2-key``);
* ``record``: the record is UTF-8 JSON of the case-archive format (a broken one is named
  by the byte where it breaks);
* ``review``: every legal review's own sealed record (its CAdES and SM2 seals) and that the
  record states what the review's summary says;
* ``ledger``: the sealed checkpoint's statement and seals; every custody entry of the case
  recomputes to its hash, chains, and is proven by RFC 9162 inclusion in the sealed tree;
  each item's ``evidence_received`` and each review's ``legal_review_recorded`` entry
  states the item's SHA-256 / the review record's SHA-256.

A record whose bytes were changed fails its seals; the checks inside it then say which
part (review, custody entry, item) no longer holds, where one does.
"""

from __future__ import annotations

import base64
import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import merkle
from .cades import verify_detached
from .errors import ExportUnreadable, VerificationError
from .source import NAME_NOT_UTF8, open_zip
from .ledger_format import canonical_json
from .layout import CADES_SUFFIX, CASE_ARCHIVE_FORMAT, CASE_ARCHIVE_RECORD, LEGAL_REVIEW_FORMAT, SM2_SUFFIX
from .records import check_proven_entry
from .certs import load_roots
from .report import Finding, Findings
from .seals import check_sm2_seal, pem_sm2_keys
from .sm2 import load_sm2_public_key

__all__ = ["CaseArchiveReport", "check_case_archive", "is_case_archive"]

RECORD, SEAL, SM2 = CASE_ARCHIVE_RECORD, CASE_ARCHIVE_RECORD + CADES_SUFFIX, CASE_ARCHIVE_RECORD + SM2_SUFFIX
CHECKS = ("record", "cades", "sm2", "review", "ledger", "item")


@dataclass(frozen=True)
class CaseArchiveReport(Findings):
    """Everything the verifier found about one case archive record."""

    source: str
    findings: tuple[Finding, ...]
    case_number: str | None = None
    archive_id: str | None = None
    sealed_at: str | None = None
    checkpoint_tree_size: int | None = None


def _zip_members(path: Path) -> dict[str, bytes]:
    with open_zip(path) as z:
        names = [n for n in z.namelist() if n == RECORD or n.endswith("/" + RECORD)]
        if len(names) != 1:
            raise ExportUnreadable(f"{path} holds {len(names)} {RECORD} files; a case archive ZIP holds one")
        prefix = names[0][: -len(RECORD)]
        try:
            return {n: z.read(prefix + n) for n in (RECORD, SEAL, SM2) if prefix + n in z.namelist()}
        except UnicodeDecodeError as exc:  # a member's own header names it in bytes that are not UTF-8
            raise ExportUnreadable(f"{path}: {NAME_NOT_UTF8}") from exc


def is_case_archive(path: Path | str) -> bool:
    """True when ``path`` looks like a case archive record (not a certified export)."""
    path = Path(path)
    if path.is_dir():
        return (path / RECORD).is_file() and not (path / "bagit.txt").exists()
    if path.name.endswith(".json"):
        return True
    if zipfile.is_zipfile(path):
        with open_zip(path) as z:
            names = z.namelist()
        return any(n == RECORD or n.endswith("/" + RECORD) for n in names) and \
            not any(n == "bagit.txt" or n.endswith("/bagit.txt") for n in names)
    return False


def _read(path: Path) -> dict[str, bytes]:
    if path.is_dir():
        folder, files = path, {}
    elif path.name.endswith(".json"):
        folder, files = path.parent, {}
        if path.name != RECORD:  # a record saved under another name: its seals beside it
            return {RECORD: path.read_bytes(), **{
                k: (path.parent / (path.name + suffix)).read_bytes()
                for k, suffix in ((SEAL, CADES_SUFFIX), (SM2, SM2_SUFFIX)) if (path.parent / (path.name + suffix)).is_file()}}
    else:
        return _zip_members(path)
    for name in (RECORD, SEAL, SM2):
        if (folder / name).is_file():
            files[name] = (folder / name).read_bytes()
    return files


class _Run:
    def __init__(self, roots: list[Any], tsa_roots: list[Any] | None) -> None:
        self.roots, self.tsa_roots = roots, tsa_roots
        self.findings: list[Finding] = []

    def add(self, check: str, member: str, ok: bool, detail: str) -> None:
        self.findings.append(Finding(check, member, ok, detail))

    def cades(self, data: bytes, seal: bytes) -> Any:
        """The seal's report, or the reason it does not verify (a string)."""
        try:
            return verify_detached(data=data, seal=seal, trust_roots=self.roots, tsa_trust_roots=self.tsa_roots)
        except VerificationError as exc:
            return exc.reason


def _parse(run: _Run, raw: bytes) -> dict[str, Any] | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        run.add("record", RECORD, False, f"not UTF-8: byte {exc.start} (0x{raw[exc.start]:02x}) is changed or broken")
        return None
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        offset = len(text[: exc.pos].encode("utf-8"))
        run.add("record", RECORD, False, f"not valid JSON at byte {offset} (line {exc.lineno}, column {exc.colno}): "
                                         f"{exc.msg}")
        return None
    if not isinstance(record, dict) or record.get("format") != CASE_ARCHIVE_FORMAT:
        run.add("record", RECORD, False, f"not a {CASE_ARCHIVE_FORMAT} record")
        return None
    canonical = canonical_json(record).encode("utf-8")
    if canonical != raw:
        at = next((i for i, (a, b) in enumerate(zip(canonical, raw)) if a != b), min(len(canonical), len(raw)))
        run.add("record", RECORD, False, f"not in canonical form from byte {at}: it was rewritten after sealing")
        return record
    run.add("record", RECORD, True, f"{CASE_ARCHIVE_FORMAT}, case {(record.get('case') or {}).get('number')}")
    return record


def _check_reviews(run: _Run, record: dict[str, Any], keys: list[Any], source: str) -> dict[str, str]:
    """Each review's sealed record verifies and says what its summary says; return id -> record SHA-256."""
    hashes: dict[str, str] = {}
    for n, review in enumerate(record.get("reviews") or []):
        member = f"{RECORD}: reviews[{n}] ({review.get('id') if isinstance(review, dict) else '?'})"
        try:
            data = review["record"].encode("utf-8")
            seals = review["seals"]
            sealed = json.loads(data)
            cades = base64.b64decode(seals["cades"], validate=True)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            run.add("review", member, False, f"not a sealed review ({exc})")
            continue
        problems = []
        report = run.cades(data, cades)
        if isinstance(report, str):
            problems.append(f"its CAdES seal does not verify: {report}")
        ok, detail = check_sm2_seal(data, seals.get("sm2"), keys, source=source, target="the review record")
        if not ok:
            problems.append(f"its SM2 seal: {detail}")
        if sealed.get("format") != LEGAL_REVIEW_FORMAT:
            problems.append(f"its record is not {LEGAL_REVIEW_FORMAT}")
        for field in ("id", "checkpoint", "decision", "opinion", "aspects", "reviewer_id"):
            if sealed.get(field) != review.get(field):
                problems.append(f"{field} differs from the sealed review record")
        if sealed.get("case_id") != (record.get("case") or {}).get("id"):
            problems.append("the sealed review is of another case")
        if hashlib.sha256(data).hexdigest() != review.get("record_sha256"):
            problems.append("record_sha256 differs from the record's hash")
        if problems:
            run.add("review", member, False, "; ".join(problems))
            continue
        hashes[str(review.get("id"))] = hashlib.sha256(data).hexdigest()
        stamped = report.timestamp_time.isoformat(timespec="seconds")
        run.add("review", member, True, f"{review.get('checkpoint')} review, {review.get('decision')}, sealed {stamped}")
    return hashes


def _check_checkpoint(run: _Run, ledger: dict[str, Any], keys: list[Any], source: str) -> tuple[int, bytes] | None:
    member = f"{RECORD}: ledger.checkpoint"
    try:
        cp = ledger["checkpoint"]
        statement_text = cp["statement"]
        statement = json.loads(statement_text)
        tree_size, root = int(statement["tree_size"]), bytes.fromhex(statement["root_hash"])
        cades = base64.b64decode(cp["cades"], validate=True)
    except (KeyError, TypeError, ValueError) as exc:
        run.add("ledger", member, False, f"no sealed checkpoint ({exc})")
        return None
    problems = []
    report = run.cades(statement_text.encode("utf-8"), cades)
    if isinstance(report, str):
        problems.append(f"its CAdES seal does not verify: {report}")
    ok, detail = check_sm2_seal(statement_text.encode("utf-8"), cp.get("sm2"), keys, source=source,
                                target="the checkpoint statement")
    if not ok:
        problems.append(f"its SM2 seal: {detail}")
    if cp.get("tree_size") != tree_size or cp.get("root_hash") != statement["root_hash"]:
        problems.append("tree size or root differs from the sealed statement")
    if problems:  # still the root the entries are proven against, so a changed entry is named too
        run.add("ledger", member, False, "; ".join(problems))
    else:
        run.add("ledger", member, True, f"tree of {tree_size} entries, root {statement['root_hash'][:16]}…, sealed")
    return tree_size, root


def _check_ledger(run: _Run, record: dict[str, Any], keys: list[Any], source: str, reviews: dict[str, str]) -> int | None:
    ledger = record.get("ledger") if isinstance(record.get("ledger"), dict) else {}
    head = _check_checkpoint(run, ledger, keys, source)
    if head is None:
        return None
    tree_size, root = head
    case_id = (record.get("case") or {}).get("id")
    previous: tuple[int, str] | None = None
    received: dict[str, str] = {}
    reviewed: dict[str, str] = {}
    bad = False
    entries = ledger.get("entries") if isinstance(ledger.get("entries"), list) else []
    for n, entry in enumerate(entries):
        seq = (entry.get("entry") or {}).get("seq") if isinstance(entry, dict) else None
        member = f"{RECORD}: ledger.entries[{n}] (seq {seq})"
        try:
            fields = check_proven_entry(entry, case_id=case_id, previous=previous, tree_size=tree_size, root=root)
        except merkle.ProofError as exc:
            run.add("ledger", member, False, f"inclusion proof fails ({exc})")
            bad = True
            continue
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            run.add("ledger", member, False, str(exc))
            bad = True
            continue
        previous = (int(fields["seq"]), entry["entry_hash"])
        try:
            details = json.loads(fields["details"])
        except ValueError:
            details = {}
        if fields["action"] == "evidence_received" and fields.get("item"):
            received[fields["item"]] = details.get("sha256")
        if fields["action"] == "legal_review_recorded":
            reviewed[str(details.get("review"))] = details.get("record_sha256")
    for n, item in enumerate(record.get("items") or []):
        if received.get(item.get("id")) != item.get("sha256"):
            run.add("item", f"{RECORD}: items[{n}] ({item.get('id')})", False,
                    f"no proven custody entry records its receipt with sha256 {item.get('sha256')}")
            bad = True
        else:
            run.add("item", f"{RECORD}: items[{n}] ({item.get('id')})", True,
                    f"sha256 {str(item.get('sha256'))[:16]}… as received")
    for review_id, sha in reviews.items():
        if reviewed.get(review_id) != sha:
            run.add("ledger", f"{RECORD}: review {review_id}", False,
                    "no proven custody entry records this review with its record's SHA-256")
            bad = True
    if not bad:
        run.add("ledger", f"{RECORD}: ledger.entries", True,
                f"{len(entries)} custody entries, each proven in the sealed tree of {tree_size}")
    return tree_size


def check_case_archive(
    path: Path | str, *, trust: Any, tsa_trust: Any = None, sm2_keys: Any = None,
) -> CaseArchiveReport:
    """Check a case archive record (a directory, a ZIP, or ``record.json``) and return every finding.

    Raises :class:`~.errors.SigningError` when the trust files cannot be read or the source
    holds no record at all, or :class:`OSError`.
    """
    path = Path(path)
    roots = load_roots(trust)
    if not roots:
        raise ExportUnreadable("no trust roots given: nothing can be trusted")
    run = _Run(roots, load_roots(tsa_trust) if tsa_trust else None)
    files = _read(path)
    if RECORD not in files:
        raise ExportUnreadable(f"{path} holds no {RECORD}")
    raw = files[RECORD]
    sealed_at = None
    seal_ok = False
    if SEAL not in files:
        run.add("cades", SEAL, False, f"the CAdES seal of {RECORD} is missing")
    else:
        report = run.cades(raw, files[SEAL])
        if isinstance(report, str):
            changed = "message digest" in report.lower() or "digest" in report.lower()
            run.add("cades", RECORD if changed else SEAL, False,
                    f"{RECORD} is not what was sealed ({report})" if changed else f"seal over {RECORD} does not verify: {report}")
        else:
            seal_ok, sealed_at = True, report.timestamp_time.isoformat()
            stamped = report.timestamp_time.isoformat(timespec="seconds")
            run.add("cades", SEAL, True, f"{report.signer_subject}; time-stamped {stamped} by {report.tsa_subject}")
    record = _parse(run, raw)
    if sm2_keys:
        keys, source = [load_sm2_public_key(Path(p).read_bytes()) for p in sm2_keys], "the SM2 key given"
    elif record is not None:
        # Only a record whose CAdES seal holds vouches for its keys; a record that fails it fails
        # the whole check anyway, and its keys then serve only to say what else was changed.
        keys = pem_sm2_keys(str((record.get("trust") or {}).get("sm2_public_keys", "")).encode("ascii", "replace"))
        source = ("the SM2 keys the CAdES-sealed record vouches for" if seal_ok
                  else "the SM2 keys the record names (its own seal failed)")
    else:
        keys, source = [], "no SM2 key vouched for by a verified record"
    if SM2 not in files:
        run.add("sm2", SM2, False, f"the SM2 seal of {RECORD} is missing")
    else:
        try:
            sm2_record = json.loads(files[SM2])
        except ValueError:
            sm2_record = None
        ok, detail = check_sm2_seal(raw, sm2_record, keys, source=source, target=RECORD)
        run.add("sm2", SM2, ok, detail)
    tree_size = None
    if record is not None:
        reviews = _check_reviews(run, record, keys, source)
        tree_size = _check_ledger(run, record, keys, source, reviews)
    return CaseArchiveReport(
        source=str(path), findings=tuple(run.findings),
        case_number=((record or {}).get("case") or {}).get("number"), archive_id=(record or {}).get("archive_id"),
        sealed_at=sealed_at, checkpoint_tree_size=tree_size,
    )
