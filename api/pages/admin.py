"""The administrator's page: users (create, disable, role, unit, tokens), devices and their
clock offsets, the certificates that ever sealed or time-stamped, retention classes and legal
holds of the cases (forms in api.pages.life), and system health
(background work: queue depth, stuck and failed). Every change is the API's domain call,
so each is a custody entry."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.deps import Services, ServicesDep, SessionDep
from api.pages.base import FormUser, PageUser, PageRoute, back_to, render
from api.pages.life import records_view
from archive import work
from archive.cases import service as case_service
from archive.continuity import devices
from archive.continuity.models import Device
from archive.errors import InvalidInput
from archive.identity import users as user_service
from archive.models import Role, TrustedCertificate, Unit, User
from archive.timefmt import local_time

router = APIRouter(include_in_schema=False, route_class=PageRoute)
ADMINS = {Role.admin}


@router.get("/admin", response_class=HTMLResponse)
def admin_page(request: Request, session: SessionDep, services: ServicesDep, user: PageUser,
               notice: str | None = None) -> Response:
    """Users, devices, certificates and background work at a glance."""
    user_service.require_role(user, ADMINS, doing="administer the archive")
    return render(request, "admin.html", {**_overview(session, services, user), "user": user, "notice": notice})


def _records(session: Session, services: Services, user: User) -> dict[str, object]:
    """Retention classes, each case's class and legal hold (the newest 500 cases)."""
    return records_view(session, settings=services.settings,
                        cases=case_service.list_cases(session, user=user, limit=500))


def _overview(session: Session, services: Services, user: User) -> dict[str, object]:
    """What the administrator's page shows."""
    zone = services.settings.time_zone
    tokens: dict[str, list[dict[str, str]]] = {}
    for token in user_service.list_tokens(session):
        if token.revoked_at is None:
            tokens.setdefault(token.user_id, []).append(
                {"id": token.id, "name": token.name, "created": local_time(token.created_at, zone),
                 "expires": local_time(token.expires_at, zone)})
    users = [{"name": u.name, "role": u.role.value, "unit": u.unit.name, "active": u.active,
              "tokens": tokens.get(u.id, []), "created": local_time(u.created_at, zone)}
             for u in user_service.list_users(session)]
    devices = [{"id": d.id, "offset": d.clock_offset_seconds, "source": d.offset_source,
                "description": d.description or "", "updated": local_time(d.updated_at, zone)}
               for d in session.execute(select(Device).order_by(Device.id)).scalars()]
    # An SM2 key is a bare key: its row's subject is a placeholder the archive stored in English.
    certificates = [{"role": c.role, "subject": None if c.role == "sm2" else c.subject, "fingerprint": c.fingerprint,
                     "valid": f"{local_time(c.not_before, zone)} – {local_time(c.not_after, zone)}"}
                    for c in session.execute(select(TrustedCertificate).order_by(TrustedCertificate.added_at)).scalars()]
    troubled = [{"task": w.task, "subject": w.subject, "state": w.state, "attempts": w.attempts,
                 "due": local_time(w.due_at, zone), "error": w.last_error or ""}
                for w in work.troubled(session, services.settings)]
    return {**_records(session, services, user), "users": users,
            "units": sorted(u.name for u in session.execute(select(Unit)).scalars()), "devices": devices, "certificates": certificates, "troubled": troubled,
            "work": work.counts(session, services.settings), "roles": [r.value for r in Role], "new_token": None}


def _known_unit(session: Session, unit: str, *, new_unit: bool) -> None:
    """A unit typed on the page is an existing one (as a person reads it: case, width and spacing
    aside) unless the administrator ticked "new unit": a typo (``Tem 1``) made a new unit, and
    the user saw none of their team's cases. 422 ``unit_not_confirmed``."""
    if unit and not new_unit and user_service.find_unit(session, unit) is None:
        raise InvalidInput(f"there is no unit {unit!r}; choose an existing unit, or tick 'new unit' to create it",
                           code="unit_not_confirmed")


@router.post("/admin/users")
def create_user(request: Request, session: SessionDep, services: ServicesDep, user: FormUser,
                name: Annotated[str, Form()], role: Annotated[str, Form()], unit: Annotated[str, Form()],
                new_unit: Annotated[bool, Form()] = False) -> Response:
    """Create a user; its first token is shown once, on the answer."""
    user_service.require_role(user, ADMINS, doing="create users")
    _known_unit(session, unit.strip(), new_unit=new_unit)
    _created, token = user_service.add_user(session, name=name.strip(), unit=unit.strip(), role=role,
                                            actor=user_service.actor_name(user))
    session.flush()
    # The token is shown in this answer only (never in a URL or a cookie).
    return render(request, "admin.html", {**_overview(session, services, user), "user": user, "notice": "user_created",
                                          "new_token": token})


@router.post("/admin/users/{name}")
def update_user(name: str, request: Request, session: SessionDep, user: FormUser,
                active: Annotated[str, Form()] = "", role: Annotated[str, Form()] = "",
                unit: Annotated[str, Form()] = "", new_unit: Annotated[bool, Form()] = False) -> Response:
    """Disable or enable a user, or change their role or unit (each a custody entry)."""
    user_service.require_role(user, ADMINS, doing="change users")
    _known_unit(session, unit.strip(), new_unit=new_unit)
    user_service.update_user(session, name=name, actor=user_service.actor_name(user),
                             active={"true": True, "false": False}.get(active), role=role or None,
                             unit=unit.strip() or None)
    return back_to("/admin#users", notice="user_updated")


@router.post("/admin/devices")
def set_device(request: Request, session: SessionDep, services: ServicesDep, user: FormUser,
               device_id: Annotated[str, Form()], offset: Annotated[str, Form()],
               source: Annotated[str, Form()] = "declared", description: Annotated[str, Form()] = "") -> Response:
    """Set a device's clock offset; the continuity of every case using it is analysed again."""
    user_service.require_role(user, ADMINS, doing="set device clocks from the administration page")
    try:
        seconds = float(offset)
    except ValueError:
        raise InvalidInput("the clock offset must be a number of seconds", code="invalid_clock_offset") from None
    _device, cases = devices.set_device_clock(session, user=user, device_id=device_id, offset_seconds=seconds,
                                              source=source, description=description.strip() or None)
    session.commit()
    for case_id in cases:
        services.enqueue(work.ANALYSE_CONTINUITY, case_id)
    return back_to("/admin#devices", notice="device_updated")


@router.post("/admin/tokens/{token_id}/revoke")
def revoke_token(token_id: str, session: SessionDep, user: FormUser) -> Response:
    """Revoke any user's token at once (a custody entry)."""
    user_service.require_role(user, ADMINS, doing="revoke tokens")
    user_service.revoke_token(session, token_id=token_id, actor=user_service.actor_name(user))
    return back_to("/admin#users", notice="token_revoked")
