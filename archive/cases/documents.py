"""A stage's documents: evidence items of the case linked to the stage they belong to.

The notice of the facts and rights, the record of statements, the hearing record, the
decision, the proof of service (or the public notice that replaced it) are evidence like any
other: uploaded, hashed, sealed. Linking one to its stage says what it is to the procedure.
A link is made by a handler (or an administrator) while the case is open, for the current
stage or one the case has passed through; it is a ``stage_document_linked`` custody entry and
is sealed into the case archive record when the case closes. Links are never removed.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from archive.cases.models import CaseStageMove, StageDocument, StageDocumentRole
from archive.cases.stages import lock_case, require_handler
from archive.custody import ledger
from archive.evidence.filenames import refuse_nul
from archive.errors import CaseClosed, Conflict, InvalidInput, NotFound
from archive.identity.users import actor_name, written_text
from archive.models import CaseStage, EvidenceItem, User, utcnow


def _stages_reached(session: Session, case_id: str) -> set[CaseStage]:
    moved = session.execute(select(CaseStageMove.to_stage).where(CaseStageMove.case_id == case_id)).scalars()
    return {CaseStage.filed, *moved}


def _choice(enum: type, value: str, what: str, code: str):  # type: ignore[no-untyped-def]
    try:
        return enum(value)
    except ValueError as exc:
        raise InvalidInput(f"unknown {what} {value!r}; {what}s are {', '.join(e.value for e in enum)}",
                           code=code) from exc


def link_document(
    session: Session, *, user: User, case_id: str, item_id: str, role: str, stage: str | None = None,
    note: str | None = None,
) -> StageDocument:
    """Link an item of the case to a stage as one of its documents (the current stage by default)."""
    kind = _choice(StageDocumentRole, role, "document role", "invalid_document_role")
    case = lock_case(session, user=user, case_id=case_id, write=True)
    require_handler(session, user=user, case=case, doing="link a stage's documents")
    if case.stage == CaseStage.closed:
        raise CaseClosed(f"case {case.case_number} is closed: its record is sealed", code="case_closed")
    target = case.stage if stage is None else _choice(CaseStage, stage, "stage", "invalid_stage")
    if target != case.stage and target not in _stages_reached(session, case.id):
        raise Conflict(f"case {case.case_number} has not been at stage {target.value}", code="stage_not_reached")
    item = session.get(EvidenceItem, item_id)
    if item is None or item.case_id != case.id:
        raise NotFound(f"no evidence item {item_id} in case {case.case_number}", code="item_not_found")
    text = (note or "").strip() or None
    if text is not None and len(text) > 4000:
        raise InvalidInput("a note is at most 4000 characters", code="note_too_long")
    refuse_nul(text or "", what="the note")
    text = written_text(text, code="invalid_note", what="the note", limit=4000, required=False) or None
    existing = session.execute(select(StageDocument).where(
        StageDocument.item_id == item.id, StageDocument.stage == target, StageDocument.role == kind,
    )).scalar_one_or_none()
    if existing is not None:
        return existing
    entry = ledger.append_now(
        session, actor=actor_name(user), action="stage_document_linked", case_id=case.id, item_id=item.id,
        details={"stage": target.value, "role": kind.value, "note": text, "sha256": item.sha256},
    )
    link = StageDocument(case_id=case.id, item_id=item.id, stage=target, role=kind, note=text, linked_by=user.id,
                         at=utcnow(), ledger_seq=entry.seq)
    session.add(link)
    session.flush()
    return link


def documents_of(session: Session, *, case_id: str) -> list[StageDocument]:
    """The case's stage documents, in the order they were linked."""
    return list(session.execute(
        select(StageDocument).where(StageDocument.case_id == case_id).order_by(StageDocument.ledger_seq)
    ).scalars())
