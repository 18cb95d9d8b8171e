"""The continuity snapshot sealed into exports and receipts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from archive.custody import ledger
from archive.identity.users import user_name
from archive.models import EnforcementAction, Gap


def continuity_snapshot(session: Session, *, case_id: str) -> dict[str, Any]:
    """The case's continuity status: every current gap, its explanation and review.

    Uses the continuity service's own report when it is installed (it knows coverage);
    otherwise the gap rows, which hold everything a court needs to read.
    """
    gaps = session.execute(
        select(Gap).where(Gap.case_id == case_id, Gap.current.is_(True)).order_by(Gap.start, Gap.key)
    ).scalars()
    names: dict[str | None, str | None] = {}

    def name(user_id: str | None) -> str | None:
        if user_id not in names:
            names[user_id] = user_name(session, user_id)
        return names[user_id]

    rows = [
        {
            "key": g.key, "level": g.level, "device": g.device, "item": g.item_id,
            "previous_item": g.previous_item_id, "action": g.action_id,
            "start": ledger.iso_utc(g.start), "end": ledger.iso_utc(g.end),
            "duration_seconds": g.duration_seconds, "cause": g.cause, "status": g.status.value,
            "explanation": g.explanation, "explained_by": name(g.explained_by),
            "explained_at": ledger.iso_utc(g.explained_at) if g.explained_at else None,
            "review_comment": g.review_comment, "reviewed_by": name(g.reviewed_by),
            "reviewed_at": ledger.iso_utc(g.reviewed_at) if g.reviewed_at else None,
        }
        for g in gaps
    ]
    actions = [
        {"id": a.id, "kind": a.kind, "window_start": ledger.iso_utc(a.window_start),
         "window_end": ledger.iso_utc(a.window_end) if a.window_end else None, "record_item": a.record_item_id,
         "devices": a.devices, "description": a.description}
        for a in session.execute(
            select(EnforcementAction).where(EnforcementAction.case_id == case_id).order_by(EnforcementAction.window_start)
        ).scalars()
    ]
    unresolved = [r["key"] for r in rows if r["status"] != "accepted"]
    return {
        "case": case_id,
        "gaps": rows,
        "actions": actions,
        "summary": {
            "gaps": len(rows), "accepted": len(rows) - len(unresolved), "unresolved": len(unresolved),
            "status": "continuous" if not rows else ("explained" if not unresolved else "unexplained_gaps"),
        },
    }
