"""A corps at once: mixed load at 10, 50 and 100 clients on both stacks.

Each stack runs as a user runs it (``evidence serve``: the API in its own process with its
supervised worker) on the embedded default and on PostgreSQL + SeaweedFS (S3) + Redis.
Clients mix reads (case, evidence list, item, continuity), uploads, case creations and
continuity edits (tests/load.py). For every level it prints requests/s, p50/p99 latency,
5xx, dropped connections and other unexpected answers, then how long the worker took to
seal everything uploaded. The baseline, measured in the same run, is the same number of
threads reading the case row straight from the database: ``case ratio`` is the API's
case-read rate over that.

    .venv/bin/python bench/bench_load.py [--clients 10,50,100] [--operations 10] [--stack both]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402

from archive.db import Database  # noqa: E402
from archive.models import Case  # noqa: E402
from tests import load  # noqa: E402
from tests.conftest import _base_env, settings_from_env  # noqa: E402
from tests.servers import (  # noqa: E402
    create_pg_database, drop_pg_database, free_port, redis_db_url, start_s3, wait_port,
)


def _serve(env: dict[str, str], log: Path, *options: str) -> tuple[subprocess.Popen, str]:
    """``evidence serve`` with ``options`` on a free port; the process and its URL."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "api.cli", "serve", "--port", str(port), *options],
                               env=env, cwd=ROOT,
                               stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)
    if not wait_port(port, 90):
        raise RuntimeError(f"the service did not start; see {log}")
    return process, f"http://127.0.0.1:{port}"


def _user(env: dict[str, str], name: str, unit: str, role: str) -> str:
    out = subprocess.run([sys.executable, "-m", "api.cli", "user", "add", "--name", name, "--unit", unit,
                          "--role", role], env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def _db_reads(env: dict[str, str], case_id: str, clients: int, operations: int) -> float:
    """Baseline: ``clients`` threads reading the case row straight from the database."""
    database = Database(settings_from_env(env))
    done = [0]
    lock = threading.Lock()

    def reader() -> None:
        for _ in range(operations):
            with database.read() as s:
                s.execute(select(Case).where(Case.id == case_id)).scalar_one()
            with lock:
                done[0] += 1

    threads = [threading.Thread(target=reader) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rate = done[0] / (time.perf_counter() - start)
    database.dispose()
    return rate


def bench_stack(name: str, env: dict[str, str], levels: list[int], operations: int, tmp: Path) -> None:
    process, url = _serve(env, tmp / f"{name}-serve.log")
    try:
        tokens = [_user(env, f"bench-{i}", f"Bench unit {i}", "officer") for i in range(5)]
        admin = _user(env, "bench-admin", "Bench HQ", "admin")
        fx = load.prepare(url, tokens)
        print(f"\n== {name}: {os.cpu_count()} cores, {operations} operations per client")
        print(f"{'clients':>7} {'requests':>8} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'case p99':>8} "
              f"{'5xx':>4} {'drop':>4} {'other':>5} {'case/s':>7} {'db/s':>7} {'case ratio':>10}")
        uploaded: list[str] = []
        for clients in levels:
            results, wall = load.run(fx, clients=clients, operations=operations, seed=clients)
            uploaded += results.uploaded
            p50, p99 = results.latency()
            _c50, case_p99 = results.latency("case_read")
            case_reads = sum(1 for op, status, _s in results.samples if op == "case_read" and status == 200)
            case_rate = case_reads / wall
            db_rate = _db_reads(env, fx.cases[0], clients, operations)
            other = len(results.failures) - results.server_errors - results.transport_errors
            print(f"{clients:>7} {len(results.samples):>8} {len(results.samples) / wall:>7.1f} {p50:>8.1f} "
                  f"{p99:>8.1f} {case_p99:>8.1f} {results.server_errors:>4} {results.transport_errors:>4} "
                  f"{other:>5} {case_rate:>7.1f} {db_rate:>7.0f} {case_rate / db_rate:>10.3f}")
            for failure in results.failures[:5]:
                print(f"        {failure}")
        start = time.perf_counter()
        left = load.wait_sealed(url, admin, fx.items + uploaded, timeout=900)
        print(f"sealed {len(fx.items) + len(uploaded) - len(left)} of {len(fx.items) + len(uploaded)} items "
              f"{time.perf_counter() - start:.1f} s after the last burst" + (f"; NOT sealed: {left}" if left else ""))
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", default="10,50,100")
    parser.add_argument("--operations", type=int, default=10)
    parser.add_argument("--stack", choices=["embedded", "services", "both"], default="both")
    args = parser.parse_args()
    levels = [int(n) for n in args.clients.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="bench-load-"))
    if args.stack in ("embedded", "both"):
        bench_stack("embedded", _base_env(tmp / "embedded"), levels, args.operations, tmp)
    if args.stack in ("services", "both"):
        with services_env(tmp, "bench-load") as env:
            bench_stack("services", env, levels, args.operations, tmp)


@contextmanager
def services_env(tmp: Path, bucket: str) -> Iterator[dict[str, str]]:
    """The settings of a migrated PostgreSQL + SeaweedFS (S3) + Redis stack, removed after."""
    s3 = start_s3(tmp / "seaweedfs")
    pg = create_pg_database()
    try:
        env = dict(_base_env(tmp / "services"), EVIDENCE_DATABASE_URL=pg, EVIDENCE_STORAGE_BACKEND="s3",
                   EVIDENCE_S3_ENDPOINT=s3.endpoint, EVIDENCE_S3_ACCESS_KEY=s3.access_key,
                   EVIDENCE_S3_SECRET_KEY=s3.secret_key, EVIDENCE_S3_SECURE="false",
                   EVIDENCE_S3_BUCKET=bucket, EVIDENCE_BROKER_URL=redis_db_url())
        from archive import db

        db.upgrade(settings_from_env(env))
        yield env
    finally:
        s3.stop()
        drop_pg_database(pg)


if __name__ == "__main__":
    main()
