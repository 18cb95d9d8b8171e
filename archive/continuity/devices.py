"""Device clocks and enforcement actions: what moves a case's gaps.

Each change requests a continuity analysis of the cases it concerns (enqueue it after
commit) and is a custody entry.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from archive.custody import ledger
from archive.db import insert_ignoring_duplicates
from archive.timefmt import in_range_utc
from archive.errors import Conflict, Forbidden, InvalidInput, NotFound
from archive.continuity.models import Device, EnforcementAction
from archive.continuity.runs import end_never_known, request_analysis
from archive.models import Case, EvidenceItem, Role, User, utcnow
from archive.identity.users import CASE_WRITERS, actor_name, load_case, require_role, written_text
from archive.evidence.filenames import refuse_nul
from archive.records.common import require_reason

MAX_CLOCK_OFFSET = 7 * 24 * 3600.0


def description_text(text: str, *, limit: int) -> str:
    """A description of an action or a device as written (:func:`written_text`): 422
    ``invalid_description`` when it holds a character that would make it show otherwise than
    stored (a bidirectional override turns "seized 1000" into what reads as another number on
    the continuity report and the pages), or is longer than ``limit``. Nothing visible: ``""``.
    A NUL is ``nul_character``, as everywhere."""
    refuse_nul(text, what="the description")
    return written_text(text, code="invalid_description", what="the description", limit=limit, required=False)


def _check_device_id(device_id: str) -> str:
    device_id = device_id.strip()
    if not device_id or len(device_id) > 200 or not device_id.isprintable():
        raise InvalidInput("device id must be 1-200 printable characters", code="invalid_device_id")
    return device_id


def set_device_clock(
    session: Session,
    *,
    user: User,
    device_id: str,
    offset_seconds: float,
    source: str = "declared",
    description: str | None = None,
) -> tuple[Device, list[str]]:
    """Set a device's clock offset (S > 0: device clock ahead; true = device - S).

    Returns the device and the ids of the cases whose continuity it changes (their
    analysis is requested here; enqueue it after commit). Each such case gets a
    custody entry; with none, one entry without a case records the change. Forbidden
    for a non-admin when a case of another unit uses the device.
    """
    require_role(user, CASE_WRITERS, doing="set device clocks")
    device_id = _check_device_id(device_id)
    if not math.isfinite(offset_seconds) or abs(offset_seconds) > MAX_CLOCK_OFFSET:
        raise InvalidInput(
            f"clock_offset_seconds must be a finite number within ±{MAX_CLOCK_OFFSET:.0f}", code="invalid_clock_offset"
        )
    if source not in ("declared", "measured"):
        raise InvalidInput("source must be 'declared' or 'measured'", code="invalid_offset_source")
    # A device's offset moves the recordings it made, and so the gaps of every case holding
    # one: a non-admin may set it only when all of those cases are their own unit's. An
    # action naming the device is a plan, not a recording: naming devices in one unit's
    # actions must not take their clocks from the units that record with them.
    if user.role != Role.admin:
        others = session.execute(
            select(EvidenceItem.case_id).join(Case, Case.id == EvidenceItem.case_id)
            .where(EvidenceItem.device_id == device_id, Case.unit_id != user.unit_id).limit(1)
        ).first()
        if others is not None:
            raise Forbidden(
                f"device {device_id} is used in another unit's cases; an administrator must set its clock",
                code="device_of_other_unit",
            )
    # Upsert, then lock (the device row comes first in the lock order, see ledger.append):
    # two requests naming a new device at once both succeed, the later one's offset last.
    created = insert_ignoring_duplicates(session, Device, [{
        "id": device_id, "clock_offset_seconds": float(offset_seconds), "offset_source": source, "updated_by": user.id,
    }])
    device = session.execute(
        select(Device).where(Device.id == device_id).with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    ).scalar_one()
    previous = None if created else device.clock_offset_seconds
    device.clock_offset_seconds = float(offset_seconds)
    device.offset_source = source
    if description is not None:
        device.description = description_text(description, limit=500) or None
    elif previous is not None and previous != float(offset_seconds):
        # A description says how the old offset was found ("measured at docking 09:00");
        # kept, it would vouch for a number it no longer describes.
        device.description = None
    device.updated_at = utcnow()
    device.updated_by = user.id
    session.flush()
    cases = sorted(_cases_of_device(session, device_id))
    details = {
        "device": device_id, "clock_offset_seconds": device.clock_offset_seconds, "previous": previous,
        "source": source,
    }
    for case_id in cases:  # case rows before the ledger lock (see _lock_case), in one order
        request_analysis(session, case_id=case_id)
    for case_id in cases or [None]:
        ledger.append(session, actor=actor_name(user), action="device_clock_set", case_id=case_id, details=details)
    return device, cases


def _cases_of_device(session: Session, device_id: str) -> set[str]:
    cases = set(
        session.execute(select(EvidenceItem.case_id).where(EvidenceItem.device_id == device_id).distinct()).scalars()
    )
    # Device lists are JSON; filtering them in SQL is not portable across our databases.
    for case_id, devices in session.execute(select(EnforcementAction.case_id, EnforcementAction.devices)):
        if device_id in (devices or []):
            cases.add(case_id)
    return cases


def create_action(
    session: Session,
    *,
    user: User,
    case_id: str,
    kind: str,
    start: datetime,
    end: datetime | None,
    devices: Iterable[str],
    description: str | None = None,
    record_item: str | None = None,
) -> EnforcementAction:
    """Record an enforcement action whose window the given devices must cover.

    ``record_item`` names the action's record, a document of the case: its signing time
    (the PDF's signature, else the ``recorded_start`` declared for it) closes the window,
    so an interview runs from its start to the signing of its record and ``end`` may be
    left out, unless the record was processed and gives no signing time after ``start``
    (``record_not_signed``: its window would never end). Requests a continuity analysis of the case (enqueue it after commit).
    """
    load_case(session, user=user, case_id=case_id, write=True)
    kind = kind.strip()
    if not kind or len(kind) > 60:
        raise InvalidInput("kind must be 1-60 characters (inspection, seizure, interview...)", code="invalid_kind")
    refuse_nul(kind, what="the action's kind")
    kind = written_text(kind, code="invalid_kind", what="the action's kind", limit=60)
    description = description_text(description, limit=10_000) if description is not None else None
    if end is None and record_item is None:
        raise InvalidInput("give the action's end, or the record whose signing ends it", code="invalid_window")
    if start.tzinfo is None or (end is not None and end.tzinfo is None):
        raise InvalidInput("start and end need a time zone (e.g. Z or +08:00)", code="timezone_required")
    # Stored and answered in UTC, as read back later.
    start_utc, end_utc = in_range_utc(start), in_range_utc(end) if end is not None else None
    if start_utc is None or (end is not None and end_utc is None):
        raise InvalidInput("start and end must fall within the years 1900-2999", code="invalid_window")
    start, end = start_utc, end_utc
    if end is not None and end <= start:
        raise InvalidInput("the action's end must be after its start", code="invalid_window")
    if record_item is not None:
        record = session.get(EvidenceItem, record_item)
        if record is None or record.case_id != case_id:
            raise InvalidInput(f"no item {record_item} in this case to serve as the record",
                               code="invalid_record_item")
    device_ids = list(dict.fromkeys(_check_device_id(d) for d in devices))
    action = EnforcementAction(
        case_id=case_id, kind=kind, window_start=start, window_end=end, devices=device_ids,
        description=description, record_item_id=record_item, created_by=user.id,
    )
    never = end_never_known(session, action)
    if never is not None:
        raise InvalidInput(f"the record cannot end the action's window: {never}; give the action's end",
                           code="record_not_signed")
    session.add(action)
    session.flush()
    request_analysis(session, case_id=case_id)
    ledger.append(
        session, actor=actor_name(user), action="action_recorded", case_id=case_id,
        details={
            "action": action.id, "kind": kind, "start": ledger.iso_utc(action.window_start),
            "end": ledger.iso_utc(action.window_end) if action.window_end else None, "devices": device_ids,
            "description": description, "record_item": record_item,
        },
    )
    return action


def set_action_end(session: Session, *, user: User, action_id: str, end: datetime, reason: str) -> EnforcementAction:
    """Give an action whose window its record was to close an end of its own, with a reason
    (a custody entry): a record that never carries a signing time after the action's start
    (its processing found none) left the window open for good, and the case could not close.
    Only such an action: a window with an end is never moved afterwards (409
    ``action_end_known``). Requests a continuity analysis of the case (enqueue it after commit)."""
    action = session.get(EnforcementAction, action_id, with_for_update=True)
    if action is None:
        raise NotFound(f"no action {action_id} visible to you", code="action_not_found")
    try:
        load_case(session, user=user, case_id=action.case_id, write=True)
    except NotFound as exc:
        raise NotFound(f"no action {action_id} visible to you", code="action_not_found") from exc
    if action.window_end is not None:
        raise Conflict(f"action {action_id} already ends at {ledger.iso_utc(action.window_end)}; a window "
                       "with an end is not moved", code="action_end_known")
    reason = require_reason(reason)
    if end.tzinfo is None:
        raise InvalidInput("end needs a time zone (e.g. Z or +08:00)", code="timezone_required")
    end_utc = in_range_utc(end)
    if end_utc is None or end_utc <= action.window_start:
        raise InvalidInput("the action's end must be after its start, within the years 1900-2999",
                           code="invalid_window")
    action.window_end = end_utc
    request_analysis(session, case_id=action.case_id)
    ledger.append(session, actor=actor_name(user), action="action_end_set", case_id=action.case_id,
                  details={"action": action.id, "end": ledger.iso_utc(end_utc), "reason": reason,
                           "record_item": action.record_item_id})
    return action


def list_actions(session: Session, *, user: User, case_id: str) -> list[EnforcementAction]:
    """The enforcement actions of a case, by window start, for a user who may read the case."""
    load_case(session, user=user, case_id=case_id)
    return actions_of(session, case_id=case_id)


def actions_of(session: Session, *, case_id: str) -> list[EnforcementAction]:
    """The enforcement actions of a case, by window start (no access check)."""
    return list(
        session.execute(
            select(EnforcementAction).where(EnforcementAction.case_id == case_id)
            .order_by(EnforcementAction.window_start, EnforcementAction.created_at)
        ).scalars()
    )
