"""Content uploaded many times at once into one case is still one item.

A case holds a content (SHA-256) once: the first upload to register it answers 201, every
other answers 200 with that item and ``Duplicate-Of``, is a ``duplicate_received`` custody
entry, and its copy is discarded before it is locked, so the store keeps one original.
These run the uploads in threads released together (direct, tus, and both mixed), on both
stacks, and count items, custody entries and stored objects, not only answers.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections import Counter

import httpx
import pytest

from tests.conftest import Stack
from tests.tools import at_once

N = 20
TUS = {"Tus-Resumable": "1.0.0"}


def _at_once(n: int, call) -> list:  # type: ignore[no-untyped-def]
    """:func:`tests.tools.at_once`, failing the test on an exception in any thread."""
    results = at_once(n, call)
    failed = [r for r in results if isinstance(r, BaseException)]
    assert not failed, failed[:3]
    return results


def _meta(**kv: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in kv.items())


def _direct(stack: Stack, token: str, case: dict, data: bytes, name: str) -> httpx.Response:
    with stack.client(token) as c:
        return c.post(f"/api/v1/cases/{case['id']}/evidence", params={"kind": "other", "filename": name},
                      content=data)


def _tus_created(stack: Stack, token: str, case: dict, size: int, name: str) -> str:
    """A new tus upload of ``size`` bytes (nothing sent yet): its URL."""
    with stack.client(token) as c:
        r = c.post("/api/v1/uploads", headers={**TUS, "Upload-Length": str(size),
                                               "Upload-Metadata": _meta(case_id=case["id"], kind="other",
                                                                        filename=name)})
    assert r.status_code == 201, r.text
    return r.headers["location"]


def _tus_finish(stack: Stack, token: str, url: str, data: bytes) -> httpx.Response:
    """The whole body in one PATCH: its end completes the upload."""
    with stack.client(token) as c:
        return c.patch(url, content=data, headers={**TUS, "Upload-Offset": "0",
                                                   "Content-Type": "application/offset+octet-stream"})


def _held(stack: Stack, token: str, case: dict) -> tuple[list[dict], Counter]:
    """The case's items and its custody entries counted by action, as the API shows them."""
    with stack.client(token) as c:
        items = c.get(f"/api/v1/cases/{case['id']}/evidence").json()
        r = c.get("/api/v1/ledger/entries", params={"case_id": case["id"], "limit": 5000})
        assert r.status_code == 200, r.text
    return items, Counter(e["action"] for e in r.json())


def _originals(stack: Stack, case: dict) -> list[str]:
    return [o.key for o in stack.services.store.list(f"{case['vault']}/originals/")]


def test_one_content_uploaded_at_once_is_one_item(stack: Stack, officer: str, case: dict) -> None:
    data = os.urandom(100_000)
    replies = _at_once(N, lambda i: _direct(stack, officer, case, data, f"f{i}.bin"))
    statuses = Counter(r.status_code for r in replies)
    assert statuses == {201: 1, 200: N - 1}, [(r.status_code, r.text[:200]) for r in replies]
    (first,) = [r.json() for r in replies if r.status_code == 201]
    assert all(r.json()["id"] == first["id"] and r.headers["Duplicate-Of"] == first["id"]
               for r in replies if r.status_code == 200)
    assert first["sha256"] == hashlib.sha256(data).hexdigest() and first["duplicate_of"] == []
    items, actions = _held(stack, officer, case)
    assert [i["id"] for i in items] == [first["id"]]
    assert actions["evidence_received"] == 1 and actions["duplicate_received"] == N - 1, actions
    assert _originals(stack, case) == [first["storage_key"]]
    assert b"".join(stack.services.store.read(first["storage_key"])) == data


def test_one_content_completed_by_tus_at_once_is_one_item(stack: Stack, officer: str, case: dict) -> None:
    data = os.urandom(100_000)
    urls = [_tus_created(stack, officer, case, len(data), f"t{i}.bin") for i in range(N)]
    replies = _at_once(N, lambda i: _tus_finish(stack, officer, urls[i], data))
    assert all(r.status_code == 204 for r in replies), [(r.status_code, r.text[:200]) for r in replies]
    named = {r.headers["Evidence-Item-Id"] for r in replies}
    assert len(named) == 1, named
    items, actions = _held(stack, officer, case)
    assert [i["id"] for i in items] == list(named)
    assert actions["evidence_received"] == 1 and actions["duplicate_received"] == N - 1, actions
    assert _originals(stack, case) == [items[0]["storage_key"]]
    # Every upload completed, as that one item.
    with stack.client(officer) as c:
        assert {c.head(u, headers=TUS).headers["Evidence-Item-Id"] for u in urls} == named


