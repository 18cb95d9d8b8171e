"""A case's evidence list read again is sent from the API process's cache, and any change of
what it shows still counts from the very next request: an item received, processed or
sealed by a worker (another process), a row changed straight in the database, content
arriving in another case (each item names its duplicates in the cases the reader may see).
On both stacks: triggers advance the case's numbers with every change (revision 0024), and
a page is sent from the cache only at the numbers it was read at."""

from __future__ import annotations

import os
import uuid
from concurrent.futures import ThreadPoolExecutor, wait

import pytest

from tests.conftest import run_sql


def _case(client, prefix: str = "LC") -> dict:  # type: ignore[no-untyped-def]
    r = client.post("/api/v1/cases", json={"case_number": f"{prefix}-{uuid.uuid4().hex[:8]}", "title": "list"})
    assert r.status_code == 201, r.text
    return r.json()


def _upload(client, case_id: str, data: bytes, name: str) -> dict:  # type: ignore[no-untyped-def]
    r = client.post(f"/api/v1/cases/{case_id}/evidence", params={"kind": "other", "filename": name}, content=data)
    assert r.status_code == 201, r.text
    return r.json()


def _listed(stack, client, case_id: str, **params) -> list[dict]:  # type: ignore[no-untyped-def]
    r = client.get(f"/api/v1/cases/{case_id}/evidence", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_a_cached_list_shows_every_change_from_the_next_request_whoever_made_it(stack, officer):
    lists = stack.services.lists
    with stack.client(officer) as c:
        case = _case(c)
        first = _upload(c, case["id"], os.urandom(500), "first.bin")
        stack.wait_item(officer, first["id"], lambda i: i["seal_status"] == "sealed", timeout=120)
        hits = lists.hits
        once, again = (c.get(f"/api/v1/cases/{case['id']}/evidence") for _ in range(2))
        assert once.content == again.content and lists.hits > hits, "the second read was not answered from the cache"

        # Received through the API, then processed and sealed by the worker, another process:
        # the list follows each step, to the same record the item's own read gives.
        second = _upload(c, case["id"], os.urandom(700), "second.bin")
        shown = _listed(stack, c, case["id"])
        assert [i["id"] for i in shown] == [first["id"], second["id"]]
        # Sealed, and the worker's other steps (SM3, ...) ended too: a step still to come would
        # change the record between the two reads.
        sealed = stack.wait_item(officer, second["id"], lambda i: i["seal_status"] == "sealed" and all(
            step["state"] not in ("queued", "running") for step in (i["processing"] or {}).values()), timeout=120)
        assert _listed(stack, c, case["id"])[1] == sealed
        assert {d["role"] for d in sealed["derived"]} >= {"manifest", "cades", "sm2"}

        # Changed straight in the database by an insider: seen by the next request.
        _listed(stack, c, case["id"])
        run_sql(stack.services.db, "UPDATE evidence_items SET device_id = :d WHERE id = :id",
                {"d": "CAM-SQL", "id": first["id"]})
        assert _listed(stack, c, case["id"])[0]["device_id"] == "CAM-SQL"

        # A page after a cursor is kept apart from the whole list, and follows too.
        page = c.get(f"/api/v1/cases/{case['id']}/evidence", params={"limit": 1})
        assert page.headers["Link"] == (f'</api/v1/cases/{case["id"]}/evidence?after={first["id"]}&limit=1>; '
                                        'rel="next"')
        assert [i["id"] for i in _listed(stack, c, case["id"], after=first["id"], limit=1)] == [second["id"]]
        third = _upload(c, case["id"], os.urandom(900), "third.bin")
        assert [i["id"] for i in _listed(stack, c, case["id"], after=second["id"], limit=1)] == [third["id"]]
        assert "Link" not in c.get(f"/api/v1/cases/{case['id']}/evidence", params={"limit": 5}).headers


def test_duplicates_in_a_cached_list_follow_content_arriving_in_cases_the_reader_may_see(stack, officer):
    """Officers see duplicates in their unit's cases, administrators in every case: each is
    answered its own page, and content arriving in another case shows in the next read."""
    admin = stack.user(role="admin", unit="hq")
    colleague = stack.user(role="officer", unit="unit-a")
    stranger = stack.user(role="officer", unit=f"unit-{uuid.uuid4().hex[:6]}")
    shared = os.urandom(1000)
    with stack.client(officer) as c, stack.client(admin) as a, stack.client(colleague) as k, \
            stack.client(stranger) as s:
        case = _case(c)
        item = _upload(c, case["id"], shared, "shared.bin")
        for client in (c, a, c, a):
            assert _listed(stack, client, case["id"])[0]["duplicate_of"] == []

        elsewhere = _upload(s, _case(s)["id"], shared, "elsewhere.bin")
        assert _listed(stack, c, case["id"])[0]["duplicate_of"] == []  # another unit's case: not for them
        assert _listed(stack, a, case["id"])[0]["duplicate_of"] == [elsewhere["id"]]

        nearby = _upload(k, _case(k)["id"], shared, "nearby.bin")
        assert _listed(stack, c, case["id"])[0]["duplicate_of"] == [nearby["id"]]
        assert _listed(stack, a, case["id"])[0]["duplicate_of"] == [elsewhere["id"], nearby["id"]]
        assert _listed(stack, c, case["id"])[0]["id"] == item["id"]


def test_an_empty_file_is_the_same_evidence_as_another_cases_only_when_described_alike(stack, officer):
    """No bytes are no content: an empty file in one case is not flagged ``duplicate_content``,
    nor listed among another case's duplicates, for another case's empty file; only for an empty
    item of the same kind, device, declared start and file name. The lists follow a change of
    an empty item's description made straight in the database (revision 0025)."""
    name = f"empty-{uuid.uuid4().hex[:8]}.txt"
    with stack.client(officer) as c:
        first_case, second_case = _case(c), _case(c)
        first = _upload(c, first_case["id"], b"", name)
        assert first["size"] == 0 and "duplicate_content" not in first["flags"], first
        other = _upload(c, second_case["id"], b"", f"other-{name}")
        assert "duplicate_content" not in other["flags"] and other["duplicate_of"] == [], other
        assert c.get(f"/api/v1/evidence/{other['id']}").json()["duplicate_of"] == []
        assert _listed(stack, c, first_case["id"])[0]["duplicate_of"] == []
        alike = _upload(c, second_case["id"], b"", name)
        assert "duplicate_content" in alike["flags"] and alike["duplicate_of"] == [first["id"]], alike
        assert c.get(f"/api/v1/evidence/{first['id']}").json()["duplicate_of"] == [alike["id"]]
        assert _listed(stack, c, first_case["id"])[0]["duplicate_of"] == [alike["id"]]
        assert {i["id"]: i["duplicate_of"] for i in _listed(stack, c, second_case["id"])} == {
            other["id"]: [], alike["id"]: [first["id"]]}
        run_sql(stack.services.db, "UPDATE evidence_items SET device_id = :d WHERE id = :id",
                {"d": "CAM-SQL", "id": alike["id"]})
        assert _listed(stack, c, first_case["id"])[0]["duplicate_of"] == []
        assert c.get(f"/api/v1/evidence/{first['id']}").json()["duplicate_of"] == []


def test_the_same_content_arriving_in_many_cases_at_once_is_all_received_and_listed(stack, officer):
    """Every upload advances its case's number, and those of content other cases hold, as
    it commits: twenty uploads of one file into four cases at once all succeed (no
    transaction waits on another's numbers in the opposite order), and each case's list,
    read before and after, names the others' items as its duplicates."""
    shared = os.urandom(2000)
    with stack.client(officer) as c:
        cases = [_case(c, "LCX")["id"] for _ in range(4)]
        for case_id in cases:
            _listed(stack, c, case_id)

    def send(n: int):  # type: ignore[no-untyped-def]
        with stack.client(officer) as client:
            r = client.post(f"/api/v1/cases/{cases[n % 4]}/evidence", params={"kind": "other", "filename": f"{n}.bin"},
                            content=shared)
            return r.status_code, r.json()

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(send, range(20)))
    assert {status for status, _ in answers} <= {200, 201}, answers
    kept = {body["case_id"]: body["id"] for status, body in answers if status == 201}
    assert sorted(kept) == sorted(cases), answers  # one item a case; the rest were the same content again
    with stack.client(officer) as c:
        for case_id in cases:
            (listed,) = _listed(stack, c, case_id)
            assert listed["id"] == kept[case_id]
            assert sorted(listed["duplicate_of"]) == sorted(i for k, i in kept.items() if k != case_id)


