"""The stages of a penalty case and the moves allowed between them.

The administrative penalty procedure, as the corps runs it::

    filed -> investigation -> notice -> hearing -> legal_review -> discussion -> decision
                                     \\------------^            \\--------------^
          -> service -> enforcement -> closed
                     \\------------------^

* ``notice -> legal_review`` skips the hearing (no statement, defence or hearing asked for);
  ``legal_review -> decision`` skips collective discussion (cases that are not serious);
  ``service -> closed`` closes a case with nothing to enforce (e.g. no penalty, 不予处罚).
* From every open stage a case may be ``withdrawn`` (撤案), ``terminated`` (终结) or
  ``referred`` (移送, to the police); those cases are closed from there.
* ``closed`` is reached only through :func:`archive.cases.closing.close_case`, which checks
  every gate and seals the case archive record; ``POST /stage`` with ``to: closed`` is refused.
* Reopening (``closed -> investigation``) is the move of a legal reviewer of the case's unit
  who is not one of its handlers: the move is the reviewer's approval, and it needs a reason.

Every move is a ``case_stage_moves`` row and a ``case_stage_moved`` custody entry (who,
when, why). Other moves are made by the case's handlers (or an administrator).

**Review gates** (a stage cannot be left while its review is missing or returned; "latest"
means the latest review at that checkpoint since the case was last reopened):

==========================  ==================================================================
review checkpoint           recorded while the case is in     gates
==========================  ==================================================================
``filing`` (立案)           ``filed``                          leaving ``filed`` for ``investigation``
``approval`` (呈批)         ``legal_review``, ``discussion``   entering ``decision``
``committee`` (支委会)      ``discussion``                     leaving ``discussion`` for ``decision``
``closing`` (结案)          ``service``, ``enforcement``,      closing
                            ``withdrawn``, ``terminated``,
                            ``referred``
==========================  ==================================================================

A *returned* review sends the case back to its handlers: ``committee`` and ``approval``
returns move it back to ``investigation`` (supplementary investigation) with the review's
opinion as the reason; a returned ``filing`` or ``closing`` review leaves it where it is
(already with its handlers), and its gate stays shut until a later review approves.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from archive.cases.models import CaseHandler, CaseStageMove, LegalReview, ReviewCheckpoint
from archive.custody import ledger
from archive.db import lock_row
from archive.errors import CaseClosed, Conflict, Forbidden, InvalidInput, NotFound
from archive.identity.users import (
    CASE_WRITERS, actor_name, check_user_may_sign_in, load_case, require_role, written_text,
)
from archive.models import Case, CaseStage, CaseStatus, Role, User, utcnow
from archive.wording import Sentences

S = CaseStage
ENDINGS = frozenset({S.withdrawn, S.terminated, S.referred})
"""Ways a case ends without a decision being carried out; it is closed from there."""
OPEN_STAGES = frozenset(set(S) - ENDINGS - {S.closed})
FORWARD: dict[CaseStage, frozenset[CaseStage]] = {
    S.filed: frozenset({S.investigation}),
    S.investigation: frozenset({S.notice}),
    S.notice: frozenset({S.hearing, S.legal_review}),
    S.hearing: frozenset({S.legal_review}),
    S.legal_review: frozenset({S.discussion, S.decision}),
    S.discussion: frozenset({S.decision}),
    S.decision: frozenset({S.service}),
    S.service: frozenset({S.enforcement}),
    S.enforcement: frozenset(),
}
"""The procedure's forward moves (besides the endings, closing and reopening)."""
CLOSABLE = frozenset({S.service, S.enforcement, *ENDINGS})
"""Stages a case may be closed from."""
REOPEN_TO = S.investigation

REVIEW_STAGES: dict[ReviewCheckpoint, frozenset[CaseStage]] = {
    ReviewCheckpoint.filing: frozenset({S.filed}),
    ReviewCheckpoint.approval: frozenset({S.legal_review, S.discussion}),
    ReviewCheckpoint.committee: frozenset({S.discussion}),
    ReviewCheckpoint.closing: CLOSABLE,
}
"""In which stages a review at each checkpoint is recorded."""
RETURN_TO: dict[ReviewCheckpoint, CaseStage | None] = {
    ReviewCheckpoint.filing: None,
    ReviewCheckpoint.approval: S.investigation,
    ReviewCheckpoint.committee: S.investigation,
    ReviewCheckpoint.closing: None,
}
"""Where a returned review sends the case (None: it stays where it is, with its handlers)."""
MOVE_ACTION = "case_stage_moved"


