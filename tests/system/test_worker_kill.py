"""A worker killed with SIGKILL in the middle of a probe: the task is delivered again (Redis
visibility timeout, or the reconciler once the dead worker's lease ran out), completes on a
new worker, and leaves exactly one custody entry."""

from __future__ import annotations

import subprocess
import time
import uuid

import pytest

from archive import work
from archive.evidence import receiving
from archive.custody import ledger
from archive.db import Database
from archive.models import EvidenceItem, EvidenceKind, User
from archive.identity.users import authenticate
from tests.conftest import Worker, settings_from_env
from tests.faults import slow_ffprobe
from workers.celery import make_celery


def _item(stack, item_id: str) -> EvidenceItem:
    with stack.services.db.session() as s:
        return s.get(EvidenceItem, item_id)


def _wait(stack, item_id: str, predicate, timeout: float) -> EvidenceItem:
    deadline = time.monotonic() + timeout
    while True:
        item = _item(stack, item_id)
        if predicate(item):
            return item
        if time.monotonic() > deadline:
            raise AssertionError(f"item never reached the expected state: {item.processing}")
        time.sleep(0.2)


@pytest.mark.parametrize("stack", ["services"], indirect=True)
def test_worker_killed_during_probe(stack, officer, case, tmp_path):
    clip = tmp_path / "clip.mp4"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=160x90:rate=25:duration=2",
         "-c:v", "libx264", "-preset", "ultrafast", str(clip)], check=True,
    )
    # A private queue, so only the workers of this test see the task; a short lease (renewed
    # while the worker lives), so the new worker need not wait a minute for the dead one's.
    env = dict(stack.env, EVIDENCE_QUEUE_NAME=f"evidence-kill-{uuid.uuid4().hex[:8]}", EVIDENCE_WORK_LEASE_SECONDS="3")
    with stack.services.db.session() as s:
        from sqlalchemy import select

        user_id = authenticate(s, token=officer).id
    # Received through a database handle of its own (the API's rings the stack's worker),
    # so only the workers of this test are told of it.
    quiet = Database(stack.settings)
    item = receiving.receive_original(
        db=quiet, store=stack.services.store, user_id=user_id,
        incoming=receiving.IncomingEvidence(case_id=case["id"], kind=EvidenceKind.bodycam_video, filename="clip.mp4",
                                           device_id="CAM-KILL"),
        chunks=[clip.read_bytes()], retention_days=1,
    )
    quiet.dispose()
    make_celery(settings_from_env(env)).send_task(work.PROCESS_ITEM, args=[item.id])

    slow = Worker(slow_ffprobe(tmp_path / "slow", 60, env), tmp_path / "slow-worker.log", concurrency=1)
    slow.start()
    try:
        _wait(stack, item.id, lambda i: (i.processing or {}).get("probe", {}).get("state") == "running", 60)
        time.sleep(0.5)
        slow.stop(kill=True)  # SIGKILL: no chance to ack, reject or clean up
        assert slow.process.returncode == -9
    finally:
        slow.stop(kill=True)
    with stack.services.db.session() as s:
        assert ledger.count_actions(s, item_id=item.id, action="media_probed") == 0

    # The new worker restores the unacked message once it is older than the visibility timeout.
    fresh = Worker(dict(env, EVIDENCE_BROKER_VISIBILITY_TIMEOUT="2"), tmp_path / "fresh-worker.log", concurrency=1)
    fresh.start()
    try:
        done = _wait(
            stack, item.id, lambda i: (i.processing or {}).get("continuity", {}).get("state") == "done", 120
        )
    finally:
        fresh.stop()
    assert done.processing["probe"]["state"] == "done" and done.media_facts["container"].startswith("mov,mp4")
    with stack.services.db.session() as s:
        assert ledger.count_actions(s, item_id=item.id, action="media_probed") == 1
        assert ledger.count_actions(s, item_id=item.id, action="packets_scanned") == 1
        assert ledger.count_actions(s, item_id=item.id, action="derived_created") == 2
