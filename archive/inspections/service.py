"""Requesting an inspection, reading it, and moving it through its states.

Every change of state is a custody entry of the case: ``inspection_requested``,
``inspection_capturing``, ``inspection_sealing``, ``inspection_done`` or
``inspection_failed`` (with the reason). The login cookies an officer supplies are named
in the ledger, never their values, and are emptied once the capture has used them.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import SplitResult, urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from archive import work
from archive.custody import ledger
from archive.db import Database
from archive.errors import InvalidInput, NotFound
from archive.evidence.filenames import refuse_nul
from archive.identity.users import actor_name, can_see_case, load_case, written_text
from archive.inspections.models import Inspection, InspectionStatus
from archive.models import Case, User, utcnow
from archive.settings import Settings
from archive.wording import Sentences

ACTOR = "system:worker"
STREAM_SUFFIXES = (".m3u8", ".flv")

INSPECTION_PROBLEMS = Sentences("inspection_problem", {
    "record_missing": "the capture is kept as item {item}, but its inspection record could not be made: {reason}",
    "interrupted": "the capture was interrupted (worker lost); files kept so far stay evidence; "
                   "ask for a new inspection",
}, fields={"item": r"\S+"})
"""Why an inspection ended ``failed`` other than its capture's own fault (the capture's are
:data:`ingest.capture.browser.CAPTURE_PROBLEMS`): stored in English as its ``error``."""

MAX_NOTE = 10_000
"""Characters of an inspection's note at most (422 ``invalid_note``)."""


