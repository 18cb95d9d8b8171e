"""Item seals: each item's manifest gets a detached CAdES-B-T seal and an SM2/SM3 seal.

:func:`seal_item` stores manifest and seals in the item's vault as derived objects
(roles ``manifest``, ``cades``, ``sm2``), and gives PDFs a PAdES-B-T sealed copy (role
``pades``, see :mod:`archive.seals.pades`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from archive.custody import ledger
from archive.db import Database, lock_row
from archive.errors import ArchiveError, NotFound, VerificationFailed
from archive.evidence.items import ITEM_ERRORS, add_flag, derived_key, lock_item
from archive.exports.waiting import wake_waiting_exports
from archive.models import DerivedObject, EvidenceItem, EvidenceKind, utcnow
from archive.seals.errors import SealingFailed, SealNotReady
from archive.seals.manifests import build_manifest, canonical_bytes, utc_text
from archive.seals.pades import pades_copy
from archive.seals.registry import certificates_in_seal, record_certificates, record_sm2_key
from archive.seals.sealer import Sealer, SealVerification
from archive.storage import ObjectStore
from archive.storage.streams import Written, put_locked, read_small
from archive.wording import Sentences

log = logging.getLogger(__name__)

SEAL_ROLES = ("manifest", "cades", "sm2")
"""Derived-object roles every sealed item has."""

SEAL_PROBLEMS = Sentences("seal_problem", {
    "sm3_pending": "item {item} cannot be sealed before its SM3 hash is computed",
    "sm3_failed": "item {item} cannot be sealed: its SM3 hash could not be computed ({reason})",
    "invalid_seal_object": "an earlier, invalid seal object sits at {key}; refusing to continue",
    "temporary_space": "the worker's temporary directory failed while making the PAdES copy of item {item}: {detail}",
}, fields={"item": r"\S+", "key": r"\S+"})
"""Why an item could not be sealed (:func:`seal_item`: the seal step's reason); ``reason`` is the
reason its SM3 step failed with, ``detail`` the system's own words."""


@dataclass(frozen=True)
class ItemSealRecord:
    """The outcome of :func:`seal_item`."""

    item_id: str
    manifest_sha256: str
    cades_sha256: str
    sm2_sha256: str
    pades_sha256: str | None
    """SHA-256 of the PAdES sealed copy (documents that are PDFs), else None."""
    timestamp_time: datetime | None
    """genTime of the CAdES time-stamp (None when the item was already sealed)."""


@dataclass(frozen=True)
class SealObjects:
    """The seal objects of one manifest, written (or found from an interrupted run) and locked."""

    stored: dict[str, Written]
    """Each role's object (manifest, cades, sm2, and pades when the PDF copy was made)."""
    cades: bytes
    """The CAdES seal, for the certificate registry."""
    report: SealVerification
    """What verifying both seals over the manifest established."""
    pades_problem: str | None
    """Why a PDF got no PAdES copy (pyHanko could not update it), else None."""


def _record_from_rows(item: EvidenceItem) -> ItemSealRecord:
    by_role = {d.role: d for d in item.derived}
    return ItemSealRecord(
        item_id=item.id, manifest_sha256=by_role["manifest"].sha256, cades_sha256=by_role["cades"].sha256,
        sm2_sha256=by_role["sm2"].sha256, pades_sha256=by_role["pades"].sha256 if "pades" in by_role else None,
        timestamp_time=None,
    )


def _mark_failed(db: Database, item_id: str) -> None:
    with db.session() as session:
        # Locked, so a seal another worker commits meanwhile is seen (and kept): read without
        # the lock, a run that failed after the item was sealed by a second run of the same
        # task (redelivered when a worker host died) turned "sealed" back into "failed".
        item = lock_row(session, EvidenceItem, item_id)
        if item is not None and item.seal_status != "sealed":
            item.seal_status = "failed"


def seal_item(*, db: Database, store: ObjectStore, sealer: Sealer, item_id: str, actor: str = "system:worker") -> ItemSealRecord:
    """Seal an item's manifest (CAdES-B-T + SM2) and, for PDFs, make a PAdES-B-T copy.

    Objects first, rows second: manifest and seals are written (and locked) in the
    vault, then the derived rows, ``seal_status = sealed`` and one ``item_sealed``
    custody entry are committed together. Safe to run twice: a sealed item is left
    alone, and seal objects left by an interrupted run are reused when they verify.
    On failure ``seal_status`` becomes ``failed`` (retrying later is allowed) and the
    error is raised.
    """
    with db.session() as session:
        item = session.get(EvidenceItem, item_id)
        if item is None:
            raise NotFound(ITEM_ERRORS.say("not_found", item=item_id), code="item_not_found")
        if item.seal_status == "sealed":
            return _record_from_rows(item)
        if not item.sm3:
            sm3_step = (item.processing or {}).get("sm3", {})
            if sm3_step.get("state") == "failed":  # waiting cannot help: say why, for good
                raise SealingFailed(SEAL_PROBLEMS.say("sm3_failed", item=item_id, reason=sm3_step.get("reason")),
                                    code="seal_not_ready", status=409)
            raise SealNotReady(SEAL_PROBLEMS.say("sm3_pending", item=item_id))
        manifest = build_manifest(session, item)
        vault = item.vault.name
        until = item.retention_until or (utcnow() + timedelta(days=sealer.settings.retention_days))
        snapshot = {"sha256": item.sha256, "size": item.size, "key": item.storage_key,
                    "version": item.storage_version}
        wants_pdf = item.kind == EvidenceKind.document
    try:
        objects = _make_seal_objects(
            store=store, sealer=sealer, item_id=item_id, vault=vault, manifest=manifest, until=until,
            snapshot=snapshot, wants_pdf=wants_pdf,
        )
    except ArchiveError:
        _mark_failed(db, item_id)
        raise
    with db.session() as session:
        item = lock_item(session, item_id)
        if item.seal_status == "sealed":
            return _record_from_rows(item)
        if build_manifest(session, item) != manifest:
            # The row changed while we sealed (e.g. a late processing step); seal again later.
            raise SealNotReady(f"item {item_id} changed while being sealed; sealing again is needed")
        have = {d.role for d in item.derived}
        written = objects.stored
        for role, w in written.items():
            if role not in have:
                session.add(DerivedObject(
                    item_id=item_id, role=role, media_type=w.media_type, sha256=w.sha256, size=w.size,
                    storage_key=w.key, storage_version=w.stored.version_id,
                ))
        item.seal_status = "sealed"
        wake_waiting_exports(session, case_id=item.case_id)  # the reconciler sends them
        record_certificates(session, certificates_in_seal(objects.cades))
        record_sm2_key(session, sealer.sm2_key.public_key)
        report = objects.report
        digests = {role: w.sha256 for role, w in written.items()}
        ledger.append(
            session, actor=actor, action="item_sealed", case_id=item.case_id, item_id=item_id,
            details={
                "manifest_sha256": digests["manifest"], "cades_sha256": digests["cades"],
                "sm2_sha256": digests["sm2"], "pades_sha256": digests.get("pades"),
                "pades_problem": objects.pades_problem,
                "signer": report.cades.signer_subject, "signer_cert_sha256": report.cades.signer_cert_sha256,
                "timestamp_time": utc_text(report.cades.timestamp_time), "tsa": report.cades.tsa_subject,
                "sm2_key_sha256": report.sm2.public_key_fingerprint,
            },
        )
        if objects.pades_problem:
            add_flag(item, "pdf_not_sealable")
    log.info("sealed item %s", item_id)
    return ItemSealRecord(
        item_id=item_id, manifest_sha256=digests["manifest"], cades_sha256=digests["cades"],
        sm2_sha256=digests["sm2"], pades_sha256=digests.get("pades"), timestamp_time=report.cades.timestamp_time,
    )


def _make_seal_objects(
    *, store: ObjectStore, sealer: Sealer, item_id: str, vault: str, manifest: bytes, until: datetime,
    snapshot: dict[str, Any], wants_pdf: bool,
) -> SealObjects:
    # Named by the manifest's hash: objects locked by a run interrupted before the row
    # changed (a retried probe adds media facts) are harmless orphans, not a roadblock.
    tag = "." + hashlib.sha256(manifest).hexdigest()[:16]
    keys = {
        "manifest": derived_key(vault, item_id, "manifest", tag + ".json"),
        "cades": derived_key(vault, item_id, "cades", tag + ".p7s"),
        "sm2": derived_key(vault, item_id, "sm2", tag + ".json"),
        "pades": derived_key(vault, item_id, "pades", tag + ".pdf"),
    }
    # Reuse seals an interrupted run left behind, but only if they verify over this manifest.
    cades, sm2 = read_small(store, keys["cades"]), read_small(store, keys["sm2"])
    try:
        if cades is not None:
            sealer.verify_cades(manifest, cades)
    except VerificationFailed:
        raise SealingFailed(SEAL_PROBLEMS.say("invalid_seal_object", key=keys["cades"]))
    sm2_record = None
    if sm2 is not None:
        try:
            sm2_record = json.loads(sm2)
            sealer.verify_sm2(manifest, sm2_record)
        except (ValueError, VerificationFailed):
            raise SealingFailed(SEAL_PROBLEMS.say("invalid_seal_object", key=keys["sm2"]))
    if cades is None or sm2_record is None:
        bundle = sealer.seal(manifest)
        cades = cades if cades is not None else bundle.cades
        sm2_record = sm2_record if sm2_record is not None else bundle.sm2
    sm2_bytes = sm2 if sm2 is not None else canonical_bytes(sm2_record)
    # Verify what we produce: a seal that does not verify here (e.g. a TSA outside the
    # trust roots) must fail now, not in front of a court.
    report = sealer.verify_seal(manifest, (cades, sm2_record))
    stored = {
        "manifest": (keys["manifest"], manifest, "application/json"),
        "cades": (keys["cades"], cades, "application/pkcs7-signature"),
        "sm2": (keys["sm2"], sm2_bytes, "application/json"),
    }
    pades_problem = None
    try:
        with contextlib.ExitStack() as files:
            if wants_pdf:
                pades, pades_problem = pades_copy(
                    store=store, sealer=sealer, item_id=item_id, key=keys["pades"], snapshot=snapshot, files=files)
                if pades is not None:
                    stored["pades"] = (keys["pades"], pades, "application/pdf")
            result = {role: put_locked(store, key, content, media_type=media_type, until=until)
                      for role, (key, content, media_type) in stored.items()}
    except OSError as exc:
        # The store's own errors arrive translated; an OSError here is the worker's temporary
        # directory (a full disk under a large scan). The item fails and can be sealed again;
        # it must not be taken for a PDF that cannot be sealed.
        raise SealingFailed(SEAL_PROBLEMS.say("temporary_space", item=item_id, detail=exc),
                            code="temporary_space_failed") from exc
    return SealObjects(stored=result, cades=cades, report=report, pades_problem=pades_problem)
