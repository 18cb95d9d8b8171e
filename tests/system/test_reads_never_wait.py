"""Reads of evidence never wait for a seal or a checkpoint: with the time-stamping authority
holding every request (an item's seal and a ledger checkpoint stuck in it), 100 clients at
once read an item's content, each read a custody entry, and all are answered before the
authority lets a single seal through."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import func, select

from archive.models import Checkpoint, LedgerEntry
from signing import devpki, tsa
from tests.conftest import ROOT, running_stack
from tests.tools import CLIENT_TLS

pytestmark = pytest.mark.slow

READERS = 100


class GatedTsa:
    """A real RFC 3161 TSA that answers only while its gate is open."""

    def __init__(self, inner: tsa.TimeStampAuthority):
        self.inner, self.gate, self.lock = inner, threading.Event(), threading.Lock()
        self.gate.set()
        self.waiting = 0

    def respond(self, request: bytes) -> bytes:
        with self.lock:
            self.waiting += 1
        try:
            self.gate.wait(120)
            return self.inner.respond(request)
        finally:
            with self.lock:
                self.waiting -= 1


@pytest.mark.parametrize("name", ["embedded", "services"])
def test_reads_are_answered_while_seals_and_checkpoints_wait_for_the_tsa(request, name, own_pg_url, tmp_path):
    root = tmp_path / name
    pki = devpki.create_dev_pki(root / "data" / "keys")  # the stack's development PKI, made first
    gated = GatedTsa(tsa.TimeStampAuthority.from_files(cert_path=pki.tsa_cert, key_path=pki.tsa_key))
    server = tsa.make_http_server(gated)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # The authority is held for as long as the 100 reads take (over 10 s on a loaded machine):
    # the seal and the checkpoint must still be waiting for it then, not have given up.
    # A connection for each of the API's 40 request threads: what this test watches is waiting
    # for the TSA, not for a pooled connection (on a loaded CI machine a read once waited over
    # the pool's 15 s and answered 503 database_busy).
    env = {"EVIDENCE_TSA_URL": f"http://127.0.0.1:{server.server_address[1]}/tsa", "EVIDENCE_TSA_TIMEOUT_SECONDS": "180",
           "EVIDENCE_DATABASE_CONNECTIONS": "45"}
    checkpointing = None
    try:
        with running_stack(request, name, root, database_url=own_pg_url if name == "services" else None,
                           extra_env=env) as stack:
            officer = stack.user(role="officer", unit="unit-a")
            with stack.client(officer) as c:
                case = c.post("/api/v1/cases", json={"case_number": f"WAIT-{uuid.uuid4().hex[:8]}",
                                                     "title": "读取不等待封存"}).json()
                read_me = c.post(f"/api/v1/cases/{case['id']}/evidence", content=b"the item read 100 times",
                                 params={"kind": "other", "filename": "read.txt"}).json()
            stack.wait_item(officer, read_me["id"], lambda i: i["seal_status"] == "sealed", timeout=120)

            gated.gate.clear()  # from now on every seal waits at the TSA
            with stack.client(officer) as c:
                stuck = c.post(f"/api/v1/cases/{case['id']}/evidence", content=b"an item whose seal waits",
                               params={"kind": "other", "filename": "stuck.txt"}).json()
            checkpointing = subprocess.Popen([sys.executable, "-m", "api.cli", "ledger", "checkpoint"],
                                             env=stack.env, cwd=ROOT, stdout=subprocess.PIPE,
                                             stderr=subprocess.STDOUT, text=True)
            deadline = time.monotonic() + 60
            while gated.waiting < 2:  # the item's seal and the checkpoint, both held at the TSA
                assert time.monotonic() < deadline, gated.waiting
                time.sleep(0.05)
            with stack.services.db.snapshot() as s:
                reads_before = _reads(s, read_me["id"])

            def read(_: int) -> tuple[int, bytes]:
                with httpx.Client(verify=CLIENT_TLS, base_url=stack.url, headers={"Authorization": f"Bearer {officer}"},
                                  timeout=60) as client:
                    r = client.get(f"/api/v1/evidence/{read_me['id']}/content")
                    return r.status_code, r.content

            began = time.monotonic()
            with ThreadPoolExecutor(READERS) as pool:
                answers = list(pool.map(read, range(READERS)))
            took = time.monotonic() - began
            assert sorted(set(answers)) == [(200, b"the item read 100 times")], (took, sorted(set(answers)))
            # Every read answered while the seal and the checkpoint were still waiting.
            assert checkpointing.poll() is None, (took, checkpointing.communicate()[0])
            assert gated.waiting >= 2 and not gated.gate.is_set()
            with stack.services.db.snapshot() as s:
                assert _reads(s, read_me["id"]) == reads_before + READERS  # each read is a custody entry
                assert s.execute(select(func.count()).select_from(Checkpoint)).scalar_one() == 0

            gated.gate.set()  # the TSA answers: the seal and the checkpoint complete
            out, _ = checkpointing.communicate(timeout=120)
            assert checkpointing.returncode == 0, out
            assert "sealed: tree size" in out, out
            stack.wait_item(officer, stuck["id"], lambda i: i["seal_status"] == "sealed", timeout=120)
            verified = stack.cli("ledger", "verify")
            assert verified.returncode == 0, verified.stdout + verified.stderr
    finally:
        gated.gate.set()
        if checkpointing is not None and checkpointing.poll() is None:
            checkpointing.kill()
        server.shutdown()
        server.server_close()


def _reads(session, item_id: str) -> int:  # type: ignore[no-untyped-def]
    return session.execute(select(func.count()).select_from(LedgerEntry).where(
        LedgerEntry.item_id == item_id, LedgerEntry.action == "content_read")).scalar_one()

