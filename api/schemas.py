"""API schemas: what goes over the wire. Database models never leave the service."""

from __future__ import annotations

from datetime import datetime
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import orjson
from fastapi.responses import Response
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictFloat, TypeAdapter

from archive.evidence.items import SHOWN_DERIVED, CaseNames, ItemRecord
from archive.models import Case, EvidenceItem, EvidenceKind
from archive.timefmt import given_time


IsoDateTime = Annotated[datetime, BeforeValidator(given_time)]
"""A date-time sent as ISO 8601 text only: lax pydantic would also take 0, or "1700000000",
as Unix seconds."""


class ReasonPublic(BaseModel):
    code: str = Field(description="Machine-readable reason")
    message: str = Field(description="Human explanation")
    subject: str = Field(default="", description=(
        "What the reason is about, in words that need no translation (a file name, a stage, a count); may be empty"))


class ErrorBody(BaseModel):
    code: str = Field(description="Machine-readable error code")
    message: str = Field(description="Human explanation")
    reasons: list[ReasonPublic] | None = Field(
        default=None, description="Every reason, where an error has several (`case_not_ready`)")


class ErrorResponse(BaseModel):
    error: ErrorBody


class CaseCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    case_number: str = Field(min_length=1, max_length=100)
    title: str = Field(min_length=1, max_length=500)


class CasePublic(BaseModel):
    id: str
    case_number: str
    title: str
    unit: str
    status: str
    stage: str
    """Where the case stands in its legal life (``filed`` ... ``closed``, see ``POST /cases/{id}/stage``)."""
    vault: str
    created_at: datetime
    flags: list[str]
    legal_hold: bool
    """True while an administrator's legal hold is in force (``POST /cases/{id}/hold``)."""
    retention_class: str
    """The case's retention class (``GET /api/v1/retention/classes``)."""

    @classmethod
    def of(cls, case: Case, *, legal_hold: bool, retention_class: str) -> CasePublic:
        return cls(**case_fields({
            "id": case.id, "case_number": case.case_number, "title": case.title, "unit": case.unit.name,
            "status": case.status, "stage": case.stage, "vault": case.vault.name, "created_at": case.created_at,
            "flags": case.flags, "legal_hold": legal_hold, "retention_class": retention_class}))


def case_fields(case: Mapping[str, Any]) -> dict[str, Any]:
    """A case as :class:`CasePublic` shows it, as plain values in the model's order, from its
    columns and names (:func:`archive.records.retention.readable_case`)."""
    return {
        "id": case["id"], "case_number": case["case_number"], "title": case["title"], "unit": case["unit"],
        "status": case["status"].value, "stage": case["stage"].value, "vault": case["vault"],
        "created_at": case["created_at"], "flags": case["flags"] or [], "legal_hold": bool(case["legal_hold"]),
        "retention_class": case["retention_class"],
    }


CASE = TypeAdapter(CasePublic)


def case_json(case: Mapping[str, Any]) -> bytes:
    """A case's :func:`case_fields` as JSON, the bytes :class:`CasePublic`'s schema writes."""
    return _json(case_fields(case), CASE)


class DerivedPublic(BaseModel):
    id: str
    role: str
    media_type: str
    sha256: str
    size: int
    content_url: str


def _derived_fields(derived_id: str, item_id: str, role: str, media_type: str, sha256: str, size: int) -> dict[str, Any]:
    """A derived object as an item's record shows it, from its values in :data:`SHOWN_DERIVED`'s order."""
    return {"id": derived_id, "role": role, "media_type": media_type, "sha256": sha256, "size": size,
            "content_url": f"/api/v1/evidence/{item_id}/derived/{role}"}


def _derived(item: EvidenceItem | ItemRecord) -> list[dict[str, Any]]:
    if isinstance(item, ItemRecord):
        return [_derived_fields(*d) for d in item.derived]
    return [_derived_fields(*(getattr(d, name) for name in SHOWN_DERIVED)) for d in item.derived]


class ItemPublic(BaseModel):
    id: str
    case_id: str
    case_number: str
    vault: str
    parent_id: str | None
    kind: EvidenceKind
    filename: str
    media_type: str
    size: int
    sha256: str
    sm3: str | None
    sha512: str | None = Field(None, description="Taken with SM3 by a worker after receipt")
    storage_key: str
    storage_version: str | None
    retention_until: datetime | None
    device_id: str | None
    recorded_start: datetime | None
    received_at: datetime
    status: str
    flags: list[str]
    processing: dict[str, Any]
    seal_status: str
    media_facts: dict[str, Any] | None
    details: dict[str, Any]
    derived: list[DerivedPublic]
    members: list[DerivedPublic] = Field(default_factory=list, description="Members of a capture bundle (role 'member')")
    duplicate_of: list[str] = Field(
        default_factory=list, description="Other items with the same content (SHA-256) in cases the caller may see"
    )
    content_url: str

    @classmethod
    def of(cls, item: EvidenceItem, *, duplicate_of: list[str] | None = None,
           case: CaseNames | None = None) -> ItemPublic:
        """``case``: the item's case's names, when the caller has them, else loaded.

        Built without validation (``model_construct``) from :func:`item_fields`: every value
        comes from the database with the field's own type. The answer is serialised by the
        model's schema."""
        fields = item_fields(item, duplicate_of=duplicate_of, case=case)
        fields["derived"] = [DerivedPublic.model_construct(**d) for d in fields["derived"]]
        fields["members"] = [DerivedPublic.model_construct(**m) for m in fields["members"]]
        return cls.model_construct(**fields)


