"""Court requests by case number: the same answer whether or not the case exists; reviewers of
the case's unit fulfil them (an export for the court user, approved by a second reviewer) or
decline them; every step is a custody entry."""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import select

from archive.exports import court_requests
from archive.exports.models import CourtRequest, CourtRequestStatus
from archive.models import LedgerEntry
from tests.conftest import receive_directly, run_sql, sequenced_soon


def _request(c, number: str, **extra):  # type: ignore[no-untyped-def]
    body = {"case_number": number, "court_reference": "(2026)京0101刑初123号", "legal_basis": "刑事诉讼法第54条", **extra}
    return c.post("/api/v1/export-requests", json=body)


def test_request_answers_alike_and_reaches_only_the_unit(stack, case):
    court_name = f"court-{uuid.uuid4().hex[:6]}"
    court = stack.user(role="court", unit="court-1", name=court_name)
    with stack.client(court) as c:
        real = _request(c, case["case_number"])
        fake = _request(c, f"NO-SUCH-{uuid.uuid4().hex[:6]}")
        assert real.status_code == fake.status_code == 202
        assert set(real.json()) == set(fake.json()) == {"id", "status"}
        assert real.json()["status"] == fake.json()["status"] == "pending"
        mine = c.get("/api/v1/export-requests").json()
        assert {r["id"] for r in mine} == {real.json()["id"], fake.json()["id"]}
        assert all(r["case_id"] is None for r in mine)  # the court never learns the case id
        assert _request(c, "").status_code == 422
    with stack.client(stack.user(role="officer", unit="unit-a")) as officer:
        r = _request(officer, case["case_number"])
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden_role"
        assert officer.get("/api/v1/export-requests").status_code == 403
    with stack.client(stack.user(role="reviewer", unit="unit-a")) as reviewer:
        seen = reviewer.get("/api/v1/export-requests").json()
        ours = [r for r in seen if r["id"] == real.json()["id"]]
        assert ours and ours[0]["case_id"] == case["id"] and ours[0]["requested_by"] == court_name
        assert fake.json()["id"] not in {r["id"] for r in seen}
    with stack.client(stack.user(role="reviewer", unit="unit-z")) as stranger:
        assert real.json()["id"] not in {r["id"] for r in stranger.get("/api/v1/export-requests").json()}
        r = stranger.post(f"/api/v1/export-requests/{real.json()['id']}/decline", json={"reason": "x"})
        assert r.status_code == 404 and r.json()["error"]["code"] == "court_request_not_found"


def test_reviewer_fulfils_second_approves_or_declines(stack, case):
    court_name = f"court-{uuid.uuid4().hex[:6]}"
    court = stack.user(role="court", unit="court-1", name=court_name)
    other_court = f"court-{uuid.uuid4().hex[:6]}"
    stack.user(role="court", unit="court-2", name=other_court)
    with stack.client(court) as c:
        wanted = _request(c, case["case_number"]).json()["id"]
        unwanted = _request(c, case["case_number"]).json()["id"]
    receive_directly(stack, case, b"a record of the inspection", sm3=False)
    a, b = stack.user(role="reviewer", unit="unit-a"), stack.user(role="reviewer", unit="unit-a")
    with stack.client(a) as ra:
        wrong = ra.post(f"/api/v1/cases/{case['id']}/exports", json={"recipient": other_court, "request": wanted})
        assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "recipient_not_requester"
        export = ra.post(f"/api/v1/cases/{case['id']}/exports", json={"request": wanted})
        assert export.status_code == 201, export.text
        assert export.json()["recipient"] == court_name and export.json()["status"] == "requested"
        again = ra.post(f"/api/v1/cases/{case['id']}/exports", json={"request": wanted})
        assert again.status_code == 409 and again.json()["error"]["code"] == "court_request_decided"
        assert ra.post(f"/api/v1/exports/{export.json()['id']}/approve").json()["error"]["code"] == "separation_of_duties"
        declined = ra.post(f"/api/v1/export-requests/{unwanted}/decline", json={"reason": "重复申请"})
        assert declined.status_code == 200 and declined.json()["status"] == "declined"
        assert ra.post(f"/api/v1/export-requests/{unwanted}/decline", json={"reason": "again"}).status_code == 409
        assert ra.post(f"/api/v1/export-requests/{unwanted}/decline", json={}).status_code == 422
    with stack.client(b) as rb:
        assert rb.post(f"/api/v1/exports/{export.json()['id']}/approve").status_code == 200
    with stack.client(court) as c:
        states = {r["id"]: r for r in c.get("/api/v1/export-requests").json()}
        assert states[wanted]["status"] == "fulfilled" and states[wanted]["export_id"] == export.json()["id"]
        assert states[unwanted]["status"] == "declined" and states[unwanted]["reason"] == "重复申请"
        assert export.json()["id"] in {e["id"] for e in c.get("/api/v1/exports").json()}
    with stack.services.db.snapshot() as s:
        actions = s.execute(select(LedgerEntry.action).where(LedgerEntry.case_id == case["id"])).scalars().all()
    for action in ("court_request_received", "export_requested", "court_request_fulfilled", "court_request_declined",
                   "export_approved"):
        assert action in actions, action


