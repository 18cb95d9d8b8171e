"""Legal reviews (法制审核): a reviewer's verdict on a case at a checkpoint, sealed and in the ledger.

A review is recorded by a ``reviewer`` of the case's unit who is not one of its handlers
(administrators and officers may not review). It judges the five aspects (subject, facts,
legal basis, discretion, procedure), each ``{"ok", "comment"}``, and approves the case or
returns it with reasons (an approval needs every aspect ``ok``; a return needs an opinion).
Its canonical JSON record is sealed like an item manifest (CAdES-B-T + SM2/SM3, verified
before it is kept); the review row holds record and seals, and a ``legal_review_recorded``
custody entry states their hashes. A returned review sends the case back
(:data:`archive.cases.stages.RETURN_TO`).
"""

from __future__ import annotations

import base64
import hashlib
from bisect import bisect_right
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from evidence_verify import layout

from archive.cases import stages
from archive.cases.models import REVIEW_DECISIONS, CaseHandler, CaseStageMove, LegalReview, ReviewCheckpoint
from archive.custody import ledger
from archive.db import Database
from archive.errors import Conflict, Forbidden, InvalidInput
from archive.identity.users import actor_name, load_case, unit_scope, written_text
from archive.models import Case, CaseStage, Role, User, new_id, utcnow
from archive.seals.manifests import canonical_bytes, utc_text
from archive.seals.registry import certificates_in_seal, record_certificates, record_sm2_key
from archive.seals.sealer import Sealer

REVIEW_FORMAT = layout.LEGAL_REVIEW_FORMAT
ASPECTS = ("subject", "facts", "basis", "discretion", "procedure")
"""The five aspects every review judges: 主体、事实、依据、自由裁量、程序."""
ACTION = "legal_review_recorded"


MAX_OPINION = 20_000
"""The longest opinion or aspect comment, in characters (the API's bound too)."""


@dataclass(frozen=True)
class ReviewInput:
    """What a reviewer submits."""

    checkpoint: str
    aspects: dict[str, dict[str, Any]]
    decision: str
    opinion: str = ""
    discussion_minutes: str | None = None


def _checked(body: ReviewInput) -> tuple[ReviewCheckpoint, dict[str, dict[str, Any]]]:
    try:
        checkpoint = ReviewCheckpoint(body.checkpoint)
    except ValueError as exc:
        raise InvalidInput(f"checkpoint must be one of {', '.join(c.value for c in ReviewCheckpoint)}",
                           code="invalid_checkpoint") from exc
    if body.decision not in REVIEW_DECISIONS:
        raise InvalidInput("decision must be approve or return", code="invalid_decision")
    if set(body.aspects) != set(ASPECTS):
        raise InvalidInput(f"a review judges exactly these aspects: {', '.join(ASPECTS)}", code="invalid_aspects")
    aspects = {}
    for name in ASPECTS:
        verdict = body.aspects[name]
        if not isinstance(verdict, dict) or not isinstance(verdict.get("ok"), bool) or \
                not isinstance(verdict.get("comment", ""), str):
            raise InvalidInput(f"aspect {name} must be {{\"ok\": bool, \"comment\": str}}", code="invalid_aspects")
        written_text(verdict.get("comment", ""), code="invalid_aspects", what=f"aspect {name}'s comment",
                     limit=MAX_OPINION, required=False)
        aspects[name] = {"ok": verdict["ok"], "comment": verdict.get("comment", "")}
    if body.decision == "approve" and not all(a["ok"] for a in aspects.values()):
        failing = ", ".join(n for n in ASPECTS if not aspects[n]["ok"])
        raise InvalidInput(f"a review that finds fault with {failing} cannot approve; return the case",
                           code="approval_with_faults")
    written_text(body.opinion, code="invalid_opinion", what="the opinion", limit=MAX_OPINION, required=False)
    written_text(body.discussion_minutes, code="invalid_opinion", what="the discussion's minutes", limit=200_000,
                 required=False)
    if body.decision == "return" and not written_text(body.opinion, code="return_needs_reasons", what="the opinion",
                                                      limit=MAX_OPINION, required=False):
        raise InvalidInput("a returned review states its reasons in the opinion", code="return_needs_reasons")
    return checkpoint, aspects