def item_fields(item: EvidenceItem | ItemRecord, *, duplicate_of: list[str] | None = None,
                case: CaseNames | None = None) -> dict[str, Any]:
    """An item as :class:`ItemPublic` shows it, as plain values in the model's order (its
    derived objects and members as dicts): what :meth:`ItemPublic.of` is made of, and what an
    item's read and a case's list serialise straight away (:func:`item_json`,
    :func:`item_page_json`). ``case``: the names of the item's case, else its ``case``'s."""
    case = case or CaseNames.of(item.case)
    return {
        "id": item.id, "case_id": item.case_id, "case_number": case.case_number, "vault": case.vault,
        "parent_id": item.parent_id, "kind": item.kind, "filename": item.original_filename,
        "media_type": item.media_type, "size": item.size, "sha256": item.sha256, "sm3": item.sm3,
        "sha512": item.sha512, "storage_key": item.storage_key, "storage_version": item.storage_version,
        "retention_until": item.retention_until, "device_id": item.device_id,
        "recorded_start": item.recorded_start, "received_at": item.received_at, "status": item.status.value,
        "flags": item.flags or [], "processing": item.processing or {}, "seal_status": item.seal_status,
        "media_facts": item.media_facts, "details": item.details or {},
        "derived": _derived(item),
        "members": _members(item), "duplicate_of": duplicate_of or [],
        "content_url": f"/api/v1/evidence/{item.id}/content",
    }


def _members(item: EvidenceItem) -> list[dict[str, Any]]:
    """A capture bundle's members, shaped like derived files (role ``member``)."""
    if item.kind != EvidenceKind.remote_capture or item.parent_id is not None:
        return []
    return [{"id": c.id, "role": "member", "media_type": c.media_type, "sha256": c.sha256, "size": c.size,
             "content_url": f"/api/v1/evidence/{c.id}/content"} for c in item.members]


ITEM = TypeAdapter(ItemPublic)
ITEM_PAGE = TypeAdapter(list[ItemPublic])


def item_page_json(items: list[dict[str, Any]]) -> bytes:
    """A list of :func:`item_fields` as JSON, the bytes :class:`ItemPublic`'s schema writes for
    them (times in UTC with ``Z``, the kind by its value). orjson writes a page several times
    faster than building a model per item and serialising those (the list's largest cost,
    measured with py-spy); a value orjson cannot write (an integer beyond 64 bits in stored
    media facts) takes the model's way."""
    return _json(items, ITEM_PAGE)


def item_json(item: dict[str, Any]) -> bytes:
    """One item's :func:`item_fields` as JSON, written as :func:`item_page_json` writes a page."""
    return _json(item, ITEM)


def _json(value: Any, model: TypeAdapter[Any]) -> bytes:
    try:
        return orjson.dumps(value, option=orjson.OPT_UTC_Z)
    except orjson.JSONEncodeError:
        return model.dump_json(model.validate_python(value))


class LedgerEntryPublic(BaseModel):
    seq: int
    time: str
    actor: str
    case: str | None
    item: str | None
    action: str
    details: str = Field(description="Canonical JSON text, exactly as hashed")
    prev: str
    entry_hash: str


class TreeHeadPublic(BaseModel):
    tree_size: int
    root_hash: str
    last_entry_hash: str


class InclusionProofPublic(BaseModel):
    seq: int
    tree_size: int
    leaf_hash: str
    root_hash: str
    path: list[str]


class ConsistencyProofPublic(BaseModel):
    old_size: int
    new_size: int
    old_root: str
    new_root: str
    path: list[str]


class CheckpointProofLinks(BaseModel):
    """Where to get proofs against a checkpoint (``{seq}`` is filled in by the client)."""

    inclusion: str
    consistency_from_previous: str | None = Field(description="None for the first checkpoint")
    consistency_to_current: str = Field(description="Without new_size: to the ledger's current size")


