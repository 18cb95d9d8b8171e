"""Certified exports: requested, approved by another person, built by a worker as one ZIP.

The entry points routes, tasks and the command line call. Who may do what is in
:mod:`archive.exports.access`, signed links in :mod:`archive.exports.links`, what goes
into the bag in :mod:`archive.exports.plan` and :mod:`archive.exports.bag`, and the build
lifecycle in :mod:`archive.exports.build`.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from archive import work
from archive.custody import ledger
from archive.errors import Conflict, Forbidden, InvalidInput, NotFound
from archive.exports.access import (
    STATUSES, _require_unit_reviewer, _user_name, check_downloadable, list_exports, load_export, shared_with,
)
from archive.exports.build import ExportResult, build_export, export_key, fail_export, wake_waiting_exports
from archive.exports.errors import ExportFailed, ExportWaiting
from archive.exports.links import DownloadLink, check_link, link_secret, make_link
from archive.identity.users import actor_name, can_see_case, require_role
from archive.models import Case, EvidenceItem, ExportRequest, Role, User, utcnow
from archive.storage import ObjectStore

__all__ = [
    "STATUSES", "DownloadLink", "ExportFailed", "ExportResult", "ExportWaiting", "approve_export", "build_export",
    "check_downloadable", "check_link", "export_key", "fail_export", "iter_export", "link_secret", "list_exports",
    "load_export", "make_link", "record_download", "request_export", "shared_with", "wake_waiting_exports",
]


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


def record_download(session: Session, *, export: ExportRequest, actor: str, via: str) -> None:
    """Custody entry for one download (written before the first byte leaves)."""
    ledger.append(
        session, actor=actor, action="export_downloaded", case_id=export.case_id,
        details={"export": export.id, "sha256": export.sha256, "size": export.size, "via": via},
    )


def iter_export(store: ObjectStore, export: ExportRequest) -> Iterable[bytes]:
    """The stored ZIP's bytes."""
    return store.read(export.storage_key, version_id=export.storage_version)
