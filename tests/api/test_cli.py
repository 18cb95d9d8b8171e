"""The ``evidence`` command line: users, ledger verification and item fixity.

Tampering tests work on a database of their own (the shared stack's ledger must stay
intact for the other tests): they play an insider with database superuser rights who
drops the append-only triggers and edits rows; verification must name the bad entry.
"""

from __future__ import annotations

import json

import os
import uuid

import pytest
from sqlalchemy import select, text

from archive.custody import ledger
from archive.models import LedgerEntry
from tests.conftest import run_cli, run_sql, settings_from_env, unprotect_ledger


@pytest.mark.slow  # the CLI as a process, twice a stack
def test_user_add_prints_token_last(stack):
    name = f"cli-{uuid.uuid4().hex[:6]}"
    r = stack.cli("user", "add", "--name", name, "--unit", "unit-cli", "--role", "reviewer")
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip().splitlines()[-1]
    assert token.startswith("ev_")
    with stack.client(token) as c:
        assert c.get("/api/v1/cases").status_code == 200
    again = stack.cli("user", "add", "--name", name, "--unit", "unit-cli", "--role", "reviewer")
    assert again.returncode != 0 and "already exists" in again.stderr


@pytest.mark.slow  # the CLI as a process
def test_ledger_verify_passes_on_intact_ledger(own_ledger):
    env, _ = own_ledger
    r = run_cli(env, "ledger", "verify")
    assert r.returncode == 0, r.stderr
    assert "ledger OK: 6 entries" in r.stdout


def test_database_refuses_update_and_delete(own_ledger):
    _, database = own_ledger
    for statement in ("UPDATE ledger_entries SET actor = 'x' WHERE seq = 2", "DELETE FROM ledger_entries WHERE seq = 2"):
        with pytest.raises(Exception, match="append-only"):
            with database.engine.begin() as conn:
                conn.execute(text(statement))


def _edit(database):
    run_sql(database, "UPDATE ledger_entries SET details = :d WHERE seq = 3", {"d": '{"i":99}'})
    return "entry 3"


def _delete(database):
    run_sql(database, "DELETE FROM ledger_entries WHERE seq = 3")
    return "entry 3"


def _delete_last(database):
    run_sql(database, "DELETE FROM ledger_entries WHERE seq = 6")
    return "entry 6"


def _forge_entry(conn, *, seq: int) -> None:
    """Write a well-formed entry at ``seq`` chained to entry ``seq - 1``."""
    prev = conn.execute(text("SELECT entry_hash FROM ledger_entries WHERE seq = :s"), {"s": seq - 1}).scalar_one()
    fields = {"seq": seq, "time": "2026-01-01T00:00:00.000000Z", "actor": "intruder", "case": None,
              "item": None, "action": "note", "details": "{}", "prev": prev}
    conn.execute(
        text("INSERT INTO ledger_entries (seq, recorded_at, actor, case_id, item_id, action, details, prev_hash, entry_hash)"
             " VALUES (:s, :t, 'intruder', NULL, NULL, 'note', '{}', :p, :h)"),
        {"s": seq, "t": fields["time"], "p": prev, "h": ledger.compute_entry_hash(fields)},
    )


def _insert(database):
    """Shift entries 3.. up by one and slip a well-formed entry in at 3."""
    with database.engine.begin() as conn:
        for seq in range(6, 2, -1):
            conn.execute(text("UPDATE ledger_entries SET seq = :n WHERE seq = :o"), {"n": seq + 1, "o": seq})
        _forge_entry(conn, seq=3)
    return "entry 4"


def _append_forged(database):
    """A well-chained entry appended behind the ledger's back."""
    with database.engine.begin() as conn:
        _forge_entry(conn, seq=7)
    return "entry 7"


def _reorder(database):
    with database.engine.begin() as conn:
        conn.execute(text("UPDATE ledger_entries SET seq = 100 WHERE seq = 3"))
        conn.execute(text("UPDATE ledger_entries SET seq = 3 WHERE seq = 4"))
        conn.execute(text("UPDATE ledger_entries SET seq = 4 WHERE seq = 100"))
    return "entry 3"


@pytest.mark.parametrize("tamper", [_edit, _delete, _delete_last, _insert, _append_forged, _reorder],
                         ids=["edit", "delete", "delete-last", "insert", "append-forged", "reorder"])