class CheckpointPublic(BaseModel):
    """A sealed ledger checkpoint as published: its statement, its seals, and proof links."""

    id: int
    tree_size: int
    root_hash: str
    created_at: str
    timestamp_time: str | None
    statement: str = Field(description="The statement's JSON text, exactly as sealed")
    cades: str = Field(description="Detached CAdES-B-T signature over the statement, base64 DER")
    sm2: dict[str, Any] | None = Field(description="SM2/SM3 seal over the statement")
    proofs: CheckpointProofLinks


class DeviceUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Strict: JSON true/false or "1.5" are not offsets (lax pydantic would store true as 1.0).
    clock_offset_seconds: StrictFloat = Field(
        allow_inf_nan=False, ge=-1e9, le=1e9,
        description="Seconds the device clock runs ahead of true time (true = device - S)",
    )
    source: Literal["declared", "measured"] = Field(default="declared", description="declared or measured (at docking)")
    description: str | None = Field(default=None, max_length=500)


class DevicePublic(BaseModel):
    id: str
    clock_offset_seconds: float
    source: str
    description: str | None
    updated_at: datetime
    cases: list[str] = Field(default_factory=list, description="Cases whose continuity is re-analysed (those the caller may see)")


class ActionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: str = Field(min_length=1, max_length=60, description="inspection, seizure, interview, remote_inspection...")
    start: IsoDateTime = Field(description="ISO 8601 with time zone")
    end: IsoDateTime | None = Field(
        default=None, description="ISO 8601 with time zone, after start; may be left out when record_item is given"
    )
    devices: list[str] = Field(default_factory=list, max_length=1000, description="Devices or rooms assigned")
    description: str | None = Field(default=None, max_length=10_000)
    record_item: str | None = Field(
        default=None, max_length=36,
        description="The action's record (a document of the case): its signing time closes the window",
    )


class ActionEnd(BaseModel):
    model_config = ConfigDict(extra="forbid")
    end: IsoDateTime = Field(description="ISO 8601 with time zone, after the action's start")
    reason: str = Field(max_length=2000, description="Why the record cannot end the window (kept in the custody ledger)")


class ActionPublic(BaseModel):
    id: str
    case_id: str
    kind: str
    start: datetime
    end: datetime | None = Field(description="Declared end; null when the record's signing closes the window")
    devices: list[str]
    description: str | None
    record_item: str | None
    created_at: datetime

    @classmethod
    def of(cls, a: Any) -> ActionPublic:
        return cls(
            id=a.id, case_id=a.case_id, kind=a.kind, start=a.window_start, end=a.window_end,
            devices=list(a.devices or []), description=a.description, record_item=a.record_item_id,
            created_at=a.created_at,
        )


class GapPublic(BaseModel):
    id: str
    level: str = Field(description="in_file, between_segments, action_window, overlap (two recordings of one device "
                                   "at once), or unreadable (a recording that could not be read, so it is not on "
                                   "the timeline; start = end)")
    device: str | None
    item: str | None
    previous_item: str | None
    action: str | None
    start: datetime
    end: datetime
    duration_seconds: float
    cause: str
    explanation: str | None
    status: str = Field(description="open, explained, accepted or rejected")
    review_comment: str | None
    explained_by: str | None = Field(description="Name of the officer who explained the gap")
    explained_at: datetime | None
    reviewed_by: str | None = Field(description="Name of the reviewer who accepted or rejected the explanation")
    reviewed_at: datetime | None
    current: bool = Field(description="False when a later analysis no longer finds this gap")

    @classmethod
    def of(cls, g: Any, people: dict[str, str] | None = None) -> GapPublic:
        people = people or {}
        return cls(
            id=g.id, level=g.level, device=g.device, item=g.item_id, previous_item=g.previous_item_id,
            action=g.action_id, start=g.start, end=g.end, duration_seconds=g.duration_seconds, cause=g.cause,
            explanation=g.explanation, status=g.status.value, review_comment=g.review_comment,
            explained_by=people.get(g.explained_by, g.explained_by), explained_at=g.explained_at,
            reviewed_by=people.get(g.reviewed_by, g.reviewed_by), reviewed_at=g.reviewed_at, current=g.current,
        )


class ContinuityPublic(BaseModel):
    case_id: str
    complete: bool = Field(description="True only when nothing is pending and every current gap is accepted")
    pending: bool = Field(description="True while evidence of the case is processed or an analysis is queued")
    analysed_at: datetime | None
    summary: dict[str, Any]
    gaps: list[GapPublic]
    outstanding: list[dict[str, Any]] = Field(
        description="What keeps the continuity from being complete: {what, subject, reason, detail} per item "
                    "still processing, a queued analysis, and each current gap not accepted or whose record the "
                    "custody ledger contradicts (reason gap_record_altered)")


class ExplanationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=10_000)


class ReviewCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    accept: StrictBool
    comment: str | None = Field(default=None, max_length=10_000)


