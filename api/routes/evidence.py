"""Evidence items: their record and their content (every read is a custody entry)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse
from sqlalchemy.orm import Session

from api.conditional import NOT_MODIFIED, Preconditions, RangedPreconditionsDep
from api.deps import CurrentUser, Services, ServicesDep, SessionDep, record_read
from api.schemas import ErrorResponse, ItemPublic, item_fields, item_json
from api.streaming import DeliveredResponse, closed_on_error, content_disposition, delivered, digest_headers
from archive.evidence import fixity
from archive.evidence import items as evidence_service
from archive.errors import NotFound, ObjectNotFound
from archive.identity.users import actor_name
from archive.models import DerivedObject, EvidenceItem, User

router = APIRouter(prefix="/api/v1/evidence", tags=["evidence"])
ERRORS = {s: {"model": ErrorResponse} for s in (401, 403, 404, 410, 416)}


@router.get("/{item_id}", response_model=ItemPublic, responses=ERRORS)
def get_item(item_id: str, session: SessionDep, user: CurrentUser, services: ServicesDep) -> Response:
    """An item's record: hashes, storage, processing state, flags and derived files. A
    document's record carries its extracted text: that read is a custody entry
    (``content_read``, purpose ``extracted text``)."""
    item, case = evidence_service.item_record(session, user=user, item_id=item_id)
    if evidence_service.shows_text(item):
        record_read(services, session, user=user, item=item, purpose=evidence_service.READ_PURPOSES.say("text"))
    return Response(item_json(item_fields(item, duplicate_of=item.duplicate_of, case=case)),
                    media_type="application/json")


CONTENT = {
    **ERRORS, 200: {"content": {"application/octet-stream": {}}},
    206: {"description": "Partial Content: the one range asked for"}, **NOT_MODIFIED, 412: {"model": ErrorResponse},
}
"""What a content operation answers, GET and HEAD alike (HEAD without the body)."""


@router.get("/{item_id}/content", responses=CONTENT, response_class=StreamingResponse)
@router.head("/{item_id}/content", responses=CONTENT, response_class=StreamingResponse)
def get_content(
    item_id: str, request: Request, session: SessionDep, user: CurrentUser, services: ServicesDep,
    conditions: RangedPreconditionsDep,
    inline: Annotated[bool, Query(description="Show an image or PDF in the browser instead of downloading it "
                                              "(other types are still sent as a download)")] = False,
) -> Response:
    """The original's bytes, streamed; a single ``Range`` is honoured (206), and If-Match,
    If-None-Match and If-Range against the ETag (the SHA-256). HEAD answers the same without them."""
    item = evidence_service.load_item(session, user=user, item_id=item_id)
    return _serve(services, session, request.method, user=user, item=item, stored=item,
                  purpose=evidence_service.READ_PURPOSES.say("content"),
                  conditions=conditions, headers=_disposition(item.original_filename, item.media_type, inline=inline))


@router.get("/{item_id}/derived/{role}", responses=CONTENT, response_class=StreamingResponse)
@router.head("/{item_id}/derived/{role}", responses=CONTENT, response_class=StreamingResponse)
def get_derived(
    item_id: str, role: str, request: Request, session: SessionDep, user: CurrentUser, services: ServicesDep,
    conditions: RangedPreconditionsDep,
) -> Response:
    """A derived object's bytes (thumbnail, proxy...), streamed; a custody entry like any read."""
    item = evidence_service.load_item(session, user=user, item_id=item_id)
    derived = evidence_service.find_derived(session, item_id=item.id, role=role)
    if derived is None:
        raise NotFound(f"item {item_id} has no derived object {role!r}", code="derived_not_found")
    return _serve(services, session, request.method, user=user, item=item, stored=derived,
                  purpose=evidence_service.READ_PURPOSES.say("derived", role=role), conditions=conditions)


