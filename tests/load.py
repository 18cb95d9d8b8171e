"""A mixed load of a small corps at once: reads, uploads, case creations, continuity edits.

Used by the load test (50 clients on both stacks, zero 5xx, everything sealed after) and
by ``bench/bench_load.py`` (latency at 10, 50 and 100 clients). Each client is a thread
with its own connection, doing a fixed number of operations in a seeded random order.
"""

from __future__ import annotations

import hashlib
import random
import statistics
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import httpx
from tests.tools import CLIENT_TLS

# Operation mix (weights): mostly reads, as in a working day.
MIX = {
    "case_read": 30, "evidence_list": 15, "item_read": 15, "continuity_read": 5,
    "upload": 15, "case_create": 10, "action_create": 5, "device_update": 5,
}


@dataclass
class Results:
    """Every request's operation, status (0 for a transport failure) and latency."""

    samples: list[tuple[str, int, float]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    uploaded: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, op: str, status: int, seconds: float, note: str | None = None) -> None:
        with self.lock:
            self.samples.append((op, status, seconds))
            if note:
                self.failures.append(note)

    @property
    def server_errors(self) -> int:
        return sum(1 for _op, status, _s in self.samples if status >= 500)

    @property
    def transport_errors(self) -> int:
        return sum(1 for _op, status, _s in self.samples if status == 0)

    def statuses(self) -> Counter:
        return Counter(status for _op, status, _s in self.samples)

    def latency(self, op: str | None = None) -> tuple[float, float]:
        """(p50, p99) in milliseconds, for one operation or all."""
        times = sorted(s for o, _st, s in self.samples if op is None or o == op)
        if not times:
            return (0.0, 0.0)
        p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
        return statistics.median(times) * 1000, p99 * 1000


@dataclass
class Fixture:
    """What the clients work on: their tokens, a case each unit already has, an item in it."""

    base_url: str
    tokens: list[str]
    cases: list[str]
    items: list[str]


def prepare(base_url: str, tokens: list[str]) -> Fixture:
    """One case with one uploaded item per token's unit (tokens[i] owns cases[i])."""
    cases, items = [], []
    for token in tokens:
        with httpx.Client(verify=CLIENT_TLS, base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as c:
            r = c.post("/api/v1/cases", json={"case_number": f"LOAD-{uuid.uuid4().hex[:12]}", "title": "load"})
            r.raise_for_status()
            cases.append(r.json()["id"])
            body = b"seed " + uuid.uuid4().bytes
            r = c.post(f"/api/v1/cases/{cases[-1]}/evidence", content=body,
                       params={"kind": "other", "filename": "seed.txt"})
            assert r.status_code == 201, r.text
            items.append(r.json()["id"])
    return Fixture(base_url=base_url, tokens=tokens, cases=cases, items=items)


def _operation(rng: random.Random) -> str:
    return rng.choices(list(MIX), weights=list(MIX.values()))[0]


def _client(fx: Fixture, index: int, operations: int, results: Results, seed: int) -> None:
    rng = random.Random(seed * 1000 + index)
    slot = index % len(fx.tokens)
    token, case_id, item_id = fx.tokens[slot], fx.cases[slot], fx.items[slot]
    with httpx.Client(verify=CLIENT_TLS, base_url=fx.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as c:
        for n in range(operations):
            op = _operation(rng)
            call = _CALLS[op]
            start = time.perf_counter()
            try:
                response = call(c, rng, case_id, item_id, f"{index}-{n}")
            except httpx.HTTPError as exc:
                results.add(op, 0, time.perf_counter() - start, f"{op}: {type(exc).__name__}: {exc}")
                continue
            seconds = time.perf_counter() - start
            note = None
            if response.status_code >= 500 or response.status_code not in _EXPECTED[op]:
                note = f"{op}: {response.status_code} {response.text[:300]}"
            results.add(op, response.status_code, seconds, note)
            if op == "upload" and response.status_code == 201:
                with results.lock:
                    results.uploaded.append(response.json()["id"])


def _upload(c: httpx.Client, rng: random.Random, case_id: str, _item: str, tag: str) -> httpx.Response:
    body = rng.randbytes(rng.randint(1_000, 200_000))
    return c.post(f"/api/v1/cases/{case_id}/evidence", content=body, params={
        "kind": "other", "filename": f"load-{tag}.bin", "sha256": hashlib.sha256(body).hexdigest()})


def _action(c: httpx.Client, rng: random.Random, case_id: str, _item: str, tag: str) -> httpx.Response:
    start = datetime(2026, 3, 1, 9, tzinfo=timezone(timedelta(hours=8))) + timedelta(minutes=rng.randint(0, 600))
    return c.post(f"/api/v1/cases/{case_id}/actions", json={
        "kind": "inspection", "start": start.isoformat(), "end": (start + timedelta(minutes=5)).isoformat(),
        "devices": [f"CAM-LOAD-{tag.split('-')[0]}"], "description": f"load {tag}"})


_CALLS: dict[str, Callable[..., httpx.Response]] = {
    "case_read": lambda c, _r, case, _i, _t: c.get(f"/api/v1/cases/{case}"),
    "evidence_list": lambda c, _r, case, _i, _t: c.get(f"/api/v1/cases/{case}/evidence"),
    "item_read": lambda c, _r, _c, item, _t: c.get(f"/api/v1/evidence/{item}"),
    "continuity_read": lambda c, _r, case, _i, _t: c.get(f"/api/v1/cases/{case}/continuity"),
    "upload": _upload,
    "case_create": lambda c, _r, _c, _i, tag: c.post(
        "/api/v1/cases", json={"case_number": f"L-{tag}-{uuid.uuid4().hex[:8]}", "title": "load"}),
    "action_create": _action,
    "device_update": lambda c, r, _c, _i, tag: c.put(
        f"/api/v1/devices/CAM-LOAD-{tag.split('-')[0]}", json={"clock_offset_seconds": round(r.uniform(-5, 5), 3)}),
}
_EXPECTED: dict[str, set[int]] = defaultdict(lambda: {200}, {
    "upload": {201}, "case_create": {201}, "action_create": {201},
})


def run(fx: Fixture, *, clients: int, operations: int, seed: int = 1) -> tuple[Results, float]:
    """``clients`` threads at once, ``operations`` each; returns results and wall seconds."""
    results = Results()
    threads = [threading.Thread(target=_client, args=(fx, i, operations, results, seed)) for i in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, time.perf_counter() - start


def wait_sealed(base_url: str, admin_token: str, item_ids: list[str], timeout: float) -> dict[str, str]:
    """Poll (as an administrator) until every item is sealed; returns those that are not,
    with their seal status."""
    deadline = time.monotonic() + timeout
    waiting = {item_id: "unknown" for item_id in item_ids}
    with httpx.Client(verify=CLIENT_TLS, base_url=base_url, headers={"Authorization": f"Bearer {admin_token}"}, timeout=60) as c:
        while waiting:
            for item_id in list(waiting):
                r = c.get(f"/api/v1/evidence/{item_id}")
                status = r.json().get("seal_status", str(r.status_code)) if r.status_code == 200 else str(r.status_code)
                if status == "sealed":
                    del waiting[item_id]
                else:
                    waiting[item_id] = status
            if not waiting or time.monotonic() > deadline:
                break
            time.sleep(1)
    return waiting
