"""Custody entries sequenced in batches: many writers at once get one unbroken ledger with
every entry exactly once and in each writer's order; an entry whose process died between
its commit and its sequencing is not lost (the next append or checkpoint sequences it); a
rolled-back action leaves no entry; a waiting entry cannot be edited.

On PostgreSQL an entry waits in ``ledger_pending`` until its transaction commits, then a
batch of them takes the ledger's lock once; on SQLite it is sequenced at once. The
concurrency test runs on both."""

from __future__ import annotations

import json
import threading
import time

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from archive.custody import ledger
from archive.models import LedgerEntry, LedgerPending
from tests.conftest import run_cli, sequenced_soon, settings_from_env

WRITERS = 16
EACH = 25


def _notes(database) -> list[tuple[int, dict]]:  # type: ignore[no-untyped-def]
    with database.snapshot() as s:
        rows = s.execute(select(LedgerEntry.seq, LedgerEntry.details).where(LedgerEntry.action == "note")
                         .order_by(LedgerEntry.seq)).all()
    return [(seq, json.loads(details)) for seq, details in rows]


@pytest.mark.slow  # sixteen writers racing
def test_many_writers_at_once_get_one_unbroken_ledger_in_each_writers_order(own_ledger):
    _, database = own_ledger
    with database.snapshot() as s:
        before = ledger.size(s)
    failures: list[BaseException] = []
    start = threading.Barrier(WRITERS)

    def writer(w: int) -> None:
        try:
            start.wait()
            for i in range(EACH):
                with database.session() as s:
                    if i % 10 == 9:  # some callers need their sequence number in the transaction
                        entry = ledger.append_now(s, actor=f"w{w}", action="note", details={"w": w, "i": i})
                        assert entry.seq > before
                    else:
                        ledger.append(s, actor=f"w{w}", action="note", details={"w": w, "i": i})
                # Read your own write: a snapshot holds every committed entry.
                with database.snapshot() as s:
                    assert s.execute(select(LedgerEntry.seq).where(
                        LedgerEntry.actor == f"w{w}",
                        LedgerEntry.details == ledger.canonical_json({"w": w, "i": i}))).scalar_one_or_none(), (w, i)
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not failures, failures[:3]
    with database.snapshot() as s:
        assert ledger.size(s) == before + WRITERS * EACH
        assert ledger.waiting(s) == 0
        report = ledger.verify(s)
        assert report.size == before + WRITERS * EACH
    notes = [(seq, d) for seq, d in _notes(database) if "w" in d]
    assert sorted((d["w"], d["i"]) for _, d in notes) == [(w, i) for w in range(WRITERS) for i in range(EACH)]
    for w in range(WRITERS):
        assert [d["i"] for _, d in notes if d["w"] == w] == list(range(EACH)), f"writer {w} out of order"


@pytest.mark.slow  # runs the CLI as a process and seals a checkpoint
def test_an_entry_whose_process_died_before_sequencing_is_sequenced_by_the_next_append_checkpoint_or_reader(own_ledger, stack):
    if stack.name != "services":
        pytest.skip("SQLite sequences each entry in its own transaction; nothing waits")
    env, database = own_ledger
    with database.snapshot() as s:
        before = ledger.size(s)
    # A process that committed its action and its entries, then died before sequencing them:
    # a plain session runs no after-commit step.
    with Session(database.engine) as s:
        for i in range(3):
            ledger.append(s, actor="died", action="note", details={"lost?": i})
        s.commit()
    with database.read() as s:  # a plain read: a snapshot would sequence them first
        assert ledger.size(s) == before and ledger.waiting(s) == 3
    with database.session() as s:
        ledger.append(s, actor="next", action="note", details={"after": True})
    sequenced_soon(database)  # by the sequencer that commit woke, not by this reader
    notes = _notes(database)
    assert [d for _, d in notes[-4:]] == [{"lost?": 0}, {"lost?": 1}, {"lost?": 2}, {"after": True}]
    with database.snapshot() as s:
        assert ledger.waiting(s) == 0
        ledger.verify(s)

    # The timed checkpoint sequences them too (no later append needed).
    with Session(database.engine) as s:
        ledger.append(s, actor="died", action="note", details={"again": 1})
        s.commit()
    from archive.custody.checkpoints import seal_checkpoint
    from archive.seals.sealer import Sealer
    cp = seal_checkpoint(database, Sealer(settings_from_env(env)))
    with database.snapshot() as s:
        assert ledger.waiting(s) == 0
        assert cp is not None and cp.tree_size == ledger.size(s) - 1  # its own record follows the tree
    assert _notes(database)[-1][1] == {"again": 1}

    # So does a reader of the ledger: `evidence ledger verify` verifies them with the rest.
    with Session(database.engine) as s:
        ledger.append(s, actor="died", action="note", details={"verified": 1})
        s.commit()
    with database.read() as s:
        expected = ledger.size(s) + 1
    shown = run_cli(env, "ledger", "verify")
    assert shown.returncode == 0, shown.stderr
    assert f"ledger OK: {expected} entries" in shown.stdout
    assert _notes(database)[-1][1] == {"verified": 1}


