"""Gap explanations by officers and their review by reviewers; each is a custody entry."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from typing import Any

from sqlalchemy import func, literal, select, union_all
from sqlalchemy.orm import Session

from archive.custody import ledger
from archive.errors import Conflict, InvalidInput, NotFound
from archive.continuity.models import Gap, GapStatus
from archive.models import Case, LedgerEntry, LedgerPending, Role, User, utcnow
from archive.identity.users import actor_name, load_case, require_role, unit_scope, written_text
from archive.wording import Sentences

RECORD_FAULTS = Sentences("gap_record", {
    "status": "its record says {says}, the custody ledger {told} (no entry recorded the change)",
    "explanation": "its explanation is not the one the custody ledger recorded",
    "comment": "its review comment is not the one the custody ledger recorded",
}, fields={"says": r"[a-z_]+", "told": r"[a-z_]+"})
"""How a gap's record differs from what the custody ledger recorded (:func:`gap_record_faults`)."""


def load_gap(session: Session, *, user: User, gap_id: str, lock: bool = False) -> Gap:
    """A gap of a case the user may read (locked for update when ``lock``)."""
    gap = session.get(Gap, gap_id)
    if gap is None:
        raise NotFound(f"no gap {gap_id} visible to you", code="gap_not_found")
    try:
        load_case(session, user=user, case_id=gap.case_id)
    except NotFound:
        raise NotFound(f"no gap {gap_id} visible to you", code="gap_not_found") from None
    if lock:
        session.execute(select(Gap.id).where(Gap.id == gap_id).with_for_update(key_share=True))
        session.refresh(gap)
    return gap


MAX_EXPLANATION = 8000
"""Characters an explanation of a gap may have (as a legal review's opinion): it is shown in the
gap table, the reviewers' queue and the export certificate."""


def explain_gap(session: Session, *, user: User, gap_id: str, reason: str) -> Gap:
    """An officer of the case's unit says why the record is interrupted."""
    require_role(user, {Role.officer}, doing="explain gaps")
    gap = load_gap(session, user=user, gap_id=gap_id, lock=True)
    reason = written_text(reason, code="invalid_reason", what="the explanation", limit=MAX_EXPLANATION)
    if not gap.current:
        raise Conflict("this gap is no longer found by the analysis", code="gap_not_current")
    if gap.status == GapStatus.accepted:
        raise Conflict("this gap's explanation was already accepted", code="gap_already_accepted")
    gap.explanation, gap.explained_by, gap.explained_at = reason, user.id, utcnow()
    gap.status = GapStatus.explained
    gap.review_comment = gap.reviewed_by = gap.reviewed_at = None
    ledger.append(
        session, actor=actor_name(user), action="gap_explained", case_id=gap.case_id, item_id=gap.item_id,
        details={"gap": gap.id, "key": gap.key, "level": gap.level, "reason": reason},
    )
    return gap


def review_gap(session: Session, *, user: User, gap_id: str, accept: bool, comment: str | None = None) -> Gap:
    """A reviewer of the case's unit accepts or rejects a gap's explanation."""
    require_role(user, {Role.reviewer}, doing="review gap explanations")
    gap = load_gap(session, user=user, gap_id=gap_id, lock=True)
    if not gap.current:
        raise Conflict("this gap is no longer found by the analysis", code="gap_not_current")
    if gap.status in (GapStatus.accepted, GapStatus.rejected):
        # Reviewed already (a second click, the browser's Back then the button again): said
        # as what it is, not as a gap nobody explained.
        raise Conflict(f"this gap's explanation was already {gap.status.value}; it can be reviewed again once "
                       "it is explained again", code=f"gap_already_{gap.status.value}")
    if gap.status != GapStatus.explained:
        raise Conflict(f"only an explained gap can be reviewed (this one is {gap.status.value})",
                       code="gap_not_explained")
    comment = written_text(comment, code="invalid_comment", what="the review's comment", limit=MAX_EXPLANATION,
                           required=False) or None
    if not accept and comment is None:
        # The officer must know what to explain better: a rejection with no reason left them
        # with 已退回 and nothing to act on.
        raise InvalidInput("rejecting an explanation needs a comment saying why (the officer reads it)",
                           code="comment_required")
    gap.status = GapStatus.accepted if accept else GapStatus.rejected
    gap.review_comment, gap.reviewed_by, gap.reviewed_at = comment, user.id, utcnow()
    ledger.append(
        session, actor=actor_name(user), action="gap_reviewed", case_id=gap.case_id, item_id=gap.item_id,
        details={"gap": gap.id, "key": gap.key, "accepted": bool(accept), "comment": comment},
    )
    return gap


