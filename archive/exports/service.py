"""Certified exports: requested, approved by another person, built by a worker as one ZIP.

Who may do what (the rule, in one place):

* **Request.** A reviewer of the case's unit (or an admin) requests an export *on behalf
  of* a named court user, the recipient. A court user may request one only for a case
  already shared with them by an earlier approved export, and only for themselves;
  before that they cannot even learn that the case exists.
* **Approve.** A reviewer of the case's unit (or an admin) who is not the requester
  (``separation_of_duties``). Request and approval are custody entries.
* **Read and download.** The recipient court user, and reviewers/admins of the case's
  unit. Officers of the unit may see that an export exists, not download it. A court
  user lists only the exports whose recipient they are. Only a ``ready`` export can be
  downloaded; every download is a custody entry. A time-limited signed link (HMAC over
  export, expiry and the user who asked for it) stands in for the bearer token.

The bag layout (RFC 8493, inside one top directory ``<case-number>-<export8>/``)::

    bagit.txt  bag-info.txt  manifest-sha256.txt  manifest-sha512.txt
    data/originals/<item-id>/<safe original name>
    data/derived/<item-id>/<role>.<ext>                 (only when asked)
    items/<item-id>/manifest.json (+ .p7s CAdES DER, + .sm2.json)
    ledger/entries.jsonl  ledger/checkpoint.json (+ .p7s, + .sm2.json)
    continuity/report.json (+ .p7s, + .sm2.json)
    trust/chain.pem  trust/tsa.pem  trust/sm2-public.pem
    certificate.pdf                                    (PAdES-B-T)
    export-manifest.json (+ .p7s, + .sm2.json)         every file above, with SHA-256
    tagmanifest-sha256.txt  tagmanifest-sha512.txt

Every detached seal sits beside the file it seals, named ``<file>.p7s`` / ``<file>.sm2.json``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import logging
import os
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from archive import work
from archive.custody import ledger
from archive.custody import merkle
from archive.seals import sealing
from archive.evidence.items import hash_chunks
from archive.exports.bagzip import BagZipWriter, MemberChanged, MemberDigest, StorePipe, manifest_text, safe_member_name
from archive.db import Database
from archive.errors import (
    ArchiveError, ConfigurationError, Conflict, Forbidden, InvalidInput, NotFound, ObjectExists, ObjectNotFound,
    Unauthenticated, VerificationError,
)
from archive.custody.ledger_format import canonical_json
from archive.continuity.report import build_report, report_document
from archive.models import (
    Case, Checkpoint, EvidenceItem, ExportRequest, LedgerEntry, Role, User,
    utcnow,
)
from archive.settings import Settings
from archive.timefmt import DEFAULT_TIME_ZONE
from archive.storage import ObjectStore
from archive.identity.users import actor_name, can_see_case, load_case, require_role

log = logging.getLogger(__name__)

EXPORT_FORMAT = "evidence-export/1"
SEAL_ROLES = sealing.SEAL_ROLES
"""Derived-object roles that hold an item's seal (exported under items/, not data/)."""
NOT_DERIVED_COPIES = (*SEAL_ROLES, "member")
"""Roles never exported under data/derived/: seals go to items/, bundle members are items themselves."""
STATUSES = ("requested", "approved", "waiting", "building", "ready", "failed")


class ExportFailed(ArchiveError):
    """An export could not be built; the message says what is missing or wrong."""

    code = "export_failed"
    status = 409