@pytest.mark.slow  # the CLI as a process for each of six tamperings
def test_ledger_tampering_is_detected(own_ledger, tamper):
    env, database = own_ledger
    unprotect_ledger(database)
    named = tamper(database)
    r = run_cli(env, "ledger", "verify")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "FAILED" in r.stderr and named in r.stderr, r.stderr


@pytest.mark.slow  # waits for the worker to seal, then runs the CLI
def test_verify_item_detects_flipped_byte(stack, officer, case):
    data = os.urandom(200_000)
    with stack.client(officer) as c:
        item = c.post(f"/api/v1/cases/{case['id']}/evidence", params={"kind": "other", "filename": "f.bin"},
                      content=data).json()
    stack.wait_item(officer, item["id"], lambda i: i["sm3"] is not None)
    ok = stack.cli("verify-item", item["id"])
    assert ok.returncode == 0, ok.stderr
    assert item["sha256"] in ok.stdout
    flipped = bytearray(data)
    flipped[12345] ^= 0x01
    if stack.name == "embedded":
        path = stack.settings.resolved_storage_dir / item["storage_key"]
        path.chmod(0o644)
        path.write_bytes(bytes(flipped))
    else:
        # Object lock forbids changing the recorded version; an insider can only add a
        # new version and repoint the row at it — which must be caught just the same.
        import io

        store = stack.services.store
        result = store.client.put_object(store.bucket, item["storage_key"], io.BytesIO(bytes(flipped)), len(flipped))
        with stack.services.db.session() as s:
            s.execute(text("UPDATE evidence_items SET storage_version = :v WHERE id = :i"),
                      {"v": result.version_id, "i": item["id"]})
    bad = stack.cli("verify-item", item["id"])
    assert bad.returncode == 1
    assert "FAILED" in bad.stderr and item["id"] in bad.stderr and "sha256" in bad.stderr
    with stack.services.db.snapshot() as s:
        outcomes = [e.details for e in s.query(LedgerEntry).filter_by(item_id=item["id"], action="fixity_checked")]
    assert any('"failed"' in d for d in outcomes) and any('"ok"' in d for d in outcomes)
    with stack.services.db.snapshot() as s:
        last = s.query(LedgerEntry).filter_by(item_id=item["id"]).order_by(LedgerEntry.seq.desc()).limit(2).all()
    # The failed verification's record: the re-hash, then the whole check, each naming the fault.
    assert [(e.action, json.loads(e.details)["outcome"]) for e in reversed(last)] == [
        ("fixity_checked", "failed"), ("item_verified", "failed")]
    assert all("sha256" in json.loads(e.details)["problem"] for e in last)