def test_an_entry_counts_for_idempotent_steps_from_its_commit_not_from_its_sequencing(own_ledger, stack):
    """Pipeline steps skip work whose entry exists (``count_actions``). An entry still waiting
    for its place was not counted, so a step retried in that window ran twice (a fixity
    audit's entry was missed by CI the same way)."""
    if stack.name != "services":
        pytest.skip("SQLite sequences each entry in its own transaction; nothing waits")
    _, database = own_ledger
    with database.engine.connect() as holder:  # the ledger's lock held: no sequencer takes it
        holder.execute(text("SELECT id FROM ledger_lock WHERE id = 1 FOR UPDATE"))
        with Session(database.engine) as s:  # committed, not sequenced (no after-commit step)
            ledger.append(s, actor="t", action="media_probed", item_id="waiting-item", details={})
            s.commit()
        with database.read() as s:
            assert ledger.waiting(s) >= 1
            assert ledger.count_actions(s, item_id="waiting-item", action="media_probed") == 1
        holder.rollback()
    with database.snapshot() as s:  # sequenced now: still once, not twice
        assert ledger.waiting(s) == 0
        assert ledger.count_actions(s, item_id="waiting-item", action="media_probed") == 1


def test_an_entry_committed_while_another_process_holds_the_lock_is_sequenced_by_that_process(own_ledger, stack):
    """Another process (its own engine, so its own sequencer) holds the ledger's lock in an
    append whose transaction stays open; an entry committed meanwhile finds the lock held and
    its process stops trying. Nothing else commits and nobody reads the ledger: the holder's
    hand-over after its commit still sequences the entry."""
    if stack.name != "services":
        pytest.skip("nothing waits on SQLite")
    from archive.db import Database

    env, database = own_ledger
    other = Database(settings_from_env(env))
    try:
        with other.session() as holding:
            ledger.append_now(holding, actor="other", action="note", details={"holder": True})
            with database.session() as s:
                ledger.append(s, actor="t", action="note", details={"while": "held"})
            ledger._sequencer(database.engine).join(5.0)  # its try found the lock held, and it stopped
            with database.read() as s:
                assert s.execute(select(LedgerPending.actor)).scalars().all() == ["t"]
        deadline = time.monotonic() + 10
        while True:
            with database.read() as s:  # a read that sequences nothing itself
                if not ledger.waiting(s):
                    break
            assert time.monotonic() < deadline, "the entry still waits: the lock's holder did not hand over"
            time.sleep(0.05)
    finally:
        other.dispose()
    assert [d for _, d in _notes(database)][-2:] == [{"holder": True}, {"while": "held"}]


def test_a_rolled_back_action_leaves_no_entry(own_ledger):
    _, database = own_ledger
    with database.snapshot() as s:
        before = ledger.size(s)
    with pytest.raises(RuntimeError):
        with database.session() as s:
            ledger.append(s, actor="t", action="note", details={"rolled": "back"})
            raise RuntimeError("the action failed")
    with database.session() as s:
        ledger.append(s, actor="t", action="note", details={"kept": True})
    sequenced_soon(database)
    with database.snapshot() as s:
        assert ledger.size(s) == before + 1 and ledger.waiting(s) == 0
    assert _notes(database)[-1][1] == {"kept": True}