def check_reviewer(session: Session, *, user: User, case_id: str) -> Any:
    """The case, if ``user`` may review it: a reviewer of its unit who is not one of its handlers."""
    case = load_case(session, user=user, case_id=case_id)
    if stages.is_handler(session, case_id=case_id, user_id=user.id):
        raise Forbidden("a handler of the case can never review it", code="handler_cannot_review")
    if user.role != Role.reviewer:
        raise Forbidden(f"role {user.role.value} may not record legal reviews; the legal office's reviewers do",
                        code="forbidden_role")
    return case


def _check_due(stage: CaseStage, checkpoint: ReviewCheckpoint) -> None:
    if stage not in stages.REVIEW_STAGES[checkpoint]:
        where = ", ".join(sorted(s.value for s in stages.REVIEW_STAGES[checkpoint]))
        raise Conflict(f"a {checkpoint.value} review is recorded while the case is in {where}; it is in {stage.value}",
                       code="review_not_due")


def record_review(*, db: Database, sealer: Sealer, user_id: str, case_id: str, body: ReviewInput) -> LegalReview:
    """Check, seal and record a legal review (see the module's doc); returns the committed row.

    The record is sealed outside any transaction (the time-stamp is a network call); the
    rules are checked again, under the case's row lock, when the review is written.
    """
    checkpoint, aspects = _checked(body)
    review_id, now = new_id(), utcnow()
    with db.read() as session:
        user = session.get(User, user_id)
        case = check_reviewer(session, user=user, case_id=case_id)
        _check_due(case.stage, checkpoint)
        stage = case.stage
        record = {
            "format": REVIEW_FORMAT, "id": review_id, "case_id": case.id, "case_number": case.case_number,
            "unit": case.unit.name, "checkpoint": checkpoint.value, "stage": stage.value, "aspects": aspects,
            "decision": body.decision, "opinion": body.opinion, "discussion_minutes": body.discussion_minutes,
            "reviewer": user.name, "reviewer_id": user.id, "time": utc_text(now),
        }
    data = canonical_bytes(record)
    bundle = sealer.seal(data)
    report = sealer.verify_seal(data, bundle)  # what we keep must verify, now
    with db.session() as session:
        user = session.get(User, user_id)
        case = stages.lock_case(session, user=user, case_id=case_id)
        check_reviewer(session, user=user, case_id=case_id)
        if case.stage != stage:
            raise Conflict(f"the case moved to {case.stage.value} while the review was being sealed; record it again",
                           code="case_moved")
        record_certificates(session, certificates_in_seal(bundle.cades))
        record_sm2_key(session, sealer.sm2_key.public_key)
        sha = hashlib.sha256(data).hexdigest()
        entry = ledger.append_now(
            session, actor=actor_name(user), action=ACTION, case_id=case.id,
            details={
                "review": review_id, "checkpoint": checkpoint.value, "stage": stage.value, "decision": body.decision,
                "opinion": body.opinion, "record_sha256": sha, "cades_sha256": hashlib.sha256(bundle.cades).hexdigest(),
                "sm2_sha256": hashlib.sha256(bundle.sm2_json()).hexdigest(),
                "timestamp_time": utc_text(report.cades.timestamp_time), "signer": report.cades.signer_subject,
            },
        )
        review = LegalReview(
            id=review_id, case_id=case.id, checkpoint=checkpoint, stage=stage, aspects=aspects,
            decision=body.decision, opinion=body.opinion, discussion_minutes=body.discussion_minutes,
            reviewer_id=user.id, created_at=now, record=data.decode("utf-8"), record_sha256=sha,
            cades=bundle.cades, sm2=bundle.sm2, timestamp_time=report.cades.timestamp_time, ledger_seq=entry.seq,
        )
        session.add(review)
        session.flush()
        back = stages.RETURN_TO[checkpoint]
        if body.decision == "return" and back is not None and case.stage != back:
            reason = stages.MOVE_REASONS.say("returned", checkpoint=checkpoint.value, opinion=body.opinion)
            stages.record_move(session, case=case, to=back, reason=reason, actor=user, review_id=review_id,
                               details={"returned": True})
        session.expunge(review)
    return review