def test_direct_uploads_racing_tus_completions_of_one_content_are_one_item(stack: Stack, officer: str,
                                                                          case: dict) -> None:
    data = os.urandom(100_000)
    half = N // 2
    urls = [_tus_created(stack, officer, case, len(data), f"t{i}.bin") for i in range(half)]

    def send(i: int) -> tuple[str, httpx.Response]:
        if i < half:
            return "tus", _tus_finish(stack, officer, urls[i], data)
        return "direct", _direct(stack, officer, case, data, f"d{i}.bin")

    replies = _at_once(N, send)
    named = set()
    for how, r in replies:
        if how == "tus":
            assert r.status_code == 204, r.text
            named.add(r.headers["Evidence-Item-Id"])
        else:
            assert r.status_code in (200, 201), r.text
            named.add(r.json()["id"])
            assert r.status_code == 201 or r.headers["Duplicate-Of"] == r.json()["id"]
    assert len(named) == 1, named
    assert sum(1 for how, r in replies if how == "direct" and r.status_code == 201) <= 1
    items, actions = _held(stack, officer, case)
    assert [i["id"] for i in items] == list(named)
    assert actions["evidence_received"] == 1 and actions["duplicate_received"] == N - 1, actions
    assert _originals(stack, case) == [items[0]["storage_key"]]


def test_different_contents_uploaded_at_once_are_all_kept(stack: Stack, officer: str, case: dict) -> None:
    n = 30
    bodies = [os.urandom(50_000) for _ in range(n)]
    replies = _at_once(n, lambda i: _direct(stack, officer, case, bodies[i], f"f{i}.bin"))
    assert [r.status_code for r in replies] == [201] * n, [(r.status_code, r.text[:200]) for r in replies]
    assert sorted(r.json()["sha256"] for r in replies) == sorted(hashlib.sha256(b).hexdigest() for b in bodies)
    items, actions = _held(stack, officer, case)
    assert len(items) == n and actions["evidence_received"] == n and actions["duplicate_received"] == 0
    assert len(_originals(stack, case)) == n


def test_one_content_sent_at_once_to_several_cases_is_kept_in_each_and_the_later_ones_flagged(
        stack: Stack, officer: str) -> None:
    """The same file brought into several cases of a unit at once: each case keeps it, and
    every copy but the first registered is flagged ``duplicate_content`` naming the others,
    as when they come one after the other (held per case, two at once each missed the other)."""
    n = 6
    with stack.client(officer) as c:
        cases = [c.post("/api/v1/cases", json={"case_number": f"SAME-{os.urandom(4).hex()}", "title": "same"}).json()
                 for _ in range(n)]
    body = os.urandom(40_000)
    replies = _at_once(n, lambda i: _direct(stack, officer, cases[i], body, f"same-{i}.bin"))
    assert [r.status_code for r in replies] == [201] * n, [(r.status_code, r.text[:200]) for r in replies]
    items = [r.json() for r in replies]
    flagged = [i for i in items if "duplicate_content" in i["flags"]]
    assert len(flagged) == n - 1, [(i["id"], i["flags"]) for i in items]
    with stack.client(officer) as c:
        for item in items:
            now = c.get(f"/api/v1/evidence/{item['id']}").json()
            assert sorted(now["duplicate_of"]) == sorted(other["id"] for other in items if other is not item)


@pytest.mark.parametrize("first_by", ["direct", "tus"])
def test_a_later_copy_is_refused_as_before(stack: Stack, officer: str, case: dict, first_by: str) -> None:
    """The sequential path, by either route after either: 200 (or the tus upload completing as
    the item), one ``duplicate_received`` entry per copy, the copy not kept."""
    data = os.urandom(10_000)
    if first_by == "direct":
        r = _direct(stack, officer, case, data, "first.bin")
        assert r.status_code == 201, r.text
        first = r.json()["id"]
    else:
        r = _tus_finish(stack, officer, _tus_created(stack, officer, case, len(data), "first.bin"), data)
        assert r.status_code == 204, r.text
        first = r.headers["Evidence-Item-Id"]
    again = _direct(stack, officer, case, data, "again.bin")
    assert again.status_code == 200 and again.json()["id"] == first and again.headers["Duplicate-Of"] == first
    r = _tus_finish(stack, officer, _tus_created(stack, officer, case, len(data), "again.bin"), data)
    assert r.status_code == 204 and r.headers["Evidence-Item-Id"] == first
    items, actions = _held(stack, officer, case)
    assert [i["id"] for i in items] == [first]
    assert actions["evidence_received"] == 1 and actions["duplicate_received"] == 2, actions
    assert len(_originals(stack, case)) == 1
