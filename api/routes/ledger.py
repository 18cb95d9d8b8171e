"""The custody ledger: tree heads, entries and proofs (RFC 9162 style)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import MAX_DB_INT, CurrentUser, LedgerSettled, SessionDep
from api.schemas import (
    ConsistencyProofPublic,
    ErrorResponse,
    InclusionProofPublic,
    LedgerEntryPublic,
    TreeHeadPublic,
)
from archive.custody import ledger
from archive.identity.users import CASE_READERS, load_case, readable_cases, require_role

router = APIRouter(prefix="/api/v1/ledger", tags=["ledger"])
ERRORS = {s: {"model": ErrorResponse} for s in (401, 403, 404, 422)}


@router.get("/head", response_model=TreeHeadPublic, responses=ERRORS)
def head(_settled: LedgerSettled, session: SessionDep, user: CurrentUser, tree_size: Annotated[int | None, Query(ge=0, le=MAX_DB_INT)] = None) -> TreeHeadPublic:
    """Merkle tree head of the first ``tree_size`` entries (default: all)."""
    require_role(user, CASE_READERS, doing="read the custody ledger")
    h = ledger.tree_head(session, tree_size=tree_size)
    return TreeHeadPublic(tree_size=h.tree_size, root_hash=h.root_hash, last_entry_hash=h.last_entry_hash)


@router.get("/entries", response_model=list[LedgerEntryPublic], responses=ERRORS)
def entries(
    _settled: LedgerSettled, session: SessionDep, user: CurrentUser,
    case_id: str | None = None,
    start: Annotated[int, Query(ge=1, le=MAX_DB_INT)] = 1,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> list[LedgerEntryPublic]:
    """Entries from ``start``, optionally of one case. Non-admins see their unit's cases only."""
    require_role(user, CASE_READERS, doing="read the custody ledger")
    if case_id is not None:
        load_case(session, user=user, case_id=case_id)
    cases = None if case_id is not None else readable_cases(user)
    return [
        LedgerEntryPublic(**ledger.entry_fields(e), entry_hash=e.entry_hash)
        for e in ledger.entries(session, start=start, limit=limit, case_id=case_id, cases=cases)
    ]


@router.get("/proof/inclusion", response_model=InclusionProofPublic, responses=ERRORS)
def proof_inclusion(
    _settled: LedgerSettled, session: SessionDep, user: CurrentUser, seq: Annotated[int, Query(ge=1, le=MAX_DB_INT)],
    tree_size: Annotated[int | None, Query(ge=1, le=MAX_DB_INT)] = None,
) -> InclusionProofPublic:
    """Inclusion proof of entry ``seq`` in the tree of ``tree_size`` entries: of an entry of
    a case the caller may read (admins: any entry). Any other is 404, as an unknown one."""
    require_role(user, CASE_READERS, doing="read the custody ledger")
    p = ledger.inclusion(session, seq=seq, tree_size=tree_size, cases=readable_cases(user))
    return InclusionProofPublic(seq=p.seq, tree_size=p.tree_size, leaf_hash=p.leaf_hash, root_hash=p.root_hash, path=list(p.path))


@router.get("/proof/consistency", response_model=ConsistencyProofPublic, responses=ERRORS)
def proof_consistency(
    _settled: LedgerSettled, session: SessionDep, user: CurrentUser, old_size: Annotated[int, Query(ge=0, le=MAX_DB_INT)],
    new_size: Annotated[int | None, Query(ge=0, le=MAX_DB_INT)] = None,
) -> ConsistencyProofPublic:
    """Consistency proof that the ``old_size`` tree is a prefix of the ``new_size`` one."""
    require_role(user, CASE_READERS, doing="read the custody ledger")
    p = ledger.consistency(session, old_size=old_size, new_size=new_size)
    return ConsistencyProofPublic(
        old_size=p.old_size, new_size=p.new_size, old_root=p.old_root, new_root=p.new_root, path=list(p.path)
    )