def _status_for(stage: CaseStage) -> CaseStatus:
    if stage == S.closed:
        return CaseStatus.closed
    if stage in (S.legal_review, S.discussion):
        return CaseStatus.under_review
    if stage in (S.decision, S.service, S.enforcement):
        return CaseStatus.decided
    return CaseStatus.filed


def is_handler(session: Session, *, case_id: str, user_id: str) -> bool:
    """True when the user handles the case (its creator or an officer assigned to it)."""
    return session.get(CaseHandler, (case_id, user_id)) is not None


def handler_ids(session: Session, *, case_id: str) -> list[str]:
    """The ids of the case's handlers, in the order they were added."""
    return list(session.execute(
        select(CaseHandler.user_id).where(CaseHandler.case_id == case_id).order_by(CaseHandler.at, CaseHandler.user_id)
    ).scalars())


def last_reopened(session: Session, *, case_id: str) -> CaseStageMove | None:
    """The case's latest reopening move, if it was ever reopened."""
    return session.execute(
        select(CaseStageMove).where(CaseStageMove.case_id == case_id, CaseStageMove.from_stage == S.closed)
        .order_by(CaseStageMove.at.desc(), CaseStageMove.ledger_seq.desc()).limit(1)
    ).scalar_one_or_none()


def latest_review(session: Session, *, case_id: str, checkpoint: ReviewCheckpoint) -> LegalReview | None:
    """The latest review at ``checkpoint`` since the case was last reopened (None: missing)."""
    query = select(LegalReview).where(LegalReview.case_id == case_id, LegalReview.checkpoint == checkpoint)
    reopened = last_reopened(session, case_id=case_id)
    if reopened is not None:
        query = query.where(LegalReview.ledger_seq > reopened.ledger_seq)
    return session.execute(query.order_by(LegalReview.ledger_seq.desc()).limit(1)).scalar_one_or_none()


REVIEW_GATES = Sentences("review_gate", {
    "missing": "the case has no {checkpoint} review",
    "returned": "the latest {checkpoint} review ({review}) returned the case: {opinion}",
}, fields={"checkpoint": r"[a-z_]+", "review": r"[^()\s]+",
           "opinion": r"(?:(?!; the (?:case has no|latest) [a-z_]+ review).)*"})
"""Why a review gate is shut (:func:`review_gate`: a closing gate's or a refused stage move's
message, the gates a move finds shut joined by ``"; "``); ``opinion`` is the reviewer's own
words, read back short of the next gate's sentence."""


def review_gate(session: Session, *, case_id: str, checkpoint: ReviewCheckpoint) -> tuple[str, str] | None:
    """Why the gate of ``checkpoint`` is shut, as ``(code, message)``, or None when its latest review approves."""
    review = latest_review(session, case_id=case_id, checkpoint=checkpoint)
    if review is None:
        return f"{checkpoint.value}_review_missing", REVIEW_GATES.say("missing", checkpoint=checkpoint.value)
    if review.decision != "approve":
        return (f"{checkpoint.value}_review_returned",
                REVIEW_GATES.say("returned", checkpoint=checkpoint.value, review=review.id, opinion=review.opinion))
    return None


def _gates(session: Session, case: Case, to: CaseStage) -> list[tuple[str, str]]:
    shut = []
    if case.stage == S.filed and to == S.investigation:
        shut.append(review_gate(session, case_id=case.id, checkpoint=ReviewCheckpoint.filing))
    if to == S.decision:
        if case.stage == S.discussion:
            shut.append(review_gate(session, case_id=case.id, checkpoint=ReviewCheckpoint.committee))
        shut.append(review_gate(session, case_id=case.id, checkpoint=ReviewCheckpoint.approval))
    return [g for g in shut if g is not None]


