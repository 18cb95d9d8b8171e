"""``evidence serve`` on a fresh data directory: the embedded default a new user gets."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import ROOT
from tests.servers import free_port
from tests.tools import CLIENT_TLS


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


def _children(pid: int) -> list[int]:
    """The server processes ``evidence serve`` runs (uvicorn's spawned workers)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"multiprocessing" in cmdline \
                    and b"resource_tracker" not in cmdline:
                found.append(int(entry))
    return sorted(found)


def test_serve_runs_several_processes_on_postgresql_and_replaces_a_dead_one(tmp_path, own_pg_url):
    from tests.servers import redis_db_url

    env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")}
    env.update(EVIDENCE_DATA_DIR=str(tmp_path / "data"), EVIDENCE_DATABASE_URL=own_pg_url,
               EVIDENCE_BROKER_URL=redis_db_url(), EVIDENCE_QUEUE_NAME=f"serve-{os.getpid()}-{time.time_ns()}")
    subprocess.run([sys.executable, "-m", "api.cli", "db", "upgrade"], env=env, cwd=ROOT, check=True,
                   capture_output=True, timeout=120)
    token = subprocess.run([sys.executable, "-m", "api.cli", "user", "add", "--name", "ann", "--unit", "team-1",
                            "--role", "officer"], env=env, cwd=ROOT, capture_output=True, text=True,
                           timeout=60).stdout.strip().splitlines()[-1]
    port = free_port()
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "api.cli", "serve", "--port", str(port), "--no-workers",
                             "--processes", "2"],
                            env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {token}"}

    def all_answer(case_id: str) -> list[int]:
        from concurrent.futures import ThreadPoolExecutor

        with httpx.Client(verify=CLIENT_TLS, base_url=url, headers=headers, timeout=30) as c, ThreadPoolExecutor(25) as pool:
            return list(pool.map(lambda _: c.get(f"/api/v1/cases/{case_id}").status_code, range(100)))

    try:
        deadline = time.monotonic() + 60
        while len(_children(proc.pid)) < 2 or not _up(url):
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.2)
        case = httpx.post(url + "/api/v1/cases", json={"case_number": "2026-002", "title": "两个进程"},
                          headers=headers).json()
        assert set(all_answer(case["id"])) == {200}
        first = _children(proc.pid)
        assert len(first) == 2, first
        os.kill(first[0], signal.SIGKILL)  # one server process dies; its place is taken
        deadline = time.monotonic() + 60
        while len(set(_children(proc.pid)) - {first[0]}) < 2:
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.2)
        assert set(all_answer(case["id"])) == {200}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
        log.close()


def _up(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def test_serve_refuses_several_processes_on_sqlite(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_")}
    env["EVIDENCE_DATA_DIR"] = str(tmp_path / "evidence-data")
    r = subprocess.run([sys.executable, "-m", "api.cli", "serve", "--port", str(free_port()), "--no-workers",
                        "--processes", "2"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "SQLite has one writer" in r.stderr
