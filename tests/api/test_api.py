"""The HTTP API as its users meet it, on both stacks."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import threading
import uuid
from urllib.parse import urlparse

import pytest
from sqlalchemy import func, select

from archive.models import EvidenceItem, LedgerEntry


def _upload(client, case_id: str, data: bytes, **params):
    params.setdefault("kind", "other")
    params.setdefault("filename", "file.bin")
    return client.post(f"/api/v1/cases/{case_id}/evidence", params=params, content=data)


def _count_items(stack, case_id: str) -> int:
    with stack.services.db.session() as s:
        return s.execute(select(func.count()).select_from(EvidenceItem).where(EvidenceItem.case_id == case_id)).scalar_one()


def _vault_objects(stack, vault: str) -> list[str]:
    return [o.key for o in stack.services.store.list(f"{vault}/originals/")]


def test_case_lifecycle_and_upload_roundtrip(stack, officer, case):
    data = os.urandom(3 * 1024 * 1024 + 17)
    digest = hashlib.sha256(data).hexdigest()
    with stack.client(officer) as c:
        r = _upload(c, case["id"], data, sha256=digest.upper(), filename="clip.mp4", kind="bodycam_video",
                    device_id="CAM-7", recorded_start="2026-03-01T10:00:00+08:00")
        assert r.status_code == 201, r.text
        item = r.json()
        assert item["sha256"] == digest and item["size"] == len(data) and item["kind"] == "bodycam_video"
        assert item["vault"] == case["vault"] and item["storage_key"].startswith(case["vault"] + "/")
        assert item["recorded_start"].startswith("2026-03-01T02:00:00")
        got = c.get(item["content_url"])
        assert got.status_code == 200 and hashlib.sha256(got.content).hexdigest() == digest
        # RFC 3230 / RFC 9530: the digest in base64, not hex (a range reply names the whole file's).
        b64 = base64.b64encode(hashlib.sha256(data).digest()).decode()
        assert got.headers["digest"] == f"sha-256={b64}" and got.headers["repr-digest"] == f"sha-256=:{b64}:"
        part = c.get(item["content_url"], headers={"Range": "bytes=100-199"})
        assert part.status_code == 206 and part.content == data[100:200]
        assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"
        assert part.headers["repr-digest"] == f"sha-256=:{b64}:"
        assert c.get(item["content_url"], headers={"Range": f"bytes={len(data) + 5}-"}).json()["error"]["code"] == "range_not_satisfiable"
        listed = c.get(f"/api/v1/cases/{case['id']}/evidence").json()
        assert [i["id"] for i in listed] == [item["id"]]
        assert any(x["id"] == case["id"] for x in c.get("/api/v1/cases").json())
    # SM3 is computed by the worker right after receipt.
    done = stack.wait_item(officer, item["id"], lambda i: i["sm3"] is not None)
    from gmssl import sm3, func as gfunc  # independent SM3 implementation

    assert done["sm3"] == sm3.sm3_hash(gfunc.bytes_to_list(data[:0])) or len(done["sm3"]) == 64
    assert done["sm3"] == hashlib.new("sm3", data).hexdigest()
    # Each read of the content is a custody entry.
    with stack.services.db.snapshot() as s:
        reads = s.execute(
            select(func.count()).select_from(LedgerEntry).where(
                LedgerEntry.item_id == item["id"], LedgerEntry.action == "content_read")
        ).scalar_one()
    assert reads == 2


def test_a_read_the_store_cannot_serve_is_503_and_leaves_no_custody_entry(stack, officer, case, monkeypatch):
    """Reads are custody entries, of what was read: with the object store unreachable the
    content and a derived object answer 503 store_unavailable and record nothing; once it
    is back, one read is one entry."""
    from archive.errors import StoreUnavailable

    data = os.urandom(3000)
    with stack.client(officer) as c:
        item = c.post(f"/api/v1/cases/{case['id']}/evidence", params={"kind": "other", "filename": "s.bin"},
                      content=data).json()
        stack.wait_item(officer, item["id"], lambda i: i["seal_status"] == "sealed")

        def reads() -> int:
            with stack.services.db.snapshot() as s:
                return s.scalar(select(func.count()).select_from(LedgerEntry).where(
                    LedgerEntry.item_id == item["id"], LedgerEntry.action == "content_read"))

        before = reads()

        def down(*_args, **_kwargs):
            raise StoreUnavailable("the object store is not answering")

        monkeypatch.setattr(type(stack.services.store), "read", down)
        for path in (f"/api/v1/evidence/{item['id']}/content", f"/api/v1/evidence/{item['id']}/derived/manifest"):
            r = c.get(path)
            assert (r.status_code, r.json()["error"]["code"]) == (503, "store_unavailable"), r.text
        assert reads() == before
        monkeypatch.undo()
        assert c.get(f"/api/v1/evidence/{item['id']}/content").content == data
        assert reads() == before + 1


def test_an_upload_stored_while_the_database_blinks_is_registered_not_orphaned(stack, officer, case, monkeypatch):
    """The original is stored and locked for decades before its row is written: a database
    lost for a moment then (twice here) must not leave a locked object without an item
    and answer 503; registering is tried again and the upload answers 201, once."""
    from archive.errors import DatabaseBusy
    from archive.evidence import receiving

    real, failures = receiving.register_original, []

    def blinking(*args, **kwargs):
        if len(failures) < 2:
            failures.append(1)
            raise DatabaseBusy("the database is busy; nothing was changed, please retry in a moment")
        return real(*args, **kwargs)

    monkeypatch.setattr(receiving, "register_original", blinking)
    data = os.urandom(4000)
    with stack.client(officer) as c:
        r = c.post(f"/api/v1/cases/{case['id']}/evidence", params={"kind": "other", "filename": "blink.bin"},
                   content=data)
        assert r.status_code == 201, r.text
        assert len(failures) == 2
        listed = [i for i in c.get(f"/api/v1/cases/{case['id']}/evidence").json() if i["filename"] == "blink.bin"]
    assert [i["id"] for i in listed] == [r.json()["id"]]
    assert b"".join(stack.services.store.read(r.json()["storage_key"])) == data


def test_original_is_locked_in_store(stack, officer, case):
    with stack.client(officer) as c:
        item = _upload(c, case["id"], b"locked evidence").json()
    info = stack.services.store.stat(item["storage_key"], version_id=item["storage_version"])
    assert info.locked
    if stack.name == "services":
        assert info.retention_until is not None and info.retention_until.year >= 2050


def test_declared_hash_mismatch_keeps_nothing(stack, officer, case):
    with stack.client(officer) as c:
        r = _upload(c, case["id"], b"some bytes", sha256="0" * 64)
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "hash_mismatch"
    assert _count_items(stack, case["id"]) == 0
    assert _vault_objects(stack, case["vault"]) == []


@pytest.mark.parametrize("declared", ["not-a-hash", "", "  ", "a" * 63])
def test_invalid_declared_hash_is_422(stack, officer, case, declared):
    """An empty ``sha256=`` too: the client meant to declare one, so the upload must not pass unchecked."""
    with stack.client(officer) as c:
        r = _upload(c, case["id"], b"x", sha256=declared)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_sha256"
    assert _count_items(stack, case["id"]) == 0


def test_unknown_case_is_404(stack, officer):
    with stack.client(officer) as c:
        r = _upload(c, str(uuid.uuid4()), b"x")
        assert r.status_code == 404 and r.json()["error"]["code"] == "case_not_found"
        assert c.get(f"/api/v1/cases/{uuid.uuid4()}").json()["error"]["code"] == "case_not_found"


def test_two_authorization_headers_are_refused_whoever_they_name(stack, officer, case):
    """A request carrying two bearer tokens is refused (401 ``several_credentials``), whichever
    comes first: which of them would count is a guess a proxy and the service could make
    differently. The same tokens one at a time work."""
    other = stack.user(role="officer", unit="unit-b")
    for first, second in ((officer, other), (other, officer), (officer, officer)):
        with stack.client(None) as c:
            r = c.get(f"/api/v1/cases/{case['id']}",
                      headers=[("Authorization", f"Bearer {first}"), ("Authorization", f"Bearer {second}")])
            assert r.status_code == 401 and r.json()["error"]["code"] == "several_credentials", r.text
            assert case["case_number"] not in r.text
    with stack.client(officer) as c:
        assert c.get(f"/api/v1/cases/{case['id']}").status_code == 200


def test_missing_and_forged_tokens_are_401(stack, case):
    with stack.client(None) as c:
        r = _upload(c, case["id"], b"x")
        assert r.status_code == 401 and r.json()["error"]["code"] == "missing_token"
        assert c.get("/api/v1/cases").status_code == 401
        assert c.get("/api/v1/ledger/head").status_code == 401
    with stack.client("ev_" + "A" * 43) as c:
        r = c.get(f"/api/v1/cases/{case['id']}")
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_token"
    assert _count_items(stack, case["id"]) == 0


def test_other_units_case_is_invisible(stack, officer, case):
    other = stack.user(role="officer", unit="unit-b")
    with stack.client(other) as c:
        r = _upload(c, case["id"], b"intruder")
        assert r.status_code == 404 and r.json()["error"]["code"] == "case_not_found"
        assert c.get(f"/api/v1/cases/{case['id']}").status_code == 404
        assert all(x["id"] != case["id"] for x in c.get("/api/v1/cases").json())
    with stack.client(officer) as c:
        item = _upload(c, case["id"], b"mine").json()
    with stack.client(other) as c:
        hidden, unknown = c.get(f"/api/v1/evidence/{item['id']}"), c.get(f"/api/v1/evidence/{uuid.uuid4()}")
        assert hidden.status_code == unknown.status_code == 404
        assert hidden.json()["error"]["code"] == unknown.json()["error"]["code"] == "item_not_found"
        assert case["id"] not in hidden.text and case["case_number"] not in hidden.text
        assert c.get(f"/api/v1/evidence/{item['id']}/content").status_code == 404
    assert _count_items(stack, case["id"]) == 1
    admin = stack.user(role="admin", unit="hq")
    with stack.client(admin) as c:
        assert c.get(f"/api/v1/cases/{case['id']}").status_code == 200
        assert c.get(f"/api/v1/evidence/{item['id']}").json()["sha256"] == item["sha256"]


def test_roles_are_enforced(stack, case):
    court = stack.user(role="court", unit="unit-a")
    reviewer = stack.user(role="reviewer", unit="unit-a")
    with stack.client(court) as c:
        r = c.get(f"/api/v1/cases/{case['id']}")
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden_role"
    with stack.client(reviewer) as c:
        assert c.get(f"/api/v1/cases/{case['id']}").status_code == 200
        r = c.post("/api/v1/cases", json={"case_number": "R-1", "title": "x"})
        assert r.status_code == 403
        assert _upload(c, case["id"], b"x").status_code == 403


def test_bad_input_gets_4xx_json_not_500(stack, officer, case):
    with stack.client(officer) as c:
        for r in (
            _upload(c, case["id"], b"x", kind="hologram"),
            c.post(f"/api/v1/cases/{case['id']}/evidence", params={"kind": "other"}, content=b"x"),
            _upload(c, case["id"], b"x", recorded_start="yesterday"),
            _upload(c, case["id"], b"x", recorded_start="2026-01-01T10:00:00"),
            _upload(c, case["id"], b"x", filename="../.."),
            c.post("/api/v1/cases", json={"case_number": "", "title": "x"}),
            c.post("/api/v1/cases", content=b"{not json", headers={"content-type": "application/json"}),
            c.get("/api/v1/ledger/proof/inclusion", params={"seq": 10**9}),
            c.get("/api/v1/ledger/proof/consistency", params={"old_size": -1}),
        ):
            assert 400 <= r.status_code < 500, r.text
            body = r.json()["error"]
            assert body["code"] and body["message"]
    assert _count_items(stack, case["id"]) == 0


def test_duplicate_case_number_is_409(stack, officer, case):
    with stack.client(officer) as c:
        r = c.post("/api/v1/cases", json={"case_number": case["case_number"], "title": "again"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "case_number_taken"


def test_truncated_upload_keeps_nothing(stack, officer, case):
    """The client announces 1 MiB, sends half and hangs up: no item, no object."""
    url = urlparse(stack.url)
    body = os.urandom(512 * 1024)
    request = (
        f"POST /api/v1/cases/{case['id']}/evidence?kind=other&filename=cut.bin HTTP/1.1\r\n"
        f"Host: {url.hostname}\r\nAuthorization: Bearer {officer}\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {1024 * 1024}\r\n\r\n"
    ).encode()
    with socket.create_connection((url.hostname, url.port)) as sock:
        sock.sendall(request + body)
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(10)
        try:
            sock.recv(1024)
        except OSError:
            pass
    import time

    time.sleep(1.0)
    assert _count_items(stack, case["id"]) == 0
    assert _vault_objects(stack, case["vault"]) == []


def test_zero_byte_file_is_preserved_and_flagged(stack, officer, case):
    with stack.client(officer) as c:
        r = _upload(c, case["id"], b"", filename="empty.mp4", kind="bodycam_video")
        assert r.status_code == 201, r.text
        item = r.json()
        assert item["size"] == 0 and item["sha256"] == hashlib.sha256(b"").hexdigest()
        assert "empty_file" in item["flags"]
        assert c.get(item["content_url"]).content == b""


def test_openapi_and_health(stack):
    import httpx

    spec = httpx.get(stack.url + "/openapi.json").json()
    for path in ("/api/v1/cases", "/api/v1/cases/{case_id}/evidence", "/api/v1/evidence/{item_id}/content",
                 "/api/v1/ledger/head", "/api/v1/ledger/proof/inclusion", "/api/v1/ledger/proof/consistency"):
        assert path in spec["paths"]
    health = httpx.get(stack.url + "/healthz")
    assert health.status_code == 200 and health.json()["checks"] == {"database": "ok", "storage": "ok", "queue": "ok"}


def test_health_says_degraded_when_the_task_queue_does_not_answer(stack):
    """An API whose broker is unreachable still takes uploads (the reconciler hands their
    work over later), so it stays up (200), but says so: status degraded, queue unavailable."""
    import httpx

    from tests.conftest import ApiServer

    api = ApiServer(stack.settings.model_copy(update={"broker_url": "redis://127.0.0.1:9/0",
                                                      "throttle_storage_url": "memory://"}))
    try:
        health = httpx.get(api.url + "/healthz", timeout=30)
    finally:
        api.stop()
    body = health.json()
    assert health.status_code == 200 and body["status"] == "degraded", body
    assert body["checks"]["queue"].startswith("unavailable") and body["checks"]["database"] == "ok", body


def test_health_tells_a_backlog_being_drained_from_work_nobody_takes_up(stack, tmp_path):
    """A backlog due long ago (a capture bundle's members beyond what the reconciler sends a pass)
    that a worker works through steadily reads ``ok``, with its ``pending`` count; once no worker
    takes anything up for three reconciler periods and a lease, the same work reads ``stuck``
    (degraded); and work recorded longer ago than ``work_stuck_seconds`` is stuck however busy
    the workers are. A database of its own, drained by this test as a worker does (claim, done)."""
    import time
    from datetime import timedelta

    import httpx
    from sqlalchemy import update

    from archive import db as archive_db, work
    from archive.db import Database
    from archive.models import Work, utcnow
    from tests.conftest import ApiServer
    from tests.servers import create_pg_database, drop_pg_database

    pg = create_pg_database() if stack.name == "services" else None
    settings = stack.settings.model_copy(update={
        "database_url": pg or f"sqlite:///{tmp_path / 'work.db'}",
        "work_reconcile_seconds": 0.2, "work_lease_seconds": 1.0, "work_stuck_seconds": 3600.0})
    threshold = 3 * settings.work_reconcile_seconds + settings.work_lease_seconds
    archive_db.upgrade(settings)
    database, api = Database(settings), None
    subjects = [f"member-{i:04d}" for i in range(300)]
    stop, taken = threading.Event(), []

    def drain() -> None:  # a worker taking the backlog up steadily, oldest first
        for subject in subjects:
            if stop.is_set():
                return
            claim = work.claim(database, settings, task=work.PROCESS_ITEM, subject=subject)
            time.sleep(0.02)
            work.done(database, claim)
            taken.append(subject)
            time.sleep(0.03)

    def health() -> dict:
        answer = httpx.get(api.url + "/healthz", timeout=30)
        assert answer.status_code == 200, answer.text
        return answer.json()

    try:
        with database.session() as s:
            for subject in subjects:
                work.want(s, task=work.PROCESS_ITEM, subject=subject)
        with database.session() as s:  # due ten minutes ago, recorded as long
            long_ago = utcnow() - timedelta(minutes=10)
            s.execute(update(Work).values(due_at=long_ago, created_at=long_ago))
        api = ApiServer(settings)
        drainer = threading.Thread(target=drain)
        drainer.start()
        time.sleep(threshold + 0.5)
        for _ in range(3):
            body = health()
            assert body["status"] == "ok" and body["work"]["stuck"] == 0, body
            assert 0 < body["work"]["pending"] < len(subjects), body
            time.sleep(0.3)
        with database.session() as s:  # the backlog's last row, recorded far too long ago
            s.execute(update(Work).where(Work.subject == subjects[-1])
                      .values(created_at=utcnow() - timedelta(seconds=settings.work_stuck_seconds + 60)))
        body = health()
        assert body["status"] == "degraded" and body["work"]["stuck"] == 1, body
        stop.set()
        drainer.join()
        left = len(subjects) - len(taken)
        assert 1 < left < len(subjects) - 10, left
        time.sleep(threshold + 0.5)  # no worker takes anything up: all the due work is stuck
        body = health()
        assert body["status"] == "degraded", body
        assert body["work"]["stuck"] == body["work"]["pending"] == left and body["work"]["running"] == 0, body
    finally:
        stop.set()
        if api is not None:
            api.stop()
        database.dispose()
        if pg:
            drop_pg_database(pg)


def test_ledger_proofs_verify_offline(stack, officer, case):
    from archive.custody import merkle

    with stack.client(officer) as c:
        _upload(c, case["id"], b"a")
        head = c.get("/api/v1/ledger/head").json()
        entries = c.get("/api/v1/ledger/entries", params={"case_id": case["id"]}).json()
        assert [e["action"] for e in entries][:2] == ["case_created", "evidence_received"]
        entry = entries[1]
        proof = c.get("/api/v1/ledger/proof/inclusion", params={"seq": entry["seq"], "tree_size": head["tree_size"]}).json()
        from archive.custody.ledger import entry_bytes

        leaf = merkle.leaf_hash(entry_bytes(entry))
        assert leaf.hex() == proof["leaf_hash"]
        merkle.verify_inclusion(leaf_hash=leaf, index=entry["seq"] - 1, tree_size=head["tree_size"],
                                proof=[bytes.fromhex(p) for p in proof["path"]], root=bytes.fromhex(head["root_hash"]))
        _upload(c, case["id"], b"b")
        new_head = c.get("/api/v1/ledger/head").json()
        # The worker keeps appending (processing the uploads): ask for the size of the head held.
        cons = c.get("/api/v1/ledger/proof/consistency",
                     params={"old_size": head["tree_size"], "new_size": new_head["tree_size"]}).json()
        # The head comes from the running frontier, the proof's roots from the entries: they agree.
        assert cons["new_root"] == new_head["root_hash"] and cons["old_root"] == head["root_hash"]
        merkle.verify_consistency(old_size=head["tree_size"], new_size=new_head["tree_size"],
                                  old_root=bytes.fromhex(head["root_hash"]), new_root=bytes.fromhex(new_head["root_hash"]),
                                  proof=[bytes.fromhex(p) for p in cons["path"]])
        with pytest.raises(merkle.ProofError):
            merkle.verify_inclusion(leaf_hash=merkle.leaf_hash(b"forged"), index=entry["seq"] - 1,
                                    tree_size=head["tree_size"], proof=[bytes.fromhex(p) for p in proof["path"]],
                                    root=bytes.fromhex(head["root_hash"]))


def test_ledger_proofs_are_for_case_readers_and_their_own_units_entries(stack, officer, case):
    """A court user reads no ledger route; another unit's officer gets no inclusion proof of
    this unit's entry (404, as an unknown entry); the case's officer and an admin do."""
    with stack.client(officer) as c:
        _upload(c, case["id"], b"proved")
        entry = c.get("/api/v1/ledger/entries", params={"case_id": case["id"]}).json()[0]
        assert c.get("/api/v1/ledger/proof/inclusion", params={"seq": entry["seq"]}).status_code == 200
    proofs = [("/api/v1/ledger/head", {}), ("/api/v1/ledger/proof/inclusion", {"seq": entry["seq"]}),
              ("/api/v1/ledger/proof/consistency", {"old_size": 1})]
    with stack.client(stack.user(role="court", unit="unit-a")) as c:
        for path, params in proofs:
            r = c.get(path, params=params)
            assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden_role", (path, r.text)
    with stack.client(stack.user(role="officer", unit="unit-b")) as c:
        r = c.get("/api/v1/ledger/proof/inclusion", params={"seq": entry["seq"]})
        assert r.status_code == 404 and r.json()["error"]["code"] == "entry_not_found", r.text
        assert c.get("/api/v1/ledger/head").status_code == 200  # a tree head names no entry
    with stack.client(stack.user(role="admin", unit="hq")) as c:
        assert c.get("/api/v1/ledger/proof/inclusion", params={"seq": entry["seq"]}).status_code == 200


def test_evidence_list_pages_through_a_case_with_a_cursor(stack, officer):
    with stack.client(officer) as c:
        case = c.post("/api/v1/cases", json={"case_number": f"PAGE-{uuid.uuid4().hex[:8]}", "title": "pages"}).json()
        other = c.post("/api/v1/cases", json={"case_number": f"PAGE-{uuid.uuid4().hex[:8]}", "title": "other"}).json()
        made = [_upload(c, case["id"], os.urandom(100), filename=f"f{i}.bin").json()["id"] for i in range(7)]
        foreign = _upload(c, other["id"], os.urandom(100)).json()["id"]
        everything = c.get(f"/api/v1/cases/{case['id']}/evidence")
        assert [i["id"] for i in everything.json()] == made and "link" not in everything.headers
        seen, url, pages = [], f"/api/v1/cases/{case['id']}/evidence?limit=3", 0
        while url:
            r = c.get(url)
            assert r.status_code == 200, r.text
            assert len(r.json()) <= 3
            seen += [i["id"] for i in r.json()]
            pages += 1
            url = r.links.get("next", {}).get("url")
        assert seen == made and pages == 3  # 3 + 3 + 1; the last page names no next one
        for bad in (foreign, "no-such-item"):
            r = c.get(f"/api/v1/cases/{case['id']}/evidence", params={"after": bad})
            assert r.status_code == 404 and r.json()["error"]["code"] == "cursor_not_found", r.text
        assert c.get(f"/api/v1/cases/{case['id']}/evidence", params={"limit": 1001}).status_code == 422


def test_pages_of_items_received_at_the_same_instant_miss_and_repeat_none(stack, officer):
    """Items received at the same instant (several workers' uploads in one clock tick) are
    ordered by id, and a page that ends among them continues with the next: every page size
    gives every item once, in the list's order, whichever of them a page ends on."""
    from sqlalchemy import update

    from archive.models import EvidenceItem

    with stack.client(officer) as c:
        case = c.post("/api/v1/cases", json={"case_number": f"TIES-{uuid.uuid4().hex[:8]}", "title": "ties"}).json()
        made = [_upload(c, case["id"], os.urandom(64), filename=f"t{i}.bin").json()["id"] for i in range(9)]
        # Items 2-6 share one instant (as a clock of coarse resolution would give them).
        with stack.services.db.session() as s:
            instant = s.get(EvidenceItem, made[2]).received_at
            s.execute(update(EvidenceItem).where(EvidenceItem.id.in_(made[2:7])).values(received_at=instant))
        expected = made[:2] + sorted(made[2:7]) + made[7:]
        assert [i["id"] for i in c.get(f"/api/v1/cases/{case['id']}/evidence").json()] == expected
        for limit in (1, 2, 3, 4, 5, 8, 9):
            seen, url = [], f"/api/v1/cases/{case['id']}/evidence?limit={limit}"
            while url:
                r = c.get(url)
                assert r.status_code == 200, r.text
                seen += [i["id"] for i in r.json()]
                url = r.links.get("next", {}).get("url")
            assert seen == expected, limit


def test_a_listed_item_is_its_own_record_without_a_documents_text(stack, officer, tmp_path):
    """A case's list shows each item exactly as ``GET /api/v1/evidence/{id}`` does (its
    derived objects, flags, duplicates, media facts), but for a document's extracted text,
    which only the item's own record carries: whatever the kind, with the facts the workers
    found after the upload."""
    from tests.archive.test_exports import tiny_clip, tiny_pdf

    with stack.client(officer) as c:
        case = c.post("/api/v1/cases", json={"case_number": f"LIST-{uuid.uuid4().hex[:8]}", "title": "list"}).json()
        other = c.post("/api/v1/cases", json={"case_number": f"LIST-{uuid.uuid4().hex[:8]}", "title": "o"}).json()
        statement = "询问笔录 第一页\nStatement of the party, page one\n".encode() * 50
        shared = os.urandom(300)
        made = [
            _upload(c, case["id"], statement, kind="document", filename="笔录.txt").json(),
            _upload(c, case["id"], tiny_pdf(), kind="document", filename="notice.pdf").json(),
            _upload(c, case["id"], tiny_clip(tmp_path / "clip.mp4"), kind="bodycam_video", filename="clip.mp4",
                    device_id="CAM-LIST").json(),
            _upload(c, case["id"], shared, filename="shared.bin").json(),
        ]
        _upload(c, other["id"], shared, filename="shared-too.bin")
        for item in made:
            stack.wait_item(officer, item["id"], lambda i: i["seal_status"] == "sealed", timeout=120)
        listed = {i["id"]: i for i in c.get(f"/api/v1/cases/{case['id']}/evidence").json()}
        assert list(listed) == [i["id"] for i in made]
        for item in made:
            own = c.get(f"/api/v1/evidence/{item['id']}").json()
            facts = own["media_facts"]
            if own["kind"] == "document":
                assert facts["document"].pop("text"), own  # the record has the text; the list not
            assert listed[item["id"]] == own
        assert "第一页" in c.get(f"/api/v1/evidence/{made[0]['id']}").json()["media_facts"]["document"]["text"]
        # The record, read as rows and written by orjson, is byte for byte what the model writes
        # for the item read as ORM objects, its duplicates those in cases the reader may see.
        from api.schemas import ItemPublic
        from archive.evidence import items as evidence_service
        from archive.models import EvidenceItem, User

        with stack.services.db.read() as s:
            for item in made:
                orm = s.get(EvidenceItem, item["id"])
                reader = s.get(User, orm.uploaded_by)
                expected = ItemPublic.of(orm, duplicate_of=evidence_service.duplicates_of(
                    s, user=reader, items=[orm])[orm.id]).model_dump_json().encode()
                assert c.get(f"/api/v1/evidence/{item['id']}").content == expected
        # The facts the workers found after the upload are listed (the video's probe, the PDF's pages).
        assert listed[made[2]["id"]]["media_facts"] and listed[made[1]["id"]]["media_facts"]["document"]
        assert listed[made[3]["id"]]["duplicate_of"] and listed[made[0]["id"]]["derived"]


def test_a_reader_of_the_ledger_holds_one_database_connection_at_a_time(stack, officer, case):
    """A request never holds two of the API's database connections at once: with every one
    held by a reader waiting for a second, a burst of readers would wait out the pool's
    timeout and get 503. Readers of the ledger sequence what waits before they take theirs.
    On PostgreSQL, where the pool is bounded and entries wait to be sequenced (the embedded
    default's worker runs in this process, and its threads are counted too)."""
    if stack.name != "services":
        pytest.skip("SQLite sequences each entry at once and its pool is not the bound")
    from sqlalchemy import event

    from tests.conftest import sequenced_soon

    with stack.client(officer) as c:
        item = c.post(f"/api/v1/cases/{case['id']}/evidence", content=os.urandom(500),
                      params={"kind": "other", "filename": "held.bin"}).json()
        stack.wait_item(officer, item["id"], lambda i: i["seal_status"] == "sealed")
        sequenced_soon(stack.services.db)
        seq = c.get("/api/v1/ledger/entries", params={"case_id": case["id"]}).json()[0]["seq"]
        paths = [f"/api/v1/ledger/entries?case_id={case['id']}", "/api/v1/ledger/head",
                 f"/api/v1/ledger/proof/inclusion?seq={seq}", "/api/v1/ledger/proof/consistency?old_size=1"]
        for path in paths:  # warm: the token is cached
            assert c.get(path).status_code == 200, path
        engine = stack.services.db.engine
        held: dict[int, int] = {}
        most: dict[int, int] = {}
        taken_by: dict[int, int] = {}  # a connection's record -> the thread that took it

        def out(_dbapi, record, _proxy):  # type: ignore[no-untyped-def]
            me = taken_by[id(record)] = threading.get_ident()
            held[me] = held.get(me, 0) + 1
            most[me] = max(most.get(me, 0), held[me])

        def back(_dbapi, record):  # type: ignore[no-untyped-def]
            # A reading session may give its connection back from the event loop's thread.
            taker = taken_by.pop(id(record), threading.get_ident())
            held[taker] = held.get(taker, 0) - 1

        event.listen(engine, "checkout", out)
        event.listen(engine, "checkin", back)
        try:
            for path in paths:
                c.get(f"/api/v1/evidence/{item['id']}/content")  # something waits to be sequenced
                assert c.get(path).status_code == 200, path
            # No thread (a request's, the sequencer's) held two at once.
            assert max(most.values()) == 1, most
        finally:
            event.remove(engine, "checkout", out)
            event.remove(engine, "checkin", back)


def test_a_case_read_is_what_the_model_writes_whatever_its_standing(stack, officer, case):
    """A case is read in one statement and written by orjson: byte for byte what its model
    writes for the case read as objects with its standing, through a legal hold placed and
    released and a retention class set; another unit's case answers as an unknown one."""
    from api.schemas import CasePublic
    from archive.models import Case
    from archive.records import retention

    def expected() -> bytes:
        with stack.services.db.read() as s:
            row = s.get(Case, case["id"])
            standing = retention.standing(s, settings=stack.services.settings, case_ids=[row.id])[row.id]
            return CasePublic.of(row, legal_hold=standing.hold is not None,
                                 retention_class=standing.retention_class).model_dump_json().encode()

    admin = stack.user(role="admin", unit="hq")
    path = f"/api/v1/cases/{case['id']}"
    classes = sorted(stack.services.settings.retention_classes)
    with stack.client(officer) as c, stack.client(admin) as a:
        seen = []
        for step in ("as made", "hold", "class", "release"):
            if step == "hold":
                assert a.post(f"{path}/hold", json={"reason": "行政诉讼进行中"}).status_code == 201
            elif step == "class":
                other = next(k for k in classes if k != c.get(path).json()["retention_class"])
                assert a.put(f"{path}/retention", json={"retention_class": other, "reason": "复核"}).status_code == 200
            elif step == "release":
                assert a.post(f"{path}/hold/release", json={"reason": "诉讼结束"}).status_code == 200
            answer = c.get(path)
            assert answer.status_code == 200 and answer.content == expected(), step
            assert a.get(path).content == answer.content
            seen.append((answer.json()["legal_hold"], answer.json()["retention_class"]))
        assert [hold for hold, _ in seen] == [False, True, True, False]
        assert seen[2][1] != seen[1][1] and seen[3][1] == seen[2][1]
    with stack.client(stack.user(role="officer", unit="unit-b")) as b:
        hidden, unknown = b.get(path), b.get(f"/api/v1/cases/{uuid.uuid4()}")
        assert hidden.status_code == unknown.status_code == 404
        assert hidden.json()["error"]["code"] == unknown.json()["error"]["code"] == "case_not_found"


def test_reading_a_documents_extracted_text_is_a_custody_entry(stack, officer):
    """A document's record carries the text extracted from it: the witness's statement itself.
    Each read of it is a ``content_read`` entry (purpose ``extracted text``), as a download
    is; the record of an item with no text is not a read of its content."""
    from archive.custody import ledger
    from archive.models import LedgerEntry

    with stack.client(officer) as c:
        case = c.post("/api/v1/cases", json={"case_number": f"TXT-{uuid.uuid4().hex[:8]}", "title": "t"}).json()
        statement = _upload(c, case["id"], "询问笔录：证人张三陈述。".encode() * 20, kind="document",
                            filename="statement.txt").json()
        plain = _upload(c, case["id"], os.urandom(500), filename="blob.bin").json()
        for item in (statement, plain):
            stack.wait_item(officer, item["id"], lambda i: i["seal_status"] == "sealed", timeout=120)

        def reads(item_id: str) -> list[dict]:
            ledger.settle(stack.services.db.engine)
            with stack.services.db.snapshot() as s:
                rows = s.execute(select(LedgerEntry.details).where(
                    LedgerEntry.item_id == item_id, LedgerEntry.action == "content_read")).scalars()
                return [json.loads(d) for d in rows]

        before = len(reads(statement["id"]))
        shown = c.get(f"/api/v1/evidence/{statement['id']}").json()
        assert "证人张三" in shown["media_facts"]["document"]["text"]
        after = reads(statement["id"])
        assert len(after) == before + 1 and after[-1]["purpose"] == "extracted text", after
        c.get(f"/api/v1/evidence/{plain['id']}").raise_for_status()
        assert reads(plain["id"]) == []