class StageGateShut(Conflict):
    """The case cannot leave its stage: a review it needs is missing or returned."""

    code = "stage_gate"


MOVE_REASONS = Sentences("move_reason", {
    "closed": "closed: every gate held; case archive record sealed",
    "returned": "returned by the {checkpoint} review: {opinion}",
}, fields={"checkpoint": r"[a-z_]+", "opinion": r".*"})
"""The reasons the archive itself gives a stage move (:mod:`archive.cases.closing`,
:mod:`archive.cases.reviews`); a person's reason is their own words."""


def record_move(
    session: Session, *, case: Case, to: CaseStage, reason: str | None, actor: User | None,
    review_id: str | None = None, details: dict | None = None,
) -> CaseStageMove:
    """Move a (locked) case to ``to`` and write the move's row and custody entry; no rule is checked here."""
    from_stage = case.stage
    case.stage = to
    case.status = _status_for(to)
    session.flush()
    entry = ledger.append_now(
        session, actor=actor_name(actor) if actor else "system", action=MOVE_ACTION, case_id=case.id,
        details={"from": from_stage.value, "to": to.value, "reason": reason, "review": review_id, **(details or {})},
    )
    move = CaseStageMove(
        case_id=case.id, from_stage=from_stage, to_stage=to, reason=reason, actor_id=actor.id if actor else None,
        review_id=review_id, at=utcnow(), ledger_seq=entry.seq,
    )
    session.add(move)
    session.flush()
    return move


def lock_case(session: Session, *, user: User, case_id: str, write: bool = False) -> Case:
    """The case the user may see (and change, with ``write``), its row locked until the transaction ends.

    The user is checked again as the transaction reads them: a review or a closing record sealed
    outside any transaction is not recorded once its author was disabled meanwhile (401
    ``user_disabled``), as their role and unit are checked again."""
    check_user_may_sign_in(user)
    load_case(session, user=user, case_id=case_id, write=write)
    case = lock_row(session, Case, case_id)
    if case is None:  # pragma: no cover - just seen by load_case
        raise NotFound(f"no case {case_id} visible to you", code="case_not_found")
    session.refresh(case)
    return case


def require_handler(session: Session, *, user: User, case: Case, doing: str) -> None:
    """Forbidden unless the user handles the case or is an administrator."""
    if user.role != Role.admin and not is_handler(session, case_id=case.id, user_id=user.id):
        raise Forbidden(f"only the case's handlers (or an administrator) may {doing}", code="not_a_handler")


def _reason(reason: str | None) -> str:
    return written_text(reason, code="reason_required", what="a stage move's reason", limit=4000)


def move(session: Session, *, user: User, case_id: str, to: str, reason: str | None) -> CaseStageMove:
    """Move a case to stage ``to`` by the procedure's rules (see the module's doc), with a reason."""
    try:
        target = CaseStage(to)
    except ValueError as exc:
        raise InvalidInput(f"unknown stage {to!r}; stages are {', '.join(s.value for s in S)}",
                           code="invalid_stage") from exc
    text = _reason(reason)
    if target == S.closed:
        raise Conflict("a case is closed by closing it (its gates are checked and its archive record sealed), "
                       "not by a stage move", code="use_close")
    case = lock_case(session, user=user, case_id=case_id)
    if case.stage == S.closed:
        if target != REOPEN_TO:
            raise Conflict(f"a closed case can only be reopened, to {REOPEN_TO.value}", code="stage_move_not_allowed")
        return _reopen(session, user=user, case=case, reason=text)
    if user.role == Role.reviewer and target == REOPEN_TO == case.stage:
        # A reviewer's reopening of a case another reopened first (twenty clicks at once): the
        # case is no longer closed, and investigation -> investigation is no move.
        raise Conflict(f"case {case.case_number} is not closed (it is in {case.stage.value} already): only a "
                       "closed case is reopened", code="stage_move_not_allowed")
    # Other moves change the case: by a role that changes cases (a handler who became a
    # reviewer no longer does), then only by its handlers or an administrator.
    require_role(user, CASE_WRITERS, doing="change cases")
    require_handler(session, user=user, case=case, doing="move its stage")
    allowed = allowed_moves(case)
    if target not in allowed:
        raise Conflict(
            f"a case in {case.stage.value} cannot move to {target.value}"
            + (f"; allowed: {', '.join(sorted(s.value for s in allowed))}" if allowed else ""),
            code="stage_move_not_allowed",
        )
    shut = _gates(session, case, target)
    if shut:
        raise StageGateShut("; ".join(message for _, message in shut))
    return record_move(session, case=case, to=target, reason=text, actor=user)


