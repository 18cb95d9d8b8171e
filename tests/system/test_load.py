"""Fifty clients at once on each stack: reads, uploads, case creations and continuity
edits give no 5xx and no dropped connection, and every item uploaded ends sealed."""

from __future__ import annotations

import socket
import threading
import time
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


HUNG_UP = 30


def test_a_burst_of_clients_that_hung_up_leaves_no_work_behind(stack):
    """Thirty clients ask for an item's content at once and hang up (their FIN right after the
    request, then the socket closed), as the clients of a burst that gave up do. The requests
    still waiting their turn are dropped unanswered: the content is not read for them (a read
    is a custody entry, and these make none), so the next user does not wait behind work that
    nobody will receive. A client that half-closes on a quiet server is still answered."""
    token = stack.user(role="officer", unit="hung-up-unit")
    with stack.client(token) as c:
        case = c.post("/api/v1/cases", json={"case_number": f"HUNG-{uuid.uuid4().hex[:8]}", "title": "挂断"}).json()
        item = c.post(f"/api/v1/cases/{case['id']}/evidence", content=b"read by clients that left" * 4000,
                      params={"kind": "other", "filename": "left.bin"}).json()

    def reads() -> int:
        with stack.client(token) as c:
            entries = c.get("/api/v1/ledger/entries", params={"case_id": case["id"], "limit": 1000}).json()
        return sum(1 for e in entries if e["action"] == "content_read")

    def ask(path: str) -> bytes:
        return (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n").encode()

    socks = [socket.create_connection(("127.0.0.1", stack.api.port), timeout=30) for _ in range(HUNG_UP)]
    for sock in socks:
        sock.sendall(ask(f"/api/v1/evidence/{item['id']}/content"))
    for sock in socks:
        sock.shutdown(socket.SHUT_WR)
        sock.close()
    counted, settled = -1, reads()
    while counted != settled:  # until the server has finished what it started
        time.sleep(1.0)
        counted, settled = settled, reads()
    assert settled < HUNG_UP // 2, f"{settled} of {HUNG_UP} reads were made for clients that had hung up"

    with socket.create_connection(("127.0.0.1", stack.api.port), timeout=30) as sock:
        sock.sendall(ask(f"/api/v1/cases/{case['id']}"))
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
