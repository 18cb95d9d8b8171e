"""Seal 1,000 manifests through the service's Sealer and print seals per second.

Three time-stamp sources: the built-in TSA in-process (embedded default), an HTTP TSA on
127.0.0.1 (our own API's ``POST /tsa`` under uvicorn, so the round trip is real HTTP),
and no time-stamp at all (CAdES-B-B, the bare signing cost). Each seal is CAdES (ECDSA
P-256) plus SM2/SM3, over a manifest-sized JSON document.

    .venv/bin/python bench/bench_seal_service.py [--count 1000]
"""

from __future__ import annotations

import argparse
import json
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
    print(f"sealing {args.count} manifests (CAdES ECDSA P-256 + SM2/SM3 each):")
    for name, rate in results.items():
        print(f"  {name:36s} {rate:8.1f} seals/s  ({1000 / rate:6.2f} ms/seal)")
    print(f"  {'verify CAdES-B-T + SM2 (100 runs)':36s} {verify_rate:8.1f} verifications/s")
    print(json.dumps({k: round(v, 1) for k, v in results.items()}))


if __name__ == "__main__":
    main()
