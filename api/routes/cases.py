"""Cases and the evidence they hold."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from api.deps import (
    MAX_DB_INT, CurrentUser, CurrentUserId, Services, ServicesDep, SessionDep, credential_check, refuse_content_coding,
)
from api.idempotent import REPLAY_DOC, IdempotencyKeyHeader, idempotent, json_reply, replayed
from api.list_cache import Page
from api.schemas import CaseCreate, CasePublic, ErrorResponse, ItemPublic, case_json, item_fields, item_page_json
from api.streaming import consume_body
from archive.cases import service as case_service
from archive.evidence import items as evidence_service
from archive.evidence import receiving
from archive import idempotency, work
from archive.errors import IdempotencyKeyReused, InvalidInput
from archive.models import Case, EvidenceItem, EvidenceKind, User
from archive.records import retention
from archive.settings import Settings
from archive.identity.users import load_case, reading_scope

router = APIRouter(prefix="/api/v1/cases", tags=["cases"])

ERRORS = {s: {"model": ErrorResponse} for s in (401, 403, 404, 409, 422)}


@router.get("", response_model=list[CasePublic], responses=ERRORS)
def list_cases(
    session: SessionDep, services: ServicesDep, user: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100, offset: Annotated[int, Query(ge=0, le=MAX_DB_INT)] = 0,
) -> list[CasePublic]:
    """Cases of the caller's unit (all cases for admins), newest first."""
    return public_cases(session, services.settings, case_service.list_cases(session, user=user, limit=limit, offset=offset))