def test_content_two_cases_receive_in_commits_at_the_same_moment_shows_in_both_lists(stack, officer):
    """Two transactions receiving one content into two cases, their commit-time triggers run
    before either has committed (SET CONSTRAINTS ALL IMMEDIATE runs them then): the later
    commit still advances ``content``, so the first case's list, read and kept between the
    two commits, names the second case's item next (the item's own read did; the cached
    list did not, until something else in its case changed). SQLite serialises writers."""
    if stack.name != "services":
        pytest.skip("two transactions write at once only on PostgreSQL; SQLite serialises writers")
    from sqlalchemy import text

    with stack.client(officer) as c:
        first, second, template = _case(c)["id"], _case(c)["id"], _case(c)["id"]
        model = _upload(c, template, os.urandom(300), "model.bin")["id"]
        content = os.urandom(32).hex()

        def receive(conn, case_id: str) -> str:  # type: ignore[no-untyped-def]
            # An insider's insert, as receiving writes it (a copy of a received row), with the
            # deferred triggers run now, as they run at the commit.
            item_id = str(uuid.uuid4())
            conn.execute(text(
                "INSERT INTO evidence_items (id, case_id, vault_id, kind, original_filename, media_type, size, "
                "sha256, storage_key, uploaded_by, received_at, status, flags, details, processing, seal_status) "
                "SELECT :id, CAST(:case AS varchar), (SELECT id FROM vaults WHERE case_id = CAST(:case AS varchar)), kind, original_filename, "
                "media_type, size, :sha, :key, uploaded_by, now(), status, flags, details, processing, seal_status "
                "FROM evidence_items WHERE id = :model"),
                {"id": item_id, "case": case_id, "sha": content, "key": f"race/{item_id}", "model": model})
            conn.execute(text("SET CONSTRAINTS ALL IMMEDIATE"))
            return item_id

        engine = stack.services.db.engine
        with engine.connect() as one, engine.connect() as two, ThreadPoolExecutor(1) as pool:
            here = receive(one, first)
            there = pool.submit(receive, two, second)  # waits for the first's end, with the change
            # Give the second its moment to ask before the first commits (without the lock it
            # answers at once, having seen no other case's row; with it, it waits for the commit).
            wait([there], timeout=1.0)
            one.commit()
            for _ in range(3):
                assert _listed(stack, c, first)[0]["duplicate_of"] == []  # the second is not committed
            there_id = there.result(timeout=30)
            two.commit()
        assert c.get(f"/api/v1/evidence/{here}").json()["duplicate_of"] == [there_id]
        assert _listed(stack, c, first)[0]["duplicate_of"] == [there_id]
        assert _listed(stack, c, second)[0]["duplicate_of"] == [here]
