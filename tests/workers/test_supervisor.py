"""``evidence serve`` supervises its worker and beat: none outlives it, however it ends;
a child that dies is restarted; the API's /metrics shows what the worker did."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT
from tests.servers import free_port
from tests.api.test_metrics import _value

# Slow: evidence serve started, its children killed and its supervisor killed.
pytestmark = pytest.mark.slow


def _children(pid: int) -> dict[int, str]:
    """Live (non-zombie) children of ``pid``: {pid: command line}."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        state, ppid = stat.rpartition(")")[2].split()[:2]
        if int(ppid) == pid and state != "Z":
            found[int(entry.name)] = cmdline
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


class Served:
    """``evidence serve`` on a fresh embedded data directory."""

    def __init__(self, tmp: Path):
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("EVIDENCE_", "PROMETHEUS_"))}
        self.env["EVIDENCE_DATA_DIR"] = str(tmp / "data")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / "serve.log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "api.cli", "serve", "--port", str(self.port)],
                                     env=self.env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        _wait(self._healthy, 60, "serve never became healthy")
        _wait(lambda: len(self.children()) == 2, 30, "serve did not start a worker and beat")

    def _healthy(self) -> bool:
        assert self.proc.poll() is None, self.log_path.read_text()
        try:
            return httpx.get(self.url + "/healthz").status_code == 200
        except httpx.TransportError:
            return False

    def children(self) -> dict[int, str]:
        return _children(self.proc.pid)

    def cli(self, *args: str) -> str:
        r = subprocess.run([sys.executable, "-m", "api.cli", *args], env=self.env, cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip().splitlines()[-1]

    def close(self) -> None:
        # Whatever the test did, nothing of this group may outlive it.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.log.close()


@pytest.fixture
def served(tmp_path):
    s = Served(tmp_path)
    yield s
    s.close()


def test_sigterm_stops_every_child_and_a_dead_child_is_restarted(served):
    children = served.children()
    assert sorted("beat" in c for c in children.values()) == [False, True], children
    # The worker's task metrics reach the API's /metrics (one multiprocess directory).
    admin = served.cli("user", "add", "--name", "root", "--unit", "hq", "--role", "admin")
    headers = {"Authorization": f"Bearer {admin}"}
    case = httpx.post(served.url + "/api/v1/cases", json={"case_number": "M-1", "title": "m"}, headers=headers).json()
    item = httpx.post(f"{served.url}/api/v1/cases/{case['id']}/evidence", params={"kind": "other", "filename": "a"},
                      content=b"a" * 1000, headers=headers).json()
    _wait(lambda: httpx.get(f"{served.url}/api/v1/evidence/{item['id']}", headers=headers).json()["sm3"],
          60, "the worker never computed SM3")
    _wait(lambda: _value(httpx.get(served.url + "/metrics", headers=headers).text,
                         "evidence_step_duration_seconds_count", step="sm3") >= 1, 30, "no step metric")
    text = httpx.get(served.url + "/metrics", headers=headers).text
    assert _value(text, "evidence_upload_bytes_total", protocol="direct") >= 1000
    # A worker that dies is replaced.
    (worker,) = [pid for pid, c in children.items() if "beat" not in c]
    os.kill(worker, signal.SIGKILL)
    _wait(lambda: len(served.children()) == 2 and worker not in served.children(), 30, "worker not restarted")
    # SIGTERM to the supervisor alone: it stops every child it started, then itself.
    children = served.children()
    served.proc.send_signal(signal.SIGTERM)
    served.proc.wait(40)
    _wait(lambda: not any(_alive(pid) for pid in children), 10, f"children outlived serve: {children}")


def test_sigkill_of_the_supervisor_leaves_no_child(served):
    children = served.children()
    os.kill(served.proc.pid, signal.SIGKILL)  # no clean-up runs in serve
    served.proc.wait()
    _wait(lambda: not any(_alive(pid) for pid in children), 30, f"orphans left running: {children}")
