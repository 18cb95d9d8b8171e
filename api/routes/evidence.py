"""Evidence items: their record and their content (every read is a custody entry)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.responses import StreamingResponse

from api.deps import CurrentUser, ServicesDep, SessionDep
from api.schemas import ErrorResponse, ItemPublic
from api.streaming import digest_headers
from archive.evidence import items as evidence_service
from archive.errors import NotFound

router = APIRouter(prefix="/api/v1/evidence", tags=["evidence"])
ERRORS = {s: {"model": ErrorResponse} for s in (401, 403, 404, 416)}


@router.get("/{item_id}", response_model=ItemPublic, responses=ERRORS)
def get_item(item_id: str, session: SessionDep, user: CurrentUser) -> ItemPublic:
    """An item's record: hashes, storage, processing state, flags and derived files."""
    item = evidence_service.load_item(session, user=user, item_id=item_id)
    return ItemPublic.of(item, duplicate_of=evidence_service.duplicates_of(session, user=user, items=[item])[item.id])


@router.get(
    "/{item_id}/content", responses={**ERRORS, 200: {"content": {"application/octet-stream": {}}}, 206: {}},
    response_class=StreamingResponse,
)
def get_content(
    item_id: str, session: SessionDep, user: CurrentUser, services: ServicesDep,
    range_header: Annotated[str | None, Header(alias="Range")] = None,
) -> StreamingResponse:
    """The original's bytes, streamed; a single ``Range`` is honoured (206)."""
    item = evidence_service.load_item(session, user=user, item_id=item_id)
    byte_range = evidence_service.parse_range(range_header, item.size) if item.size else None
    with services.db.session() as writing:
        evidence_service.record_read(writing, user=user, item=item, byte_range=byte_range)
    start, end = byte_range if byte_range else (0, None)
    body = services.store.read(item.storage_key, version_id=item.storage_version, start=start, end=end) if item.size else iter(())
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": f'"{item.sha256}"',
        **digest_headers(item.sha256),
        "Content-Disposition": f"attachment; filename*=UTF-8''{_quote(item.original_filename)}",
    }
    if byte_range:
        headers["Content-Range"] = f"bytes {start}-{end}/{item.size}"
        headers["Content-Length"] = str(end - start + 1)
        return StreamingResponse(body, status_code=206, media_type=item.media_type, headers=headers)
    headers["Content-Length"] = str(item.size)
    return StreamingResponse(body, media_type=item.media_type, headers=headers)


@router.get(
    "/{item_id}/derived/{role}", responses={**ERRORS, 200: {"content": {"application/octet-stream": {}}}, 206: {}},
    response_class=StreamingResponse,
)
def get_derived(
    item_id: str, role: str, session: SessionDep, user: CurrentUser, services: ServicesDep,
    range_header: Annotated[str | None, Header(alias="Range")] = None,
) -> StreamingResponse:
    """A derived object's bytes (thumbnail, proxy...), streamed; a custody entry like any read."""
    item = evidence_service.load_item(session, user=user, item_id=item_id)
    derived = evidence_service.find_derived(session, item_id=item.id, role=role)
    if derived is None:
        raise NotFound(f"item {item_id} has no derived object {role!r}", code="derived_not_found")
    byte_range = evidence_service.parse_range(range_header, derived.size) if derived.size else None
    with services.db.session() as writing:
        evidence_service.record_read(writing, user=user, item=item, byte_range=byte_range, purpose=f"derived:{role}")
    start, end = byte_range if byte_range else (0, None)
    body = services.store.read(derived.storage_key, version_id=derived.storage_version, start=start, end=end)
    headers = {"Accept-Ranges": "bytes", "ETag": f'"{derived.sha256}"', **digest_headers(derived.sha256)}
    if byte_range:
        headers["Content-Range"] = f"bytes {start}-{end}/{derived.size}"
        headers["Content-Length"] = str(end - start + 1)
        return StreamingResponse(body, status_code=206, media_type=derived.media_type, headers=headers)
    headers["Content-Length"] = str(derived.size)
    return StreamingResponse(body, media_type=derived.media_type, headers=headers)


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")