def _serve(
    services: Services, session: Session, method: str, *, user: User, item: EvidenceItem,
    stored: EvidenceItem | DerivedObject, purpose: str, conditions: Preconditions,
    headers: dict[str, str] | None = None,
) -> Response:
    """Answer a GET or HEAD of ``stored`` (the item's original or one of its derived objects),
    which the caller may read: 412 or 304 as its preconditions say, else all of it or the
    one range asked for.

    A whole object is checked against its recorded SHA-256 as it is sent (the last piece
    held back until it matches): an altered one is never delivered complete, and is flagged
    at once (:func:`archive.evidence.fixity.served_checked`). A range is sent unchecked.

    Only a GET that sends bytes is a read, and so a custody entry. A HEAD or a 304 sends no
    evidence bytes: it opens nothing in the store and records nothing (it was authorised
    all the same, by loading the item).
    """
    etag = f'"{stored.sha256}"'
    if conditions.not_modified(etag):
        return Response(status_code=304, headers={"ETag": etag})
    byte_range = evidence_service.parse_range(conditions.range_for(etag), stored.size)
    if method == "HEAD":
        body: Iterator[bytes] = iter(())
    else:
        item_id, actor = item.id, actor_name(user)

        def audit() -> None:
            """Audit the item at once (flags it and its case); also from the stream, after the
            request's session is gone, hence the plain id and name."""
            fixity.audit_now(db=services.db, store=services.store, item_id=item_id, actor=actor)

        try:
            body = _open(services, key=stored.storage_key, version=stored.storage_version, size=stored.size,
                         byte_range=byte_range)
        except ObjectNotFound:
            # The item exists, its bytes do not: flagged at once (missing_object), and said so
            # without naming the storage key.
            audit()
            what = "original" if isinstance(stored, EvidenceItem) else f"derived object {stored.role!r}"
            raise fixity.StoredObjectMissing(
                f"the stored {what} of item {item_id} is missing from the store; the item and its case are "
                "flagged missing_object for the administrators") from None
        with closed_on_error(body):
            read = record_read(services, session, user=user, item=item, byte_range=byte_range, purpose=purpose)
        if byte_range is None:  # a whole object can be checked as it is sent (a range cannot)
            body = fixity.served_checked(body, sha256=stored.sha256, size=stored.size, on_altered=audit)
        case_id = item.case_id

        def ended(sent: int, stopped: str | None) -> None:
            if stopped is not None:  # cut short: the store failing part-way, the reader gone
                evidence_service.record_read_interrupted(services.db, actor=actor, case_id=case_id, item_id=item_id,
                                                         details=read, sent=sent, stopped=stopped)
        body = delivered(body, on_end=ended)
    return _stream(body, size=stored.size, sha256=stored.sha256, media_type=stored.media_type,
                   byte_range=byte_range, headers=headers)


def _open(services: Services, *, key: str, version: str | None, size: int,
          byte_range: tuple[int, int] | None) -> Iterator[bytes]:
    """The stored bytes to send, opened before the read is recorded: a store that cannot
    give them answers 503 and leaves no custody entry for a read that delivered nothing."""
    start, end = byte_range if byte_range else (0, None)
    return services.store.read(key, version_id=version, start=start, end=end) if size else iter(())


def _stream(
    body: Iterator[bytes], *, size: int, sha256: str, media_type: str,
    byte_range: tuple[int, int] | None, headers: dict[str, str] | None = None,
) -> StreamingResponse:
    """A stored object's bytes (all, or the one range asked for: 206), with its digest headers."""
    start, end = byte_range if byte_range else (0, None)
    headers = {"Accept-Ranges": "bytes", "ETag": f'"{sha256}"', **digest_headers(sha256), **(headers or {})}
    if byte_range:
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        headers["Content-Length"] = str(end - start + 1)
        return DeliveredResponse(body, status_code=206, media_type=media_type, headers=headers)
    headers["Content-Length"] = str(size)
    return DeliveredResponse(body, media_type=media_type, headers=headers)


IMAGE_POLICY = "sandbox; default-src 'none'; img-src 'self'; style-src 'unsafe-inline'"
"""An image shown in place: a sandboxed document (no script, no form), fetching only itself."""


def _disposition(filename: str, media_type: str, *, inline: bool) -> dict[str, str]:
    """How the browser treats an original: a download, or (asked for, and a viewable type)
    shown in place with nothing able to run."""
    shown = inline and media_type in evidence_service.VIEWABLE_TYPES
    headers = {"Content-Disposition": content_disposition(filename, inline=shown),
               "X-Content-Type-Options": "nosniff"}
    # A PDF opens in the browser's own viewer, isolated from the page (a sandbox would block it).
    if shown and media_type != "application/pdf":
        headers["Content-Security-Policy"] = IMAGE_POLICY
    return headers