def test_a_case_with_nothing_to_export_is_refused_when_asked_and_the_request_still_waits(stack, case):
    """An export of a case holding no evidence could only fail for good once approved (and the
    court request it fulfilled answered by nothing): it is refused when asked for, 409
    ``nothing_to_export``, and the court request stays pending, to decline or fulfil later."""
    court_name = f"court-{uuid.uuid4().hex[:6]}"
    court = stack.user(role="court", unit="court-1", name=court_name)
    with stack.client(court) as c:
        asked = _request(c, case["case_number"]).json()["id"]
    with stack.client(stack.user(role="reviewer", unit="unit-a")) as reviewer:
        for body in ({"request": asked}, {"recipient": court_name}):
            r = reviewer.post(f"/api/v1/cases/{case['id']}/exports", json=body)
            assert r.status_code == 409 and r.json()["error"]["code"] == "nothing_to_export", r.text
        assert reviewer.get(f"/api/v1/cases/{case['id']}/exports").json() == []
        mine = {r["id"]: r for r in reviewer.get("/api/v1/export-requests").json()}
        assert mine[asked]["status"] == "pending" and mine[asked]["export_id"] is None
        receive_directly(stack, case, b"the decision, scanned", sm3=False)
        r = reviewer.post(f"/api/v1/cases/{case['id']}/exports", json={"request": asked})
        assert r.status_code == 201 and r.json()["recipient"] == court_name, r.text