class ExportWaiting(ArchiveError):
    """Items of an approved export are still being sealed, or the case's continuity report
    is pending (processing or its analysis unfinished): it waits for them."""

    code = "export_waiting"
    status = 409

    def __init__(self, message: str, *, items: list[dict[str, str]], continuity: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.items = items
        self.continuity = continuity or []
        """What keeps the continuity report pending (the report's ``outstanding`` entries)."""


# ---------------------------------------------------------------------------------------
# Requests, approval, access


def _require_unit_reviewer(user: User, case: Case, *, doing: str) -> None:
    require_role(user, {Role.reviewer, Role.admin}, doing=doing)
    if not can_see_case(user, case):
        raise NotFound(f"no case {case.id} visible to you", code="case_not_found")


def shared_with(session: Session, *, user: User, case_id: str) -> bool:
    """True when an approved (or later) export of the case names ``user`` as recipient."""
    return session.execute(
        select(ExportRequest.id).where(
            ExportRequest.case_id == case_id, ExportRequest.recipient_id == user.id,
            ExportRequest.status.in_(("approved", "waiting", "building", "ready")),
        ).limit(1)
    ).first() is not None


def request_export(
    session: Session, *, user: User, case_id: str, items: list[str] | None, recipient: str | None,
    include_derived: bool = False,
) -> ExportRequest:
    """Record a request for a certified export (see the module docstring for who may)."""
    case = session.get(Case, case_id)
    if user.role == Role.court:
        if case is None or not shared_with(session, user=user, case_id=case_id):
            raise NotFound(f"no case {case_id} visible to you", code="case_not_found")
        if recipient not in (None, user.name):
            raise Forbidden("a court user may request an export only for themselves", code="forbidden_recipient")
        recipient_user = user
    else:
        if case is None:
            raise NotFound(f"no case {case_id} visible to you", code="case_not_found")
        _require_unit_reviewer(user, case, doing="request exports")
        if not recipient:
            raise InvalidInput("name the court user who receives the export", code="recipient_required")
        recipient_user = session.execute(select(User).where(User.name == recipient)).scalar_one_or_none()
        if recipient_user is None or not recipient_user.active:
            raise InvalidInput(f"no active user {recipient!r}", code="unknown_recipient")
        if recipient_user.role != Role.court:
            raise InvalidInput(f"recipient {recipient!r} is not a court user", code="recipient_not_court")
    selected = None
    if items is not None:
        selected = list(dict.fromkeys(items))
        if not selected:
            raise InvalidInput("items is empty; omit it to export every item", code="no_items")
        found = set(session.execute(
            select(EvidenceItem.id).where(EvidenceItem.case_id == case_id, EvidenceItem.id.in_(selected))
        ).scalars())
        missing = [i for i in selected if i not in found]
        if missing:
            raise InvalidInput(f"items not in this case: {', '.join(missing)}", code="unknown_items")
    export = ExportRequest(
        case_id=case_id, requested_by=user.id, recipient_id=recipient_user.id, items=selected,
        include_derived=include_derived, status="requested", progress={},
    )
    session.add(export)
    session.flush()
    ledger.append(
        session, actor=actor_name(user), action="export_requested", case_id=case_id,
        details={"export": export.id, "recipient": recipient_user.name, "items": selected,
                 "include_derived": include_derived},
    )
    return export


def approve_export(session: Session, *, user: User, export_id: str) -> ExportRequest:
    """Approve a requested export; the requester can never approve their own."""
    # Role first, so that whether an export id exists says nothing to those who may not approve.
    require_role(user, {Role.reviewer, Role.admin}, doing="approve exports")
    export = session.execute(
        select(ExportRequest).where(ExportRequest.id == export_id).with_for_update(key_share=True)
    ).scalar_one_or_none()
    if export is None:
        raise NotFound(f"no export {export_id} visible to you", code="export_not_found")
    if not can_see_case(user, session.get(Case, export.case_id)):
        raise NotFound(f"no export {export_id} visible to you", code="export_not_found")
    if export.requested_by == user.id:
        raise Forbidden("the person who requested an export cannot approve it", code="separation_of_duties")
    if export.status != "requested":
        raise Conflict(f"export {export_id} is {export.status}, not awaiting approval", code="export_not_pending")
    export.status = "approved"
    export.approved_by = user.id
    export.approved_at = utcnow()
    work.want(session, task=work.BUILD_EXPORT, subject=export.id)
    ledger.append(
        session, actor=actor_name(user), action="export_approved", case_id=export.case_id,
        details={"export": export.id, "requested_by": _user_name(session, export.requested_by)},
    )
    return export


def _user_name(session: Session, user_id: str | None) -> str | None:
    if user_id is None:
        return None
    user = session.get(User, user_id)
    return user.name if user else None


def load_export(session: Session, *, user: User, export_id: str, download: bool = False) -> ExportRequest:
    """An export the user may see (or download, when ``download``)."""
    export = session.get(ExportRequest, export_id)
    if export is not None:
        case = session.get(Case, export.case_id)
        if user.role == Role.court:
            if export.recipient_id == user.id:
                return export
        elif can_see_case(user, case):
            if download and user.role not in (Role.reviewer, Role.admin):
                raise Forbidden("only the recipient and the unit's reviewers may download exports",
                                code="forbidden_role")
            return export
    raise NotFound(f"no export {export_id} visible to you", code="export_not_found")


def list_exports(session: Session, *, user: User, case_id: str | None = None, limit: int = 100) -> list[ExportRequest]:
    """Exports visible to the user, newest first: a court user's own; a unit's for others."""
    query = select(ExportRequest).order_by(ExportRequest.created_at.desc()).limit(limit)
    if case_id is not None and user.role != Role.court:
        # Another unit's case answers 404 like an unknown one, never an empty list.
        load_case(session, user=user, case_id=case_id)
    if case_id is not None:
        query = query.where(ExportRequest.case_id == case_id)
    if user.role == Role.court:
        query = query.where(ExportRequest.recipient_id == user.id)
    elif user.role != Role.admin:
        query = query.join(Case, Case.id == ExportRequest.case_id).where(Case.unit_id == user.unit_id)
    return list(session.execute(query).scalars())


def check_downloadable(export: ExportRequest) -> None:
    """Raise unless the export's ZIP exists and may be handed out."""
    if export.status == "requested":
        raise Conflict("this export has not been approved; it cannot be downloaded", code="export_not_approved")
    if export.status in ("approved", "waiting", "building"):
        raise Conflict(f"this export is {export.status}; download when it is ready", code="export_not_ready")
    if export.status == "failed" or not export.storage_key:
        raise Conflict(f"this export failed: {export.error or 'no archive'}", code="export_failed")


def record_download(session: Session, *, export: ExportRequest, actor: str, via: str) -> None:
    """Custody entry for one download (written before the first byte leaves)."""
    ledger.append(
        session, actor=actor, action="export_downloaded", case_id=export.case_id,
        details={"export": export.id, "sha256": export.sha256, "size": export.size, "via": via},
    )


# ---------------------------------------------------------------------------------------
# Signed, time-limited download links


def link_secret(settings: Settings) -> bytes:
    """The HMAC key for download links: from settings, or generated once in development."""
    configured = settings.export_link_secret
    if configured is not None:
        return configured.get_secret_value().encode()
    if settings.mode == "production":
        raise ConfigurationError("EVIDENCE_EXPORT_LINK_SECRET is required in production")
    path = settings.data_dir.resolve() / "export-link.key"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return path.read_bytes()
    with os.fdopen(fd, "wb") as f:
        f.write(secrets.token_bytes(32))
    log.warning("generated a development download-link secret in %s", path)
    return path.read_bytes()


def _link_mac(secret: bytes, export_id: str, expires: int, user_id: str) -> str:
    message = f"export-download\n{export_id}\n{expires}\n{user_id}".encode()
    return base64.urlsafe_b64encode(hmac.new(secret, message, hashlib.sha256).digest()).decode().rstrip("=")


@dataclass(frozen=True)
class DownloadLink:
    """A signed URL path for one export, valid until ``expires_at``."""

    path: str
    expires_at: datetime


def make_link(*, settings: Settings, export: ExportRequest, user: User, now: float | None = None) -> DownloadLink:
    """Sign a download link for ``user``'s access to ``export`` (checked again on use)."""
    ttl = int(getattr(settings, "export_link_ttl_seconds", 3600))
    expires = int((now or time.time()) + ttl)
    mac = _link_mac(link_secret(settings), export.id, expires, user.id)
    return DownloadLink(
        path=f"/api/v1/exports/{export.id}/download?expires={expires}&user={user.id}&sig={mac}",
        expires_at=datetime.fromtimestamp(expires, timezone.utc),
    )


def check_link(
    session: Session, *, settings: Settings, export_id: str, expires: int, user_id: str, sig: str,
    now: float | None = None,
) -> User:
    """The user a valid, unexpired link was made for (who must still be allowed)."""
    expected = _link_mac(link_secret(settings), export_id, expires, user_id)
    # Compared as bytes: compare_digest refuses str with non-ASCII characters (a TypeError).
    if not hmac.compare_digest(expected.encode(), sig.encode("utf-8", "surrogateescape")):
        raise Unauthenticated("the download link's signature is not valid", code="invalid_link")
    if (now or time.time()) > expires:
        raise Unauthenticated("the download link has expired", code="link_expired")
    user = session.get(User, user_id)
    if user is None or not user.active:
        raise Unauthenticated("the download link's user is no longer active", code="invalid_link")
    return user


# ---------------------------------------------------------------------------------------
# What goes into the bag


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


def _checkpoint_covering(session: Session, *, sealer: Any, store: ObjectStore, size: int) -> Checkpoint:
    """A sealed checkpoint whose tree covers the first ``size`` entries (sealed now if needed)."""
    checkpoint = sealing.checkpoint_covering(session, sealer, size=size, store=store)
    if checkpoint is None:
        raise ExportFailed("the sealing service did not produce a checkpoint covering the case's entries",
                           code="checkpoint_missing")
    return checkpoint


def _read_small(store: ObjectStore, key: str, version: str | None, *, what: str) -> bytes:
    try:
        return b"".join(store.read(key, version_id=version))
    except ObjectNotFound as exc:
        raise ExportFailed(f"{what} is missing from the store ({key})", code="missing_object") from exc


def _tsa_pem_from_seal(cades: bytes) -> bytes:
    """The TSA certificate(s) carried in a CAdES seal's time-stamp token, as PEM."""
    from asn1crypto import pem

    found = [cert for role, cert in sealing.certificates_in_seal(cades) if role == "tsa"]
    if not found:
        raise ExportFailed("the time-stamp token carries no TSA certificate", code="tsa_certificate_missing")
    return b"".join(pem.armor("CERTIFICATE", cert.dump()) for cert in found)


def _ext_for(media_type: str, fallback: str = "bin") -> str:
    import mimetypes

    ext = mimetypes.guess_extension(media_type.split(";")[0].strip(), strict=False)
    return (ext or f".{fallback}").lstrip(".")


def sanitised_case_dir(case_number: str, export_id: str) -> str:
    """The bag's top directory: a portable form of the case number and the export id."""
    return f"{safe_member_name(case_number, fallback='case', limit=80)}-{export_id[:8]}"


@dataclass
class _Plan:
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
    total_bytes: int = 0
    when: datetime = field(default_factory=utcnow)


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
            raise ExportFailed(
                f"item {item.id} ({item.original_filename}) could not be sealed and processing gave up"
                f" ({'; '.join(reasons) or 'no reason recorded'}); waiting cannot fix this",
                code="item_not_sealable",
            )
        out.append({"item": item.id, "filename": item.original_filename, "seal_status": item.seal_status})
    return out


def _plan(session: Session, *, store: ObjectStore, export: ExportRequest, sealer: Any) -> _Plan:
    case = session.get(Case, export.case_id)
    items = export_items(session, export)
    if not items:
        raise ExportFailed("the case holds no evidence to export", code="nothing_to_export")
    unsealed = unsealed_items(items)
    if unsealed:
        raise ExportWaiting(
            f"waiting for {len(unsealed)} item(s) to be sealed: "
            + ", ".join(f"{u['item']} ({u['filename']})" for u in unsealed[:10]), items=unsealed,
        )
    # The sealed report must be the one reviewers see, final: no analysis left to run.
    continuity = build_report(session, case_id=export.case_id)
    if continuity.pending:
        unfinished = [o for o in continuity.outstanding if o["what"] != "gap"]
        raise ExportWaiting(
            "waiting for the case's continuity report: "
            + ", ".join(f"{o['reason']} ({o['subject']})" for o in unfinished[:10]), items=[], continuity=unfinished,
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
            "seals": {r: (seals[r].storage_key, seals[r].storage_version) for r in SEAL_ROLES},
            "derived": derived,
        })
        total += item.size + sum(d["size"] for d in derived)
    # The checkpoint must cover every case entry written so far, this build's own start included.
    # (The case's entries, not the whole ledger: its last entry may be the record of the
    # latest checkpoint, which no checkpoint covers until the ledger grows again.)
    last_seq = session.execute(select(func.max(LedgerEntry.seq)).where(LedgerEntry.case_id == export.case_id)).scalar() or 0
    checkpoint = _checkpoint_covering(session, sealer=sealer, store=store, size=last_seq)
    # Each proof reads O(log n) stored subtree hashes and is checked here, against the
    # sealed root, with the leaf recomputed from the entry as it stands.
    sealed_root = bytes.fromhex(checkpoint.root_hash)
    entries = []
    rows = session.execute(
        select(LedgerEntry).where(LedgerEntry.case_id == export.case_id, LedgerEntry.seq <= checkpoint.tree_size)
        .order_by(LedgerEntry.seq)
    ).scalars()
    for entry in rows:
        try:
            proof = [bytes.fromhex(p) for p in ledger.inclusion(session, seq=entry.seq, tree_size=checkpoint.tree_size).path]
            merkle.verify_inclusion(leaf_hash=merkle.leaf_hash(ledger.entry_bytes(ledger.entry_fields(entry))),
                                    index=entry.seq - 1, tree_size=checkpoint.tree_size, proof=proof, root=sealed_root)
        except (merkle.ProofError, VerificationError) as exc:
            raise ExportFailed(
                f"the ledger no longer matches sealed checkpoint {checkpoint.tree_size} at entry {entry.seq}: "
                f"refusing to export ({exc})", code="ledger_tampered",
            ) from exc
        entries.append({
            "entry": ledger.entry_fields(entry), "entry_hash": entry.entry_hash,
            "proof": {"leaf_index": entry.seq - 1, "tree_size": checkpoint.tree_size,
                      "path": [p.hex() for p in proof]},
        })
    return _Plan(
        export_id=export.id,
        case={"id": case.id, "number": case.case_number, "title": case.title, "unit": case.unit.name,
              "status": case.status.value, "created_at": ledger.iso_utc(case.created_at)},
        people={"requested_by": _user_name(session, export.requested_by),
                "approved_by": _user_name(session, export.approved_by),
                "recipient": _user_name(session, export.recipient_id),
                "approved_at": ledger.iso_utc(export.approved_at) if export.approved_at else None},
        items=planned,
        entries=entries,
        checkpoint={"tree_size": checkpoint.tree_size, "root_hash": checkpoint.root_hash,
                    "statement": checkpoint.statement, "cades": bytes(checkpoint.cades), "sm2": checkpoint.sm2},
        continuity=report_document(continuity),
        chain_pem=sealing.published_chain_pem(session, sealer),
        sm2_keys_pem=_sm2_keys_pem([*sealer.sm2_public_keys(), *sealing.recorded_sm2_keys(session)]),
        total_bytes=total,
    )


