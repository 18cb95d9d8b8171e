"""The case's legal life: stages, handlers, legal reviews, closing and the case archive record."""

from __future__ import annotations

from fastapi import APIRouter, Response
from sqlalchemy.orm import Session

from api.deps import CurrentUser, CurrentUserId, ServicesDep, SessionDep
from api.schemas import (
    CaseClosedPublic,
    CaseLifePublic,
    ClosingGatesPublic,
    ErrorResponse,
    HandlerCreate,
    LegalReviewCreate,
    LegalReviewPublic,
    StageDocumentCreate,
    StageDocumentPublic,
    StageMoveCreate,
    StageMovePublic,
)
from archive.cases import closing, documents, reviews, stages
from archive.identity.users import load_case, user_names
from archive.models import Case
from archive.seals.manifests import canonical_bytes

router = APIRouter(prefix="/api/v1/cases", tags=["case life"])
ERRORS = {s: {"model": ErrorResponse} for s in (401, 403, 404, 409, 422)}


def _life(session: Session, case: Case) -> CaseLifePublic:
    ids = stages.handler_ids(session, case_id=case.id)
    docs = documents.documents_of(session, case_id=case.id)
    names = user_names(session, {*ids, *(d.linked_by for d in docs)})
    return CaseLifePublic(case_id=case.id, stage=case.stage.value, handlers=[names.get(i, i) for i in ids],
                          moves=[StageMovePublic.of(m) for m in stages.moves_of(session, case_id=case.id)],
                          documents=[StageDocumentPublic.of(d, names) for d in docs])


@router.get("/{case_id}/stage", response_model=CaseLifePublic, responses=ERRORS)
def get_stage(case_id: str, session: SessionDep, user: CurrentUser) -> CaseLifePublic:
    """The case's stage, handlers and every stage move (each also a custody entry)."""
    return _life(session, load_case(session, user=user, case_id=case_id))


@router.post("/{case_id}/stage", response_model=StageMovePublic, responses=ERRORS)
def move_stage(case_id: str, body: StageMoveCreate, session: SessionDep, user: CurrentUser) -> StageMovePublic:
    """Move the case to another stage, with a reason (see the allowed moves and review gates in the README).

    409 ``stage_move_not_allowed``, ``stage_gate`` (a review missing or returned), ``use_close``;
    403 ``not_a_handler``; reopening a closed case (to ``investigation``) is a reviewer's act.
    """
    return StageMovePublic.of(stages.move(session, user=user, case_id=case_id, to=body.to, reason=body.reason))


@router.post("/{case_id}/stage-documents", status_code=201, response_model=StageDocumentPublic, responses=ERRORS)
def link_stage_document(case_id: str, body: StageDocumentCreate, session: SessionDep,
                        user: CurrentUser) -> StageDocumentPublic:
    """Link an evidence item of the case to a stage as one of its documents (a custody entry).

    Handlers (or an administrator) link, while the case is open, to its current stage or one it
    has reached (409 ``stage_not_reached``); linking the same item, stage and role again answers
    the existing link. The links are sealed into the case archive record when the case closes.
    """
    link = documents.link_document(session, user=user, case_id=case_id, item_id=body.item, role=body.role,
                                   stage=body.stage, note=body.note)
    return StageDocumentPublic.of(link, user_names(session, {link.linked_by}))


@router.post("/{case_id}/handlers", response_model=CaseLifePublic, responses=ERRORS)
def add_handler(case_id: str, body: HandlerCreate, session: SessionDep, user: CurrentUser) -> CaseLifePublic:
    """Assign an officer of the case's unit as a handler (handlers can never review the case)."""
    handler = stages.add_handler(session, user=user, case_id=case_id, handler_name=body.user)
    return _life(session, load_case(session, user=user, case_id=handler.case_id))


