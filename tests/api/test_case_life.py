"""The case's legal life on both stacks: stages, legal reviews, gates, closing, the sealed
case archive record (openssl and the court verifier), uploads refused after closing, reopening."""

from __future__ import annotations

import base64
import json
import subprocess
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.conftest import Stack
from tests.api.test_continuity_api import settled


ASPECTS_OK = {a: {"ok": True, "comment": "in order"} for a in ("subject", "facts", "basis", "discretion", "procedure")}


def run(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=180)


def review(c, case_id: str, checkpoint: str, decision: str = "approve", opinion: str = "approved", **extra):  # type: ignore[no-untyped-def]
    aspects = ASPECTS_OK if decision == "approve" else {**ASPECTS_OK, "facts": {"ok": False, "comment": "thin"}}
    return c.post(f"/api/v1/cases/{case_id}/reviews", json={
        "checkpoint": checkpoint, "aspects": aspects, "decision": decision, "opinion": opinion, **extra})


def move(c, case_id: str, to: str, reason: str = "next step"):  # type: ignore[no-untyped-def]
    return c.post(f"/api/v1/cases/{case_id}/stage", json={"to": to, "reason": reason})


def moved(c, case_id: str, *stages: str) -> None:  # type: ignore[no-untyped-def]
    for to in stages:
        r = move(c, case_id, to)
        assert r.status_code == 200, r.text
        assert r.json()["to_stage"] == to


def stage_of(c, case_id: str) -> str:  # type: ignore[no-untyped-def]
    r = c.get(f"/api/v1/cases/{case_id}")
    assert r.status_code == 200, r.text
    return r.json()["stage"]


def settle(c, case_id: str, *, items: int, timeout: float = 180) -> dict:  # type: ignore[no-untyped-def]
    """The continuity report once nothing is pending and ``items`` items are sealed."""
    deadline = time.monotonic() + timeout
    while True:
        report = c.get(f"/api/v1/cases/{case_id}/continuity").json()
        listed = c.get(f"/api/v1/cases/{case_id}/evidence").json()
        if not report["pending"] and len(listed) == items and all(i["seal_status"] == "sealed" for i in listed):
            return report
        assert time.monotonic() < deadline, (report, listed)
        time.sleep(0.3)


def codes(r) -> list[str]:  # type: ignore[no-untyped-def]
    assert r.status_code == 409, r.text
    body = r.json()["error"]
    assert body["code"] == "case_not_ready", body
    assert all(set(x) == {"code", "message", "subject"} and x["message"] for x in body["reasons"]), body
    return [x["code"] for x in body["reasons"]]


def tus_meta(**kv: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in kv.items())


TUS = {"Tus-Resumable": "1.0.0"}