def _reopen(session: Session, *, user: User, case: Case, reason: str) -> CaseStageMove:
    if user.role != Role.reviewer:
        raise Forbidden("a closed case is reopened only with a legal reviewer's approval: a reviewer of its "
                        "unit reopens it", code="reopen_needs_reviewer")
    if is_handler(session, case_id=case.id, user_id=user.id):
        raise Forbidden("a handler of the case cannot approve its reopening", code="handler_cannot_review")
    return record_move(session, case=case, to=REOPEN_TO, reason=reason, actor=user,
                       details={"reopened": True, "approved_by": actor_name(user)})


def moves_of(session: Session, *, case_id: str) -> list[CaseStageMove]:
    """The case's stage moves, oldest first."""
    return list(session.execute(
        select(CaseStageMove).where(CaseStageMove.case_id == case_id).order_by(CaseStageMove.ledger_seq)
    ).scalars())


def add_handler(session: Session, *, user: User, case_id: str, handler_name: str) -> CaseHandler:
    """Assign an officer of the case's unit as one of its handlers (a custody entry).

    Only a handler or an administrator assigns; a user who reviewed the case cannot handle it.
    """
    case = lock_case(session, user=user, case_id=case_id, write=True)
    require_handler(session, user=user, case=case, doing="assign handlers")
    if case.stage == S.closed:  # its archive record, which names its handlers, is sealed
        raise CaseClosed(f"case {case.case_number} is closed: its record is sealed", code="case_closed")
    other = session.execute(select(User).where(User.name == handler_name)).scalar_one_or_none()
    if other is None or other.unit_id != case.unit_id or not other.active:
        raise NotFound(f"no active user {handler_name} in the case's unit", code="user_not_found")
    if other.role != Role.officer:
        raise Conflict(f"{handler_name} is a {other.role.value}; handlers are officers", code="handler_not_officer")
    if session.execute(select(LegalReview.id).where(
            LegalReview.case_id == case.id, LegalReview.reviewer_id == other.id).limit(1)).first():
        raise Conflict(f"{handler_name} reviewed this case and cannot handle it", code="reviewer_cannot_handle")
    existing = session.get(CaseHandler, (case.id, other.id))
    if existing is not None:
        return existing
    handler = CaseHandler(case_id=case.id, user_id=other.id, added_by=user.id, at=utcnow())
    session.add(handler)
    session.flush()
    ledger.append(session, actor=actor_name(user), action="case_handler_added", case_id=case.id,
                  details={"handler": other.name, "handler_id": other.id})
    return handler


def due_checkpoints(session: Session, *, case: Case) -> list[ReviewCheckpoint]:
    """The checkpoints a review is due at now: recorded in the case's stage, and the latest
    review there (since the last reopening) is missing or returned, so its gate is shut."""
    return [checkpoint for checkpoint, where in REVIEW_STAGES.items()
            if case.stage in where and review_gate(session, case_id=case.id, checkpoint=checkpoint) is not None]


def approved_checkpoints(session: Session, *, case: Case) -> list[ReviewCheckpoint]:
    """The checkpoints done: their latest review (since the last reopening) approves, so their
    gate is open."""
    return [checkpoint for checkpoint in ReviewCheckpoint
            if review_gate(session, case_id=case.id, checkpoint=checkpoint) is None]


def allowed_moves(case: Case) -> list[CaseStage]:
    """The stages a handler may move the case to from where it stands (gates not judged; a
    closed case is reopened by a reviewer, and closing is not a move)."""
    if case.stage == S.closed:
        return [REOPEN_TO]
    allowed = FORWARD.get(case.stage, frozenset()) | (ENDINGS if case.stage in OPEN_STAGES else frozenset())
    return [s for s in S if s in allowed]