@router.post("/{case_id}/reviews", status_code=201, response_model=LegalReviewPublic, responses=ERRORS)
def create_review(
    case_id: str, body: LegalReviewCreate, services: ServicesDep, user_id: CurrentUserId,
) -> LegalReviewPublic:
    """Record a legal review at a checkpoint: sealed (CAdES-B-T + SM2) and a custody entry.

    Only a reviewer of the case's unit who is not one of its handlers (403 ``handler_cannot_review``,
    ``forbidden_role``); 409 ``review_not_due`` outside the checkpoint's stages. A returned review
    sends the case back to its handlers.
    """
    review = reviews.record_review(
        db=services.db, sealer=services.sealer, user_id=user_id, case_id=case_id,
        body=reviews.ReviewInput(
            checkpoint=body.checkpoint, aspects=body.aspects.model_dump(),
            decision=body.decision, opinion=body.opinion, discussion_minutes=body.discussion_minutes,
        ),
    )
    with services.db.read() as session:
        name = user_names(session, {review.reviewer_id}).get(review.reviewer_id)
    return LegalReviewPublic(**reviews.review_document(review, reviewer=name))


@router.get("/{case_id}/reviews", response_model=list[LegalReviewPublic], responses=ERRORS)
def list_reviews(case_id: str, session: SessionDep, user: CurrentUser) -> list[LegalReviewPublic]:
    """Every legal review of the case, oldest first, each with its sealed record and seals."""
    rows = reviews.list_reviews(session, user=user, case_id=case_id)
    names = user_names(session, {r.reviewer_id for r in rows})
    return [LegalReviewPublic(**reviews.review_document(r, reviewer=names.get(r.reviewer_id))) for r in rows]


@router.post("/{case_id}/close", response_model=CaseClosedPublic, responses=ERRORS)
def close_case(case_id: str, services: ServicesDep, user_id: CurrentUserId) -> CaseClosedPublic:
    """Close the case: 409 ``case_not_ready`` with every failing gate in ``reasons``, else the sealed
    case archive record's id (its vault then accepts nothing new: ``case_closed``)."""
    row = closing.close_case(db=services.db, store=services.store, sealer=services.sealer, user_id=user_id,
                             case_id=case_id)
    return CaseClosedPublic(
        id=row.id, case_id=case_id, stage="closed", sha256=row.sha256, created_at=row.created_at,
        record_url=f"/api/v1/cases/{case_id}/archive", seal_url=f"/api/v1/cases/{case_id}/archive/seal",
    )


@router.get("/{case_id}/closing-gates", response_model=ClosingGatesPublic, responses=ERRORS)
def closing_gates(case_id: str, session: SessionDep, user: CurrentUser) -> ClosingGatesPublic:
    """What still keeps the case from closing (``reasons``, empty when it can close)."""
    case = load_case(session, user=user, case_id=case_id)
    return ClosingGatesPublic(case_id=case_id, stage=case.stage.value,
                              reasons=closing.closing_gates(session, case=case))


_RECORD_DOC = {200: {"content": {"application/json": {}}, "description": "The record, byte for byte as sealed"}}
_SEAL_DOC = {200: {"content": {"application/pkcs7-signature": {}}, "description": "Detached CAdES-B-T (DER)"}}


@router.get("/{case_id}/archive", response_class=Response, responses={**ERRORS, **_RECORD_DOC})
def get_archive(case_id: str, session: SessionDep, user: CurrentUser) -> Response:
    """The case archive record written at closing (JSON, byte for byte as sealed)."""
    row = closing.case_archive(session, user=user, case_id=case_id)
    return Response(bytes(row.record), media_type="application/json",
                    headers={"Content-Disposition": 'attachment; filename="record.json"', "X-Archive-Id": row.id})


@router.get("/{case_id}/archive/seal", response_class=Response, responses={**ERRORS, **_SEAL_DOC})
def get_archive_seal(case_id: str, session: SessionDep, user: CurrentUser) -> Response:
    """The record's detached CAdES-B-T signature (DER): ``openssl cms -verify -binary -inform DER
    -in record.json.p7s -content record.json -CAfile root.pem``."""
    row = closing.case_archive(session, user=user, case_id=case_id)
    return Response(bytes(row.cades), media_type="application/pkcs7-signature",
                    headers={"Content-Disposition": 'attachment; filename="record.json.p7s"'})


@router.get("/{case_id}/archive/sm2", response_class=Response, responses={**ERRORS, **_RECORD_DOC})
def get_archive_sm2(case_id: str, session: SessionDep, user: CurrentUser) -> Response:
    """The record's SM2/SM3 seal (JSON)."""
    row = closing.case_archive(session, user=user, case_id=case_id)
    return Response(canonical_bytes(row.sm2), media_type="application/json",
                    headers={"Content-Disposition": 'attachment; filename="record.json.sm2.json"'})