def test_serve_shares_postgresqls_connections_among_its_processes(pg_url, tmp_path, monkeypatch):
    """Ten processes of 20 connections each would pass PostgreSQL's 100 and have the server refuse
    requests; ``evidence serve`` gives each a share that fits, and its children inherit it."""
    from sqlalchemy import create_engine

    from api.cli.ops import RESERVED_CONNECTIONS, _share_connections
    from archive.settings import Settings

    engine = create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        limit = int(conn.execute(text("SHOW max_connections")).scalar_one())
    engine.dispose()
    monkeypatch.delenv("EVIDENCE_DATABASE_CONNECTIONS", raising=False)
    settings = Settings(data_dir=tmp_path, database_url=pg_url)
    few = _share_connections(settings, 2)
    assert few.database_connections == min(20, (limit - RESERVED_CONNECTIONS) // 2)
    many = _share_connections(settings, 10)
    assert 10 * many.database_connections <= limit - RESERVED_CONNECTIONS
    assert os.environ["EVIDENCE_DATABASE_CONNECTIONS"] == str(many.database_connections)
    monkeypatch.delenv("EVIDENCE_DATABASE_CONNECTIONS")
    assert _share_connections(Settings(data_dir=tmp_path), 10).database_connections == 20  # SQLite: one file


def _python(tmp_path, script: str) -> str:
    """What ``script`` prints, run by a Python process of its own with a test environment."""
    import subprocess
    import sys

    from tests.conftest import _base_env

    run = subprocess.run([sys.executable, "-c", script], env=_base_env(tmp_path), capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    return run.stdout


def test_a_server_process_leaves_what_start_up_built_out_of_the_collectors_full_passes(tmp_path):
    """Each full pass of Python's cyclic collector once walked every object start-up built,
    while the process's requests waited (pauses of 130-160 ms under load). A server process
    freezes them once its app is built (``gc.freeze``): the collector's passes skip them and
    find less to walk, and what a request leaves in a cycle is still collected."""
    out = _python(tmp_path, (
        "import gc\n"
        "from api.app import server_process_app\n"
        "before = gc.get_freeze_count()\n"
        "server_process_app()\n"
        "frozen = gc.get_freeze_count()\n"
        "class Node: pass\n"
        "a, b = Node(), Node(); a.other, b.other = b, a\n"
        "del a, b\n"
        "print(before, frozen, len(gc.get_objects(generation=2)), gc.collect())\n"
    ))
    before, frozen, walked, collected = map(int, out.split()[-4:])
    assert before == 0 and frozen > 100_000, out
    assert walked < frozen / 10, out  # a full pass walks a tenth of what it did, or less
    assert collected >= 2, out  # a cycle made after start-up is still collected


def test_a_command_leaves_what_it_imported_out_of_the_collectors_passes_at_exit(tmp_path):
    """Shutting the interpreter down left every imported class and function as cyclic garbage
    that the collector's last passes freed one by one: a fixed 0.17-0.18 s of each command. A
    command freezes what it holds at exit, after a last collection that still finalises what
    it left unreachable."""
    out = _python(tmp_path, (
        "import atexit, gc\n"
        "from api.cli import main\n"
        "atexit.register(lambda: print('frozen at exit', gc.get_freeze_count()))\n"
        "class Holder:\n"
        "    def __del__(self): print('finalised')\n"
        "gc.disable()\n"  # the cycle is left to the last collection
        "h = Holder(); h.me = h\n"
        "del h\n"
        "main(['verify-item', '--help'])\n"
    ))
    assert "Verify an item" in out
    frozen = int(out.rsplit("frozen at exit", 1)[1].split()[0])
    assert frozen > 10_000, out
    assert out.index("finalised") < out.index("frozen at exit"), out


@pytest.mark.slow  # the CLI as a process
def test_verify_case_records_under_a_system_identity_that_is_no_administrators_account(own_ledger):
    """``verify-case`` without ``--as`` created ``system-cli`` as an ordinary active administrator
    with a token, which then counted as a second administrator: the only person administering
    could disable themself. It is the archive's own identity now: no token (one made before
    revision 0023 is refused), not listed, not changed as users are, not counted by the
    last-administrator rule, and still named by the custody entries it writes."""
    from archive.cases.service import create_case
    from archive.errors import Conflict, Forbidden, Unauthenticated
    from archive.identity import users
    from archive.models import ApiToken, User
    from archive.storage import open_store

    env, database = own_ledger
    assert run_cli(env, "user", "add", "--name", "boss", "--unit", "hq", "--role", "admin").returncode == 0
    with database.session() as s:
        officer, _ = users.add_user(s, name="li.wei", unit="Team 1", role="officer")
        case_id = create_case(s, store=open_store(settings_from_env(env)), user=officer, case_number="2026-1",
                              title="t").id
    for _ in range(2):
        r = run_cli(env, "verify-case", case_id)
        assert r.returncode in (0, 3), r.stderr
    with database.session() as s:
        cli = s.execute(select(User).where(User.name == "system-cli")).scalar_one()
        assert cli.system and s.execute(select(ApiToken).where(ApiToken.user_id == cli.id)).first() is None
        assert [u.name for u in users.list_users(s)] == ["boss", "li.wei"]
        with pytest.raises(Conflict) as alone:
            users.update_user(s, name="boss", actor="user:boss", active=False)
        assert alone.value.code == "last_admin"
        for change in ({"active": False}, {"role": "officer"}):
            with pytest.raises(Forbidden) as refused:
                users.update_user(s, name="system-cli", actor="user:boss", **change)
            assert refused.value.code == "system_user"
        with pytest.raises(Forbidden):
            users.issue_token(s, user=cli, name="mine", expires_in=None, actor="user:boss")
        _, old = users._new_token(s, user=cli, name="initial", expires_in=None)  # as before revision 0023
        with pytest.raises(Unauthenticated) as signin:
            users.authenticate(s, token=old)
        assert signin.value.code == "system_user"
        s.rollback()
        actors = s.execute(select(LedgerEntry.actor).where(LedgerEntry.action == "verification_requested")).scalars()
        assert list(actors) == ["user:system-cli", "user:system-cli"]
