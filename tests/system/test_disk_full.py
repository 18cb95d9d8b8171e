"""The data directory's disk fills up (an operator's bad day: hours of body-camera video
arriving at once). Nothing may crash, every refusal says why (503 ``store_full`` or
``database_full`` with ``Retry-After``), ``/healthz`` says the disk is full, nothing is lost,
and once space is freed everything works again by itself."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

from tests.conftest import ROOT, Worker, _base_env, settings_from_env
from tests.faults import fill, small_disk, use_up_inodes
from tests.servers import free_port, wait_port
from tests.tools import CLIENT_TLS

MiB = 1024 * 1024
TUS = {"Tus-Resumable": "1.0.0"}


def test_metrics_recorded_on_a_full_disk_do_not_kill_the_process(tmp_path: Path) -> None:
    """prometheus-client writes its per-process files through a memory map of a sparse file:
    on a full disk the first write to a page without a block was SIGBUS, and the process (an
    API process with every upload it was receiving) died on the spot. Recording a metric
    must never fail what it measures, and recording works again once space is freed."""
    with small_disk(tmp_path / "disk", mib=1) as disk:
        filler = fill(disk)
        script = (
            "from pathlib import Path; import os, sys; from archive import metrics\n"
            "metrics.configure(Path(sys.argv[1]))\n"
            "for i in range(200):\n"
            "    metrics.record_http(method='GET', route=f'/r{i}', status=200, seconds=0.01)\n"
            "    metrics.record_task(f't{i}', seconds=0.1, failed=False)\n"
            "print('alive')\n"
            "os.unlink(sys.argv[2])\n"
            "metrics.record_http(method='GET', route='/after', status=200, seconds=0.01)\n"
            "print('recovered' if b'route=\"/after\"' in metrics.exposition()[0] else 'lost')\n"
        )
        r = subprocess.run([sys.executable, "-c", script, str(disk / "metrics"), str(filler)], cwd=ROOT,
                           capture_output=True, text=True, timeout=60,
                           # not a directory an earlier test's configure() left in this process's environment
                           env={**{k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"},
                                "PYTHONPATH": str(ROOT)})
        assert (r.returncode, r.stdout.split()) == (0, ["alive", "recovered"]), (r.returncode, r.stderr[-2000:])
        # Said once, not with a traceback for each of the 400 metrics that found no room.
        assert r.stderr.count("could not record a metric") == 1, r.stderr[-2000:]
        # The API's merge of every process's files still reads the directory.
        assert not [f for f in (disk / "metrics").glob("*.db") if f.stat().st_size == 0]


def test_a_worker_and_beat_started_on_a_full_disk_run_and_say_why(tmp_path: Path) -> None:
    """A worker and beat started while their data directory's disk is full (blocks and files),
    with no metrics folder yet and no beat schedule file (a new volume, or files an operator
    removed to make room). The worker died making its metrics folder (ENOSPC at start-up);
    beat took the schedule file it could not write for a corrupted one, removed it and died,
    and under ``evidence serve`` the supervisor restarted it until it gave up and stopped the
    whole service, API included. Both must run on and say in their logs why they cannot
    keep what they would (the API's /healthz says the disk is full: see the test below)."""
    from archive import db
    from workers.celery import make_celery

    with small_disk(tmp_path / "data", mib=16, inodes=400) as disk:
        env = {k: v for k, v in _base_env(tmp_path).items() if k != "PROMETHEUS_MULTIPROC_DIR"}
        settings = settings_from_env(env)
        db.upgrade(settings)
        make_celery(settings)  # the queue folders, which the API makes at its start
        fill(disk)
        use_up_inodes(disk)
        worker = Worker(env, tmp_path / "worker.log")
        worker.start()
        beat_log = open(tmp_path / "beat.log", "ab")
        beat = subprocess.Popen([sys.executable, "-m", "celery", "-A", "workers.app", "beat", "--loglevel", "INFO",
                                 "--schedule", str(disk / "beat-schedule")],
                                env=env, cwd=ROOT, stdout=beat_log, stderr=subprocess.STDOUT)
        try:
            def logs() -> tuple[str, str]:
                return ((tmp_path / "worker.log").read_text(errors="replace"),
                        (tmp_path / "beat.log").read_text(errors="replace"))

            deadline = time.monotonic() + 60
            while not (" ready." in logs()[0] and "kept in memory" in logs()[1]):
                assert worker.process.poll() is None and beat.poll() is None, logs()
                assert time.monotonic() < deadline, logs()
                time.sleep(0.5)
            time.sleep(3)  # beat has ticked, the worker's reconciler has made a pass
            assert worker.process.poll() is None and beat.poll() is None, logs()
            worker_log, beat_log_text = logs()
            assert "cannot make the metrics directory" in worker_log and "No space left on device" in worker_log
            assert "cannot write its schedule file" in beat_log_text and "corrupted" not in beat_log_text
        finally:
            worker.stop()
            beat.terminate()
            beat.wait(20)
            beat_log.close()


class _Api:
    """The API as a uvicorn process of its own on ``env``, so a crash is its own."""

    def __init__(self, env: dict[str, str], log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(log, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory", "--host", "127.0.0.1",
             "--port", str(self.port), "--log-level", "warning"],
            env=env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
        )
        assert wait_port(self.port, 60), log.read_text()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(20)
        self.log.close()


def _error(r: httpx.Response) -> tuple[int, str]:
    return r.status_code, r.json()["error"]["code"]


def test_a_full_disk_refuses_with_its_code_crashes_nothing_and_recovers(tmp_path: Path) -> None:
    """Embedded default, its data directory on a disk of 48 MiB: an upload bigger than the
    disk, a tus PATCH filling it, then requests on a disk full to its last byte, then the
    disk freed."""
    from archive import db
    from archive.db import Database
    from archive.identity.users import add_user

    with small_disk(tmp_path / "data", mib=48):
        env = _base_env(tmp_path)
        settings = settings_from_env(env)
        db.upgrade(settings)
        database = Database(settings)
        with database.session() as s:
            _user, token = add_user(s, name=f"officer-{uuid.uuid4().hex[:6]}", unit="unit-a", role="officer")
        database.dispose()
        api = _Api(env, tmp_path / "api.log")
        worker = Worker(env, tmp_path / "worker.log")
        worker.start()
        try:
            c = httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {token}"}, timeout=60,
                             verify=CLIENT_TLS)
            case = c.post("/api/v1/cases", json={"case_number": "FULL-1", "title": "t"}).json()
            first = os.urandom(20_000)
            item = c.post(f"/api/v1/cases/{case['id']}/evidence", params={"kind": "other", "filename": "a.bin"},
                          content=first).json()
            _wait_sealed(c, item["id"])

            big = os.urandom(60 * MiB)
            r = c.post(f"/api/v1/cases/{case['id']}/evidence", content=big,
                       params={"kind": "other", "filename": "big.bin", "sha256": hashlib.sha256(big).hexdigest()})
            assert _error(r) == (503, "store_full") and r.headers["Retry-After"], r.text

            meta = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}"
                            for k, v in {"case_id": case["id"], "kind": "other", "filename": "t.bin"}.items())
            r = c.post("/api/v1/uploads", headers={**TUS, "Upload-Length": str(len(big)), "Upload-Metadata": meta})
            assert r.status_code == 201, r.text
            upload = r.headers["Location"]
            r = c.patch(upload, content=big, headers={
                **TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"})
            assert _error(r) == (503, "store_full"), r.text
            # The bytes that found no room are given back, not kept filling the disk.
            offset = int(c.head(upload, headers=TUS).headers["Upload-Offset"])
            staged = sum(f.stat().st_size for f in (tmp_path / "data").rglob("*.upload"))
            assert staged <= offset + 8 * MiB, (staged, offset)

            filler = fill(tmp_path / "data")
            r = c.get("/healthz")
            assert r.status_code == 503 and "full" in r.json()["checks"]["storage"], r.text
            r = c.post(f"/api/v1/cases/{case['id']}/evidence", params={"kind": "other", "filename": "s.bin"},
                       content=os.urandom(3000))
            assert _error(r) == (503, "store_full"), r.text
            # Every read of evidence is a custody entry: with no room for it, nothing is sent.
            r = c.get(f"/api/v1/evidence/{item['id']}/content")
            assert _error(r) == (503, "database_full") and r.headers["Retry-After"], r.text
            r = c.post("/api/v1/cases", json={"case_number": "FULL-2", "title": "t"})
            assert _error(r) == (503, "database_full"), r.text
            assert c.get(f"/api/v1/evidence/{item['id']}").status_code == 200  # reads still answer
            assert api.process.poll() is None and worker.process.poll() is None

            filler.unlink()
            r = c.get("/healthz")
            assert r.status_code == 200, r.text
            assert c.get(f"/api/v1/evidence/{item['id']}/content").content == first
            r = c.post(f"/api/v1/cases/{case['id']}/evidence", params={"kind": "other", "filename": "after.bin"},
                       content=os.urandom(3000))
            assert r.status_code == 201, r.text
            _wait_sealed(c, r.json()["id"])
            listed = {i["filename"]: i["seal_status"] for i in c.get(f"/api/v1/cases/{case['id']}/evidence").json()}
            assert listed == {"a.bin": "sealed", "after.bin": "sealed"}
            c.close()
        finally:
            worker.stop()
            api.stop()


def _wait_sealed(c: httpx.Client, item_id: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while (status := c.get(f"/api/v1/evidence/{item_id}").json()["seal_status"]) != "sealed":
        assert time.monotonic() < deadline, status
        time.sleep(0.2)

