"""Item manifests: the canonical statement of what an evidence item is, which gets sealed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from archive.custody import ledger
from archive.models import EvidenceItem, User

MANIFEST_FORMAT = "evidence-item-manifest/1"


def utc_text(moment: datetime | None) -> str | None:
    return ledger.iso_utc(moment) if moment is not None else None


def manifest_fields(item: EvidenceItem, *, uploader: User | None) -> dict[str, Any]:
    """The facts an item's manifest states, from its database row."""
    return {
        "format": MANIFEST_FORMAT,
        "item_id": item.id,
        "case_id": item.case_id,
        "case_number": item.case.case_number,
        "vault": item.vault.name,
        "kind": item.kind.value,
        "original_filename": item.original_filename,
        "media_type": item.media_type,
        "size": item.size,
        "sha256": item.sha256,
        "sm3": item.sm3,
        "storage_key": item.storage_key,
        "storage_version": item.storage_version,
        "received_time": utc_text(item.received_at),
        "uploader": uploader.name if uploader else None,
        "uploader_id": item.uploaded_by,
        "device": item.device_id,
        "recorded_start": utc_text(item.recorded_start),
        "parent_id": item.parent_id,
        "media_facts": item.media_facts,
    }


def canonical_bytes(value: Any) -> bytes:
    """Canonical JSON (sorted keys, no whitespace), UTF-8: the bytes that are signed."""
    return ledger.canonical_json(value).encode("utf-8")


def build_manifest(session: Session, item: EvidenceItem) -> bytes:
    """The canonical manifest of an item as its row stands now."""
    return canonical_bytes(manifest_fields(item, uploader=session.get(User, item.uploaded_by)))
