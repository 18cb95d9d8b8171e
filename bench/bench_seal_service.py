"""Seal 1,000 manifests through the service's Sealer and print seals per second.

Sealing is pure computation in one process (asn1crypto, the signatures), so the service seals
in parallel with worker processes; the last line seals the same manifests with the built-in
TSA in ``--processes`` processes at once (default: one per core), each with a Sealer of its
own over the same keys, as worker processes do. The baseline is the one-process rate.

Three time-stamp sources: the built-in TSA in-process (embedded default), an HTTP TSA on
127.0.0.1 (our own API's ``POST /tsa`` under uvicorn, so the round trip is real HTTP),
and no time-stamp at all (CAdES-B-B, the bare signing cost). Each seal is CAdES (ECDSA
P-256) plus SM2/SM3, over a manifest-sized JSON document.

    .venv/bin/python bench/bench_seal_service.py [--count 1000] [--processes N]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from archive.seals.manifests import MANIFEST_FORMAT, canonical_bytes  # noqa: E402
from archive.seals.sealer import Sealer  # noqa: E402
from archive.settings import Settings  # noqa: E402


def manifests(count: int) -> list[bytes]:
    return [
        canonical_bytes({
            "format": MANIFEST_FORMAT, "item_id": f"item-{i:06d}", "case_number": "BENCH-1",
            "sha256": f"{i:064x}", "sm3": f"{i * 7:064x}", "size": 1_000_000 + i, "media_type": "video/mp4",
            "received_time": "2024-01-01T00:00:00.000000Z", "media_facts": {"duration_seconds": 600.0 + i},
        })
        for i in range(count)
    ]


def measure(sealer: Sealer, docs: list[bytes], *, timestamp: bool) -> float:
    sealer.seal(docs[0], timestamp=timestamp)  # warm up: key loading, first TSA connection
    start = time.perf_counter()
    for doc in docs:
        sealer.seal(doc, timestamp=timestamp)
    return len(docs) / (time.perf_counter() - start)


_sealer: Sealer | None = None


def _start_sealer(data_dir: str) -> None:
    global _sealer
    _sealer = Sealer(Settings(data_dir=Path(data_dir)))


def _seal_share(docs: list[bytes]) -> tuple[float, float]:
    """In a worker process: seal ``docs`` (after one warm-up seal); its start and end on the
    machine's monotonic clock, which all processes share."""
    assert _sealer is not None
    _sealer.seal(docs[0], timestamp=True)
    start = time.perf_counter()
    for doc in docs:
        _sealer.seal(doc, timestamp=True)
    return start, time.perf_counter()


def measure_processes(data_dir: Path, docs: list[bytes], processes: int) -> float:
    """Seals/s of ``processes`` processes sealing ``docs`` between them, from the first one's
    start to the last one's end."""
    shares = [docs[i::processes] for i in range(processes)]
    with multiprocessing.get_context("spawn").Pool(processes, _start_sealer, (str(data_dir),)) as pool:
        spans = pool.map(_seal_share, shares)
    return len(docs) / (max(end for _, end in spans) - min(start for start, _ in spans))


def serve_api(settings: Settings) -> tuple[str, object]:
    import uvicorn

    from archive import db
    from api.app import create_app
    from tests.servers import free_port, wait_port

    db.upgrade(settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    threading.Thread(target=server.run, daemon=True).start()
    if not wait_port(port, 20):
        raise RuntimeError("API did not start")
    return f"http://127.0.0.1:{port}/tsa", server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    docs = manifests(args.count)
    with tempfile.TemporaryDirectory() as tmp:
        local = Settings(data_dir=Path(tmp))
        builtin = Sealer(local)
        url, server = serve_api(local)
        http = Sealer(Settings(data_dir=Path(tmp), tsa_url=url))
        results = {
            "built-in TSA (in-process)": measure(builtin, docs, timestamp=True),
            "HTTP TSA on 127.0.0.1 (POST /tsa)": measure(http, docs, timestamp=True),
            "no time-stamp (CAdES-B-B)": measure(builtin, docs, timestamp=False),
        }
        server.should_exit = True
        bundle = builtin.seal(docs[0])
        start = time.perf_counter()
        for doc in docs[:100]:
            builtin.verify_seal(docs[0], bundle)
        verify_rate = 100 / (time.perf_counter() - start)
        parallel = measure_processes(Path(tmp), docs, args.processes)
    print(f"sealing {args.count} manifests (CAdES ECDSA P-256 + SM2/SM3 each):")
    for name, rate in results.items():
        print(f"  {name:36s} {rate:8.1f} seals/s  ({1000 / rate:6.2f} ms/seal)")
    print(f"  {'verify CAdES-B-T + SM2 (100 runs)':36s} {verify_rate:8.1f} verifications/s")
    one = results["built-in TSA (in-process)"]
    label = f"built-in TSA, {args.processes} processes"
    print(f"  {label:36s} {parallel:8.1f} seals/s  ({parallel / one:.2f}x one process; target 100 seals/s)")
    results[label] = parallel
    print(json.dumps({k: round(v, 1) for k, v in results.items()}))


if __name__ == "__main__":
    main()
