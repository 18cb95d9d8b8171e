"""Waking the exports that wait for their items to be sealed.

Kept apart from the build so that the code which seals or gives up on an item can ask for
the case's waiting exports without importing the build (which itself seals with sealing).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from archive import work
from archive.models import ExportRequest


def wake_waiting_exports(session: Session, *, case_id: str) -> list[str]:
    """Ask again for the case's exports that wait (in the caller's transaction).

    Called when an item of the case is sealed or fails for good, and when an analysis
    answers the case's continuity requests; returns the export ids
    (enqueue them after the commit, or let the reconciler send them).
    """
    ids = list(session.execute(
        select(ExportRequest.id).where(ExportRequest.case_id == case_id, ExportRequest.status == "waiting")
    ).scalars())
    for export_id in ids:
        work.want(session, task=work.BUILD_EXPORT, subject=export_id)
    return ids
