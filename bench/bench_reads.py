"""Reads at 1, 10 and 100 concurrent clients: a case, an item's record, a case's evidence list
and an item's content (each content read a custody entry), on PostgreSQL + S3 + Redis with
``evidence serve`` as users run it (its default API processes and its worker), or on the
embedded default.

For each read and client count it prints requests/s, p50 and p99 and any answer that is not
200. The baseline, measured in the same run, is 50 threads reading the case row straight from
the database (``db/s``); ``ratio`` is the API's case-read rate at 50 clients over it (target
>= 0.1 on PostgreSQL with 2 cores; p99 under 250 ms at 100 clients for every metadata read).
After the 100-client burst it times single case reads to show whether the API stalls.
The item read is a body-camera clip's record: its metadata. A document's record also carries
the text extracted from it, and showing that text is a read of the evidence, a custody entry
like a content read (README, *Custody*): it is measured beside it as ``item+text`` and, as
content reads are, held to no metadata target.
``CPU ms/req`` is what each request took of the machine's cores, as API + database + stores
(Redis, SeaweedFS), read from /proc around each level; at 100 clients it also prints the
average wait those requests imply on this machine's cores however they are scheduled.

The clients are wrk's connections where wrk is installed (``apt install wrk``; scripts/setup.sh
installs it): a C load generator, so the clients' own work does not take the server's two
cores from it, as clients on other machines would not. ``--client threads`` uses Python
threads (httpx), a fixed number of requests per level, as before.

    .venv/bin/python bench/bench_reads.py [--stack services|embedded] [--items 200] [--client wrk|threads]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_load import _db_reads, _serve, _user, services_env  # noqa: E402
from bench.proc import parent_and_cpu  # noqa: E402
from bench.together import run_together  # noqa: E402
from tests import load  # noqa: E402
from tests.conftest import _base_env  # noqa: E402

P99_TARGET_MS = 250.0
RATIO_TARGET = 0.1
WRK_SECONDS = 8.0
READS_OF_EVIDENCE = ("item+text", "content")
"""Reads that show the evidence itself, each a custody entry: no metadata target."""


def _prepare(url: str, token: str, items: int) -> tuple[str, str, str]:
    """A case holding ``items`` items: small documents and one short body-camera clip; (case
    id, a document's id, the clip's id). The caller waits for them to be sealed."""
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120) as c:
        case = c.post("/api/v1/cases", json={"case_number": f"READS-{uuid.uuid4().hex[:10]}", "title": "reads"})
        case.raise_for_status()
        case_id = case.json()["id"]
        ids = []
        for i in range(items - 1):
            body = f"statement {i} {uuid.uuid4()}\n".encode() * 200
            r = c.post(f"/api/v1/cases/{case_id}/evidence", content=body,
                       params={"kind": "document", "filename": f"statement-{i}.txt",
                               "sha256": hashlib.sha256(body).hexdigest()})
            r.raise_for_status()
            ids.append(r.json()["id"])
        with tempfile.TemporaryDirectory(prefix="bench-clip-") as folder:
            clip = Path(folder) / "clip.mp4"
            subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
                            "-f", "lavfi", "-i", "sine", "-t", "5", "-pix_fmt", "yuv420p", str(clip)], check=True)
            r = c.post(f"/api/v1/cases/{case_id}/evidence", content=clip.read_bytes(),
                       params={"kind": "bodycam_video", "filename": "clip.mp4", "device_id": "CAM-1",
                               "recorded_start": "2026-03-01T10:00:00+08:00"})
            r.raise_for_status()
    return case_id, ids[0], r.json()["id"]


def _burst(url: str, token: str, path: str, clients: int, requests: int) -> tuple[float, list[float], Counter]:
    """``clients`` threads, each with its own connection, share ``requests`` GETs of ``path``."""
    per = max(1, requests // clients)
    times: list[float] = []
    statuses: Counter = Counter()
    examples: dict[int, str] = {}
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)

    def client() -> None:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as c:
            start.wait()
            for _ in range(per):
                t0 = time.perf_counter()
                try:
                    r = c.get(path)
                    status, body = r.status_code, r.text[:200] if r.status_code != 200 else ""
                except httpx.HTTPError as exc:
                    status, body = 0, repr(exc)
                if body:
                    examples.setdefault(status, body)
                elapsed = time.perf_counter() - t0
                with lock:
                    times.append(elapsed)
                    statuses[status] += 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    elapsed = run_together(threads, start)
    for status, body in examples.items():
        print(f"        {status}: {body}")
    return len(times) / elapsed, sorted(times), statuses


WRK = shutil.which("wrk")


def _wrk(url: str, token: str, path: str, clients: int, seconds: float) -> tuple[float, float, float, Counter]:
    """``clients`` keep-alive connections of wrk (a C load generator: the clients' own work
    does not take the server's two cores from it) reading ``path`` for ``seconds``:
    requests/s, p50 and p99 in ms, and the answers that were not 2xx or never came."""
    out = subprocess.run([WRK, f"-t{min(2, clients)}", f"-c{clients}", f"-d{seconds:g}s", "--latency", "--timeout", "10s",
                          "-H", f"Authorization: Bearer {token}", url + path],
                         capture_output=True, text=True, check=True).stdout
    def number(pattern: str) -> float:
        found = re.search(pattern, out)
        if not found:
            return 0.0
        value, unit = float(found.group(1)), found.group(2) if found.lastindex and found.lastindex > 1 else ""
        return value * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}.get(unit, 1.0)
    statuses: Counter = Counter()
    if (bad := number(r"Non-2xx or 3xx responses: (\d+)()")):
        statuses["non-2xx"] = int(bad)
    for kind in ("connect", "read", "write", "timeout"):
        if (n := number(rf"{kind} (\d+)()")):
            statuses[kind] = int(n)
    return (number(r"Requests/sec:\s+([\d.]+)()"), number(r"50%\s+([\d.]+)(us|ms|s|m)\b"),
            number(r"99%\s+([\d.]+)(us|ms|s|m)\b"), statuses)


def _cpu_seconds(serve_pid: int) -> dict[str, float]:
    """CPU seconds (user + system) used so far by this machine's processes, by part: ``api``
    (``evidence serve`` and its server processes, not its Celery worker and beat), ``database``
    (PostgreSQL's processes) and ``stores`` (Redis, SeaweedFS). Read from /proc (Linux)."""
    parents: dict[int, int] = {}
    used: dict[int, tuple[str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent, seconds = parent_and_cpu(int(entry.name))
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone meanwhile
        parents[int(entry.name)] = parent
        used[int(entry.name)] = (command, seconds)
    parts = {"api": 0.0, "database": 0.0, "stores": 0.0}
    for pid, (command, seconds) in used.items():
        ancestor = pid
        while ancestor not in (serve_pid, 0, 1) and ancestor in parents:
            ancestor = parents[ancestor]
        if ancestor == serve_pid and "celery" not in command:
            parts["api"] += seconds
        elif command.startswith("postgres"):
            parts["database"] += seconds
        elif "redis-server" in command or "weed" in command:
            parts["stores"] += seconds
    return parts


def _drain(url: str, token: str, path: str, *, quick: float = 0.05, limit: float = 60.0) -> float:
    """Seconds until single reads of ``path`` answer within ``quick`` again after a burst (the
    server works through what the burst's clients left queued, answered or not: a client that
    closes after a complete request is still answered), so the next level starts on an idle
    server; printed when 0.5 s or more."""
    began = time.perf_counter()
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=limit) as c:
        while time.perf_counter() - began < limit:
            t0 = time.perf_counter()
            c.get(path)
            if time.perf_counter() - t0 < quick:
                break
    return time.perf_counter() - began


def bench(name: str, env: dict[str, str], items: int, requests: int, tmp: Path, *, client: str = "threads") -> None:
    process, url = _serve(env, tmp / f"{name}-serve.log")
    try:
        token = _user(env, "bench-reader", "Bench unit", "officer")
        admin = _user(env, "bench-admin", "Bench HQ", "admin")
        case_id, document_id, clip_id = _prepare(url, token, items)
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120) as c:
            all_items = [i["id"] for i in c.get(f"/api/v1/cases/{case_id}/evidence").json()]
        left = load.wait_sealed(url, admin, all_items, timeout=900)
        assert not left, f"not sealed: {left}"
        reads = {
            "case": f"/api/v1/cases/{case_id}",
            "item": f"/api/v1/evidence/{clip_id}",
            "item+text": f"/api/v1/evidence/{document_id}",
            f"list ({items})": f"/api/v1/cases/{case_id}/evidence",
            "content": f"/api/v1/evidence/{document_id}/content",
        }
        how = (f"wrk, {WRK_SECONDS:g} s per level" if client == "wrk"
               else f"Python threads (httpx), {requests} requests per level")
        print(f"\n== {name}: {os.cpu_count()} cores, {items} items in the case; clients: {how}")
        print(f"{'read':<12} {'clients':>7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms/req':>22}  other answers")
        case_rate_50 = 0.0
        for label, path in reads.items():
            for clients in (1, 10, 50, 100):
                if clients == 50 and label != "case":
                    continue
                before, began = _cpu_seconds(process.pid), time.perf_counter()
                if client == "wrk":
                    rate, p50, p99, other = _wrk(url, token, path, clients, WRK_SECONDS)
                else:
                    rate, times, statuses = _burst(url, token, path, clients, requests)
                    p50 = statistics.median(times) * 1000
                    p99 = times[min(len(times) - 1, int(len(times) * 0.99))] * 1000
                    other = {s: n for s, n in statuses.items() if s != 200}
                served = rate * (time.perf_counter() - began)
                cpu = {part: (seconds - before[part]) * 1000 / max(served, 1)
                       for part, seconds in _cpu_seconds(process.pid).items()}
                spent = f"{cpu['api']:.1f}+{cpu['database']:.1f}+{cpu['stores']:.1f}"
                flag = "  (p99 over target)" if clients == 100 and label not in READS_OF_EVIDENCE and p99 > P99_TARGET_MS else ""
                if clients == 100:
                    # However the work is shared out, 100 clients wait on average for the CPU their
                    # 100 requests take, spread over the cores (Little's law).
                    flag += f"  (100 x {sum(cpu.values()):.1f} ms / {os.cpu_count()} cores = " \
                            f"{100 * sum(cpu.values()) / (os.cpu_count() or 1):.0f} ms on average at the least)"
                drained = _drain(url, token, reads["case"]) if clients == 100 else None
                after = f"  drained in {drained:.1f} s" if drained is not None and drained >= 0.5 else ""
                print(f"{label:<12} {clients:>7} {rate:>8.1f} {p50:>8.1f} {p99:>8.1f} {spent:>22}  {other or ''}{flag}{after}",
                      flush=True)
                if label == "case" and clients == 50:
                    case_rate_50 = rate
        db_rate = _db_reads(env, case_id, 50, max(1, requests // 50) * 10)
        print(f"baseline: 50 threads read the case row from the database at {db_rate:,.0f}/s; "
              f"API case reads at 50 clients {case_rate_50:,.1f}/s: ratio {case_rate_50 / db_rate:.3f} "
              f"(target {RATIO_TARGET})")
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120) as c:
            after = []
            for _ in range(5):
                t0 = time.perf_counter()
                c.get(reads["case"]).raise_for_status()
                after.append((time.perf_counter() - t0) * 1000)
        print(f"after the bursts: single case reads took {', '.join(f'{a:.0f}' for a in after)} ms (no stall if small)")
    finally:
        process.terminate()
        try:
            process.wait(30)
        except Exception:  # noqa: BLE001 - a bench cleans up whatever happened
            process.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stack", choices=["embedded", "services"], default="services")
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--requests", type=int, default=400, help="requests per read and client count (threads)")
    parser.add_argument("--client", choices=["wrk", "threads"], default="wrk" if WRK else "threads",
                        help="load generator: wrk (default where installed: apt install wrk) or Python threads, "
                             "whose own work shares the server's cores")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-reads-"))
    if args.stack == "embedded":
        bench("embedded", _base_env(tmp / "embedded"), args.items, args.requests, tmp, client=args.client)
        return
    with services_env(tmp, "bench-reads") as env:
        bench("services", env, args.items, args.requests, tmp, client=args.client)


if __name__ == "__main__":
    main()
