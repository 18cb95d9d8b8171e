"""``evidence serve`` on a fresh data directory: the embedded default a new user gets."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time

import httpx

from tests.conftest import ROOT
from tests.servers import free_port


def test_serve_embedded_default_end_to_end(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")}
    env["EVIDENCE_DATA_DIR"] = str(tmp_path / "evidence-data")
    port = free_port()
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "api.cli", "serve", "--port", str(port)],
                            env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.2)
        r = subprocess.run([sys.executable, "-m", "api.cli", "user", "add", "--name", "ann", "--unit", "team-1",
                            "--role", "officer"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
        token = r.stdout.strip().splitlines()[-1]
        headers = {"Authorization": f"Bearer {token}"}
        case = httpx.post(url + "/api/v1/cases", json={"case_number": "2026-001", "title": "Inspection"},
                          headers=headers).json()
        data = os.urandom(2_000_000)
        item = httpx.post(f"{url}/api/v1/cases/{case['id']}/evidence", params={"kind": "other", "filename": "a.bin"},
                          content=data, headers=headers).json()
        assert item["sha256"] == hashlib.sha256(data).hexdigest()
        # The worker started by serve computes SM3.
        deadline = time.monotonic() + 60
        while httpx.get(f"{url}/api/v1/evidence/{item['id']}", headers=headers).json()["sm3"] is None:
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.2)
        assert (tmp_path / "evidence-data" / "evidence.db").exists()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
        log.close()
    assert "EMBEDDED DEFAULT" in (tmp_path / "serve.log").read_text()
