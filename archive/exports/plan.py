"""What goes into a certified export, gathered from the database before the bytes flow."""

from __future__ import annotations

import mimetypes
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from archive.continuity.report import build_report, report_document
from archive.custody import ledger
from archive.errors import VerificationFailed
from archive.exports.bagzip import safe_member_name
from archive.exports.errors import ExportFailed, ExportWaiting
from archive.identity.users import user_name
from archive.models import Case, Checkpoint, EvidenceItem, ExportRequest, LedgerEntry, utcnow
from archive.custody.checkpoints import checkpoint_covering, proven_case_entries
from archive.seals.items import SEAL_ROLES
from archive.seals.registry import published_chain_pem, recorded_sm2_keys, sm2_keys_pem
from archive.storage import ObjectStore
from archive.wording import Sentences

NOT_DERIVED_COPIES = (*SEAL_ROLES, "member")
"""Roles never exported under data/derived/: seals go to items/, bundle members are items themselves."""


def export_items(session: Session, export: ExportRequest) -> list[EvidenceItem]:
    """The items an export holds: the selection (with the members of selected bundles) or all."""
    query = select(EvidenceItem).where(EvidenceItem.case_id == export.case_id).order_by(
        EvidenceItem.received_at, EvidenceItem.id
    )
    items = list(session.execute(query).scalars().unique())
    if export.items is None:
        return items
    wanted = set(export.items)
    grew = True
    while grew:  # members of a selected bundle come with it, at any depth
        extra = {i.id for i in items if i.parent_id in wanted and i.id not in wanted}
        wanted |= extra
        grew = bool(extra)
    return [i for i in items if i.id in wanted]


_ITEM_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
"""An id as :func:`archive.models.new_id` writes it, wherever an entry's details hold one (an
``items`` list, a ``record_item``, a bag member's path)."""


def disclosed_entries(entries: list[dict[str, Any]], *, withheld: set[str]) -> list[dict[str, Any]]:
    """The proven custody entries (:func:`proven_case_entries`) an export of a selection
    carries: those of the selected items and the case's own, but none that is about, or names,
    an item ``withheld`` from it (its receipt, reads, seals, or an earlier export listing it
    would give a court the name and hash of evidence not disclosed to it).

    Each entry keeps its own inclusion proof against the checkpoint's sealed root, so the
    entries left out take nothing from those kept: the offline verifier proves each, checks
    their order, and their chain only where two are consecutive in the ledger."""
    if not withheld:
        return entries
    return [e for e in entries if e["entry"]["item"] not in withheld
            and withheld.isdisjoint(_ITEM_ID.findall(e["entry"]["details"] or ""))]


def _checkpoint_covering(session: Session, *, sealer: Any, store: ObjectStore, size: int) -> Checkpoint:
    """A sealed checkpoint whose tree covers the first ``size`` entries (sealed now if needed)."""
    checkpoint = checkpoint_covering(session, sealer, size=size, store=store)
    if checkpoint is None:
        raise ExportFailed(PLAN_PROBLEMS.say("no_checkpoint"), code="checkpoint_missing")
    return checkpoint


def _ext_for(media_type: str, fallback: str = "bin") -> str:
    ext = mimetypes.guess_extension(media_type.split(";")[0].strip(), strict=False)
    return (ext or f".{fallback}").lstrip(".")


@dataclass
class Plan:
    """Everything gathered from the database before the bytes flow."""

    export_id: str
    case: dict[str, Any]
    people: dict[str, Any]
    items: list[dict[str, Any]]
    entries: list[dict[str, Any]]
    checkpoint: dict[str, Any]
    continuity: dict[str, Any]
    chain_pem: bytes
    sm2_keys_pem: bytes
    scope: dict[str, Any]
    """Whether the export is the whole case or a selection: ``selected``, ``items`` (exported),
    ``case_items`` (the case's, when the export was planned)."""
    total_bytes: int = 0
    when: datetime = field(default_factory=utcnow)


PLAN_PROBLEMS = Sentences("export_problem", {
    "not_sealable": "item {item} ({filename}) could not be sealed and processing gave up ({reasons}); waiting cannot fix this",
    "nothing": "the case holds no evidence to export",
    "no_checkpoint": "the sealing service did not produce a checkpoint covering the case's entries",
    "ledger_tampered": "{problem}: refusing to export",
    "waiting_sealed": "waiting for {count} item(s) to be sealed: {items}",
    "waiting_continuity": "waiting for the case's continuity report: {outstanding}",
}, fields={"item": r"\S+", "count": r"\d+"})
"""Why an export cannot be planned (its ``error``, its ``export_failed`` custody entry);
``reasons`` are the failed steps' reasons joined by ``; `` (or ``no reason recorded``),
``problem`` the ledger's failure."""
NO_REASON = "no reason recorded"


def unsealed_items(items: list[EvidenceItem]) -> list[dict[str, str]]:
    """The items not sealed yet, each ``{"item", "filename", "seal_status"}``.

    Raises ExportFailed, naming the item and its reason, when one failed for good
    (flag ``processing_failed``): waiting cannot fix that.
    """
    out = []
    for item in items:
        roles = {d.role for d in item.derived}
        if all(r in roles for r in SEAL_ROLES):
            continue
        if "processing_failed" in (item.flags or []):
            reasons = sorted({(v or {}).get("reason") or "" for v in (item.processing or {}).values()
                              if (v or {}).get("state") == "failed"} - {""})
            raise ExportFailed(PLAN_PROBLEMS.say("not_sealable", item=item.id, filename=item.original_filename,
                                                 reasons="; ".join(reasons) or NO_REASON), code="item_not_sealable",
                                no_system_fault=True)  # the item's own failed work is what /healthz counts
        out.append({"item": item.id, "filename": item.original_filename, "seal_status": item.seal_status})
    return out