def reviews_of(session: Session, *, case_id: str) -> list[LegalReview]:
    """The case's reviews, oldest first."""
    return list(session.execute(
        select(LegalReview).where(LegalReview.case_id == case_id).order_by(LegalReview.ledger_seq)
    ).scalars())


def list_reviews(session: Session, *, user: User, case_id: str) -> list[LegalReview]:
    """The reviews of a case the user may read."""
    load_case(session, user=user, case_id=case_id)
    return reviews_of(session, case_id=case_id)


def approving_count(session: Session, *, case_id: str) -> int:
    """How many times the case was approved on review: each approving review counts, except
    that a reviewer approving again at the same checkpoint with no move of the case in
    between is the same review said twice (one reviewer clicking approve three times at
    filing is not three reviews)."""
    moves = list(session.execute(select(CaseStageMove.ledger_seq).where(CaseStageMove.case_id == case_id)
                                 .order_by(CaseStageMove.ledger_seq)).scalars())
    last: dict[tuple[ReviewCheckpoint, str], int] = {}
    count = 0
    for review in reviews_of(session, case_id=case_id):
        if review.decision != "approve":
            continue
        key = (review.checkpoint, review.reviewer_id)
        if key not in last or _moved_between(moves, last[key], review.ledger_seq):
            count += 1
        last[key] = review.ledger_seq
    return count


def approval_counts(session: Session, *, case_id: str, checkpoint: ReviewCheckpoint, reviewer_id: str) -> bool:
    """Whether an approval by ``reviewer_id`` at ``checkpoint`` now would count in
    :func:`approving_count`: not when their latest approval there had no move of the case after it."""
    last = session.execute(
        select(LegalReview.ledger_seq).where(LegalReview.case_id == case_id, LegalReview.checkpoint == checkpoint,
                                             LegalReview.reviewer_id == reviewer_id, LegalReview.decision == "approve")
        .order_by(LegalReview.ledger_seq.desc()).limit(1)
    ).scalar_one_or_none()
    return last is None or session.execute(
        select(CaseStageMove.ledger_seq).where(CaseStageMove.case_id == case_id, CaseStageMove.ledger_seq > last)
        .limit(1)
    ).first() is not None


def _moved_between(moves: list[int], after: int, before: int) -> bool:
    """Whether one of the (sorted) ledger positions of ``moves`` lies between two others."""
    following = bisect_right(moves, after)
    return following < len(moves) and moves[following] < before


def review_document(review: LegalReview, *, reviewer: str | None) -> dict[str, Any]:
    """A review as the API and the case archive record show it: the sealed record and its seals."""
    return {
        "id": review.id, "checkpoint": review.checkpoint.value, "stage": review.stage.value,
        "decision": review.decision, "opinion": review.opinion, "aspects": review.aspects,
        "discussion_minutes": review.discussion_minutes, "reviewer": reviewer, "reviewer_id": review.reviewer_id,
        "created_at": utc_text(review.created_at), "ledger_seq": review.ledger_seq,
        "record": review.record, "record_sha256": review.record_sha256,
        "seals": {
            "cades": base64.b64encode(bytes(review.cades)).decode("ascii"), "sm2": review.sm2,
            "timestamp_time": utc_text(review.timestamp_time),
        },
    }


def reviews_due(session: Session, *, user: User, limit: int = 500) -> list[tuple[Any, list[ReviewCheckpoint]]]:
    """The reviewer's queue of legal reviews: each case of their unit with a review due
    (:func:`archive.cases.stages.due_checkpoints`) that they do not handle, oldest first."""
    if user.role != Role.reviewer:
        return []
    query = (select(Case).where(unit_scope(user), Case.stage != CaseStage.closed)
             .where(~Case.id.in_(select(CaseHandler.case_id).where(CaseHandler.user_id == user.id)))
             .order_by(Case.created_at).limit(limit))
    due = []
    for case in session.execute(query).scalars().unique():
        checkpoints = stages.due_checkpoints(session, case=case)
        if checkpoints:
            due.append((case, checkpoints))
    return due