@router.post("", status_code=201, response_model=CasePublic, responses={**ERRORS, 201: REPLAY_DOC})
async def create_case(
    body: CaseCreate, services: ServicesDep, user_id: CurrentUserId, idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    """Open a case in the caller's unit, with its one vault (409 ``case_number_taken`` if the number exists)."""
    fingerprint = idempotency.fingerprint("POST", "/api/v1/cases", body.model_dump(mode="json"))
    async with idempotent(services.db, user_id=user_id, header=idempotency_key, fingerprint=fingerprint) as held:
        if held is not None and held.replay is not None:
            return replayed(held.replay)

        def create() -> str:
            with services.db.session() as session:
                case = case_service.create_case(
                    session, store=services.store, user=session.get(User, user_id), case_number=body.case_number,
                    title=body.title,
                )
                reply = public_cases(session, services.settings, [case])[0].model_dump_json()
                if held is not None:
                    idempotency.record_reply(session, held, status=201, body=reply)
            return reply

        reply = await run_in_threadpool(create)
    return json_reply(201, reply)


@router.get("/{case_id}", response_model=CasePublic, responses=ERRORS)
def get_case(case_id: str, session: SessionDep, services: ServicesDep, user: CurrentUser) -> Response:
    """One case, if it is the caller's unit's."""
    case = retention.readable_case(session, user=user, settings=services.settings, case_id=case_id)
    return Response(case_json(case), media_type="application/json")


def public_cases(session: Session, settings: Settings, cases: list[Case]) -> list[CasePublic]:
    """Cases as the API shows them, with their legal hold and retention class."""
    standing = retention.standing(session, settings=settings, case_ids=[c.id for c in cases])
    return [CasePublic.of(c, legal_hold=standing[c.id].hold is not None, retention_class=standing[c.id].retention_class)
            for c in cases]


@router.get("/{case_id}/evidence", response_model=list[ItemPublic], responses=ERRORS)
def list_evidence(
    case_id: str, session: SessionDep, user: CurrentUser, services: ServicesDep,
    after: Annotated[str | None, Query(max_length=36, description=(
        "Continue after this item (the last one of the previous page)"))] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> Response:
    """The evidence items of a case, oldest first, a page at a time: when more follow, the
    ``Link`` header (``rel="next"``) names the next page (``after`` = the page's last item).
    Each item is shown as ``GET /api/v1/evidence/{id}`` shows it, except that a document's
    extracted text (``media_facts.document.text``) is left out of the list."""
    case = load_case(session, user=user, case_id=case_id)
    # The same page read again, with nothing in it changed since, is sent as it was last
    # written (api.list_cache): the numbers are taken before anything of the list is read.
    version = evidence_service.list_version(session, case_id=case_id)
    key = (case_id, after, limit, reading_scope(user))
    page = services.lists.get(key, version)
    if page is None:
        items = evidence_service.case_item_page(session, case_id=case_id, user=user, after=after, limit=limit)
        link = (f'</api/v1/cases/{case_id}/evidence?after={items[-1].id}&limit={limit}>; rel="next"'
                if len(items) == limit else None)
        # Serialised once, from plain values: returned as models, FastAPI would validate the
        # whole page again against the response model before writing it (five times the cost).
        names = evidence_service.CaseNames.of(case)
        page = Page(item_page_json([item_fields(i, duplicate_of=i.duplicate_of, case=names) for i in items]), link)
        services.lists.keep(key, version, page)
    return Response(page.body, media_type="application/json", headers={"Link": page.link} if page.link else None)


@router.post(
    "/{case_id}/evidence", status_code=201, response_model=ItemPublic,
    responses={**ERRORS, 201: REPLAY_DOC, 408: {"model": ErrorResponse, "description": (
        "The body sent nothing for EVIDENCE_UPLOAD_IDLE_SECONDS (`upload_stalled`); nothing was kept")},
        200: {"model": ItemPublic, "description": (
        "The case already holds this content (same SHA-256): the existing item, named again in the "
        "Duplicate-Of header; the new copy was not kept")}},
    openapi_extra={"requestBody": {"required": True, "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}},
)
async def upload_evidence(
    case_id: str,
    request: Request,
    services: ServicesDep,
    user_id: CurrentUserId,
    kind: EvidenceKind,
    filename: Annotated[str, Query(description="The file's name as given (see README, File names)")],
    sha256: Annotated[str | None, Query(description="Declared SHA-256 (hex); a mismatch keeps nothing")] = None,
    device_id: Annotated[str | None, Query(max_length=200)] = None,
    recorded_start: Annotated[str | None, Query(description="ISO 8601 with zone, e.g. 2026-03-01T10:02:00+08:00")] = None,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    """Upload one original as the raw request body; it is hashed while it streams in.

    With an ``Idempotency-Key``, a retry of an upload that succeeded stores nothing: its body
    is hashed as it arrives and, if it is the same, the first answer is given again. Content
    the case already holds is one piece of evidence: the answer is 200 with that item.
    """
    refuse_content_coding(request)
    started = receiving.parse_recorded_start(recorded_start)
    incoming = receiving.IncomingEvidence(
        case_id=case_id, kind=kind, filename=filename, declared_sha256=sha256,
        device_id=device_id, recorded_start=started,
    )
    expected = request.headers.get("content-length")
    try:
        expected_size = int(expected) if expected is not None else None
    except ValueError as exc:
        raise InvalidInput("Content-Length is not a number", code="invalid_content_length") from exc
    declared = receiving.normalise_sha256(sha256)
    fingerprint = idempotency.fingerprint("POST", f"/api/v1/cases/{case_id}/evidence", {
        "kind": kind.value, "filename": filename, "sha256": declared, "device_id": device_id,
        "recorded_start": started.isoformat() if started else None,
        # Without a declared hash the length is all that is known of the body before it arrives.
        "length": expected_size if declared is None else None,
    })
    try:
        async with idempotent(services.db, user_id=user_id, header=idempotency_key, fingerprint=fingerprint) as held:
            if held is not None and held.replay is not None:
                # Before any check of the case: a retry of what succeeded succeeds, even if the
                # case has changed since. Its body must be the one stored (a declared hash may be
                # absent): hashed as it arrives, never kept.
                digest = await consume_body(request.stream(), _sha256_of, protocol="direct_replay",
                                            idle=services.settings.upload_idle_seconds)
                if digest != held.replay.content_sha256:
                    raise IdempotencyKeyReused(
                        "this Idempotency-Key was used for an upload of different bytes; use a new key",
                        code="idempotency_key_reused",
                    )
                return replayed(held.replay)
            def check() -> None:
                with services.db.read() as session:
                    receiving.check_incoming(session, user=session.get(User, user_id), incoming=incoming)

            # Refuse before a byte is stored when the case or the parameters are wrong. Database
            # work runs in a thread: this route is async, and a wait on the event loop stalls all.
            await run_in_threadpool(check)
            replies: list[str] = []

            def registered(session: Session, item: EvidenceItem) -> None:
                # In the transaction that commits the item: the answer is fixed with it, as stored
                # (refreshed: times come back in UTC, as every later read shows them).
                session.refresh(item)
                duplicates = evidence_service.duplicates_of(session, user=session.get(User, user_id), items=[item])
                replies.append(ItemPublic.of(item, duplicate_of=duplicates[item.id]).model_dump_json())
                if held is not None:
                    idempotency.record_reply(session, held, status=201, body=replies[0], content_sha256=item.sha256)

            still_allowed = credential_check(services, request)

            def receive(chunks):  # type: ignore[no-untyped-def]
                # The credential is checked again as the body streams and at its end: a token
                # revoked mid-upload keeps nothing (a disabled user: still_admitted, at registering).
                chunks = receiving.checked_while_streaming(chunks, still_allowed)
                return receiving.receive_original(
                    db=services.db, store=services.store, user_id=user_id, incoming=incoming,
                    chunks=idempotency.renewing(services.db, held, chunks) if held is not None else chunks,
                    retention_days=services.settings.retention_days, expected_size=expected_size,
                    on_registered=registered, recheck_uploader=True,
                )

            item = await consume_body(request.stream(), receive, protocol="direct",
                                         idle=services.settings.upload_idle_seconds)
    except receiving.DuplicateEvidence as dup:
        # One piece of evidence is one item: the copy was discarded before it was locked,
        # and the answer is the item that already holds this content.
        existing_id = dup.existing_id
        body = await run_in_threadpool(_existing_item_json, services, user_id, existing_id)
        return json_reply(200, body, headers={"Duplicate-Of": existing_id})
    # The item is committed: from here on the answer is a success (enqueue only logs a failure).
    await run_in_threadpool(services.enqueue, work.PROCESS_ITEM, item.id)
    return json_reply(201, replies[0])


def _existing_item_json(services: Services, user_id: str, item_id: str) -> str:
    """The answer for an upload whose content the case already holds: that item, as JSON."""
    with services.db.read() as session:
        user = session.get(User, user_id)
        item = evidence_service.load_item(session, user=user, item_id=item_id)
        duplicates = evidence_service.duplicates_of(session, user=user, items=[item])
        return ItemPublic.of(item, duplicate_of=duplicates[item.id]).model_dump_json()


def _sha256_of(chunks: Iterable[bytes]) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()