def test_a_requested_export_nobody_will_approve_is_withdrawn(stack, case):
    """An export nobody will approve kept the case from closing (export_in_progress) with no way
    out. Its requester or a reviewer of the unit withdraws it with a reason: it is not built, it
    no longer holds the case, and the court request it answered waits for a reviewer again."""
    court_name = f"court-{uuid.uuid4().hex[:6]}"
    court = stack.user(role="court", unit="court-1", name=court_name)
    with stack.client(court) as c:
        wanted = _request(c, case["case_number"]).json()["id"]
    receive_directly(stack, case, b"a record of the withdrawal", sm3=False)
    first, second = stack.user(role="reviewer", unit="unit-a"), stack.user(role="reviewer", unit="unit-a")
    with stack.client(first) as ra:
        export = ra.post(f"/api/v1/cases/{case['id']}/exports", json={"recipient": court_name, "request": wanted}).json()
        gates = ra.get(f"/api/v1/cases/{case['id']}/closing-gates").json()["reasons"]
        assert "export_in_progress" in {g["code"] for g in gates}
    with stack.client(stack.user(role="officer", unit="unit-a")) as officer:
        r = officer.post(f"/api/v1/exports/{export['id']}/withdraw", json={"reason": "不再需要"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden_role", r.text
    with stack.client(stack.user(role="reviewer", unit="unit-z")) as stranger:
        r = stranger.post(f"/api/v1/exports/{export['id']}/withdraw", json={"reason": "不再需要"})
        assert r.status_code == 404 and r.json()["error"]["code"] == "export_not_found", r.text
    with stack.client(second) as rb:
        r = rb.post(f"/api/v1/exports/{export['id']}/withdraw", json={"reason": "\u200b"})
        assert r.status_code == 422 and r.json()["error"]["code"] == "reason_required", r.text
        r = rb.post(f"/api/v1/exports/{export['id']}/withdraw", json={"reason": "法院已撤回调取"})
        assert r.status_code == 200 and r.json()["status"] == "withdrawn", r.text
        r = rb.post(f"/api/v1/exports/{export['id']}/approve")
        assert r.status_code == 409 and r.json()["error"]["code"] == "export_not_pending", r.text
        r = rb.post(f"/api/v1/exports/{export['id']}/withdraw", json={"reason": "again"})
        assert r.status_code == 409 and r.json()["error"]["code"] == "export_not_pending", r.text
        gates = rb.get(f"/api/v1/cases/{case['id']}/closing-gates").json()["reasons"]
        assert "export_in_progress" not in {g["code"] for g in gates}, gates
        waiting = [x for x in rb.get("/api/v1/export-requests").json() if x["id"] == wanted]
        assert waiting and waiting[0]["status"] == "pending", waiting
    with stack.services.db.read() as s:
        actions = s.execute(select(LedgerEntry.action).where(LedgerEntry.case_id == case["id"])).scalars().all()
    assert "export_withdrawn" in actions and "court_request_reopened" in actions


def _stuck_request(stack, case) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """A court request left as releases before ``court_request_reopened`` left one: fulfilled
    by an export that failed (written straight to the database, as that release did, with no
    reopening). Returns (request id, export id)."""
    court_name = f"court-{uuid.uuid4().hex[:6]}"
    court = stack.user(role="court", unit="court-1", name=court_name)
    with stack.client(court) as c:
        asked = _request(c, case["case_number"]).json()["id"]
    with stack.client(stack.user(role="reviewer", unit="unit-a")) as reviewer:
        export = reviewer.post(f"/api/v1/cases/{case['id']}/exports", json={"request": asked}).json()
    run_sql(stack.services.db, "UPDATE exports SET status = 'failed', error = 'the store refused the bag', "
            "finished_at = created_at WHERE id = :id", {"id": export["id"]})
    with stack.services.db.read() as s:
        assert s.get(CourtRequest, asked).status == CourtRequestStatus.fulfilled
    return asked, export["id"]


def _reopened(stack, case) -> list[dict]:  # type: ignore[no-untyped-def]
    sequenced_soon(stack.services.db)
    with stack.services.db.snapshot() as s:
        return [json.loads(d) for d in s.execute(select(LedgerEntry.details).where(
            LedgerEntry.case_id == case["id"], LedgerEntry.action == "court_request_reopened",
        ).order_by(LedgerEntry.seq)).scalars()]


def test_a_request_left_fulfilled_by_a_failed_export_is_reopened_by_the_reconciler(stack, case):
    """Releases before court_request_reopened left a court request fulfilled by an export that
    failed, for good: the workers' reconciler pass reopens it, with the same custody entry a
    failing export now writes, exactly once though passes and workers run it again and at once."""
    receive_directly(stack, case, b"a record for the court", sm3=False)
    asked, export_id = _stuck_request(stack, case)
    deadline = time.monotonic() + 4 * stack.settings.work_reconcile_seconds + 10
    while True:  # the stack's own worker, its reconciler pass every work_reconcile_seconds
        with stack.services.db.read() as s:
            request = s.get(CourtRequest, asked)
            if request.status == CourtRequestStatus.pending:
                break
        assert time.monotonic() < deadline, "the reconciler never reopened the request"
        time.sleep(0.2)
    assert request.export_id is None and request.decided_by is None
    expected = {"request": asked, "export": export_id, "reason": "the store refused the bag"}
    assert _reopened(stack, case) == [expected]
    # A second one, healed by two passes at once (and the worker's own): reopened once.
    second, second_export = _stuck_request(stack, case)
    with ThreadPoolExecutor(2) as pool:
        counts = list(pool.map(lambda _: court_requests.reopen_left_fulfilled(
            stack.services.db, actor="system:reconciler"), range(2)))
    assert sum(counts) <= 1
    assert court_requests.reopen_left_fulfilled(stack.services.db, actor="system:reconciler") == 0
    with stack.services.db.read() as s:
        assert s.get(CourtRequest, second).status == CourtRequestStatus.pending
    assert _reopened(stack, case) == [
        expected, {"request": second, "export": second_export, "reason": "the store refused the bag"}]
    with stack.client(stack.user(role="reviewer", unit="unit-a")) as reviewer:
        mine = {r["id"]: r for r in reviewer.get("/api/v1/export-requests").json()}
        assert mine[asked]["status"] == mine[second]["status"] == "pending"
