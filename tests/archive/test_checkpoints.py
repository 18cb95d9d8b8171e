"""Sealed ledger checkpoints: made by the worker, served by the API, kept in the vaults,
checked by ``evidence ledger verify``; tampering with a checkpoint or with the ledger
behind it is named.

Tampering runs on a database of its own (same kind as the stack's), so the shared
stack's ledger stays intact for the other tests.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time

import pytest
from sqlalchemy import text

from archive import db as archive_db, work
from archive.custody import ledger
from archive.db import Database
from archive.models import LedgerEntry
from tests.conftest import run_cli, run_sql, settings_from_env, unprotect_ledger
from tests.archive.test_sealing import run, upload, wait_sealed
from tests.tools import need

# Slow: sealed checkpoints made by the worker and the CLI, and tampering with them.
pytestmark = pytest.mark.slow


def test_worker_checkpoint_served_and_verified(stack, officer, case, tmp_path):
    item = wait_sealed(stack, officer, upload(stack, officer, case, os.urandom(3000))["id"])
    with stack.services.db.snapshot() as s:
        received = s.query(LedgerEntry).filter_by(item_id=item["id"], action="evidence_received").one().seq
    stack.services.enqueue(work.CHECKPOINT)
    deadline = time.monotonic() + 60
    with stack.client(officer) as c:
        while True:
            r = c.get("/api/v1/ledger/checkpoints/latest")
            if r.status_code == 200 and r.json()["tree_size"] >= received:
                break
            assert time.monotonic() < deadline, r.text
            time.sleep(0.3)
        latest = r.json()
        listed = c.get("/api/v1/ledger/checkpoints").json()
        chain = c.get("/api/v1/trust/chain.pem").content
    assert latest["id"] in [cp["id"] for cp in listed]
    statement = json.loads(latest["statement"])
    assert statement["tree_size"] == latest["tree_size"] and statement["root_hash"] == latest["root_hash"]
    assert "{seq}" in latest["proofs"]["inclusion"]

    # The statement's seal verifies with OpenSSL alone.
    (tmp_path / "statement.json").write_text(latest["statement"], encoding="utf-8")
    (tmp_path / "cp.p7s").write_bytes(base64.b64decode(latest["cades"]))
    (tmp_path / "chain.pem").write_bytes(chain)
    r = run(need("openssl"), "cms", "-verify", "-binary", "-inform", "DER", "-in", tmp_path / "cp.p7s",
            "-content", tmp_path / "statement.json", "-CAfile", tmp_path / "chain.pem", "-out", os.devnull)
    assert r.returncode == 0, r.stderr

    # Kept in the vault of a case it covers.
    keys = [o.key for o in stack.services.store.list(f"{case['vault']}/checkpoints/")]
    assert any(k.endswith(".json") and not k.endswith(".sm2.json") for k in keys)
    assert any(k.endswith(".p7s") for k in keys) and any(k.endswith(".sm2.json") for k in keys)

    ok = stack.cli("verify-item", item["id"])
    assert ok.returncode == 0, ok.stderr
    assert f"custody entry {received} included in sealed checkpoint" in ok.stdout, ok.stdout
    verified = stack.cli("ledger", "verify")
    assert verified.returncode == 0, verified.stderr
    assert "checkpoints OK" in verified.stdout


def test_cli_seals_and_verifies_checkpoints(own_ledger):
    env, _ = own_ledger
    first = run_cli(env, "ledger", "checkpoint")
    assert first.returncode == 0 and "tree size 6" in first.stdout, first.stderr
    assert "nothing sealed" in run_cli(env, "ledger", "checkpoint").stdout
    ok = run_cli(env, "ledger", "verify")
    assert ok.returncode == 0 and "checkpoints OK: 1" in ok.stdout, ok.stdout + ok.stderr


@pytest.fixture
def sealed_ledger(own_ledger):
    """A fresh database (same kind as the stack's) with two sealed checkpoints (sizes 6 and 10).

    Entry 7 records the first checkpoint (``checkpoint_sealed``), entries 8-10 are notes
    and entry 11 records the second.

    Made in-process (the CLI's ``ledger checkpoint`` is tested above and in
    test_cli.py); each tampering test then runs ``evidence ledger verify`` for real.
    """
    from archive.custody.checkpoints import create_checkpoint, verify_checkpoints
    from archive.seals.sealer import Sealer
    from archive.storage import open_store

    env, database = own_ledger
    settings = settings_from_env(env)
    sealer, store = Sealer(settings), open_store(settings)
    with database.session() as s:
        assert create_checkpoint(s, sealer, store=store).tree_size == 6
        assert create_checkpoint(s, sealer, store=store) is None
        for i in range(6, 9):
            ledger.append(s, actor="test", action="note", details={"i": i})
        assert create_checkpoint(s, sealer, store=store).tree_size == 10
        assert create_checkpoint(s, sealer, store=store) is None
        assert verify_checkpoints(s, sealer).count == 2
    return env, database


def _root_hash(database):
    run_sql(database, "UPDATE checkpoints SET root_hash = :r WHERE tree_size = 6", {"r": "ab" * 32})
    return "row altered"


def _statement(database):
    with database.engine.begin() as conn:
        st = conn.execute(text("SELECT statement FROM checkpoints WHERE tree_size = 6")).scalar_one()
        conn.execute(text("UPDATE checkpoints SET statement = :s WHERE tree_size = 6"),
                     {"s": st.replace('"tree_size":6', '"tree_size":5')})
    return "CAdES seal"


def _seal_byte(database):
    with database.engine.begin() as conn:
        raw = bytearray(conn.execute(text("SELECT cades FROM checkpoints WHERE tree_size = 10")).scalar_one())
        raw[len(raw) // 3] ^= 0x01
        conn.execute(text("UPDATE checkpoints SET cades = :c WHERE tree_size = 10"), {"c": bytes(raw)})
    return "tree size 10"


def _sm2(database):
    with database.engine.begin() as conn:
        seal = conn.execute(text("SELECT sm2 FROM checkpoints WHERE tree_size = 10")).scalar_one()
        seal = json.loads(seal) if isinstance(seal, str) else seal
        sig = bytearray(base64.b64decode(seal["signature"]))
        sig[-1] ^= 0x01
        seal["signature"] = base64.b64encode(bytes(sig)).decode()
        conn.execute(text("UPDATE checkpoints SET sm2 = :s WHERE tree_size = 10"), {"s": json.dumps(seal)})
    return "SM2 seal"


def _removed_checkpoint(database):
    run_sql(database, "DELETE FROM checkpoints WHERE tree_size = 6")
    return "checkpoint 1 (tree size 6, recorded in ledger entry 7) is missing: its checkpoint row was deleted"


def _entry_edit(database):
    unprotect_ledger(database)
    run_sql(database, "UPDATE ledger_entries SET details = :d WHERE seq = 3", {"d": '{"i":99}'})
    return "entry 3"


def _rewritten_entries(database):
    """Edit entry 3 and recompute every later hash: the chain holds, the running tree head does not."""
    _rewrite_from_entry_3(database)
    return "running tree head does not match its entries"


def _rewritten_history(database):
    """The same, with the running tree head cleared and the stored subtree hashes rebuilt
    from the rewritten entries: only the checkpoints catch it."""
    _rewrite_from_entry_3(database)
    with database.engine.begin() as conn:
        conn.execute(text("UPDATE ledger_lock SET frontier = NULL"))
        conn.execute(text("DELETE FROM ledger_nodes"))
        ledger.backfill_nodes(conn)
    return "no longer hash to the sealed root"


def _stale_nodes(database):
    """Entries rewritten and the running tree head cleared, but the stored subtree hashes
    left as they were: the one pass names the first stale node."""
    _rewrite_from_entry_3(database)
    run_sql(database, "UPDATE ledger_lock SET frontier = NULL")
    return "stored Merkle node (level 0, index 2: entries 3..3) does not match the entries"


def _node_edit(database):
    run_sql(database, "UPDATE ledger_nodes SET hash = :h WHERE level = 1 AND idx = 2", {"h": b"\x07" * 32})
    return "stored Merkle node (level 1, index 2: entries 5..6) does not match the entries"


def _node_delete(database):
    run_sql(database, "DELETE FROM ledger_nodes WHERE level = 2 AND idx = 1")
    return "stored Merkle node (level 2, index 1: entries 5..8) is missing"


def _rewrite_from_entry_3(database):
    unprotect_ledger(database)
    with database.session() as s:
        entries = list(ledger.iter_entries(s))
    prev = entries[1].entry_hash
    with database.engine.begin() as conn:
        for e in entries[2:]:
            fields = ledger.entry_fields(e)
            fields["prev"] = prev
            if e.seq == 3:
                fields["details"] = '{"i":99}'
            new_hash = ledger.compute_entry_hash(fields)
            conn.execute(text("UPDATE ledger_entries SET details = :d, prev_hash = :p, entry_hash = :h WHERE seq = :s"),
                         {"d": fields["details"], "p": prev, "h": new_hash, "s": e.seq})
            prev = new_hash


@pytest.mark.parametrize(
    "tamper", [_root_hash, _statement, _seal_byte, _sm2, _removed_checkpoint, _entry_edit, _rewritten_entries,
               _rewritten_history, _stale_nodes, _node_edit, _node_delete],
    ids=["row-root", "statement", "cades-byte", "sm2", "removed-checkpoint", "entry-edit", "rewritten-entries",
         "rewritten-history", "stale-nodes", "node-edit", "node-delete"],
)
def test_checkpoint_tampering_is_named(sealed_ledger, tamper):
    env, database = sealed_ledger
    named = tamper(database)
    r = run_cli(env, "ledger", "verify")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "FAILED" in r.stderr and named in r.stderr, r.stderr


def test_checkpoint_due_counts_entries(stack, tmp_path):
    from archive.custody.checkpoints import checkpoint_due, create_checkpoint
    from archive.seals.sealer import Sealer
    from archive.settings import Settings

    env = dict(stack.env, EVIDENCE_DATA_DIR=str(tmp_path / "data"))
    settings = settings_from_env(env)
    if stack.name == "services":
        pytest.skip("pure counting; checked once on the embedded stack")
    archive_db.upgrade(settings)
    database = Database(settings)
    every3 = Settings(**{**settings.model_dump(), "checkpoint_every_entries": 3})
    with database.session() as s:
        assert not checkpoint_due(s, every3)
        for i in range(3):
            ledger.append(s, actor="t", action="note", details={"i": i})
        assert checkpoint_due(s, every3)
        cp = create_checkpoint(s, Sealer(settings))
        assert cp is not None and cp.tree_size == 3
        assert not checkpoint_due(s, every3)
        assert create_checkpoint(s, Sealer(settings)) is None
        assert hashlib.sha256(cp.statement.encode()).hexdigest()
    database.dispose()
