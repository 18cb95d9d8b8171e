"""Fifty clients at once on each stack: reads, uploads, case creations and continuity
edits give no 5xx and no dropped connection, and every item uploaded ends sealed."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests import load
from tests.tools import CLIENT_TLS

READERS = 100


def test_fifty_clients_mixed_load(stack):
    tokens = [stack.user(role="officer", unit=f"load-unit-{i}") for i in range(5)]
    admin = stack.user(role="admin", unit="load-hq")
    fx = load.prepare(stack.url, tokens)
    results, _wall = load.run(fx, clients=50, operations=6)
    assert results.failures == [], results.failures[:10]
    assert results.server_errors == 0 and results.transport_errors == 0, results.statuses()
    assert len(results.samples) == 300
    assert results.uploaded, "the mix uploaded nothing"
    left = load.wait_sealed(stack.url, admin, fx.items + results.uploaded, timeout=300)
    assert left == {}, left


def test_a_hundred_readers_at_once_never_wait_out_the_pool(stack):
    """100 clients at once read a case, an item and the case's list, on a server whose request
    threads (40) outnumber its pooled connections (12 on PostgreSQL here): every answer is 200.
    A request that kept a connection while it waited for a thread once left every connection
    held by such requests and every thread waiting for a connection, until the pool's timeout
    answered 503 database_busy to the whole burst."""
    token = stack.user(role="officer", unit="burst-unit")
    with stack.client(token) as c:
        case = c.post("/api/v1/cases", json={"case_number": f"BURST-{uuid.uuid4().hex[:8]}", "title": "并发读取"}).json()
        item = c.post(f"/api/v1/cases/{case['id']}/evidence", content=b"read by a hundred at once",
                      params={"kind": "other", "filename": "burst.txt"}).json()
    paths = [f"/api/v1/cases/{case['id']}", f"/api/v1/evidence/{item['id']}", f"/api/v1/cases/{case['id']}/evidence"]
    start = threading.Barrier(READERS)

    def read(n: int) -> list[int]:
        with httpx.Client(verify=CLIENT_TLS, base_url=stack.url, headers={"Authorization": f"Bearer {token}"},
                          timeout=120) as client:
            start.wait()
            return [client.get(paths[(n + k) % len(paths)]).status_code for k in range(3)]

    with ThreadPoolExecutor(READERS) as pool:
        answers = Counter(status for statuses in pool.map(read, range(READERS)) for status in statuses)
    assert answers == {200: 3 * READERS}, answers