def _sm2_keys_pem(keys: list[Any]) -> bytes:
    """Every SM2 public key that sealed for us, one PEM block each, without repeats."""
    blocks: list[bytes] = []
    for key in keys:
        pem = key.public_pem()
        if pem not in blocks:
            blocks.append(pem)
    return b"".join(blocks)


def _seal_beside(bag: BagZipWriter, sealer: Any, path: str, data: bytes) -> None:
    """Write ``path`` and its two detached seals beside it."""
    bundle = sealer.seal(data)
    bag.add_bytes(path, data)
    bag.add_bytes(f"{path}.p7s", bytes(bundle.cades), compress=False)
    bag.add_bytes(f"{path}.sm2.json", canonical_json(bundle.sm2).encode())


def write_bag(
    fileobj, *, plan: _Plan, store: ObjectStore, sealer: Any, organisation: str,  # type: ignore[no-untyped-def]
    contact: dict[str, str] | None = None, on_progress: Any = None, time_zone: str = DEFAULT_TIME_ZONE,
) -> list[MemberDigest]:
    """Write the whole bag for ``plan`` as a ZIP into ``fileobj``; return every member's digests."""
    root = sanitised_case_dir(plan.case["number"], plan.export_id)
    bag = BagZipWriter(fileobj, root=root, when=plan.when)
    try:
        done = 0

        def progress(n: int) -> None:
            nonlocal done
            done += n
            if on_progress is not None:
                on_progress(done, plan.total_bytes)

        # Payload first: the bytes that matter, each hashed as it streams and checked
        # against the hash taken at receipt, so a rotten original never leaves sealed.
        first_seal = None
        for item in plan.items:
            try:
                digest = bag.add_stream(
                    item["path"], store.read(item["storage_key"], version_id=item["storage_version"]),
                    size=item["size"], on_progress=progress, sha256=item["sha256"], sha512=item["recorded_sha512"],
                )
            except MemberChanged as exc:
                raise ExportFailed(
                    f"original of item {item['id']} no longer matches its recorded sha256 (fixity failure)",
                    code="fixity_failed",
                ) from exc
            item["sha512"] = digest.sha512
            for d in item["derived"]:
                try:
                    dd = bag.add_stream(d["path"], store.read(d["storage_key"], version_id=d["storage_version"]),
                                        size=d["size"], on_progress=progress, sha256=d["sha256"])
                except MemberChanged as exc:
                    raise ExportFailed(f"derived {d['role']} of item {item['id']} no longer matches its sha256",
                                       code="fixity_failed") from exc
                d["sha512"] = dd.sha512
            base = f"items/{item['id']}/manifest.json"
            (mkey, mver), (ckey, cver), (skey, sver) = (item["seals"][r] for r in SEAL_ROLES)
            manifest = _read_small(store, mkey, mver, what=f"manifest of item {item['id']}")
            cades = _read_small(store, ckey, cver, what=f"CAdES seal of item {item['id']}")
            sm2 = _read_small(store, skey, sver, what=f"SM2 seal of item {item['id']}")
            bag.add_bytes(base, manifest)
            bag.add_bytes(f"{base}.p7s", cades, compress=False)
            bag.add_bytes(f"{base}.sm2.json", sm2)
            first_seal = first_seal or cades

        entries = "".join(canonical_json(e) + "\n" for e in plan.entries).encode()
        bag.add_bytes("ledger/entries.jsonl", entries)
        bag.add_bytes("ledger/checkpoint.json", plan.checkpoint["statement"].encode())
        bag.add_bytes("ledger/checkpoint.json.p7s", plan.checkpoint["cades"], compress=False)
        bag.add_bytes("ledger/checkpoint.json.sm2.json", canonical_json(plan.checkpoint["sm2"] or {}).encode())
        _seal_beside(bag, sealer, "continuity/report.json", canonical_json(plan.continuity).encode())

        bag.add_bytes("trust/chain.pem", plan.chain_pem)
        bag.add_bytes("trust/tsa.pem", _tsa_pem_from_seal(first_seal or plan.checkpoint["cades"]))
        bag.add_bytes("trust/sm2-public.pem", plan.sm2_keys_pem)

        payload_bytes = sum(d.size for d in bag.payload)
        bag.add_bytes("manifest-sha256.txt", manifest_text(bag.payload, "sha256"))
        bag.add_bytes("manifest-sha512.txt", manifest_text(bag.payload, "sha512"))
        bag.add_bytes("bagit.txt", b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n")
        bag.add_bytes("bag-info.txt", _bag_info(plan, organisation, contact, payload_bytes, len(bag.payload)))

        from archive.exports.certificate import certificate_pdf

        pdf = certificate_pdf(plan=plan, root=root, organisation=organisation, zone=time_zone)
        sealed = io.BytesIO()
        sealer.seal_pdf(pdf, sealed)
        bag.add_bytes("certificate.pdf", sealed.getvalue(), compress=False)

        listed = sorted(bag.payload + bag.tags, key=lambda d: d.path)
        manifest_doc = {
            "format": EXPORT_FORMAT,
            "export": plan.export_id,
            "bag": root,
            "created_at": ledger.iso_utc(plan.when),
            "organisation": organisation,
            "case": plan.case,
            "people": plan.people,
            "checkpoint": {"tree_size": plan.checkpoint["tree_size"], "root_hash": plan.checkpoint["root_hash"]},
            "items": [
                {k: item[k] for k in ("id", "kind", "filename", "media_type", "size", "sha256", "sha512", "sm3",
                                      "parent", "device", "received_at", "recorded_start", "flags", "path")}
                | {"manifest": f"items/{item['id']}/manifest.json",
                   "derived": [{k: d[k] for k in ("role", "media_type", "size", "sha256", "sha512", "path")}
                               for d in item["derived"]]}
                for item in plan.items
            ],
            "continuity": plan.continuity["summary"],
            "files": [{"path": d.path, "size": d.size, "sha256": d.sha256} for d in listed],
        }
        _seal_beside(bag, sealer, "export-manifest.json", canonical_json(manifest_doc).encode())
        tags = [d for d in bag.tags]
        bag.add_bytes("tagmanifest-sha256.txt", manifest_text(tags, "sha256"))
        bag.add_bytes("tagmanifest-sha512.txt", manifest_text(tags, "sha512"))
        return bag.payload + bag.tags
    finally:
        bag.close()


def _bag_info(plan: _Plan, organisation: str, contact: dict[str, str] | None, octets: int, count: int) -> bytes:
    def one_line(value: Any) -> str:
        return " ".join(str(value).split())

    fields = [
        ("Source-Organization", organisation),
        ("External-Identifier", plan.case["number"]),
        ("External-Description", f"Certified export of case {plan.case['number']}: {plan.case['title']}"),
        ("Bagging-Date", plan.when.date().isoformat()),
        ("Payload-Oxum", f"{octets}.{count}"),
        ("Bag-Size", _human_size(octets)),
        ("Bag-Group-Identifier", plan.case["id"]),
        ("Internal-Sender-Identifier", plan.export_id),
        ("Internal-Sender-Description",
         f"Requested by {plan.people['requested_by']}, approved by {plan.people['approved_by']}, "
         f"for {plan.people['recipient']}; custody ledger checkpoint {plan.checkpoint['tree_size']}"),
    ]
    for key in ("Contact-Name", "Contact-Email", "Contact-Phone"):
        if contact and contact.get(key):
            fields.append((key, contact[key]))
    return "".join(f"{k}: {one_line(v)}\n" for k, v in fields).encode()


def _human_size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} TB"