# The case's legal life ---------------------------------------------------------------


StageName = Literal["filed", "investigation", "notice", "hearing", "legal_review", "discussion", "decision",
                    "service", "enforcement", "closed", "withdrawn", "terminated", "referred"]


class StageMoveCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: StageName = Field(description="The stage to move to (``closed`` only by closing: 409 ``use_close``)")
    reason: str = Field(min_length=1, max_length=4000, description="Why (more than white space)")


class StageMovePublic(BaseModel):
    id: str
    case_id: str
    from_stage: str
    to_stage: str
    reason: str | None
    actor_id: str | None
    review_id: str | None
    at: datetime
    ledger_seq: int

    @classmethod
    def of(cls, m: Any) -> StageMovePublic:
        return cls(id=m.id, case_id=m.case_id, from_stage=m.from_stage.value, to_stage=m.to_stage.value,
                   reason=m.reason, actor_id=m.actor_id, review_id=m.review_id, at=m.at, ledger_seq=m.ledger_seq)


DocumentRole = Literal["filing_approval", "notice", "statement_record", "hearing_record", "discussion_record",
                       "decision", "service_proof", "public_notice", "enforcement_record", "closing_report", "other"]


class StageDocumentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    item: str = Field(min_length=1, max_length=36, description="An evidence item of the case")
    role: DocumentRole = Field(description="What the item is to the stage (e.g. ``notice``, ``decision``, "
                                           "``service_proof``, ``public_notice``)")
    stage: StageName | None = Field(default=None, description="The stage; default the case's current stage. "
                                                               "It must be one the case has reached.")
    note: str | None = Field(default=None, max_length=4000)


class StageDocumentPublic(BaseModel):
    id: str
    item: str
    stage: str
    role: str
    note: str | None
    linked_by: str
    at: datetime
    ledger_seq: int

    @classmethod
    def of(cls, d: Any, people: dict[str, str] | None = None) -> StageDocumentPublic:
        return cls(id=d.id, item=d.item_id, stage=d.stage.value, role=d.role.value, note=d.note,
                   linked_by=(people or {}).get(d.linked_by, d.linked_by), at=d.at, ledger_seq=d.ledger_seq)


class CaseLifePublic(BaseModel):
    """A case's stage, its handlers, every stage move and the stages' documents."""

    case_id: str
    stage: str
    handlers: list[str]
    moves: list[StageMovePublic]
    documents: list[StageDocumentPublic]


class AspectVerdict(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ok: StrictBool
    comment: str = Field(default="", max_length=10_000)


class ReviewAspects(BaseModel):
    """The five aspects every legal review judges (主体、事实、依据、自由裁量、程序)."""

    model_config = ConfigDict(extra="forbid")
    subject: AspectVerdict
    facts: AspectVerdict
    basis: AspectVerdict
    discretion: AspectVerdict
    procedure: AspectVerdict


class LegalReviewCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    checkpoint: Literal["filing", "committee", "approval", "closing"]
    aspects: ReviewAspects
    decision: Literal["approve", "return"] = Field(
        description="approve (every aspect ok), or return (with reasons in the opinion)")
    opinion: str = Field(default="", max_length=20_000)
    discussion_minutes: str | None = Field(default=None, max_length=200_000,
                                           description="Minutes of the collective discussion, when it met")


class ReviewSealsPublic(BaseModel):
    cades: str = Field(description="Detached CAdES-B-T signature over `record` (base64 DER)")
    sm2: dict[str, Any] = Field(description="SM2/SM3 seal over `record`")
    timestamp_time: str | None


class LegalReviewPublic(BaseModel):
    id: str
    checkpoint: str
    stage: str
    decision: str
    opinion: str
    aspects: dict[str, Any]
    discussion_minutes: str | None
    reviewer: str | None
    reviewer_id: str
    created_at: str
    ledger_seq: int
    record: str = Field(description="The sealed canonical JSON of the review, exactly as sealed")
    record_sha256: str
    seals: ReviewSealsPublic


class HandlerCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: str = Field(min_length=1, max_length=200, description="The name of an officer of the case's unit")


class ClosingGatesPublic(BaseModel):
    case_id: str
    stage: str
    reasons: list[ReasonPublic] = Field(description="Every reason the case cannot close now; empty when it can")


class CaseClosedPublic(BaseModel):
    id: str = Field(description="The case archive record's id")
    case_id: str
    stage: str
    sha256: str
    created_at: datetime
    record_url: str
    seal_url: str


def json_answer(model: BaseModel) -> Response:
    """``model`` serialised once, as the answer. Returned as a model from a route that is not
    async, FastAPI would check it against the response model again in a turn of its thread
    pool before writing it; a route that builds it from the database has nothing to check."""
    return Response(model.model_dump_json(), media_type="application/json")
