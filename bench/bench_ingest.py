"""Ingest throughput through the API (plain POST and tus) against a baseline, and the API
process's peak memory, on the embedded default's local store or (``--store s3``) an S3 server.

Run: .venv/bin/python bench/bench_ingest.py [--size 1G] [--small 256M] [--repeat 3] [--dir DIR] [--buffered]
     .venv/bin/python bench/bench_ingest.py --store s3 [--size 1G] ...

With ``--store s3`` the bench starts SeaweedFS (as the tests do), the API stores originals in
it, and the baseline is ``Minio.fput_object`` of the same file into the same bucket (minio's
own parallel multipart upload, nothing hashed): the S3 server's speed on this machine.

For each of two sizes (``--small``, then ``--size``) a file is generated and:

* baseline: read it, hash it with hashlib SHA-256 and write a copy (fsynced, as the
  store does) — the work any ingest must do on this machine;
* plain: ``curl -T FILE -X POST /api/v1/cases/{id}/evidence?...&sha256=...`` (streamed);
* tus: ``POST /api/v1/uploads`` then one streamed ``PATCH`` of the whole file with curl
  (what tus-js-client does with its default chunk size);
* each is repeated, interleaved in an order that rotates every round; the best run of
  each is reported, and the median over rounds of each round's ratio to that round's
  baseline (the virtual disk's write speed drifts by 2x from minute to minute here);
* the CPU each one used (the API process, curl and this process) is printed per GiB:
  on a two-core machine the client, the server and the kernel's write-back share the
  same cores, which the baseline's single process does not have to do;
* the API runs as its own uvicorn process (started fresh for each size, with a user
  made by ``evidence user add``), so its peak RSS is VmHWM in /proc/PID/status.

Targets: each ingest at least 0.8 of the baseline's MiB/s; peak RSS under 200 MB and
flat as the size grows. The item's sha256 is checked against the baseline's.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.proc import parent_and_cpu  # noqa: E402
from tests.servers import free_port, wait_port  # noqa: E402

MiB = 1024 * 1024
BLOCK = 16 * MiB


def parse_size(text: str) -> int:
    """``256M``, ``1G``, ``4G`` or plain bytes."""
    units = {"K": 1024, "M": MiB, "G": 1024 * MiB}
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def generate(path: Path, size: int) -> None:
    """A file of ``size`` bytes (random blocks; content does not change hashing speed)."""
    block = os.urandom(BLOCK)
    with open(path, "wb") as f:
        left = size
        while left > 0:
            f.write(block[: min(left, BLOCK)])
            left -= BLOCK
            block = block[1:] + block[:1]  # no two blocks alike


def baseline(path: Path, copy: Path) -> tuple[float, str]:
    """Seconds to read, SHA-256 and write a fsynced copy; and the digest."""
    began = time.perf_counter()
    digest = hashlib.sha256()
    with open(path, "rb") as src, open(copy, "wb") as dst:
        for block in iter(lambda: src.read(MiB), b""):
            digest.update(block)
            dst.write(block)
        dst.flush()
        os.fsync(dst.fileno())
    elapsed = time.perf_counter() - began
    copy.unlink()
    return elapsed, digest.hexdigest()


class Api:
    """uvicorn serving the API on the embedded default in ``data``."""

    def __init__(self, data: Path, *, direct_io: bool = True, extra_env: dict[str, str] | None = None):
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")}
        self.env.update(EVIDENCE_DATA_DIR=str(data), PYTHONPATH=str(ROOT), EVIDENCE_LOG_LEVEL="WARNING",
                        EVIDENCE_STORAGE_DIRECT_IO=str(direct_io).lower(), **(extra_env or {}))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        subprocess.run([sys.executable, "-m", "api.cli", "db", "upgrade"], env=self.env, cwd=ROOT,
                       capture_output=True, check=True)
        token = subprocess.run(
            [sys.executable, "-m", "api.cli", "user", "add", "--name", f"bench-{uuid.uuid4().hex[:6]}",
             "--unit", "bench", "--role", "officer"],
            env=self.env, cwd=ROOT, capture_output=True, text=True, check=True,
        ).stdout.strip().splitlines()[-1]
        self.headers = {"Authorization": f"Bearer {token}"}
        self.log = open(data / "api.log", "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory", "--host", "127.0.0.1",
             "--port", str(self.port), "--log-level", "warning", "--no-access-log"],
            env=self.env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
        )
        if not wait_port(self.port, 60):
            raise SystemExit("the API did not start; see " + str(data / "api.log"))

    def cpu_seconds(self) -> float:
        """User + system CPU the API process has used so far (all its threads)."""
        return parent_and_cpu(self.process.pid)[1]

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)
        self.log.close()


def curl(*args: str) -> dict[str, str]:
    """Run curl; return the response headers (lower-case names)."""
    out = subprocess.run(
        ["curl", "-sS", "--fail-with-body", "-D", "-", "-o", "/dev/null", *args],
        capture_output=True, text=True,
    )
    if out.returncode != 0:
        raise SystemExit(f"curl failed: {out.stderr} {out.stdout}")
    headers = {}
    for line in out.stdout.splitlines():
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return headers


def plain_upload(api: Api, case_id: str, path: Path, sha256: str) -> tuple[float, str]:
    url = f"{api.url}/api/v1/cases/{case_id}/evidence?kind=other&filename={path.name}&sha256={sha256}"
    began = time.perf_counter()
    out = subprocess.run(
        ["curl", "-sS", "--fail-with-body", "-X", "POST", "-T", str(path), "-H", "Content-Type: application/octet-stream",
         "-H", f"Authorization: {api.headers['Authorization']}", url],
        capture_output=True, text=True,
    )
    elapsed = time.perf_counter() - began
    if out.returncode != 0:
        raise SystemExit(f"plain upload failed: {out.stderr} {out.stdout}")
    return elapsed, json.loads(out.stdout)["id"]


def tus_upload(api: Api, case_id: str, path: Path, sha256: str) -> tuple[float, str]:
    size = path.stat().st_size
    meta = ",".join(
        f"{k} {base64.b64encode(v.encode()).decode()}"
        for k, v in {"case_id": case_id, "kind": "other", "filename": path.name, "sha256": sha256}.items()
    )
    auth = f"Authorization: {api.headers['Authorization']}"
    began = time.perf_counter()
    created = curl("-X", "POST", "-H", "Tus-Resumable: 1.0.0", "-H", f"Upload-Length: {size}",
                   "-H", f"Upload-Metadata: {meta}", "-H", auth, f"{api.url}/api/v1/uploads")
    done = curl("-X", "PATCH", "-T", str(path), "-H", "Tus-Resumable: 1.0.0", "-H", "Upload-Offset: 0",
                "-H", "Content-Type: application/offset+octet-stream", "-H", auth, api.url + created["location"])
    elapsed = time.perf_counter() - began
    return elapsed, done["evidence-item-id"]


class S3Baseline:
    """SeaweedFS for the API's store, and ``fput_object`` into its bucket as the baseline."""

    def __init__(self, work: Path):
        from minio import Minio

        from tests.servers import start_s3

        self.server = start_s3(work / "seaweedfs")
        self.bucket = f"bench-{uuid.uuid4().hex[:8]}"
        self.client = Minio(self.server.endpoint, self.server.access_key, self.server.secret_key, secure=False)
        self.client.make_bucket(self.bucket, object_lock=True)
        self.env = {"EVIDENCE_STORAGE_BACKEND": "s3", "EVIDENCE_S3_ENDPOINT": self.server.endpoint,
                    "EVIDENCE_S3_ACCESS_KEY": self.server.access_key, "EVIDENCE_S3_SECRET_KEY": self.server.secret_key,
                    "EVIDENCE_S3_SECURE": "false", "EVIDENCE_S3_BUCKET": self.bucket}

    def put(self, path: Path) -> float:
        began = time.perf_counter()
        self.client.fput_object(self.bucket, f"baseline/{uuid.uuid4()}", str(path))
        return time.perf_counter() - began

    def stop(self) -> None:
        self.server.stop()