def export_key(vault: str, export_id: str) -> str:
    """Where an export's ZIP lives: in the case's own vault."""
    return f"{vault}/exports/{export_id}.zip"


@dataclass(frozen=True)
class ExportResult:
    """A built export."""

    export_id: str
    storage_key: str
    size: int
    sha256: str
    members: int


def build_export(
    *, db: Database, store: ObjectStore, settings: Settings, export_id: str, sealer: Any = None,
) -> ExportResult | None:
    """Build an approved export's ZIP into the case's vault; safe to run twice.

    Returns None when there is nothing to do (unknown, not approved, already built), or
    when items are still being sealed or the case's continuity report is pending: the
    export then shows ``waiting`` (and for what), and the sealing of its last item or the
    analysis that settles the report asks for it again (:func:`wake_waiting_exports`).
    Marks the export ``failed`` (and re-raises) on any other ArchiveError.
    """
    with db.session() as session:
        export = session.execute(
            select(ExportRequest).where(ExportRequest.id == export_id).with_for_update(key_share=True)
        ).scalar_one_or_none()
        if export is None:
            log.error("build_export: no export %s", export_id)
            return None
        if export.status not in ("approved", "waiting", "building"):
            return None
        vault = session.get(Case, export.case_id).vault.name
        if export.status in ("approved", "waiting"):
            export.status = "building"
            export.progress = {"phase": "gathering"}
            ledger.append(session, actor="system:worker", action="export_build_started", case_id=export.case_id,
                          details={"export": export_id})
    key = export_key(vault, export_id)
    try:
        if sealer is None:
            sealer = sealing.get_sealer(settings)
        existing = _stat_or_none(store, key)
        if existing is not None:
            # A previous run stored the ZIP and died before recording it: the ZIP is
            # complete (objects appear only whole), so record what is there.
            digest = hash_chunks(store.read(key, version_id=existing.version_id), "sha256").hexdigest("sha256")
            return _finish(db, export_id, key, existing.version_id, existing.size, digest, None, settings, store)
        while True:
            try:
                with db.session() as session:
                    export = session.get(ExportRequest, export_id)
                    plan = _plan(session, store=store, export=export, sealer=sealer)
                break
            except ExportWaiting as waiting:
                if _wait(db, export_id, waiting):
                    return None
                # What it waited for was done meanwhile; plan again (a new analysis may
                # have been asked for since, and the export then waits for it).
        last = [0.0]

        def on_progress(done: int, total: int) -> None:
            now = time.monotonic()
            if now - last[0] < 2.0 and done < total:
                return
            last[0] = now
            with db.session() as s:
                row = s.get(ExportRequest, export_id)
                row.progress = {"phase": "writing", "bytes_done": done, "bytes_total": total}

        pipe = StorePipe(lambda chunks: store.put(key, chunks, content_type="application/zip"))
        try:
            members = write_bag(
                pipe, plan=plan, store=store, sealer=sealer,
                organisation=getattr(settings, "export_organisation", "Evidence Archive"),
                contact=_contact(settings), on_progress=on_progress, time_zone=settings.time_zone,
            )
            stored, sha256 = pipe.close_and_wait()
        except ObjectExists:
            # Another delivery of this task stored the ZIP first; it records the result.
            log.warning("export %s was built concurrently by another worker", export_id)
            return None
        except BaseException as exc:
            pipe.abort(str(exc))
            raise
        return _finish(db, export_id, key, stored.version_id, pipe.size, sha256, len(members), settings, store)
    except ArchiveError as exc:
        if not exc.transient:  # an outage is waited out: the export stays building
            fail_export(db, export_id, exc.message)
        raise
    except Exception as exc:
        fail_export(db, export_id, f"internal error ({type(exc).__name__}); logged")
        raise


