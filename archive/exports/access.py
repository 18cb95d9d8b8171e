"""Certified exports: who may do what (the rule, in one place).

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
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from archive.errors import Conflict, Forbidden, NotFound
from archive.identity.users import can_see_case, load_case, require_role
from archive.models import Case, ExportRequest, Role, User

STATUSES = ("requested", "approved", "waiting", "building", "ready", "failed")


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
