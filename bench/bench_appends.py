"""Custody appends/s with 1, 4 and 16 concurrent writers, each call its own committed
transaction, on PostgreSQL and SQLite.

The writers run in two layouts, one after the other: a process per writer, with its own
connections (as API processes and Celery workers each hold theirs); and spread over two
processes, as the concurrent requests of ``evidence serve``'s two API processes on 2 cores
are (``--processes``). Figures per writer count, measured in the same run on a fresh database:

- ``appends/s``: ``ledger.append`` inside a transaction of the writer's, as an upload, a seal or
  a case creation makes one (on PostgreSQL the entry waits in ``ledger_pending`` and the writer
  goes on: its process's sequencer thread puts it in the ledger in a batch just after the
  commit, or, finding another process's pass holding the lock, leaves it to that pass, which
  hands over; on SQLite it is sequenced at once);
- ``left``: entries still waiting when the appends' writers had ended (their processes
  sequence what they committed before they exit, so 0 is expected);
- ``record/s``: ``ledger.record``, an entry on its own, as a read of evidence records one:
  the entries a process's writers record at the same moment share one commit (a group commit);
  with a process per writer there is nothing to share;
- ``one-lock/s``: every append takes the ledger's lock and holds it through its commit
  (``ledger.append_now``, the way every append worked before batching);
- ``baseline/s``: the same writers inserting the same row into a table with no ledger at all,
  each insert its own committed transaction: the database's own ceiling for one durable
  write per transaction on this machine.

The ratios are appends and records against the baseline. After each run the ledger is
verified (chain and Merkle tree) and must hold every entry exactly once.

Run: .venv/bin/python bench/bench_appends.py [--writers 1 4 16] [--processes 0 2] [--seconds 5]
     [--stacks postgresql sqlite]
"""

from __future__ import annotations

import argparse
import multiprocessing
import threading
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from archive.custody import ledger  # noqa: E402
from archive.db import Database  # noqa: E402
from archive.settings import Settings  # noqa: E402
from bench.bench_ledger import open_stack  # noqa: E402
from bench.together import run_together  # noqa: E402

TARGET = 5_000.0


def _writer(database: Database, mode: str, w: int, stop: float, start, counts) -> None:  # type: ignore[no-untyped-def]
    """One writer: one committed transaction per call until ``stop``; its count in ``counts[w]``."""
    n = 0
    start.wait()
    while time.time() < stop:
        if mode == "record":  # an entry on its own, as a read of evidence records one
            ledger.record(database, actor=f"bench:{w}", action="note", details={"i": n})
        else:
            with database.session() as s:
                if mode == "baseline":
                    s.execute(text("INSERT INTO bench_rows (actor, details) VALUES (:a, :d)"),
                              {"a": f"bench:{w}", "d": f'{{"i":{n}}}'})
                elif mode == "appends":
                    ledger.append(s, actor=f"bench:{w}", action="note", details={"i": n})
                else:
                    ledger.append_now(s, actor=f"bench:{w}", action="note", details={"i": n})
        n += 1
    counts[w] = n


def _process(settings: Settings, mode: str, first: int, threads: int, stop: float, start, counts) -> None:  # type: ignore[no-untyped-def]
    """One process (as an API process or a worker is) with ``threads`` writers (as its
    concurrent requests are), sharing its engine."""
    database = Database(settings)
    pool = [threading.Thread(target=_writer, args=(database, mode, first + t, stop, start, counts))
            for t in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    ledger.finish_sequencing()  # as the service's processes do at a normal exit
    database.dispose()


def run_writers(settings: Settings, mode: str, writers: int, seconds: float, processes: int) -> float:
    """``writers`` spread over ``processes`` processes write for ``seconds``; calls per second
    in total."""
    ctx = multiprocessing.get_context("fork")
    processes = min(processes, writers)
    counts = ctx.Array("q", writers)
    start = ctx.Barrier(writers + 1)
    stop = time.time() + seconds + 2.0  # processes start within the first moment
    share = [writers // processes + (1 if p < writers % processes else 0) for p in range(processes)]
    firsts = [sum(share[:p]) for p in range(processes)]
    procs = [ctx.Process(target=_process, args=(settings, mode, firsts[p], share[p], stop, start, counts))
             for p in range(processes)]
    elapsed = run_together(procs, start)
    for p in procs:
        if p.exitcode:
            raise SystemExit(f"a {mode} writer failed (exit {p.exitcode})")
    return sum(counts) / elapsed


def measure(database: Database, settings: Settings, writers: int, seconds: float, processes: int) -> dict[str, float]:
    with database.engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS bench_rows (id BIGSERIAL PRIMARY KEY, actor TEXT, details TEXT)"
                          if database.engine.dialect.name == "postgresql" else
                          "CREATE TABLE IF NOT EXISTS bench_rows (id INTEGER PRIMARY KEY, actor TEXT, details TEXT)"))
    database.engine.dispose()  # no pooled connection crosses the fork
    out: dict[str, float] = {}
    for mode in ("baseline", "appends", "one_lock", "record"):
        out[mode] = run_writers(settings, mode, writers, seconds, processes)
        if mode == "appends":  # what the writers' sequencers had not yet sequenced when they ended
            with database.read() as s:
                out["left"] = ledger.waiting(s)
    with database.snapshot() as s:
        report = ledger.verify(s)
        assert report.size == ledger.size(s), report.size
        assert ledger.waiting(s) == 0
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--writers", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--processes", type=int, nargs="+", default=[0, 2],
                        help="processes the writers are spread over, one layout each: 0 a process per "
                             "writer; 2 as the service's two API processes on 2 cores (their requests threads)")
    parser.add_argument("--stacks", nargs="+", default=["postgresql", "sqlite"], choices=["sqlite", "postgresql"])
    args = parser.parse_args()
    print(f"{'stack':<10} {'writers':>7} {'procs':>5} {'appends/s':>10} {'left':>5} {'record/s':>9} {'one-lock/s':>10} "
          f"{'baseline/s':>10} {'appends vs base':>15} {'record vs base':>14}")
    with tempfile.TemporaryDirectory(prefix="bench-appends-") as tmp:
        for stack in args.stacks:
            database, drop = open_stack(stack, Path(tmp), 0)
            settings = Settings(data_dir=Path(tmp) / f"{stack}-0", database_url=database.url)
            try:
                for processes in args.processes:
                    for writers in args.writers:
                        procs = min(processes or writers, writers)
                        r = measure(database, settings, writers, args.seconds, procs)
                        best = max(r["appends"], r["record"])
                        flag = "" if stack != "postgresql" or writers != 16 else \
                            f"  (target {TARGET:,.0f}/s {'met' if best >= TARGET else 'not met'})"
                        print(f"{stack:<10} {writers:>7} {procs:>5} {r['appends']:>10,.0f} {r['left']:>5.0f} "
                              f"{r['record']:>9,.0f} {r['one_lock']:>10,.0f} {r['baseline']:>10,.0f} "
                              f"{r['appends'] / r['baseline']:>14.2f}x {r['record'] / r['baseline']:>13.2f}x{flag}",
                              flush=True)
            finally:
                database.dispose()
                drop()


if __name__ == "__main__":
    main()