def _wait(db: Database, export_id: str, waiting: ExportWaiting) -> bool:
    """Show the export as ``waiting`` for its unsealed items or its pending continuity
    report; False if it waits for nothing any more.

    The mark is committed before the items and the report are looked at again, under a
    share lock on the case and the items: a sealing or an analysis that committed first
    is seen here, and one that commits later sees the mark and asks for the export again,
    so no wake-up is lost between the two.
    """
    with db.session() as session:
        export = session.execute(
            select(ExportRequest).where(ExportRequest.id == export_id).with_for_update(key_share=True)
        ).scalar_one()
        case_id = export.case_id
        if export.status != "waiting":
            details: dict[str, Any] = {"export": export_id, "items": [u["item"] for u in waiting.items]}
            if waiting.continuity:
                details["continuity"] = sorted({o["reason"] for o in waiting.continuity})
            ledger.append(session, actor="system:worker", action="export_waiting", case_id=case_id, details=details)
        export.status = "waiting"
        export.progress = {"phase": "waiting", "waiting_for": waiting.items}
        if waiting.continuity:
            export.progress["waiting_for_continuity"] = waiting.continuity
    with db.session() as session:
        # Case row, then item rows (the lock order of ledger.append).
        session.execute(select(Case.id).where(Case.id == case_id).with_for_update(read=True)).all()
        ids = [u["item"] for u in waiting.items]
        session.execute(select(EvidenceItem.id).where(EvidenceItem.id.in_(ids)).with_for_update(read=True)).all()
        items = list(session.execute(select(EvidenceItem).where(EvidenceItem.id.in_(ids))).scalars().unique())
        still = unsealed_items(items)
        pending = bool(waiting.continuity) and build_report(session, case_id=case_id).pending
    log.info("export %s waits for %d item(s) to be sealed%s", export_id, len(still),
             " and for the continuity report" if pending else "")
    return bool(still) or pending