def test_a_waiting_entry_cannot_be_edited(own_ledger, stack):
    if stack.name != "services":
        pytest.skip("nothing waits on SQLite")
    _, database = own_ledger
    # Held, the ledger's lock keeps every sequencer off (a background one woken by an earlier
    # test's append could otherwise take the entry away first, and the UPDATE would touch nothing).
    with database.engine.connect() as holder:
        holder.execute(text("SELECT id FROM ledger_lock WHERE id = 1 FOR UPDATE"))
        with Session(database.engine) as s:
            ledger.append(s, actor="t", action="note", details={"i": 1})
            s.commit()
        with pytest.raises(DBAPIError, match="append-only"):
            with database.engine.begin() as conn:
                conn.execute(text("UPDATE ledger_pending SET actor = 'someone else'"))
        with database.read() as s:
            assert s.execute(select(LedgerPending.actor)).scalars().all() == ["t"]
        holder.rollback()


def test_a_cases_filters_name_every_actor_and_action_sequenced_before_the_read(own_ledger):
    """The case page's custody filters (:func:`ledger.case_facets`) are kept between reads
    and topped up with the entries sequenced since: a new actor or action shows at the next
    read, and another case's never does."""
    _, database = own_ledger

    def add(case_id: str, actor: str, action: str) -> None:
        with database.session() as s:
            ledger.append(s, actor=actor, action=action, case_id=case_id, details={})
        sequenced_soon(database)

    def facets(case_id: str) -> tuple[list[str], list[str]]:
        with database.read() as s:
            return ledger.case_facets(s, case_id=case_id)

    case, other = (f"case-{n}-{id(database)}" for n in ("a", "b"))
    add(case, "li.wei", "evidence_received")
    add(other, "wang.fang", "case_created")
    assert facets(case) == (["li.wei"], ["evidence_received"])
    add(case, "zhao.min", "item_verified")
    add(case, "li.wei", "evidence_read")
    add(other, "chen.jie", "export_made")
    assert facets(case) == (["li.wei", "zhao.min"], ["evidence_read", "evidence_received", "item_verified"])
    assert facets(case) == facets(case)  # a read with nothing new changes nothing
    assert facets(other) == (["chen.jie", "wang.fang"], ["case_created", "export_made"])
    assert facets("no-such-case") == ([], [])


def test_reads_recorded_at_once_share_commits_each_in_the_ledger_when_its_call_returns(own_ledger, stack):
    """``ledger.record`` (a read of evidence's entry): 24 threads of one process record 10
    entries each at once. Each call returns with its entry committed (a reader finds it),
    every entry is there exactly once in each caller's order, the ledger verifies, and the
    entries took fewer commits than entries (they were written in shared batches). On PostgreSQL an entry the database refuses (a NUL in its
    actor) fails its own caller only: the others in its batch are recorded."""
    from sqlalchemy import event

    _, database = own_ledger
    threads_n, each = 24, 10
    commits = [0]
    event.listen(database.engine, "commit", lambda _conn: commits.__setitem__(0, commits[0] + 1))
    with database.snapshot() as s:
        before = ledger.size(s)
    failures: list[BaseException] = []
    refused: list[BaseException] = []
    start = threading.Barrier(threads_n)
    bad = stack.name == "services"  # SQLite keeps a NUL in text; PostgreSQL refuses it

    def reader(w: int) -> None:
        try:
            start.wait()
            for i in range(each):
                if bad and w == 0 and i == 5:
                    with pytest.raises(Exception) as raised:
                        ledger.record(database, actor="bad\x00actor", action="note", details={"w": w, "i": "bad"})
                    refused.append(raised.value)
                ledger.record(database, actor=f"r{w}", action="note", details={"w": w, "i": i})
                with database.snapshot() as s:  # a reader: every entry committed before it
                    assert s.execute(select(LedgerEntry.seq).where(
                        LedgerEntry.actor == f"r{w}",
                        LedgerEntry.details == ledger.canonical_json({"w": w, "i": i}))).scalar_one_or_none(), (w, i)
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=reader, args=(w,)) for w in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not failures, failures[:3]
    assert len(refused) == (1 if bad else 0)
    with database.snapshot() as s:
        assert ledger.size(s) == before + threads_n * each
        assert ledger.verify(s).size == before + threads_n * each
    notes = [d for _, d in _notes(database) if "w" in d]
    assert sorted((d["w"], d["i"]) for d in notes) == [(w, i) for w in range(threads_n) for i in range(each)]
    for w in range(threads_n):
        assert [d["i"] for d in notes if d["w"] == w] == list(range(each)), f"reader {w} out of order"
    assert commits[0] < threads_n * each, f"{commits[0]} commits for {threads_n * each} entries: none shared"