def _check_cookies(cookies: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    out = []
    for c in cookies or []:
        if not isinstance(c, dict) or not isinstance(c.get("name"), str) or not isinstance(c.get("value"), str) \
                or not c["name"]:
            raise InvalidInput("each cookie needs a string name and value", code="invalid_cookies")
        out.append({k: c[k] for k in ("name", "value", "domain", "path", "secure", "httpOnly") if k in c})
    return out


def _target(url: str) -> SplitResult:
    """The parts of an absolute http(s) address, or 422 ``invalid_url`` (never a 500 for a
    malformed IPv6 host or port)."""
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput("url must be an absolute http or https URL", code="invalid_url")
    return parts


def request_inspection(
    session: Session, *, user: User, case_id: str, url: str, device_id: str, seconds: int, note: str | None,
    settings: Settings, cookies: list[dict[str, Any]] | None = None, mode: str | None = None,
) -> Inspection:
    """Record an officer's request and the durable work to capture it (sent after the commit)."""
    case = load_case(session, user=user, case_id=case_id, write=True)
    parts = _target(url)
    if not device_id.strip() or len(device_id) > 200 or not device_id.isprintable():
        raise InvalidInput("device id must be 1-200 printable characters", code="invalid_device_id")
    if not 1 <= seconds <= settings.capture_max_seconds:
        raise InvalidInput(f"seconds must be 1-{settings.capture_max_seconds}", code="invalid_seconds")
    if mode is None:
        mode = "stream" if parts.path.lower().endswith(STREAM_SUFFIXES) else "page"
    if mode not in ("page", "stream"):
        raise InvalidInput("mode must be page or stream", code="invalid_mode")
    jar = _check_cookies(cookies)
    # Printed on the sealed inspection record: refused if it would show otherwise than written.
    refuse_nul(note or "", what="the note")
    note = written_text(note, code="invalid_note", what="the note", limit=MAX_NOTE, required=False) or None
    inspection = Inspection(case_id=case.id, requested_by=user.id, url=url.strip(), device_id=device_id,
                            seconds=seconds, note=note, mode=mode, cookies=jar, status=InspectionStatus.queued,
                            summary={})
    session.add(inspection)
    session.flush()
    work.want(session, task=work.INSPECT, subject=inspection.id)
    ledger.append(session, actor=actor_name(user), action="inspection_requested", case_id=case.id,
                  details={"inspection": inspection.id, "url": inspection.url, "device_id": device_id,
                           "seconds": seconds, "note": note, "mode": mode,
                           "cookies": sorted(c["name"] for c in jar)})
    return inspection


def get_inspection(session: Session, *, user: User, inspection_id: str) -> Inspection:
    """The inspection, if the user may see its case (another unit's answers like an unknown one)."""
    inspection = session.get(Inspection, inspection_id)
    case = session.get(Case, inspection.case_id) if inspection is not None else None
    if inspection is None or case is None or not can_see_case(user, case):
        raise NotFound(f"no inspection {inspection_id} visible to you", code="inspection_not_found")
    load_case(session, user=user, case_id=case.id)  # role check as for reading the case
    return inspection


def list_inspections(session: Session, *, user: User, case_id: str) -> list[Inspection]:
    """The case's inspections, newest first."""
    load_case(session, user=user, case_id=case_id)
    return list(session.execute(select(Inspection).where(Inspection.case_id == case_id)
                                .order_by(Inspection.created_at.desc())).scalars())


def start_capture(db: Database, inspection_id: str) -> dict[str, Any] | None:
    """Move a queued (or interrupted) inspection to ``capturing``; its request as a dict, with
    the cookies (then emptied). None when it already ended."""
    with db.session() as session:
        row = session.get(Inspection, inspection_id, with_for_update=True)
        if row is None or row.status in (InspectionStatus.done, InspectionStatus.failed):
            return None
        request = {"id": row.id, "case_id": row.case_id, "user_id": row.requested_by, "url": row.url,
                   "device_id": row.device_id, "seconds": row.seconds, "note": row.note, "mode": row.mode,
                   "cookies": list(row.cookies or []), "status": row.status.value}
        if row.status == InspectionStatus.queued:
            row.status, row.started_at, row.cookies = InspectionStatus.capturing, utcnow(), []
            ledger.append(session, actor=ACTOR, action="inspection_capturing", case_id=row.case_id,
                          details={"inspection": row.id})
        return request


def mark_sealing(db: Database, inspection_id: str, *, summary: dict[str, Any]) -> None:
    """The capture ended; its files are being packaged, sealed and received."""
    with db.session() as session:
        row = session.get(Inspection, inspection_id, with_for_update=True)
        if row.status == InspectionStatus.capturing:
            row.status, row.summary = InspectionStatus.sealing, summary
            ledger.append(session, actor=ACTOR, action="inspection_sealing", case_id=row.case_id,
                          details={"inspection": row.id, "summary": summary})


def keep_bundle(db: Database, inspection_id: str, *, item_id: str) -> None:
    """Name the WACZ item as soon as it is evidence, so an inspection that fails later (its
    record, a member, a lost worker) still names the bundle it kept."""
    with db.session() as session:
        row = session.get(Inspection, inspection_id, with_for_update=True)
        if row is not None and row.status not in (InspectionStatus.done, InspectionStatus.failed):
            row.item_id = item_id


def finish(db: Database, inspection_id: str, *, item_id: str | None, record_id: str | None,
           error: str | None) -> None:
    """End the inspection: ``done`` with its items, or ``failed`` with the reason (and what was
    kept: a bundle named by :func:`keep_bundle` stays named when ``item_id`` is None)."""
    with db.session() as session:
        row = session.get(Inspection, inspection_id, with_for_update=True)
        if row is None or row.status in (InspectionStatus.done, InspectionStatus.failed):
            return
        item_id = item_id or row.item_id
        row.item_id, row.record_item_id, row.finished_at = item_id, record_id, utcnow()
        row.status = InspectionStatus.failed if error else InspectionStatus.done
        row.error, row.cookies = error, []
        ledger.append(session, actor=ACTOR, action=f"inspection_{row.status.value}", case_id=row.case_id,
                      item_id=item_id, details={"inspection": row.id, "item": item_id, "record": record_id,
                                                "error": error})
