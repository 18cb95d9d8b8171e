"""Custody appends/s with 1, 4 and 16 concurrent writers, each append its own committed
transaction (as an upload, a seal or an evidence read makes one), on PostgreSQL and SQLite.

Each writer is a process of its own with its own connections, as the service's API processes
and Celery workers are (threads of one process would measure Python's interpreter lock).
Three figures per writer count, measured in the same run on a fresh database:

- ``appends/s``: ``ledger.append`` as the service calls it (on PostgreSQL the entry waits in
  ``ledger_pending`` and the writer goes on: its process's sequencer thread puts it in the
  ledger in a batch just after the commit, or, finding another process's pass holding the
  lock, leaves it to that pass, which hands over; on SQLite it is sequenced at once);
- ``left``: entries still waiting when the appends' writers had ended (their processes
  sequence what they committed before they exit, so 0 is expected);
- ``one-lock/s``: every append takes the ledger's lock and holds it through its commit
  (``ledger.append_now``, the way every append worked before batching);
- ``baseline/s``: the same writers inserting the same row into a table with no ledger at all,
  each insert its own committed transaction: the database's own ceiling for one durable
  write per transaction on this machine.

The ratios are appends against the baseline and against one-lock. After each run the
ledger is verified (chain and Merkle tree) and must hold every entry exactly once.

Run: .venv/bin/python bench/bench_appends.py [--writers 1 4 16] [--seconds 5] [--stacks postgresql sqlite]
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


def _writer(settings: Settings, mode: str, w: int, stop: float, start, counts,  # type: ignore[no-untyped-def]
            database: Database | None = None) -> None:
    """One writer: its own engine (or the process's), one committed transaction per call until ``stop``."""
    own = database is None
    database = database or Database(settings)
    n = 0
    start.wait()
    while time.time() < stop:
        with database.session() as s:
            if mode == "baseline":
                s.execute(text("INSERT INTO bench_rows (actor, details) VALUES (:a, :d)"),
                          {"a": f"bench:{w}", "d": f'{{"i":{n}}}'})
            elif mode == "appends":
                ledger.append(s, actor=f"bench:{w}", action="note", details={"i": n})
            else:
                ledger.append_now(s, actor=f"bench:{w}", action="note", details={"i": n})
        n += 1
    counts[0 if not own else w] = n
    if own:
        ledger.finish_sequencing()  # as the service's processes do at a normal exit
        database.dispose()


def run_writers(settings: Settings, mode: str, writers: int, seconds: float, *, threads: bool = False) -> float:
    """``writers`` processes (as the service's API processes and workers are), or threads of
    one process (as an API process's request threads are), write for ``seconds``; calls per
    second in total."""
    ctx = multiprocessing.get_context("fork")
    if threads:
        return _run_threads(settings, mode, writers, seconds)
    counts = ctx.Array("q", writers)
    start = ctx.Barrier(writers + 1)
    stop = time.time() + seconds + 2.0  # processes start within the first moment
    procs = [ctx.Process(target=_writer, args=(settings, mode, w, stop, start, counts)) for w in range(writers)]
    elapsed = run_together(procs, start)
    for p in procs:
        if p.exitcode:
            raise SystemExit(f"a {mode} writer failed (exit {p.exitcode})")
    return sum(counts) / elapsed


def _run_threads(settings: Settings, mode: str, writers: int, seconds: float) -> float:
    counts = [0] * writers
    start = threading.Barrier(writers + 1)
    stop = time.time() + seconds + 1.0

    def one(w: int) -> None:
        local = [0]
        _writer(settings, mode, w, stop, start, local, database=shared)
        counts[w] = local[0]

    shared = Database(settings)
    pool = [threading.Thread(target=one, args=(w,)) for w in range(writers)]
    elapsed = run_together(pool, start)
    shared.dispose()
    return sum(counts) / elapsed


def measure(database: Database, settings: Settings, writers: int, seconds: float, threads: bool) -> dict[str, float]:
    with database.engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS bench_rows (id BIGSERIAL PRIMARY KEY, actor TEXT, details TEXT)"
                          if database.engine.dialect.name == "postgresql" else
                          "CREATE TABLE IF NOT EXISTS bench_rows (id INTEGER PRIMARY KEY, actor TEXT, details TEXT)"))
    database.engine.dispose()  # no pooled connection crosses the fork
    out: dict[str, float] = {}
    for mode in ("baseline", "appends", "one_lock"):
        out[mode] = run_writers(settings, mode, writers, seconds, threads=threads)
        if mode == "appends":  # what the writers' sequencers had not yet sequenced when they ended
            with database.read() as s:
                out["left"] = ledger.waiting(s)
    with database.snapshot() as s:
        report = ledger.verify(s)
        assert report.size == ledger.size(s), report.size
        assert ledger.waiting(s) == 0
    return out


def _size(database: Database) -> int:
    with database.snapshot() as s:
        return ledger.size(s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--writers", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--threads", action="store_true",
                        help="writers are threads of one process (one API process's requests), not processes")
    parser.add_argument("--stacks", nargs="+", default=["postgresql", "sqlite"], choices=["sqlite", "postgresql"])
    args = parser.parse_args()
    print(f"{'stack':<10} {'writers':>7} {'appends/s':>10} {'left':>5} {'one-lock/s':>10} {'baseline/s':>10} "
          f"{'vs base':>8} {'vs one-lock':>11}")
    with tempfile.TemporaryDirectory(prefix="bench-appends-") as tmp:
        for stack in args.stacks:
            database, drop = open_stack(stack, Path(tmp), 0)
            settings = Settings(data_dir=Path(tmp) / f"{stack}-0", database_url=database.url)
            try:
                for writers in args.writers:
                    r = measure(database, settings, writers, args.seconds, args.threads)
                    flag = "" if stack != "postgresql" or writers != 16 or r["appends"] >= TARGET else \
                        f"  (target {TARGET:,.0f}/s not met)"
                    print(f"{stack:<10} {writers:>7} {r['appends']:>10,.0f} {r['left']:>5.0f} {r['one_lock']:>10,.0f} "
                          f"{r['baseline']:>10,.0f} {r['appends'] / r['baseline']:>7.2f}x "
                          f"{r['appends'] / r['one_lock']:>10.2f}x{flag}", flush=True)
            finally:
                database.dispose()
                drop()


if __name__ == "__main__":
    main()
