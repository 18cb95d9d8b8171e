"""Certified exports: requested, approved by another person, built by a worker as one ZIP.

Requesting, approving, downloading: the entry points routes and the command line call. Who may do what is in
:mod:`archive.exports.access`, signed links in :mod:`archive.exports.links`, what goes
into the bag in :mod:`archive.exports.plan` and :mod:`archive.exports.bag`, and the build
lifecycle in :mod:`archive.exports.build`.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import select
from sqlalchemy.orm import Session

from archive import work
from archive.custody import ledger
from archive.db import Database
from archive.errors import Conflict, InvalidInput
from archive.evidence import fixity
from archive.exports import court_requests
from archive.exports.access import export_to_approve, export_to_withdraw, recipient_for_request
from archive.exports.bag import EXPORT_PROBLEMS
from archive.exports.plan import PLAN_PROBLEMS
from archive.identity.users import actor_name, user_name
from archive.models import EvidenceItem, ExportRequest, User, utcnow
from archive.records.common import require_reason
from archive.storage import ObjectStore


def request_export(
    session: Session, *, user: User, case_id: str, items: list[str] | None, recipient: str | None,
    include_derived: bool = False, court_request: str | None = None,
) -> ExportRequest:
    """Record a request for a certified export (who may: :mod:`archive.exports.access`).

    With ``court_request``, the export answers that pending request of a court user for
    this case: the recipient is its requester, and the request is marked fulfilled.
    """
    answered = None
    if court_request is not None:
        answered = court_requests.check_fulfilment(session, user=user, request_id=court_request, case_id=case_id)
        requester = user_name(session, answered.requested_by)
        if recipient not in (None, requester):
            raise InvalidInput("an export answering a court request goes to the court user who asked",
                               code="recipient_not_requester")
        recipient = requester
    recipient_user = recipient_for_request(session, user=user, case_id=case_id, recipient=recipient)
    selected = None
    if items is None and session.execute(
        select(EvidenceItem.id).where(EvidenceItem.case_id == case_id).limit(1)
    ).first() is None:
        # The build would fail for good; refused now, the court request (if any) still pending.
        raise Conflict(PLAN_PROBLEMS.say("nothing"), code="nothing_to_export")
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
                 "include_derived": include_derived, "court_request": court_request},
    )
    if answered is not None:
        court_requests.fulfil(session, user=user, request=answered, export=export)
    return export


def approve_export(session: Session, *, user: User, export_id: str) -> ExportRequest:
    """Approve a requested export; the requester can never approve their own."""
    export = export_to_approve(session, user=user, export_id=export_id)
    export.status = "approved"
    export.approved_by = user.id
    export.approved_at = utcnow()
    work.want(session, task=work.BUILD_EXPORT, subject=export.id)
    ledger.append(
        session, actor=actor_name(user), action="export_approved", case_id=export.case_id,
        details={"export": export.id, "requested_by": user_name(session, export.requested_by)},
    )
    return export


def withdraw_export(session: Session, *, user: User, export_id: str, reason: str) -> ExportRequest:
    """Withdraw a requested export with a reason (a custody entry): it will not be built, and a
    court request it answered waits for a reviewer again."""
    export = export_to_withdraw(session, user=user, export_id=export_id)
    export.status, export.error, export.finished_at = "withdrawn", require_reason(reason), utcnow()
    ledger.append(session, actor=actor_name(user), action="export_withdrawn", case_id=export.case_id,
                  details={"export": export.id, "reason": export.error})
    court_requests.reopen(session, export=export, actor=actor_name(user))
    return export


def record_download(db: Database, *, export: ExportRequest, actor: str, via: str,
                    client: str | None = None) -> dict[str, object]:
    """Custody entry ``export_download_started`` for one download, written before the first
    byte leaves (a download cut short, even by the server's death, is still a read on record);
    returns its details, for :func:`record_download_end`. A signed link is a bearer
    capability: whoever holds it downloads as the user it was made for (``actor``), so the
    entry also names the address it was used from (``client``)."""
    details: dict[str, object] = {"export": export.id, "sha256": export.sha256, "size": export.size, "via": via}
    if client is not None:
        details["client"] = client
    ledger.record(db, actor=actor, action="export_download_started", case_id=export.case_id, details=details)
    return details


def record_download_end(db: Database, *, case_id: str, actor: str, details: dict[str, object], sent: int,
                        stopped: str | None) -> None:
    """How a download recorded by :func:`record_download` ended: ``export_downloaded`` once the
    whole ZIP was handed over (``stopped`` None), else ``export_download_interrupted`` with the
    bytes ``sent`` and why it ``stopped`` (the store failing part-way, the client gone): a
    court that received part of an export is never recorded as having received it."""
    if stopped is None:
        ledger.record(db, actor=actor, action="export_downloaded", case_id=case_id, details=details)
    else:
        ledger.record(db, actor=actor, action="export_download_interrupted", case_id=case_id,
                      details={**details, "sent": sent, "reason": stopped})


def served_export(db: Database, store: ObjectStore, export: ExportRequest) -> Iterator[bytes]:
    """The stored ZIP's bytes as a download sends them, checked as they pass
    (:func:`archive.evidence.fixity.served_checked`): an altered ZIP never reaches a court whole
    under the SHA-256 its headers and its ``export_downloaded`` entry name. The export is then
    failed (no further download) and an ``export_altered`` custody entry says so."""
    export_id, case_id, sha256 = export.id, export.case_id, export.sha256

    def altered() -> None:
        with db.session() as session:
            row = session.get(ExportRequest, export_id, with_for_update=True)
            row.status, row.error = "failed", EXPORT_PROBLEMS.say("zip_altered", sha256=sha256)
            ledger.append(session, actor="system:fixity", action="export_altered", case_id=case_id,
                          details={"export": export_id, "sha256": sha256})
            court_requests.reopen(session, export=row, actor="system:fixity")
    return fixity.served_checked(store.read(export.storage_key, version_id=export.storage_version), sha256=sha256,
                                 size=export.size, on_altered=altered)
