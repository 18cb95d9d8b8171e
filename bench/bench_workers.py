"""Items processed per minute by one and by two worker hosts (issue 14, benchmark 5).

The API runs alone (``evidence serve --no-workers``) on PostgreSQL + SeaweedFS (S3) + Redis.
Each worker host is a Celery worker process of its own, with a data directory of its own and
the seal keys an administrator deployed to it, pinned to a core of its own (host 1 on core 0,
host 2 on core 1), as on two machines. For each round a case is filled with body-camera clips
while no worker runs (the queue holds them), then the hosts start and the clock runs from
when every host is ready until every item is sealed: probed, continuity checked, derived
files made, sealed with a time-stamp and an SM2 seal.

The baseline is the same run's one-host rate; ``ratio`` is the two-host rate over it (target
>= 1.7 with two hosts on separate cores). On a 2-core machine the API, PostgreSQL, Redis and
the S3 server share those two cores with the hosts, so the ratio is a lower bound.

    .venv/bin/python bench/bench_workers.py [--items 24] [--seconds 6] [--concurrency 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402

from archive.db import Database  # noqa: E402
from archive.models import EvidenceItem  # noqa: E402
from bench.bench_load import _serve, _user, services_env  # noqa: E402
from tests.conftest import WorkerHost, settings_from_env  # noqa: E402

RATIO_TARGET = 1.7


def _clip(path: Path, seconds: int) -> Path:
    """A body-camera-like clip; its name goes into its metadata, so every clip is distinct."""
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
         f"testsrc=size=640x360:rate=25:duration={seconds}", "-f", "lavfi", "-i",
         f"sine=frequency=440:duration={seconds}", "-c:v", "libx264", "-preset", "ultrafast",
         "-c:a", "aac", "-metadata", f"title={path.name}", str(path)],
        check=True,
    )
    return path


def _fill(url: str, token: str, clips: list[Path]) -> list[str]:
    """A new case holding ``clips``; their item ids."""
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=300) as c:
        case = c.post("/api/v1/cases", json={"case_number": f"HOSTS-{uuid.uuid4().hex[:10]}", "title": "工作主机"})
        case.raise_for_status()
        ids = []
        for i, clip in enumerate(clips):
            r = c.post(f"/api/v1/cases/{case.json()['id']}/evidence", content=clip.read_bytes(),
                       params={"kind": "bodycam_video", "filename": clip.name, "device_id": f"CAM-B{i}"})
            r.raise_for_status()
            ids.append(r.json()["id"])
    return ids


def _round(hosts: list[WorkerHost], database: Database, ids: list[str], timeout: float) -> float:
    """Start ``hosts``; seconds from all of them ready until every item of ``ids`` is sealed."""
    for host in hosts:
        host.worker.start()
    try:
        WorkerHost.wait_ready(hosts, timeout=120)
        started = time.perf_counter()
        deadline = time.monotonic() + timeout
        while True:
            with database.read() as s:
                states = s.execute(select(EvidenceItem.seal_status).where(EvidenceItem.id.in_(ids))).scalars().all()
            if all(state == "sealed" for state in states):
                return time.perf_counter() - started
            if time.monotonic() > deadline:
                raise RuntimeError(f"not sealed in {timeout:.0f} s: {sorted(states)}")
            time.sleep(0.1)
    finally:
        for host in hosts:
            host.worker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=24, help="clips per round")
    parser.add_argument("--seconds", type=int, default=6, help="length of each clip")
    parser.add_argument("--concurrency", type=int, default=2, help="Celery threads per worker host")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-workers-"))
    clips = [_clip(tmp / f"bodycam-{n}-{i}.mp4", args.seconds) for n in (1, 2) for i in range(args.items)]
    with services_env(tmp, "bench-workers") as env:
        made = subprocess.run([sys.executable, "-m", "api.cli", "keys", "init"], env=env, cwd=ROOT,
                              capture_output=True, text=True)
        if made.returncode != 0:
            raise RuntimeError(made.stderr)
        keys = settings_from_env(env).resolved_keys_dir
        host_env = {k: v for k, v in env.items() if k not in ("EVIDENCE_DATA_DIR", "EVIDENCE_KEYS_DIR")}
        process, url = _serve(env, tmp / "serve.log", "--no-workers", "--processes", "1")
        database = Database(settings_from_env(env))
        try:
            token = _user(env, "bench-officer", "Bench unit", "officer")
            rates = {}
            print(f"\n== {os.cpu_count()} cores, {args.items} clips of {args.seconds} s per round, "
                  f"{args.concurrency} Celery threads per host")
            print(f"{'hosts':>5} {'seconds':>8} {'items/min':>10}  process_item tasks each host finished")
            for n in (1, 2):
                ids = _fill(url, token, clips[(n - 1) * args.items:n * args.items])
                hosts = [WorkerHost(f"round{n}-host{k}", host_env, keys, tmp, core=k - 1,
                                    concurrency=args.concurrency)
                         for k in range(1, n + 1)]
                seconds = _round(hosts, database, ids, timeout=60 + 30 * args.items)
                rates[n] = len(ids) / seconds * 60
                spread = ", ".join(str(h.finished()) for h in hosts)
                print(f"{n:>5} {seconds:>8.1f} {rates[n]:>10.1f}  {spread}", flush=True)
            print(f"ratio: two hosts over one {rates[2] / rates[1]:.2f} (target {RATIO_TARGET})")
        finally:
            database.dispose()
            process.terminate()
            process.wait(30)


if __name__ == "__main__":
    main()