def gather_plan(session: Session, *, store: ObjectStore, export: ExportRequest, sealer: Any) -> Plan:
    """Everything the export needs from the database, with each ledger proof checked against the sealed root.

    Raises ExportWaiting while items are still being sealed or the continuity report is pending, ExportFailed when the export cannot be built.
    """
    case = session.get(Case, export.case_id)
    items = export_items(session, export)
    if not items:
        # Refused when asked for (archive.exports.service); kept for an export asked before that.
        raise ExportFailed(PLAN_PROBLEMS.say("nothing"), code="nothing_to_export", no_system_fault=True)
    # A court must be able to tell a selection from the whole case.
    in_case = set(session.execute(select(EvidenceItem.id).where(EvidenceItem.case_id == export.case_id)).scalars())
    scope = {"selected": export.items is not None, "items": len(items), "case_items": len(in_case)}
    unsealed = unsealed_items(items)
    if unsealed:
        raise ExportWaiting(PLAN_PROBLEMS.say(
            "waiting_sealed", count=len(unsealed), items=", ".join(f"{u['item']} ({u['filename']})" for u in unsealed[:10]),
        ), items=unsealed)
    # The sealed report must be the one reviewers see, final: no analysis left to run.
    continuity = build_report(session, case_id=export.case_id)
    if continuity.pending:
        unfinished = [o for o in continuity.outstanding if o["what"] != "gap"]
        raise ExportWaiting(
            PLAN_PROBLEMS.say("waiting_continuity", outstanding=", ".join(f"{o['reason']} ({o['subject']})"
                                                                         for o in unfinished[:10])),
            items=[], continuity=unfinished,
        )
    planned = []
    total = 0
    for item in items:
        seals = {d.role: d for d in item.derived if d.role in SEAL_ROLES}
        derived = []
        if export.include_derived:
            derived = [
                {"role": d.role, "media_type": d.media_type, "size": d.size, "sha256": d.sha256,
                 "storage_key": d.storage_key, "storage_version": d.storage_version,
                 "path": f"data/derived/{item.id}/{safe_member_name(d.role)}.{_ext_for(d.media_type)}"}
                for d in item.derived if d.role not in NOT_DERIVED_COPIES
            ]
        planned.append({
            "id": item.id, "kind": item.kind.value, "filename": item.original_filename,
            "media_type": item.media_type, "size": item.size, "sha256": item.sha256, "sm3": item.sm3,
            "recorded_sha512": item.sha512,
            "storage_key": item.storage_key, "storage_version": item.storage_version,
            "parent": item.parent_id, "device": item.device_id, "flags": list(item.flags or []),
            "received_at": ledger.iso_utc(item.received_at),
            "recorded_start": ledger.iso_utc(item.recorded_start) if item.recorded_start else None,
            "path": f"data/originals/{item.id}/{safe_member_name(item.original_filename, fallback='original')}",
            "seals": {r: (seals[r].storage_key, seals[r].storage_version, seals[r].sha256) for r in SEAL_ROLES},
            "derived": derived,
        })
        total += item.size + sum(d["size"] for d in derived)
    # The checkpoint must cover every case entry written so far, this build's own start included.
    # (The case's entries, not the whole ledger: its last entry may be the record of the
    # latest checkpoint, which no checkpoint covers until the ledger grows again.)
    last_seq = session.execute(select(func.max(LedgerEntry.seq)).where(LedgerEntry.case_id == export.case_id)).scalar() or 0
    checkpoint = _checkpoint_covering(session, sealer=sealer, store=store, size=last_seq)
    try:
        # Every entry of the case is proven (a ledger changed anywhere in the case refuses the
        # export); a selection carries those it discloses.
        entries = proven_case_entries(session, case_id=export.case_id, checkpoint=checkpoint)
    except VerificationFailed as exc:
        raise ExportFailed(PLAN_PROBLEMS.say("ledger_tampered", problem=exc.message), code="ledger_tampered") from exc
    entries = disclosed_entries(entries, withheld=in_case - {item.id for item in items})
    return Plan(
        export_id=export.id,
        case={"id": case.id, "number": case.case_number, "title": case.title, "unit": case.unit.name,
              "status": case.status.value, "created_at": ledger.iso_utc(case.created_at)},
        people={"requested_by": user_name(session, export.requested_by),
                "approved_by": user_name(session, export.approved_by),
                "recipient": user_name(session, export.recipient_id),
                "approved_at": ledger.iso_utc(export.approved_at) if export.approved_at else None},
        items=planned,
        scope=scope,
        entries=entries,
        checkpoint={"tree_size": checkpoint.tree_size, "root_hash": checkpoint.root_hash,
                    "statement": checkpoint.statement, "cades": bytes(checkpoint.cades), "sm2": checkpoint.sm2},
        continuity=report_document(continuity),
        chain_pem=published_chain_pem(session, sealer),
        sm2_keys_pem=sm2_keys_pem([*sealer.sm2_public_keys(), *recorded_sm2_keys(session)]),
        total_bytes=total,
    )