def gap_record_faults(session: Session, *, case_id: str, gaps: Iterable[Gap]) -> dict[str, str]:
    """Gaps whose explanation or review, as their rows hold it, is not what the custody ledger
    recorded (``gap_explained`` and ``gap_reviewed`` entries, in order): gap id -> what
    differs. A status written straight into the database (an "accepted" no reviewer gave)
    is named here, so it cannot clear the gate that every gap be accepted."""
    told: dict[str, dict[str, Any]] = {}
    actions = ("gap_explained", "gap_reviewed")
    # The ledger's entries, then those committed and still waiting to be sequenced (they
    # come after every sequenced one): a change answered a moment ago is already told.
    sequenced = select(LedgerEntry.details, literal(0).label("waiting"), LedgerEntry.seq.label("n")).where(
        LedgerEntry.case_id == case_id, LedgerEntry.action.in_(actions))
    waiting = select(LedgerPending.details, literal(1), LedgerPending.id).where(
        LedgerPending.case_id == case_id, LedgerPending.action.in_(actions))
    for details in session.execute(union_all(sequenced, waiting).order_by("waiting", "n")).scalars():
        try:
            entry = json.loads(details)
        except ValueError:
            continue  # an unreadable entry is the ledger verification's finding
        state = told.setdefault(str(entry.get("gap")), {"status": GapStatus.open, "explanation": None})
        if "reason" in entry:
            state.update(status=GapStatus.explained, explanation=entry["reason"], comment=None)
        else:
            state.update(status=GapStatus.accepted if entry.get("accepted") else GapStatus.rejected,
                         comment=entry.get("comment"))
    faults = {}
    for gap in gaps:
        state = told.get(gap.id, {"status": GapStatus.open, "explanation": None})
        if gap.status != state["status"]:
            faults[gap.id] = RECORD_FAULTS.say("status", says=gap.status.value, told=state["status"].value)
        elif gap.status != GapStatus.open and (gap.explanation or "") != (state["explanation"] or ""):
            faults[gap.id] = RECORD_FAULTS.say("explanation")
        elif gap.status in (GapStatus.accepted, GapStatus.rejected) and (gap.review_comment or None) != (state.get("comment") or None):
            faults[gap.id] = RECORD_FAULTS.say("comment")
    return faults


def open_gap_counts(session: Session, *, case_ids: Collection[str]) -> dict[str, int]:
    """Per case, how many of its current gaps still wait for an officer's explanation
    (open, or their explanation rejected); cases without any are left out."""
    if not case_ids:
        return {}
    rows = session.execute(
        select(Gap.case_id, func.count()).where(
            Gap.case_id.in_(list(case_ids)), Gap.current.is_(True),
            Gap.status.in_((GapStatus.open, GapStatus.rejected)),
        ).group_by(Gap.case_id)
    )
    return {case_id: count for case_id, count in rows}


def gaps_awaiting_review(session: Session, *, user: User, limit: int = 200) -> list[Gap]:
    """Current explained gaps of the cases ``user`` sees (a reviewer's queue), oldest first."""
    return list(session.execute(
        select(Gap).join(Case, Case.id == Gap.case_id)
        .where(unit_scope(user), Gap.current.is_(True), Gap.status == GapStatus.explained)
        .order_by(Gap.explained_at).limit(limit)
    ).scalars())
