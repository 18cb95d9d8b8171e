"""Certified exports: who may do what (the rule, in one place).

* **Request.** A reviewer of the case's unit (or an admin) requests an export *on behalf
  of* a named court user, the recipient. A court user may request one only for a case
  already shared with them by an earlier approved export, and only for themselves;
  before that they cannot even learn that the case exists.
* **Approve.** A reviewer of the case's unit (or an admin) who is not the requester
  (``separation_of_duties``). Request and approval are custody entries.
* **Read and download.** The recipient court user, and reviewers/admins of the case's
  unit. Officers of the unit may see that an export exists, not download it. A court
  user lists only the exports whose recipient they are and, from the request on, the
  cases those exports are of. Only a ``ready`` export can be downloaded; every download
  is a custody entry. A time-limited signed link (HMAC over export, expiry and the user
  who asked for it) stands in for the bearer token.
"""

from __future__ import annotations

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from archive.db import lock_row
from archive.errors import Conflict, Forbidden, InvalidInput, NotFound
from archive.identity.users import can_see_case, load_case, require_role, unit_scope
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


def cases_with_exports_for(user: User) -> Select:
    """The ids of the cases with an export (of any status) whose recipient is ``user``.

    The cases a court user may list: a request made for them already names the case to them.
    """
    return select(ExportRequest.case_id).where(ExportRequest.recipient_id == user.id)


def recipient_for_request(session: Session, *, user: User, case_id: str, recipient: str | None) -> User:
    """The court user ``user`` may request an export of the case for, named by ``recipient``.

    A court user asks for themselves, and only for a case already shared with them; a
    unit's reviewer (or an admin) names an active court user.
    """
    case = session.get(Case, case_id)
    if user.role == Role.court:
        if case is None or not shared_with(session, user=user, case_id=case_id):
            raise NotFound(f"no case {case_id} visible to you", code="case_not_found")
        if recipient not in (None, user.name):
            raise Forbidden("a court user may request an export only for themselves", code="forbidden_recipient")
        return user
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
    return recipient_user


def export_to_approve(session: Session, *, user: User, export_id: str) -> ExportRequest:
    """The requested export ``user`` may approve, locked for the change; never the requester's own."""
    # Role first, so that whether an export id exists says nothing to those who may not approve.
    require_role(user, {Role.reviewer, Role.admin}, doing="approve exports")
    export = lock_row(session, ExportRequest, export_id)
    if export is None:
        raise NotFound(f"no export {export_id} visible to you", code="export_not_found")
    if not can_see_case(user, session.get(Case, export.case_id)):
        raise NotFound(f"no export {export_id} visible to you", code="export_not_found")
    if export.requested_by == user.id:
        raise Forbidden("the person who requested an export cannot approve it", code="separation_of_duties")
    if export.status != "requested":
        raise Conflict(f"export {export_id} is {export.status}, not awaiting approval", code="export_not_pending")
    return export


def export_to_withdraw(session: Session, *, user: User, export_id: str) -> ExportRequest:
    """The requested export ``user`` may withdraw, locked for the change: its requester's, or
    any of the case's unit's reviewers' or administrators' (an export nobody will approve keeps
    the case from closing). 409 ``export_not_pending`` once it was approved."""
    export = lock_row(session, ExportRequest, export_id)
    if export is None or user.role == Role.court or not can_see_case(user, session.get(Case, export.case_id)):
        raise NotFound(f"no export {export_id} visible to you", code="export_not_found")
    if export.requested_by != user.id and user.role not in (Role.reviewer, Role.admin):
        raise Forbidden("only the requester or the unit's reviewers may withdraw an export", code="forbidden_role")
    if export.status != "requested":
        raise Conflict(f"export {export_id} is {export.status}: only a requested export can be withdrawn",
                       code="export_not_pending")
    return export


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
    else:
        query = query.join(Case, Case.id == ExportRequest.case_id).where(unit_scope(user))
    return list(session.execute(query).scalars())


def check_downloadable(export: ExportRequest) -> None:
    """Raise unless the export's ZIP exists and may be handed out."""
    if export.status == "requested":
        raise Conflict("this export has not been approved; it cannot be downloaded", code="export_not_approved")
    if export.status in ("approved", "waiting", "building"):
        raise Conflict(f"this export is {export.status}; download when it is ready", code="export_not_ready")
    if export.status == "failed" or not export.storage_key:
        raise Conflict(f"this export failed: {export.error or 'no archive'}", code="export_failed")


def downloadable_export(session: Session, *, user: User, export_id: str) -> ExportRequest:
    """The export, if ``user`` may download it and its ZIP may be handed out now."""
    export = load_export(session, user=user, export_id=export_id, download=True)
    check_downloadable(export)
    return export
