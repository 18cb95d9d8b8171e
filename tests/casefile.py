"""A small case file built in-process, the test (or bench) playing the worker.

One place for the set-up that export tests, the court verifier's tests and the export bench
share: an officer, two reviewers and a court user; a case; sealed originals; and exports
requested by one reviewer and approved by the other, ready for ``build_export``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from archive.cases.service import create_case
from archive.continuity.runs import PIPELINE_DONE_STEP
from archive.db import Database
from archive.evidence import fixity, receiving
from archive.exports import service as exports
from archive.identity.users import add_user
from archive.models import EvidenceItem, EvidenceKind, User
from archive.seals.items import seal_item
from archive.seals.sealer import Sealer
from archive.storage import ObjectStore


@dataclass(frozen=True)
class CaseFile:
    """A case with its people, on a database and store the caller owns."""

    db: Database
    store: ObjectStore
    sealer: Sealer
    case_id: str
    officer_id: str
    requester_id: str
    approver_id: str
    recipient: str

    def add_sealed(self, filename: str, chunks: Iterable[bytes], *, kind: EvidenceKind = EvidenceKind.other,
                   handed_off: bool = True) -> EvidenceItem:
        """Receive an original, compute its SM3 and seal it, as the worker would.

        ``handed_off`` marks processing as having reached the continuity hand-off, so the
        case's continuity report is not pending and an export of it is built, not held.
        """
        item = receiving.receive_original(
            db=self.db, store=self.store, user_id=self.officer_id, retention_days=1, chunks=chunks,
            incoming=receiving.IncomingEvidence(case_id=self.case_id, kind=kind, filename=filename),
        )
        fixity.compute_sm3(db=self.db, store=self.store, item_id=item.id)
        seal_item(db=self.db, store=self.store, sealer=self.sealer, item_id=item.id)
        if handed_off:
            with self.db.session() as s:
                s.get(EvidenceItem, item.id).processing = {PIPELINE_DONE_STEP: {"state": "done"}}
        return item

    def approved_export(self, items: list[str] | None = None) -> str:
        """An export of the case requested by one reviewer and approved by the other."""
        with self.db.session() as s:
            export_id = exports.request_export(s, user=s.get(User, self.requester_id), case_id=self.case_id,
                                               items=items, recipient=self.recipient).id
        with self.db.session() as s:
            exports.approve_export(s, user=s.get(User, self.approver_id), export_id=export_id)
        return export_id


def open_case_file(db: Database, store: ObjectStore, sealer: Sealer, *, case_number: str, title: str = "Case",
                   unit: str = "u", prefix: str = "") -> CaseFile:
    """Create the officer, two reviewers, the court user and the case (names start with ``prefix``)."""
    with db.session() as s:
        officer, _ = add_user(s, name=f"{prefix}officer", unit=unit, role="officer")
        requester, _ = add_user(s, name=f"{prefix}reviewer-1", unit=unit, role="reviewer")
        approver, _ = add_user(s, name=f"{prefix}reviewer-2", unit=unit, role="reviewer")
        add_user(s, name=f"{prefix}judge", unit="court", role="court")
        case_id = create_case(s, store=store, user=officer, case_number=case_number, title=title).id
        return CaseFile(db=db, store=store, sealer=sealer, case_id=case_id, officer_id=officer.id,
                        requester_id=requester.id, approver_id=approver.id, recipient=f"{prefix}judge")