def wake_waiting_exports(session: Session, *, case_id: str) -> list[str]:
    """Ask again for the case's exports that wait (in the caller's transaction).

    Called when an item of the case is sealed or fails for good, and when an analysis
    answers the case's continuity requests; returns the export ids
    (enqueue them after the commit, or let the reconciler send them).
    """
    ids = list(session.execute(
        select(ExportRequest.id).where(ExportRequest.case_id == case_id, ExportRequest.status == "waiting")
    ).scalars())
    for export_id in ids:
        work.want(session, task=work.BUILD_EXPORT, subject=export_id)
    return ids


def _contact(settings: Settings) -> dict[str, str]:
    return {k: v for k, v in {
        "Contact-Name": getattr(settings, "export_contact_name", None),
        "Contact-Email": getattr(settings, "export_contact_email", None),
    }.items() if v}


def _stat_or_none(store: ObjectStore, key: str):  # type: ignore[no-untyped-def]
    try:
        return store.stat(key)
    except ObjectNotFound:
        return None


def _finish(
    db: Database, export_id: str, key: str, version: str | None, size: int, sha256: str, members: int | None,
    settings: Settings, store: ObjectStore,
) -> ExportResult:
    until = utcnow() + timedelta(days=settings.retention_days)
    store.lock(key, version_id=version, until=until)
    with db.session() as session:
        export = session.execute(
            select(ExportRequest).where(ExportRequest.id == export_id).with_for_update(key_share=True)
        ).scalar_one()
        if export.status != "ready":
            export.status = "ready"
            export.storage_key = key
            export.storage_version = version
            export.size = size
            export.sha256 = sha256
            export.finished_at = utcnow()
            export.error = None
            export.progress = {"phase": "done", "bytes_done": size, "bytes_total": size, "members": members}
            ledger.append(
                session, actor="system:worker", action="export_built", case_id=export.case_id,
                details={"export": export_id, "storage_key": key, "storage_version": version, "size": size,
                         "sha256": sha256, "members": members},
            )
    log.info("export %s ready: %s (%d bytes)", export_id, key, size)
    return ExportResult(export_id=export_id, storage_key=key, size=size, sha256=sha256, members=members or 0)


def fail_export(db: Database, export_id: str, reason: str) -> None:
    """Mark an export failed with its reason (and a custody entry); a ready one stays ready."""
    log.error("export %s failed: %s", export_id, reason)
    with db.session() as session:
        export = session.get(ExportRequest, export_id)
        if export is None or export.status in ("ready", "failed"):
            return
        export.status = "failed"
        export.error = reason
        export.finished_at = utcnow()
        ledger.append(session, actor="system:worker", action="export_failed", case_id=export.case_id,
                      details={"export": export_id, "reason": reason})


def iter_export(store: ObjectStore, export: ExportRequest) -> Iterable[bytes]:
    """The stored ZIP's bytes."""
    return store.read(export.storage_key, version_id=export.storage_version)

