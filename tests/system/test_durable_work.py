"""Nothing lost, nothing stuck: power loss of the whole embedded default, a worker killed
on Redis, and work that fails for good showing its reason on the item.

The database records what each item still needs (archive.work); these tests take the
broker's messages away by killing every process, and check that each item still ends
sealed with exactly one custody entry per step.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from archive import db as archive_db, work
from archive.evidence import receiving
from archive.db import Database
from archive.models import EvidenceItem, EvidenceKind, LedgerEntry, User, Work
from archive.identity.users import add_user, authenticate
from tests.conftest import ROOT, ApiServer, Worker, _base_env, settings_from_env
from tests.faults import slow_ffprobe
from tests.servers import free_port, wait_port
from workers.celery import make_celery
from tests.tools import CLIENT_TLS

ONCE_PER_ITEM = ("evidence_received", "sm3_computed", "media_probed", "packets_scanned", "item_sealed")


def _clip(path: Path, seconds: int = 2) -> Path:
    """A small clip; its name goes into its metadata, so every clip is distinct content."""
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
         f"testsrc=size=160x90:rate=10:duration={seconds}", "-c:v", "libx264", "-preset", "ultrafast",
         "-metadata", f"title={path.name}", str(path)],
        check=True,
    )
    return path


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (read from /proc), children first found first."""
    parents: dict[int, list[int]] = collections.defaultdict(list)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents[ppid].append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _power_loss(process: subprocess.Popen) -> None:
    """SIGKILL the service and everything it started, all at once (no clean-up runs)."""
    victims = [process.pid, *_descendants(process.pid)]
    for pid in victims:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait(10)
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]
              for pid in victims if Path(f"/proc/{pid}").exists()) and time.monotonic() < deadline:
        time.sleep(0.1)


def _custody(database: Database, item_id: str) -> collections.Counter:
    with database.snapshot() as s:
        rows = s.execute(select(LedgerEntry.action, LedgerEntry.details).where(LedgerEntry.item_id == item_id)).all()
    counted: collections.Counter = collections.Counter()
    for action, details in rows:
        role = json.loads(details).get("role") if action == "derived_created" else None
        counted[(action, role) if role else action] += 1
    return counted


def _assert_once_per_step(database: Database, item_id: str) -> None:
    counted = _custody(database, item_id)
    for action in ONCE_PER_ITEM:
        assert counted[action] == 1, (item_id, action, counted)
    assert all(n == 1 for n in counted.values() if n), counted  # no step recorded twice


class Service:
    """``evidence serve`` on the embedded default in a data directory of its own."""

    def __init__(self, tmp: Path, **extra: str):
        self.env = dict(_base_env(tmp), EVIDENCE_WORK_LEASE_SECONDS="3", EVIDENCE_WORK_RECONCILE_SECONDS="1",
                        EVIDENCE_WORK_RETRY_SECONDS="0.5")
        self.env.update(extra)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / "serve.log"
        self.process: subprocess.Popen | None = None

    def start(self, **extra: str) -> None:
        env = dict(self.env, **extra)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "api.cli", "serve", "--port", str(self.port)],
                env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        assert wait_port(self.port, 60), self.log.read_text()[-3000:]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            _power_loss(self.process)

    def cli(self, *args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "api.cli", *args], env=self.env, cwd=ROOT,
                              capture_output=True, text=True, timeout=120, check=True)
        return done.stdout.strip().splitlines()[-1]


