"""``evidence verify-case`` of a case of N small sealed items against a baseline measured in
the same run: openssl checking the same items' seals one by one, a process per seal
(``openssl cms -verify`` of each CAdES seal over its manifest, ``openssl pkeyutl -verify``
of each SM2 seal).

verify-case does more than the baseline: it re-hashes every original from the store, checks
each item's custody receipt against a sealed checkpoint, the whole ledger and every
checkpoint, and records a receipt. The same command on a case of no items, timed in the same
run, shows what it costs whatever the case's size (start-up, the ledger, the checkpoints, the
receipt), and so what each item costs against openssl's two processes per item; and importing
the modules the command needs, nothing else done, shows what Python and the stack the design
fixes cost before any work. The service
runs as users run it (``evidence serve`` on the embedded default, its worker sealing the
uploads), and is stopped before anything is timed.

    .venv/bin/python bench/bench_verify_case.py [--items 60]

Target (issue "Fast for many at once"): verify-case no slower than 1.5x the baseline.
"""

from __future__ import annotations

import argparse
import base64
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

from bench.bench_load import _serve, _user  # noqa: E402
from tests.conftest import _base_env  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=60)
    parser.add_argument("--profile", default=None, help="also write a cProfile of verify-case to this file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-verify-") as tmp_name:
        tmp = Path(tmp_name)
        env = dict(_base_env(tmp), EVIDENCE_LOG_LEVEL="WARNING")
        process, url = _serve(env, tmp / "serve.log")
        try:
            officer = _user(env, "bench-officer", "Bench unit", "officer")
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {officer}"}, timeout=60) as c:
                case, empty = (c.post("/api/v1/cases", json={"case_number": f"VERIFY-{uuid.uuid4().hex[:8]}",
                                                             "title": title}).json() for title in ("bench", "empty"))
                ids = [c.post(f"/api/v1/cases/{case['id']}/evidence", content=os.urandom(64 * 1024),
                              params={"kind": "other", "filename": f"doc-{i}.bin"}).json()["id"]
                       for i in range(args.items)]
                deadline = time.monotonic() + 600
                while any(c.get(f"/api/v1/evidence/{i}").json()["seal_status"] != "sealed" for i in ids):
                    if time.monotonic() > deadline:
                        raise SystemExit("items not sealed within 600 s")
                    time.sleep(1)
                roots = tmp / "roots.pem"
                roots.write_bytes(c.get("/api/v1/trust/chain.pem").content)
                files = []
                for n, item_id in enumerate(ids):
                    manifest, cades = tmp / f"{n}.manifest.json", tmp / f"{n}.p7s"
                    manifest.write_bytes(c.get(f"/api/v1/evidence/{item_id}/manifest").content)
                    cades.write_bytes(c.get(f"/api/v1/evidence/{item_id}/seals/cades").content)
                    sm2 = c.get(f"/api/v1/evidence/{item_id}/seals/sm2").json()
                    (tmp / f"{n}.sm2.der").write_bytes(base64.b64decode(sm2["signature"]))
                    (tmp / f"{n}.sm2.pub").write_text(sm2["public_key"])
                    files.append(n)
            # Both are timed on a quiet machine: the service's worker goes on with the uploads'
            # other work (SM3, continuity) after their seals, and took the cores from both.
            process.terminate()
            process.wait(60)

            began = time.perf_counter()
            for n in files:
                cms = subprocess.run(
                    ["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(tmp / f"{n}.p7s"),
                     "-content", str(tmp / f"{n}.manifest.json"), "-CAfile", str(roots), "-purpose", "any",
                     "-out", os.devnull], capture_output=True, text=True)
                sm2 = subprocess.run(
                    ["openssl", "pkeyutl", "-verify", "-rawin", "-digest", "sm3", "-pkeyopt",
                     "distid:1234567812345678", "-pubin", "-inkey", str(tmp / f"{n}.sm2.pub"),
                     "-in", str(tmp / f"{n}.manifest.json"), "-sigfile", str(tmp / f"{n}.sm2.der")],
                    capture_output=True, text=True)
                if cms.returncode or sm2.returncode:
                    raise SystemExit(f"openssl refused item {n}: {cms.stderr} {sm2.stdout} {sm2.stderr}")
            baseline = time.perf_counter() - began

            def verify_case(number: str) -> tuple[subprocess.CompletedProcess[str], float]:
                began = time.perf_counter()
                done = subprocess.run([sys.executable, "-m", "api.cli", "verify-case", number],
                                      env=env, cwd=ROOT, capture_output=True, text=True)
                if done.returncode not in (0, 3):
                    raise SystemExit(f"verify-case failed ({done.returncode}): {done.stdout} {done.stderr}")
                return done, time.perf_counter() - began

            run, service = verify_case(case["case_number"])
            # What the command costs whatever the case's size (start-up, the ledger, the
            # checkpoints, the receipt): the same command on a case with no items, twice.
            fixed = min(verify_case(empty["case_number"])[1] for _ in range(2))
            # What Python and the stack the design fixes (SQLAlchemy, pyHanko, cryptography,
            # pydantic) cost to start, before any work: the modules verify-case loads for a
            # case with items, imported and nothing else done, the best of three.
            floor = min(_timed([sys.executable, "-c", f"import {', '.join(IMPORTED)}"], env) for _ in range(3))
            if args.profile:
                # Items one by one in this thread, so the profile sees inside each check.
                script = ("import cProfile, contextlib, archive.cases.receipts as r\n"
                          "class Inline(contextlib.nullcontext):\n"
                          "    def __init__(self, **_): super().__init__(self)\n"
                          "    map = staticmethod(map)\n"
                          "r.ThreadPoolExecutor = Inline\n"
                          "r.PROCESS_POOL_FROM = 10 ** 9\n"
                          "from api.cli import main\n"
                          f"cProfile.run('main([\"verify-case\", \"{case['case_number']}\"], standalone_mode=False)', "
                          f"{args.profile!r})")
                subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, check=False)
        finally:
            process.terminate()
            process.wait(30)
    outcome = {0: "passed", 3: "incomplete (pending only)"}[run.returncode]
    print(f"{args.items} sealed items on {os.cpu_count()} cores")
    print(f"  openssl, a process per seal (CAdES + SM2)  {baseline:6.2f} s  ({2 * args.items / baseline:6.1f} seals/s)")
    print(f"  evidence verify-case ({outcome})  {service:6.2f} s  ({args.items / service:6.1f} items/s, "
          f"whole command incl. start-up)")
    print(f"    of which the same command on a case of no items  {fixed:6.2f} s; per item "
          f"{(service - fixed) / args.items * 1000:5.1f} ms, openssl {baseline / args.items * 1000:5.1f} ms "
          f"({(service - fixed) / baseline:.2f}x)")
    print(f"    of which importing the modules it needs, nothing else done  {floor:6.2f} s "
          f"({floor / baseline:.2f}x openssl's whole run; the target allows {1.5 * baseline:.2f} s in all)")
    ratio = service / baseline
    print(f"target: verify-case <= 1.5x openssl -> {ratio:.2f}x ({'met' if ratio <= 1.5 else 'NOT met'})")


IMPORTED = ("api.cli.verification", "archive.cases.receipts", "archive.seals.sealer", "archive.storage",
            "verifier.evidence_verify.cades", "rich.table")
"""What ``evidence verify-case`` imports to verify a case with sealed items (the empty case's
run leaves the seal checks' modules out)."""


def _timed(command: list[str], env: dict[str, str]) -> float:
    began = time.perf_counter()
    subprocess.run(command, env=env, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - began


if __name__ == "__main__":
    main()
