"""The ledger's stored Merkle subtree hashes (``ledger_nodes``): proofs and older tree
heads read from them are byte for byte the ones RFC 9162 defines over the leaves, at
every size (powers of two or not); the backfill of existing ledgers stores the same
nodes as append; and ``ledger verify`` recomputes them (tampered nodes are named in
tests/archive/test_checkpoints.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from archive.custody import ledger
from archive.custody import merkle
from archive.errors import LedgerTampered
from archive.models import LedgerNode

SIZES = 37
"""Entries in the tree: every size from 1 to this is checked (the fixture starts with 6)."""


def _leaves(session) -> list[bytes]:  # type: ignore[no-untyped-def]
    return [merkle.leaf_hash(ledger.entry_bytes(ledger.entry_fields(e))) for e in ledger.iter_entries(session)]


def _nodes(session) -> dict[tuple[int, int], bytes]:  # type: ignore[no-untyped-def]
    return {(lv, i): bytes(h) for lv, i, h in session.execute(select(LedgerNode.level, LedgerNode.idx, LedgerNode.hash))}


@pytest.mark.slow  # every proof of every tree size up to 37, from nodes and from leaves
def test_proofs_from_nodes_equal_proofs_from_leaves(own_ledger):
    _, database = own_ledger
    with database.session() as s:
        for i in range(6, SIZES):
            ledger.append(s, actor="test", action="note", details={"i": i})
    with database.snapshot() as s:
        leaves = _leaves(s)
        assert len(leaves) == SIZES
        for n in range(0, SIZES + 1):
            root = merkle.root_from_leaf_hashes(leaves[:n])
            assert ledger.tree_head(s, tree_size=n).root_hash == root.hex(), n
            for seq in range(1, n + 1):
                p = ledger.inclusion(s, seq=seq, tree_size=n)
                assert p.root_hash == root.hex() and p.leaf_hash == leaves[seq - 1].hex()
                assert [bytes.fromhex(h) for h in p.path] == merkle.inclusion_proof(leaves, seq - 1, n), (seq, n)
            for old in range(0, n + 1):
                c = ledger.consistency(s, old_size=old, new_size=n)
                assert c.old_root == merkle.root_from_leaf_hashes(leaves[:old]).hex() and c.new_root == root.hex()
                assert [bytes.fromhex(h) for h in c.path] == merkle.consistency_proof(leaves, old, n), (old, n)
        # One pass gives the root at any size asked for.
        report = ledger.verify(s, at_sizes=[0, 1, 6, 16, SIZES])
        assert report.roots == {k: merkle.root_from_leaf_hashes(leaves[:k]).hex() for k in (0, 1, 6, 16, SIZES)}


def test_append_stores_exactly_the_complete_subtrees(own_ledger):
    _, database = own_ledger
    with database.session() as s:
        for i in range(6, 13):
            ledger.append(s, actor="test", action="note", details={"i": i})
    with database.snapshot() as s:
        leaves, stored = _leaves(s), _nodes(s)
    # Every complete aligned subtree of the 13 leaves, and nothing else.
    expected = {}
    for level in range(4):
        for idx in range(13 >> level):
            expected[(level, idx)] = merkle.root_from_leaf_hashes(leaves[idx << level:(idx + 1) << level])
    assert stored == expected


def test_entries_appended_together_are_the_ledger_that_one_by_one_would_make(own_ledger):
    """``append_all`` (case verification writes a batch of items' entries with it) gives the
    entries consecutive places in the order given, chains them and stores the same subtrees as
    appending them one at a time; the ledger verifies."""
    _, database = own_ledger
    batch = [{"action": "note", "details": {"i": i}, **({"item_id": f"item-{i}"} if i % 2 else {})}
             for i in range(6, 13)]
    with database.session() as s:
        before = ledger.size(s)
        ledger.append_all(s, actor="test", entries=batch)
        ledger.append_all(s, actor="test", entries=[])
    with database.snapshot() as s:
        added = list(ledger.iter_entries(s, start=before + 1))
        assert [(e.seq, e.actor, e.item_id, e.details) for e in added] == [
            (before + n + 1, "test", b.get("item_id"), ledger.canonical_json(b["details"])) for n, b in enumerate(batch)]
        leaves, stored = _leaves(s), _nodes(s)
        ledger.verify(s)
    expected = {}
    for level in range(4):
        for idx in range(len(leaves) >> level):
            expected[(level, idx)] = merkle.root_from_leaf_hashes(leaves[idx << level:(idx + 1) << level])
    assert stored == expected


def test_backfill_stores_what_append_stored(own_ledger):
    _, database = own_ledger
    with database.session() as s:
        for i in range(6, 21):
            ledger.append(s, actor="test", action="note", details={"i": i})
    with database.snapshot() as s:  # sequenced as the appends commit
        appended = _nodes(s)
    with database.engine.begin() as conn:
        conn.execute(text("DELETE FROM ledger_nodes"))
        assert ledger.backfill_nodes(conn, batch=7) == 21
    with database.snapshot() as s:
        assert _nodes(s) == appended
        ledger.verify(s)


def test_a_missing_node_fails_a_proof_by_name(own_ledger):
    _, database = own_ledger
    with database.engine.begin() as conn:
        conn.execute(text("DELETE FROM ledger_nodes WHERE level = 0 AND idx = 4"))
    with database.snapshot() as s:
        with pytest.raises(LedgerTampered, match=r"level 0, index 4: entries 5\.\.5\) is missing"):
            ledger.inclusion(s, seq=6, tree_size=6)
        with pytest.raises(LedgerTampered, match="is missing"):
            ledger.verify(s)