def run(size: int, work: Path, repeat: int, direct_io: bool, s3: S3Baseline | None = None) -> dict[str, float]:
    data = work / f"data-{size}"
    data.mkdir()
    source = work / f"source-{size}.bin"
    generate(source, size)
    # Warm the page cache the same way for every contender.
    _, sha256 = baseline(source, work / "copy.bin")
    api = Api(data, direct_io=direct_io, extra_env=s3.env if s3 else None)
    times: dict[str, list[float]] = {"baseline": [], "plain": [], "tus": []}
    cpu: dict[str, list[float]] = {"baseline": [], "plain": [], "tus": []}
    try:
        with httpx.Client(base_url=api.url, headers=api.headers, timeout=600) as c:
            case = c.post("/api/v1/cases", json={"case_number": f"BENCH-{uuid.uuid4().hex[:8]}", "title": "bench"}).json()
            contenders = {
                "baseline": (lambda: (s3.put(source), None)) if s3 else (lambda: (baseline(source, work / "copy.bin")[0], None)),
                "plain": lambda: plain_upload(api, case["id"], source, sha256),
                "tus": lambda: tus_upload(api, case["id"], source, sha256),
            }
            # Interleaved and repeated, best of each: the machine (and its virtual disk,
            # whose write speed drifts from minute to minute) is shared, so single runs
            # are noisy. The order rotates each round so no contender always runs last.
            names = list(contenders)
            for round_ in range(repeat):
                for name in names[round_ % len(names):] + names[: round_ % len(names)]:
                    # Each contender starts with no dirty pages left by the one before:
                    # every one of them fsyncs its copy and pays only for its own writes.
                    os.sync()
                    api_before, own_before = api.cpu_seconds(), os.times()
                    elapsed, item_id = contenders[name]()
                    own_after = os.times()
                    times[name].append(elapsed)
                    # CPU of everyone involved: the API, curl (our children) and this process.
                    cpu[name].append(
                        api.cpu_seconds() - api_before
                        + sum(own_after[i] - own_before[i] for i in range(4))
                    )
                    if item_id is not None:
                        item = c.get(f"/api/v1/evidence/{item_id}").json()
                        assert item["sha256"] == sha256 and item["size"] == size, item
        rss = api.peak_rss_mb()
    finally:
        api.stop()
        shutil.rmtree(data, ignore_errors=True)
        source.unlink()
    mib = size / MiB
    # Also each round's ratio against the baseline of the same round, whose median is
    # steadier than best-vs-best while the disk's speed drifts.
    paired = {k: statistics.median(b / t for b, t in zip(times["baseline"], times[k])) for k in ("plain", "tus")}
    gib = size / (1024 * MiB)
    return {"size_mib": mib, "rss": rss, **{k: mib / min(v) for k, v in times.items()},
            **{f"{k}_paired": v for k, v in paired.items()},
            **{f"{k}_cpu": statistics.median(v) / gib for k, v in cpu.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="1G", help="file size for the main run (e.g. 1G, 4G)")
    parser.add_argument("--small", default="256M", help="smaller size, to show memory stays flat")
    parser.add_argument("--repeat", type=int, default=3, help="runs per size; the best of each is shown")
    parser.add_argument("--dir", default=None, help="work directory (needs about (2 x repeat + 1) x size free)")
    parser.add_argument("--store", choices=["local", "s3"], default="local",
                        help="where the API keeps originals; s3: SeaweedFS, against fput_object into it")
    parser.add_argument("--buffered", action="store_true",
                        help="the API's local store writes through the page cache (EVIDENCE_STORAGE_DIRECT_IO=false)")
    args = parser.parse_args()
    if not shutil.which("curl"):
        raise SystemExit("curl is needed")
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="bench-ingest-") as tmp:
        s3 = S3Baseline(Path(tmp)) if args.store == "s3" else None
        try:
            rows = [run(parse_size(s), Path(tmp), args.repeat, not args.buffered, s3) for s in (args.small, args.size)]
        finally:
            if s3:
                s3.stop()
    if s3:
        print("S3 store (SeaweedFS); baseline: Minio.fput_object of the same file into the same bucket")
    else:
        print(f"local store writes: {'through the page cache' if args.buffered else 'direct I/O'}")
    print(f"{'size':>9} {'baseline':>12} {'plain POST':>18} {'tus PATCH':>18} {'API peak RSS':>13}"
          f" {'paired median plain/tus':>25}")
    for r in rows:
        print(
            f"{r['size_mib']:>6.0f}MiB {r['baseline']:>7.0f} MiB/s"
            f" {r['plain']:>7.0f} MiB/s ({r['plain'] / r['baseline']:.2f}x)"
            f" {r['tus']:>7.0f} MiB/s ({r['tus'] / r['baseline']:.2f}x)"
            f" {r['rss']:>9.0f} MB"
            f" {r['plain_paired']:>14.2f}x / {r['tus_paired']:.2f}x"
        )
    print("CPU seconds per GiB (median; API + curl, or the baseline's own): "
          + "; ".join(f"{r['size_mib']:.0f}MiB baseline {r['baseline_cpu']:.2f} plain {r['plain_cpu']:.2f} "
                      f"tus {r['tus_cpu']:.2f}" for r in rows)
          + f" -- this machine has {os.cpu_count()} cores")
    worst = min(min(r["plain"], r["tus"]) / r["baseline"] for r in rows)
    worst_paired = min(min(r["plain_paired"], r["tus_paired"]) for r in rows)
    peak = max(r["rss"] for r in rows)
    print(f"targets: ingest >= 0.8 of baseline -> worst {worst:.2f} best-vs-best, {worst_paired:.2f} paired median "
          f"({'met' if min(worst, worst_paired) >= 0.8 else 'NOT met'}); "
          f"peak RSS < 200 MB -> {peak:.0f} MB ({'met' if peak < 200 else 'NOT met'})")


if __name__ == "__main__":
    main()
