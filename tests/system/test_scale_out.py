"""Scale-out across hosts: an API host and two Celery worker hosts, each a process of its own
with a data directory of its own, sharing nothing but the network services (PostgreSQL,
Redis, the S3 server) and the seal keys an administrator deploys to every worker host.

The work is spread over both worker hosts (each host's log shows items it finished), and
killing one host while it holds an item's work lease loses nothing and duplicates nothing:
every item ends sealed with exactly one custody entry per processing step.
"""

from __future__ import annotations

import time
import uuid

import pytest
from sqlalchemy import select

from archive.models import Work, utcnow
from tests.conftest import WorkerHost, running_stack
from tests.system.test_durable_work import _assert_once_per_step, _clip

pytestmark = pytest.mark.slow

ITEMS = 16


def test_two_worker_hosts_share_the_work_and_losing_one_loses_nothing(request, own_pg_url, tmp_path):
    root = tmp_path / "hosts"
    with running_stack(request, "services", root / "api",
                       database_url=own_pg_url,
                       extra_env={"EVIDENCE_QUEUE_NAME": f"evidence-hosts-{uuid.uuid4().hex[:8]}",
                                  "EVIDENCE_WORK_LEASE_SECONDS": "3",
                                  "EVIDENCE_WORK_RECONCILE_SECONDS": "1"}) as api_host:
        api_host.worker.stop()  # the API host runs no worker: the work goes to the worker hosts
        # The administrator makes the seal keys once and deploys them to each worker host.
        made = api_host.cli("keys", "init")
        assert made.returncode == 0, made.stderr
        keys = api_host.settings.resolved_keys_dir
        worker_env = {k: v for k, v in api_host.env.items() if k not in ("EVIDENCE_DATA_DIR", "EVIDENCE_KEYS_DIR")}
        hosts = [WorkerHost(f"worker-host-{n}", worker_env, keys, root) for n in (1, 2)]
        for host in hosts:
            host.worker.start()
        try:
            WorkerHost.wait_ready(hosts, timeout=60)
            officer = api_host.user(role="officer", unit="unit-a")
            with api_host.client(officer) as c:
                case = c.post("/api/v1/cases", json={"case_number": f"HOSTS-{uuid.uuid4().hex[:8]}",
                                                     "title": "两台工作主机"}).json()
                ids = []
                for i in range(ITEMS):
                    clip = _clip(tmp_path / f"clip-{i}.mp4", seconds=3)
                    r = c.post(f"/api/v1/cases/{case['id']}/evidence", content=clip.read_bytes(),
                               params={"kind": "bodycam_video", "filename": clip.name, "device_id": f"CAM-H{i}"})
                    assert r.status_code == 201, r.text
                    ids.append(r.json()["id"])
            # Both hosts finish items, then host 2 is killed while it holds an item's lease.
            victim, survivor = hosts[1], hosts[0]
            deadline = time.monotonic() + 120
            while True:
                with api_host.services.db.read() as s:
                    held = s.execute(select(Work.subject).where(
                        Work.lease_owner.like(f"%:{victim.pid}:%"), Work.lease_until > utcnow())).scalars().all()
                if held and survivor.finished() and victim.finished():
                    break
                assert time.monotonic() < deadline, (survivor.finished(), victim.finished())
                time.sleep(0.05)
            victim.worker.stop(kill=True)
            spread = {h.name: h.finished() for h in hosts}
            for item_id in ids:
                api_host.wait_item(officer, item_id, lambda i: i["seal_status"] == "sealed", timeout=180)
        finally:
            for host in hosts:
                host.worker.stop(kill=True)
        assert all(n >= 1 for n in spread.values()), spread
        assert survivor.finished() > spread[survivor.name], "the surviving host took up the rest"
        for item_id in ids:
            _assert_once_per_step(api_host.services.db, item_id)
        # The dead host's lease was taken over: none of the items' work is left leased or due.
        with api_host.services.db.read() as s:
            assert s.execute(select(Work).where(Work.subject.in_(ids))).scalars().all() == []
