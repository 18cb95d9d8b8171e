"""Seal throughput with the development PKI: no time-stamp, in-process TSA, HTTP TSA.

    .venv/bin/python bench/bench_seal.py [--count 1000]

Creates a throw-away dev PKI in a temp directory, seals ``count`` small
manifests (detached CAdES) in each mode and prints seals per second and the
ratio to the no-time-stamp baseline.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

from signing import cades, devpki, keys, tsa


def _run(label, count, signer, timestamper):
    manifests = [f"sha256  {i:064x}  evidence/item-{i}.bin\n".encode() * 4 for i in range(count)]
    start = time.perf_counter()
    for m in manifests:
        cades.seal_detached(data=m, signer=signer, timestamper=timestamper)
    elapsed = time.perf_counter() - start
    return label, count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        pki = devpki.create_dev_pki(Path(tmp))
        signer = keys.signer_from_files(key_path=pki.seal_key, cert_path=pki.seal_cert, chain_paths=[pki.root_cert])
        authority = tsa.TimeStampAuthority.from_files(cert_path=pki.tsa_cert, key_path=pki.tsa_key)
        server = tsa.make_http_server(authority)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            host, port = server.server_address[:2]
            results = [
                _run("no time-stamp (B-B)", args.count, signer, None),
                _run("in-process TSA (B-T)", args.count, signer, tsa.local_timestamper(authority)),
                _run("HTTP TSA on 127.0.0.1 (B-T)", args.count, signer,
                     tsa.http_timestamper(f"http://{host}:{port}/", timeout=10)),
            ]
        finally:
            server.shutdown()
            server.server_close()
    base = results[0][1]
    print(f"{'mode':<30} {'seals/s':>10} {'vs B-B':>8}")
    for label, rate in results:
        print(f"{label:<30} {rate:>10.1f} {rate / base:>8.2f}")


if __name__ == "__main__":
    main()