@pytest.mark.slow  # a worker seals items and analyses continuity
def test_case_life_from_filing_to_closing_and_its_sealed_record(stack: Stack, tmp_path: Path) -> None:
    unit = f"unit-{uuid.uuid4().hex[:6]}"
    officer = stack.user(role="officer", unit=unit)
    colleague_name = f"off2-{uuid.uuid4().hex[:6]}"
    colleague = stack.user(role="officer", unit=unit, name=colleague_name)
    reviewer_name = f"rev-{uuid.uuid4().hex[:6]}"
    reviewer = stack.user(role="reviewer", unit=unit, name=reviewer_name)
    outsider = stack.user(role="reviewer", unit="unit-elsewhere")
    admin = stack.user(role="admin", unit=unit)
    device = f"CAM-{uuid.uuid4().hex[:6]}"
    t0 = datetime(2026, 3, 1, 2, 0, tzinfo=timezone.utc)

    with stack.client(officer) as off, stack.client(reviewer) as rv, stack.client(colleague) as col, \
            stack.client(outsider) as out, stack.client(admin) as adm:
        case = off.post("/api/v1/cases", json={"case_number": f"CL-{uuid.uuid4().hex[:8]}", "title": "Life"}).json()
        cid = case["id"]
        assert case["stage"] == "filed" and stage_of(off, cid) == "filed"
        # An action nobody recorded: one open gap in continuous recording.
        r = off.post(f"/api/v1/cases/{cid}/actions", json={
            "kind": "seizure", "start": t0.isoformat(), "end": (t0 + timedelta(minutes=5)).isoformat(),
            "devices": [device]})
        assert r.status_code == 201, r.text
        settle(off, cid, items=0)

        # Closing is refused with every reason at once: the worker is stopped, so the item stays unsealed.
        stack.worker.stop()
        try:
            r = off.post(f"/api/v1/cases/{cid}/evidence", params={"kind": "other", "filename": "note.txt"},
                         content=b"record of the seizure " + uuid.uuid4().bytes)
            assert r.status_code == 201, r.text
            refused = codes(off.post(f"/api/v1/cases/{cid}/close"))
        finally:
            stack.worker.start()
        for code in ("stage_not_closable", "gap_unexplained", "item_unsealed", "too_few_reviews",
                     "closing_review_missing"):
            assert code in refused, refused
        settle(off, cid, items=1)

        # Handlers: the creator; a colleague assigned. Handlers never review; nor officers, admins,
        # another unit's reviewer.
        r = off.post(f"/api/v1/cases/{cid}/handlers", json={"user": colleague_name})
        assert r.status_code == 200 and colleague_name in r.json()["handlers"], r.text
        assert off.post(f"/api/v1/cases/{cid}/handlers", json={"user": reviewer_name}).status_code == 409
        for client in (off, col):
            r = review(client, cid, "filing")
            assert r.status_code == 403 and r.json()["error"]["code"] == "handler_cannot_review", r.text
        assert review(adm, cid, "filing").status_code == 403
        assert review(out, cid, "filing").status_code == 404
        assert review(rv, cid, "committee").json()["error"]["code"] == "review_not_due"
        r = rv.post(f"/api/v1/cases/{cid}/reviews", json={
            "checkpoint": "filing", "aspects": {**ASPECTS_OK, "basis": {"ok": False, "comment": "no article"}},
            "decision": "approve", "opinion": ""})
        assert r.status_code == 422 and r.json()["error"]["code"] == "approval_with_faults", r.text

        # The filing gate: the case cannot leave "filed" before its filing review approves.
        r = move(off, cid, "investigation")
        assert r.status_code == 409 and r.json()["error"]["code"] == "stage_gate", r.text
        assert move(rv, cid, "investigation").status_code == 403  # reviewers do not move cases
        assert move(off, cid, "closed").json()["error"]["code"] == "use_close"
        r = review(rv, cid, "filing")
        assert r.status_code == 201, r.text
        filing = r.json()
        assert filing["id"] and filing["seals"]["cades"] and filing["seals"]["timestamp_time"]
        moved(off, cid, "investigation", "notice", "legal_review")  # no hearing asked for
        assert move(off, cid, "service").json()["error"]["code"] == "stage_move_not_allowed"

        # A returned approval review sends the case back to its handlers, with the reasons.
        r = move(off, cid, "decision")
        assert r.status_code == 409 and r.json()["error"]["code"] == "stage_gate"
        r = review(rv, cid, "approval", decision="return", opinion="the facts of the seizure are not proven")
        assert r.status_code == 201, r.text
        assert stage_of(off, cid) == "investigation"
        life = off.get(f"/api/v1/cases/{cid}/stage").json()
        back = life["moves"][-1]
        assert (back["from_stage"], back["to_stage"], back["review_id"]) == ("legal_review", "investigation", r.json()["id"])
        assert "not proven" in back["reason"]

        moved(off, cid, "notice", "hearing", "legal_review")
        assert review(rv, cid, "approval").status_code == 201
        moved(off, cid, "discussion")
        r = move(off, cid, "decision")
        assert r.status_code == 409 and "committee" in r.json()["error"]["message"]
        assert review(rv, cid, "committee", discussion_minutes="Committee of 1 March: penalty agreed").status_code == 201
        moved(off, cid, "decision", "service", "enforcement")

        # A stage's documents: an item of the case linked to a stage it has reached, by a handler.
        item_id = off.get(f"/api/v1/cases/{cid}/evidence").json()[0]["id"]
        link = {"item": item_id, "role": "decision", "stage": "decision", "note": "决定书"}
        r = off.post(f"/api/v1/cases/{cid}/stage-documents", json=link)
        assert r.status_code == 201, r.text
        linked = r.json()
        assert (linked["stage"], linked["role"], linked["item"]) == ("decision", "decision", item_id)
        assert off.post(f"/api/v1/cases/{cid}/stage-documents", json=link).json()["id"] == linked["id"]
        assert rv.post(f"/api/v1/cases/{cid}/stage-documents", json=link).status_code == 403
        r = off.post(f"/api/v1/cases/{cid}/stage-documents", json={**link, "stage": "withdrawn"})
        assert r.status_code == 409 and r.json()["error"]["code"] == "stage_not_reached", r.text
        r = off.post(f"/api/v1/cases/{cid}/stage-documents", json={**link, "item": str(uuid.uuid4())})
        assert r.status_code == 404, r.text
        r = off.post(f"/api/v1/cases/{cid}/stage-documents", json={**link, "role": "poem"})
        assert r.status_code == 422, r.text
        assert [d["id"] for d in off.get(f"/api/v1/cases/{cid}/stage").json()["documents"]] == [linked["id"]]

        # Still not ready: the gap is open and the closing review is missing (reviews now suffice).
        refused = codes(off.post(f"/api/v1/cases/{cid}/close"))
        assert "gap_unexplained" in refused and "closing_review_missing" in refused
        assert "too_few_reviews" not in refused and "item_unsealed" not in refused
        gap = off.get(f"/api/v1/cases/{cid}/continuity").json()["gaps"][0]
        assert off.post(f"/api/v1/gaps/{gap['id']}/explanation", json={"reason": "camera not issued"}).status_code == 200
        assert rv.post(f"/api/v1/gaps/{gap['id']}/review", json={"accept": True}).status_code == 200
        refused = codes(off.post(f"/api/v1/cases/{cid}/close"))
        assert refused == ["closing_review_missing"], refused
        assert review(rv, cid, "closing").status_code == 201

        # An open tus upload made before closing cannot complete after it.
        r = off.post("/api/v1/uploads", headers={**TUS, "Upload-Length": "5",
                                                  "Upload-Metadata": tus_meta(case_id=cid, kind="other", filename="late.bin")})
        assert r.status_code == 201, r.text
        pending_upload = r.headers["location"]

        r = col.post(f"/api/v1/cases/{cid}/close")  # any handler closes
        assert r.status_code == 200, r.text
        archive_id = r.json()["id"]
        closed = off.get(f"/api/v1/cases/{cid}").json()
        assert closed["stage"] == "closed", closed
        reviews = off.get(f"/api/v1/cases/{cid}/reviews").json()
        assert [x["checkpoint"] for x in reviews] == ["filing", "approval", "approval", "committee", "closing"]
        assert all(x["seals"]["cades"] and x["seals"]["sm2"] for x in reviews)
        assert reviews[3]["discussion_minutes"].startswith("Committee")

        # After closing the vault accepts nothing: direct upload, tus creation and tus completion.
        r = off.post(f"/api/v1/cases/{cid}/evidence", params={"kind": "other", "filename": "late.txt"}, content=b"late")
        assert r.status_code == 409 and r.json()["error"]["code"] == "case_closed", r.text
        r = off.post("/api/v1/uploads", headers={**TUS, "Upload-Length": "4",
                                                  "Upload-Metadata": tus_meta(case_id=cid, kind="other", filename="l.bin")})
        assert r.status_code == 409 and r.json()["error"]["code"] == "case_closed", r.text
        r = off.patch(pending_upload, content=b"12345", headers={
            **TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"})
        assert r.status_code == 409 and r.json()["error"]["code"] == "case_closed", r.text
        assert len(off.get(f"/api/v1/cases/{cid}/evidence").json()) == 1
        assert off.post(f"/api/v1/cases/{cid}/close").json()["error"]["code"] == "case_closed"
        r = off.post(f"/api/v1/cases/{cid}/stage-documents", json={**link, "role": "closing_report"})
        assert r.status_code == 409 and r.json()["error"]["code"] == "case_closed", r.text

        record = off.get(f"/api/v1/cases/{cid}/archive")
        assert record.status_code == 200, record.text
        seal = off.get(f"/api/v1/cases/{cid}/archive/seal").content
        sm2 = off.get(f"/api/v1/cases/{cid}/archive/sm2").content
        assert out.get(f"/api/v1/cases/{cid}/archive").status_code == 404

        # Reopening: a reviewer (not a handler) with a reason; recorded in the ledger.
        assert move(off, cid, "investigation", "new facts").status_code == 403
        assert move(rv, cid, "investigation", "").status_code == 422
        r = move(rv, cid, "investigation", "the owner produced a new licence")
        assert r.status_code == 200, r.text
        entries = rv.get("/api/v1/ledger/entries", params={"case_id": cid, "limit": 1000})
    body = json.loads(record.content)
    assert body["format"] == "evidence-case-archive/1" and body["case"]["id"] == cid
    assert body["archive_id"] == archive_id
    assert len(body["reviews"]) == 5 and len(body["items"]) == 1 and body["items"][0]["seals"]["cades"]
    assert body["items"][0]["stage"] == "filed"  # the stage it arrived in
    assert [(d["item"], d["stage"], d["role"], d["note"]) for d in body["documents"]] == [
        (item_id, "decision", "decision", "决定书")]
    assert body["continuity"]["complete"] is True
    assert [s["to"] for s in body["stages"]][:2] == ["investigation", "notice"]
    assert body["ledger"]["entries"] and body["ledger"]["checkpoint"]["tree_size"] >= body["ledger"]["last_seq"]
    moves = [e for e in _entries(entries) if e["action"] == "case_stage_moved"]
    reopened = json.loads(moves[-1]["details"])
    assert reopened["from"] == "closed" and reopened["to"] == "investigation" and reopened["reopened"] is True
    assert reopened["reason"] == "the owner produced a new licence"
    assert json.loads(moves[-2]["details"])["archive"] == body["archive_id"]

    # The record verifies with OpenSSL alone and with the court verifier; a flipped byte is named.
    root = stack.settings.resolved_keys_dir / "root.pem"
    folder = tmp_path / "record"
    folder.mkdir()
    (folder / "record.json").write_bytes(record.content)
    (folder / "record.json.p7s").write_bytes(seal)
    (folder / "record.json.sm2.json").write_bytes(sm2)
    r = run("openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", folder / "record.json.p7s",
            "-content", folder / "record.json", "-CAfile", root, "-out", "/dev/null")
    assert r.returncode == 0, r.stderr
    ok = run(Path(__import__("sys").executable).with_name("evidence-verify"), folder, "--trust", root, "--lang", "en")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "CASE ARCHIVE RECORD VERIFIED" in ok.stdout

    raw = bytearray(record.content)
    at = raw.index(b'"title":"Life"') + len(b'"title":"')
    raw[at] ^= 0x01  # "Life" -> "Mife"
    (folder / "record.json").write_bytes(bytes(raw))
    r = run("openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", folder / "record.json.p7s",
            "-content", folder / "record.json", "-CAfile", root, "-out", "/dev/null")
    assert r.returncode != 0
    bad = run(Path(__import__("sys").executable).with_name("evidence-verify"), folder, "--trust", root, "--lang", "en")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "FAILED cades: record.json:" in bad.stderr and "not what was sealed" in bad.stderr, bad.stderr

    # A changed byte inside a custody entry is named down to the entry.
    raw = bytearray(record.content)
    at = raw.index(b'"action":"case_created"') + len(b'"action":"')
    raw[at] ^= 0x01
    (folder / "record.json").write_bytes(bytes(raw))
    bad = run(Path(__import__("sys").executable).with_name("evidence-verify"), folder, "--trust", root, "--lang", "en")
    assert bad.returncode == 1
    assert "ledger.entries[0]" in bad.stderr and "does not recompute" in bad.stderr, bad.stderr


def _entries(r) -> list[dict]:  # type: ignore[no-untyped-def]
    assert r.status_code == 200, r.text
    body = r.json()
    return body["entries"] if isinstance(body, dict) else body


def test_an_export_in_progress_keeps_a_case_open(stack: Stack) -> None:
    unit = f"unit-{uuid.uuid4().hex[:6]}"
    officer = stack.user(role="officer", unit=unit)
    reviewer = stack.user(role="reviewer", unit=unit)
    judge_name = f"judge-{uuid.uuid4().hex[:6]}"
    stack.user(role="court", unit="court-1", name=judge_name)
    with stack.client(officer) as off, stack.client(reviewer) as rv:
        cid = off.post("/api/v1/cases", json={"case_number": f"CE-{uuid.uuid4().hex[:8]}", "title": "Ex"}).json()["id"]
        item = off.post(f"/api/v1/cases/{cid}/evidence", params={"kind": "other", "filename": "scan.bin"},
                        content=uuid.uuid4().bytes * 10).json()  # a case with nothing is refused an export
        stack.wait_item(officer, item["id"], lambda i: i["seal_status"] == "sealed")
        settled(off, cid)  # the case's continuity analysis, a task of its own, may end after the seal
        r = rv.post(f"/api/v1/cases/{cid}/exports", json={"recipient": judge_name})
        assert r.status_code == 201, r.text
        refused = codes(off.post(f"/api/v1/cases/{cid}/close"))
        assert refused == ["stage_not_closable", "export_in_progress", "too_few_reviews", "closing_review_missing"]
        gates = off.get(f"/api/v1/cases/{cid}/closing-gates").json()
        assert [g["code"] for g in gates["reasons"]] == refused
        # Only handlers (or an administrator) close; not a reviewer, not another officer of the unit.
        assert rv.post(f"/api/v1/cases/{cid}/close").status_code == 403
        with stack.client(stack.user(role="officer", unit=unit)) as other:
            r = other.post(f"/api/v1/cases/{cid}/close")
            assert r.status_code == 403 and r.json()["error"]["code"] == "not_a_handler", r.text
        assert stage_of(off, cid) == "filed"


def test_one_reviewer_approving_again_at_the_same_checkpoint_is_one_review(stack: Stack) -> None:
    """Three clicks on approve at filing by one reviewer were three reviews, so a withdrawn
    case closed on one reviewer's filing approval said three times and a closing one. A
    repeat at the same checkpoint with no move of the case in between is the same review;
    another reviewer's, or one after the case moved, counts."""
    unit = f"unit-{uuid.uuid4().hex[:6]}"
    officer = stack.user(role="officer", unit=unit)
    first, second = stack.user(role="reviewer", unit=unit), stack.user(role="reviewer", unit=unit)

    def reviews_short(c) -> str | None:  # type: ignore[no-untyped-def]
        gates = c.get(f"/api/v1/cases/{cid}/closing-gates").json()["reasons"]
        return next((g["subject"] for g in gates if g["code"] == "too_few_reviews"), None)

    with stack.client(officer) as off, stack.client(first) as rv1, stack.client(second) as rv2:
        cid = off.post("/api/v1/cases", json={"case_number": f"RR-{uuid.uuid4().hex[:8]}", "title": "Re"}).json()["id"]
        for _ in range(3):
            assert review(rv1, cid, "filing").status_code == 201
        assert reviews_short(off) == "1/3"
        moved(off, cid, "withdrawn")
        assert review(rv1, cid, "closing").status_code == 201
        assert review(rv1, cid, "closing").status_code == 201
        assert reviews_short(off) == "2/3"
        assert review(rv2, cid, "closing").status_code == 201
        assert reviews_short(off) is None


def test_a_registering_upload_and_a_close_do_not_cross(stack: Stack, case: dict) -> None:
    """Evidence registration shares the case row: a close (which locks it) waits until the
    new item is committed, so an item can never land in a case closed in the meantime.
    On SQLite the write transaction itself serialises the two."""
    if stack.name != "services":
        pytest.skip("row locks are PostgreSQL's; SQLite serialises writers")
    import threading

    from sqlalchemy import text

    from archive.db import Database, lock_row, share_row
    from archive.models import Case

    db = Database(stack.settings)
    waited: list[float] = []
    try:
        with db.session() as registering:
            assert share_row(registering, Case, case["id"]) is not None

            def close() -> None:
                started = time.monotonic()
                with db.session() as closing:
                    lock_row(closing, Case, case["id"])
                waited.append(time.monotonic() - started)

            closer = threading.Thread(target=close)
            closer.start()
            time.sleep(1.0)
            assert closer.is_alive(), "the close did not wait for the registering upload"
            with db.session() as other:  # another upload may share the row meanwhile
                other.execute(text("SET LOCAL lock_timeout = '2s'"))
                assert share_row(other, Case, case["id"]) is not None
        closer.join(timeout=10)
        assert waited and waited[0] >= 1.0, waited
    finally:
        db.dispose()


def test_closes_at_once_leave_one_sealed_record_in_the_vault(stack: Stack) -> None:
    """Twelve closes of one ready case at once: one closes it, the others are refused, and the
    vault holds the one record that closed it. A refused close used to have written its sealed,
    locked record already: records of closings that never happened, each verifying offline."""
    from concurrent.futures import ThreadPoolExecutor

    from archive.models import Case

    _, officer, cid = _ready_case(stack)

    def close(_: int) -> tuple[int, str]:
        with stack.client(officer) as c:
            r = c.post(f"/api/v1/cases/{cid}/close")
            return r.status_code, (r.json().get("error") or {}).get("code", "") if r.status_code != 200 else ""

    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(close, range(12)))
    assert [a for a in answers if a[0] == 200] == [(200, "")], answers
    assert {a for a in answers if a[0] != 200} <= {(409, "case_closed"), (409, "case_moved")}, answers
    with stack.services.db.read() as s:
        vault = s.get(Case, cid).vault.name
    records = [o.key for o in stack.services.store.list(f"{vault}/case-archive/") if o.key.endswith("/record.json")]
    with stack.client(officer) as off:
        archive = off.get(f"/api/v1/cases/{cid}/archive")
        assert archive.status_code == 200, archive.text
    assert records == [f"{vault}/case-archive/{archive.headers['X-Archive-Id']}/record.json"], records


def test_reasons_nobody_could_read_are_refused(stack: Stack) -> None:
    """A reason, opinion or court reference of nothing but a zero-width space was kept as given
    (a legal return "with reasons" no reader could see), and one opening with a right-to-left
    override showed reordered (``\\u202e退回`` reads ``回退``). Each is a 422 with the field's
    code; a reason with line breaks is kept as written."""
    unit = f"unit-{uuid.uuid4().hex[:6]}"
    officer, reviewer = stack.user(role="officer", unit=unit), stack.user(role="reviewer", unit=unit)
    admin, court = stack.user(role="admin", unit="hq"), stack.user(role="court", unit="court")
    with stack.client(officer) as off, stack.client(reviewer) as rv, stack.client(admin) as adm, \
            stack.client(court) as ct:
        number = f"RR-{uuid.uuid4().hex[:8]}"
        cid = off.post("/api/v1/cases", json={"case_number": number, "title": "Reasons"}).json()["id"]
        for blank in ("\u200b", " \u200b\u2060 ", "\ufeff"):
            r = move(off, cid, "withdrawn", reason=blank)
            assert r.status_code == 422 and r.json()["error"]["code"] == "reason_required", r.text
            r = review(rv, cid, "filing", decision="return", opinion=blank)
            assert r.status_code == 422 and r.json()["error"]["code"] == "return_needs_reasons", r.text
            r = adm.post(f"/api/v1/cases/{cid}/hold", json={"reason": blank})
            assert r.status_code == 422 and r.json()["error"]["code"] == "reason_required", r.text
        r = review(rv, cid, "filing", decision="return", opinion="\u202e退回")
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_opinion", r.text
        assert "bidirectional formatting character (U+202E)" in r.json()["error"]["message"]
        r = ct.post("/api/v1/export-requests", json={"case_number": number, "unit": unit,
                                                     "court_reference": "\u202eref", "legal_basis": "依法调取"})
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_court_reference", r.text
        assert stage_of(off, cid) == "filed"
        assert adm.get(f"/api/v1/cases/{cid}/holds").json() == []
        r = move(off, cid, "withdrawn", reason="当事人撤回申请\n附：撤回书")
        assert r.status_code == 200 and r.json()["reason"] == "当事人撤回申请\n附：撤回书", r.text


def _ready_case(stack: Stack) -> tuple[str, str, str]:
    """A case every closing gate lets through (filing review, withdrawn, two closing reviews):
    its unit, its handler's token and its id."""
    unit = f"unit-{uuid.uuid4().hex[:6]}"
    officer = stack.user(role="officer", unit=unit)
    first, second = stack.user(role="reviewer", unit=unit), stack.user(role="reviewer", unit=unit)
    with stack.client(officer) as off, stack.client(first) as rv1, stack.client(second) as rv2:
        cid = off.post("/api/v1/cases", json={"case_number": f"CC-{uuid.uuid4().hex[:8]}", "title": "Closes"}).json()["id"]
        assert review(rv1, cid, "filing").status_code == 201
        moved(off, cid, "withdrawn")
        assert review(rv1, cid, "closing").status_code == 201
        assert review(rv2, cid, "closing").status_code == 201
        assert off.get(f"/api/v1/cases/{cid}/closing-gates").json()["reasons"] == []
    return unit, officer, cid


def _closed_case(stack: Stack) -> tuple[str, str, str]:
    """A case closed by its handler (:func:`_ready_case`, then closed)."""
    unit, officer, cid = _ready_case(stack)
    with stack.client(officer) as off:
        assert off.post(f"/api/v1/cases/{cid}/close").status_code == 200
    return unit, officer, cid


def test_a_handler_made_reviewer_no_longer_moves_the_case(stack: Stack) -> None:
    """A handler whose role became reviewer was refused closing, handlers and documents (403
    forbidden_role) but still moved the case's stage (200)."""
    unit = f"unit-{uuid.uuid4().hex[:6]}"
    name = f"officer-{uuid.uuid4().hex[:6]}"
    officer = stack.user(role="officer", unit=unit, name=name)
    with stack.client(officer) as off, stack.client(stack.user(role="reviewer", unit=unit)) as rv:
        cid = off.post("/api/v1/cases", json={"case_number": f"CR-{uuid.uuid4().hex[:8]}", "title": "Role"}).json()["id"]
        assert review(rv, cid, "filing").status_code == 201
        with stack.client(stack.user(role="admin", unit="hq")) as admin:
            assert admin.patch(f"/api/v1/users/{name}", json={"role": "reviewer"}).status_code == 200
        for to in ("investigation", "withdrawn"):
            r = move(off, cid, to)
            assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden_role", r.text
        assert stage_of(rv, cid) == "filed"


def test_a_review_sealed_while_its_reviewer_was_disabled_is_not_recorded(stack: Stack) -> None:
    """A review is sealed outside any transaction, then recorded under the case's lock, where
    role and unit were checked again but not whether the reviewer was still active."""
    from archive.cases import reviews
    from archive.errors import Unauthenticated
    from archive.identity.users import update_user
    from archive.cases.models import LegalReview
    from archive.models import User

    unit = f"unit-{uuid.uuid4().hex[:6]}"
    name = f"reviewer-{uuid.uuid4().hex[:6]}"
    officer, reviewer = stack.user(role="officer", unit=unit), stack.user(role="reviewer", unit=unit, name=name)
    with stack.client(officer) as off:
        cid = off.post("/api/v1/cases", json={"case_number": f"RD-{uuid.uuid4().hex[:8]}", "title": "Dis"}).json()["id"]
    real = stack.services.sealer

    class DisabledWhileSealing:
        sm2_key = real.sm2_key

        def seal(self, data: bytes):  # type: ignore[no-untyped-def]
            with stack.services.db.session() as s:
                update_user(s, name=name, actor="user:admin", active=False)
            return real.seal(data)

        def verify_seal(self, data: bytes, bundle):  # type: ignore[no-untyped-def]
            return real.verify_seal(data, bundle)

    with stack.services.db.read() as s:
        user_id = s.execute(select(User.id).where(User.name == name)).scalar_one()
    body = reviews.ReviewInput(checkpoint="filing", aspects=ASPECTS_OK, decision="approve", opinion="approved")
    with pytest.raises(Unauthenticated) as refused:
        reviews.record_review(db=stack.services.db, sealer=DisabledWhileSealing(), user_id=user_id, case_id=cid,
                              body=body)
    assert refused.value.code == "user_disabled"
    with stack.services.db.read() as s:
        assert s.execute(select(LegalReview).where(LegalReview.case_id == cid)).first() is None
    with stack.client(reviewer) as rv:
        assert rv.get(f"/api/v1/cases/{cid}").status_code == 401


def test_no_handler_is_added_to_a_closed_case(stack: Stack) -> None:
    """Its archive record, naming its handlers, is sealed: 409 case_closed, as stage documents."""
    unit, officer, cid = _closed_case(stack)
    other = f"officer-{uuid.uuid4().hex[:6]}"
    stack.user(role="officer", unit=unit, name=other)
    with stack.client(officer) as off:
        r = off.post(f"/api/v1/cases/{cid}/handlers", json={"user": other})
        assert r.status_code == 409 and r.json()["error"]["code"] == "case_closed", r.text
        assert other not in off.get(f"/api/v1/cases/{cid}/stage").json()["handlers"]


def test_reopens_at_once_one_reopens_the_others_find_it_open(stack: Stack) -> None:
    """Twenty reopens of one closed case by a reviewer who does not handle it: one reopens it;
    the others were told 403 not_a_handler (the case, no longer closed, took them for a
    handler's move), now 409 stage_move_not_allowed."""
    from concurrent.futures import ThreadPoolExecutor

    unit, officer, cid = _closed_case(stack)
    reviewer = stack.user(role="reviewer", unit=unit)

    def reopen(_: int) -> tuple[int, str]:
        with stack.client(reviewer) as c:
            r = move(c, cid, "investigation", "a new licence turned up")
            return r.status_code, (r.json().get("error") or {}).get("code", "") if r.status_code != 200 else ""

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(reopen, range(20)))
    assert sorted(answers) == [(200, "")] + [(409, "stage_move_not_allowed")] * 19, answers
    with stack.client(officer) as off:
        assert stage_of(off, cid) == "investigation"


def test_a_withdrawn_case_s_outcome_is_its_withdrawal(stack: Stack) -> None:
    """README: a withdrawn, terminated or referred case's outcome is that stage. The outcome
    read answered null for one; it names the stage, with the move's reason, mover and time,
    (and, by :func:`archive.records.outcomes.ending_move`, once closed from there)."""
    unit = f"unit-{uuid.uuid4().hex[:6]}"
    officer = stack.user(role="officer", unit=unit)
    with stack.client(officer) as off:
        cid = off.post("/api/v1/cases", json={"case_number": f"WD-{uuid.uuid4().hex[:8]}", "title": "Withdrawn"}).json()["id"]
        assert off.get(f"/api/v1/cases/{cid}/outcome").json() is None
        assert move(off, cid, "withdrawn", reason="当事人已整改").status_code == 200
        outcome = off.get(f"/api/v1/cases/{cid}/outcome").json()
        assert outcome["outcome"] == "withdrawn" and outcome["reason"] == "当事人已整改", outcome
        assert outcome["recorded_by"] and outcome["recorded_at"], outcome