def test_power_loss_of_the_embedded_default_loses_no_work(tmp_path):
    clips = [_clip(tmp_path / f"clip-{i}.mp4") for i in range(5)]
    service = Service(tmp_path)
    # A slow ffprobe, so the power goes while several clips are in the middle of processing.
    service.start(**slow_ffprobe(tmp_path / "slow", 3, {"PATH": service.env["PATH"]}))
    try:
        token = service.cli("user", "add", "--name", "li.wei", "--unit", "Team 1", "--role", "officer")
        with httpx.Client(verify=CLIENT_TLS, base_url=service.url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as c:
            case = c.post("/api/v1/cases", json={"case_number": "PL-0001", "title": "Power loss"}).json()
            ids = []
            for i, clip in enumerate(clips):
                r = c.post(f"/api/v1/cases/{case['id']}/evidence", content=clip.read_bytes(), params={
                    "kind": "bodycam_video", "filename": clip.name, "device_id": f"CAM-{i}"})
                assert r.status_code == 201, r.text
                ids.append(r.json()["id"])
            deadline = time.monotonic() + 60
            while True:
                states = [c.get(f"/api/v1/evidence/{i}").json()["processing"].get("probe", {}).get("state")
                          for i in ids]
                if "running" in states:
                    break
                assert time.monotonic() < deadline, states
                time.sleep(0.1)
        service.stop()  # every process at once: API, worker, beat
        database = Database(settings_from_env(service.env))
        with database.read() as s:
            unsealed = s.execute(select(func_count()).where(EvidenceItem.seal_status != "sealed")).scalar_one()
            assert unsealed >= 2, "the power went too late to test anything"
        database.dispose()

        service.start()
        with httpx.Client(verify=CLIENT_TLS, base_url=service.url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as c:
            deadline = time.monotonic() + 180
            while True:
                items = c.get(f"/api/v1/cases/{case['id']}/evidence").json()
                if all(i["seal_status"] == "sealed" for i in items):
                    break
                assert time.monotonic() < deadline, [(i["id"], i["seal_status"], i["processing"]) for i in items]
                time.sleep(0.5)
        assert len(items) == len(clips)
        database = Database(settings_from_env(service.env))
        try:
            for item_id in ids:
                _assert_once_per_step(database, item_id)
            with database.read() as s:
                assert s.execute(select(Work).where(Work.task == work.PROCESS_ITEM)).scalars().all() == []
        finally:
            database.dispose()
    finally:
        service.stop()


def func_count():  # type: ignore[no-untyped-def]
    from sqlalchemy import func

    return func.count(EvidenceItem.id)


@pytest.mark.parametrize("stack", ["services"], indirect=True)
def test_worker_killed_on_redis_is_taken_up_by_another(stack, officer, case, tmp_path):
    clips = [_clip(tmp_path / f"clip-{i}.mp4") for i in range(3)]
    env = dict(stack.env, EVIDENCE_QUEUE_NAME=f"evidence-kill-{uuid.uuid4().hex[:8]}",
               EVIDENCE_WORK_LEASE_SECONDS="3", EVIDENCE_WORK_RECONCILE_SECONDS="1")
    with stack.services.db.read() as s:
        user_id = authenticate(s, token=officer).id
    quiet = Database(stack.settings)  # the API's handle would ring the stack's own worker
    ids = [
        receiving.receive_original(
            db=quiet, store=stack.services.store, user_id=user_id, retention_days=1,
            incoming=receiving.IncomingEvidence(case_id=case["id"], kind=EvidenceKind.bodycam_video,
                                               filename=f"clip-{i}.mp4", device_id=f"CAM-R{i}"),
            chunks=[clips[i].read_bytes()],
        ).id
        for i in range(3)
    ]
    quiet.dispose()
    sender = make_celery(settings_from_env(env))
    for item_id in ids:
        sender.send_task(work.PROCESS_ITEM, args=[item_id])
    slow = Worker(slow_ffprobe(tmp_path / "slow", 60, env), tmp_path / "slow.log", concurrency=2)
    slow.start()
    try:
        deadline = time.monotonic() + 60
        while not any(_probe_running(stack, i) for i in ids):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        slow.stop(kill=True)
    finally:
        slow.stop(kill=True)
    # No visibility-timeout tuning: the new worker's reconciler takes the work up once
    # the dead worker's leases have run out.
    fresh = Worker(env, tmp_path / "fresh.log", concurrency=2)
    fresh.start()
    try:
        for item_id in ids:
            stack.wait_item(officer, item_id, lambda i: i["seal_status"] == "sealed", timeout=120)
    finally:
        fresh.stop()
    for item_id in ids:
        _assert_once_per_step(stack.services.db, item_id)


def _probe_running(stack, item_id: str) -> bool:  # type: ignore[no-untyped-def]
    with stack.services.db.read() as s:
        item = s.get(EvidenceItem, item_id)
        return (item.processing or {}).get("probe", {}).get("state") == "running"


def test_work_that_fails_for_good_shows_why(tmp_path):
    """A time-stamping authority nobody answers: the seal is retried with back-off, then
    the item says why it is not sealed (flag, seal state and reason), and /healthz counts it."""
    env = dict(_base_env(tmp_path), EVIDENCE_WORK_LEASE_SECONDS="3", EVIDENCE_WORK_RECONCILE_SECONDS="0.5",
               EVIDENCE_WORK_RETRY_SECONDS="0.2", EVIDENCE_WORK_MAX_ATTEMPTS="3",
               EVIDENCE_TSA_URL=f"http://127.0.0.1:{free_port()}/tsa")
    settings = settings_from_env(env)
    archive_db.upgrade(settings)
    database = Database(settings)
    from archive.cases import service as cases
    from archive.storage import open_store

    store = open_store(settings)
    with database.session() as s:
        user, _ = add_user(s, name="wang.fang", unit="Team 2", role="officer")
        case = cases.create_case(s, store=store, user=user, case_number="FAIL-1", title="No TSA")
        user_id, case_id = user.id, case.id
    item = receiving.receive_original(
        db=database, store=store, user_id=user_id, retention_days=1, chunks=[b"a document"],
        incoming=receiving.IncomingEvidence(case_id=case_id, kind=EvidenceKind.other, filename="note.txt"),
    )
    make_celery(settings).send_task(work.PROCESS_ITEM, args=[item.id])
    worker = Worker(env, tmp_path / "worker.log", concurrency=1)
    worker.start()
    try:
        deadline = time.monotonic() + 120
        while True:
            with database.read() as s:
                row = s.get(EvidenceItem, item.id)
                if "processing_failed" in (row.flags or []):
                    break
            assert time.monotonic() < deadline, (row.seal_status, row.processing)
            time.sleep(0.2)
    finally:
        worker.stop()
    assert row.seal_status == "failed"
    assert "gave up after 3 attempts" in row.processing["seal"]["reason"]
    assert "time-stamp" in row.processing["seal"]["reason"].lower() or "tsa" in row.processing["seal"]["reason"].lower()
    assert row.processing["sm3"]["state"] == "done"  # what could be done was done
    with database.read() as s:
        failed = s.execute(select(Work).where(Work.state == "failed")).scalars().all()
        assert [(w.task, w.subject) for w in failed] == [(work.PROCESS_ITEM, item.id)]
    api = ApiServer(settings)
    try:
        health = httpx.get(f"{api.url}/healthz", timeout=30).json()
    finally:
        api.stop()
    assert health["work"]["failed"] == 1 and health["status"] == "degraded"
    database.dispose()
