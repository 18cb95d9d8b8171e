"""Remote online inspection of web pages end to end: a local website, a real Chromium, a real worker."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.capture.support import (PNG, content, continuity, embedded_only, inspect, new_case, record_text,
                                   validate_wacz, warc_records)
from tests.conftest import Stack

pytestmark = pytest.mark.slow


def test_pages_captured_signed_and_recorded(capture_stack: Stack, site: str, tmp_path: Path) -> None:
    stack = capture_stack
    token = stack.user(role="officer", unit="unit-a")
    case = new_case(stack, token)
    done = {name: inspect(stack, token, case, f"{site}{path}", **extra) for name, path, extra in (
        ("static", "/static", {}), ("changing", "/changing", {}), ("redirect", "/hop1", {}),
        ("image", "/logo.png", {}), ("login", "/members", {"cookies": [{"name": "session", "value": "s3cret"}]}),
    )}
    for name, got in done.items():
        assert got["status"] == "done", (name, got)
        assert got["item"] and got["record"]
        # Settled: the seal step's own last write done, so the item reads the same twice below.
        stack.wait_item(token, got["item"], lambda i: (i["processing"] or {}).get("seal", {}).get("state") == "done")
    with stack.client(token) as c:
        roots = c.get("/api/v1/trust/chain.pem").content
        items = {name: c.get(f"/api/v1/evidence/{got['item']}").json() for name, got in done.items()}
        listed = {i["id"]: i for i in c.get(f"/api/v1/cases/{case['id']}/evidence").json()}
    # The case's list shows each bundle exactly as the item's own record does (members included).
    for item in items.values():
        assert listed[item["id"]] == item
    for name, item in items.items():
        assert item["kind"] == "remote_capture"
        types = sorted(m["media_type"] for m in item["members"])
        assert types.count("image/png") == 2, (name, types)
        # environment.json (the pipeline's sniffer calls JSON text/plain)
        assert ("application/json" in types or "text/plain" in types) and any(t.startswith("video/") for t in types), (name, types)
    # every capture's responses are in its WARC
    records = {name: warc_records(content(stack, token, got["item"])) for name, got in done.items()}
    assert any(t == "response" and u.endswith("/later") and b"CHANGED-BY-SCRIPT" in body
               for t, u, _s, body in records["changing"])
    assert any(t == "resource" and u.startswith("urn:dom:end:") and b"CHANGED-BY-SCRIPT" in body
               for t, u, _s, body in records["changing"])
    hops = [(u.rsplit("/", 1)[-1], s) for t, u, s, _b in records["redirect"] if t == "response"]
    assert ("hop1", 302) in hops and ("hop2", 301) in hops and ("static", 200) in hops
    assert any(t == "response" and u.endswith("/logo.png") and body == PNG for t, u, _s, body in records["static"])
    assert any(t == "response" and u.endswith("/logo.png") for t, u, _s, _b in records["image"])
    assert any(t == "response" and b"MEMBERS-ONLY-AREA" in body for t, u, _s, body in records["login"])
    # the WACZ passes wacz validate with its signature verified
    wacz = tmp_path / "static.wacz"
    wacz.write_bytes(content(stack, token, done["static"]["item"]))
    result = validate_wacz(wacz, roots, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Successfully verified signature" in result.stdout
    # the record PDF validates (pyHanko, pdfsig) and lists the hash of every file
    pdf = tmp_path / "record.pdf"
    pdf.write_bytes(content(stack, token, done["static"]["record"]))
    roots_file = tmp_path / "roots.pem"
    roots_file.write_bytes(roots)
    hanko = subprocess.run([sys.executable, "-m", "pyhanko", "sign", "validate", "--pretty-print", "--trust",
                            str(roots_file), str(pdf)], capture_output=True, text=True)
    assert hanko.returncode == 0, hanko.stdout + hanko.stderr
    pdfsig = subprocess.run(["pdfsig", str(pdf)], capture_output=True, text=True)
    assert "Signature is Valid" in pdfsig.stdout, pdfsig.stdout
    from pypdf import PdfReader

    text = "".join(p.extract_text() for p in PdfReader(pdf).pages).replace("\n", "")
    item = items["static"]
    for sha in [item["sha256"], *(m["sha256"] for m in item["members"])]:
        assert sha in text, sha
    # the capture window is recorded by the workstation device
    with stack.client(token) as c:
        deadline = time.monotonic() + 60
        while True:
            report = c.get(f"/api/v1/cases/{case['id']}/continuity").json()
            if report.get("status", "") != "pending" or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        timeline = c.get(f"/api/v1/cases/{case['id']}/evidence").json()
    assert any(i["id"] == done["static"]["item"] and i["device_id"] == "ws-01" and i["recorded_start"]
               for i in timeline)


@embedded_only
def test_unreachable_target_fails_and_keeps_what_was_recorded(capture_stack: Stack) -> None:
    stack = capture_stack
    token = stack.user(role="officer", unit="unit-a")
    case = new_case(stack, token)
    got = inspect(stack, token, case, "http://127.0.0.1:9/nothing", seconds=1)
    assert got["status"] == "failed", got
    assert "127.0.0.1" in got["error"] and "refused" not in got["error"].split(":")[0], got["error"]
    assert got["item"] and got["record"]  # screenshots, recording, environment and WARC kept
    # The record, a Chinese document, says why in Chinese (the browser's own words quoted).
    from ingest.capture.run import problem_said

    text = record_text(stack, token, got["record"])
    said = problem_said("zh", got["error"])
    assert said != got["error"] and said.split("：", 1)[0] in text, (said, text)
    assert "未完成" in text and got["error"].split(":", 1)[0] not in text, text


def test_default_policy_refuses_loopback_directly_and_via_redirect(stack: Stack, site: str) -> None:
    token = stack.user(role="officer", unit="unit-a")
    case = new_case(stack, token)
    direct = inspect(stack, token, case, f"{site}/static", seconds=1)
    assert direct["status"] == "failed"
    assert "refused" in direct["error"] and "loopback" in direct["error"], direct["error"]
    assert any(r["url"].startswith(site) and "loopback" in r["reason"] for r in direct["summary"]["refused"])
    private = inspect(stack, token, case, "http://10.20.30.40/admin", seconds=1)
    assert private["status"] == "failed" and "10.20.30.40 is a private address" in private["error"], private


@embedded_only
def test_redirect_to_link_local_refused(capture_stack: Stack, site: str) -> None:
    """Allowed networks (127.0.0.0/8 here) do not open others: a redirect to the cloud
    metadata address is refused, recorded, and the inspection fails saying why."""
    stack = capture_stack
    token = stack.user(role="officer", unit="unit-a")
    case = new_case(stack, token)
    got = inspect(stack, token, case, f"{site}/to-metadata", seconds=1)
    assert got["status"] == "failed" and "169.254.169.254 is a link-local address" in got["error"], got
    assert [h["status"] for h in got["summary"]["redirects"]][:1] == [302]
    assert got["item"]  # the first hop is evidence
    records = warc_records(content(stack, token, got["item"]))
    assert any(t == "response" and u.endswith("/to-metadata") and s == 302 for t, u, s, _b in records)
    # The record, a Chinese document read in the corps' zone, names the refusal in Chinese and
    # states every moment in local time with its offset (it said UTC, and the policy's English).
    text = record_text(stack, token, got["record"])
    assert ("http://169.254.169.254/latest/meta-data/：169.254.169.254 的地址不可访问：169.254.169.254 是链路本地地址"
            in text.split("拒绝访问", 1)[1].split("未能取得", 1)[0]), text
    assert "link-local" not in text and "+00:00" not in text, text
    times = re.findall(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d)? \+08:00", text)
    assert len(times) == 4, text  # the TSA's start and end, the workstation clock's start and end


def test_bad_requests_answer_4xx(stack: Stack) -> None:
    token = stack.user(role="officer", unit="unit-a")
    case = new_case(stack, token)
    with stack.client(token) as c:
        for body, code in (({"url": "ftp://x/", "device_id": "w", "seconds": 1}, "invalid_url"),
                           ({"url": "http://x/", "device_id": "w", "seconds": 0}, "invalid_seconds"),
                           ({"url": "http://x/", "device_id": "", "seconds": 1}, "invalid_device_id")):
            r = c.post(f"/api/v1/cases/{case['id']}/inspections", json=body)
            assert r.status_code == 422 and r.json()["error"]["code"] == code, r.text
        assert c.get("/api/v1/inspections/nope").status_code == 404
    other = stack.user(role="officer", unit="unit-b")
    with stack.client(other) as c:
        r = c.post(f"/api/v1/cases/{case['id']}/inspections", json={"url": "http://x/", "device_id": "w", "seconds": 1})
        assert r.status_code == 404


@embedded_only
def test_capture_window_is_recording_by_the_workstation(capture_stack: Stack, site: str) -> None:
    stack = capture_stack
    token = stack.user(role="officer", unit="unit-a")
    case = new_case(stack, token)
    got = inspect(stack, token, case, f"{site}/static", seconds=3)
    assert got["status"] == "done", got
    with stack.client(token) as c:
        wacz = c.get(f"/api/v1/evidence/{got['item']}").json()
        start, end = wacz["details"]["capture_start"], wacz["details"]["capture_end"]
        for description, until in (("covered", end), ("beyond", "2099-01-01T00:00:00+00:00")):
            r = c.post(f"/api/v1/cases/{case['id']}/actions", json={
                "kind": "remote_inspection", "start": start, "end": until, "devices": ["ws-01"],
                "description": description})
            assert r.status_code == 201, r.text
    report = continuity(stack, token, case)
    window_gaps = [g for g in report["gaps"] if g["level"] == "action_window"]
    print(json.dumps({"capture": [start, end], "gaps": report["gaps"]}, ensure_ascii=False, indent=1))
    # the window itself is covered by ws-01; only the action running on past it has a gap
    assert window_gaps and all("beyond" in g["cause"] for g in window_gaps), (start, end, report)
    assert all(g["start"] >= end[:19] or g["start"].startswith(end[:19]) for g in window_gaps), (start, end, report)


def test_an_interrupted_capture_fails_instead_of_capturing_twice(stack: Stack) -> None:
    """A capture whose worker died mid-way is not started again behind the officer's back:
    a second run ends it ``failed`` saying so (what was received stays evidence)."""
    from sqlalchemy import delete

    from archive.db import Database
    from archive.identity.users import add_user
    from archive.inspections import service
    from archive.inspections.models import Inspection
    from archive.models import Work
    from ingest.capture.run import run_inspection

    db = Database(stack.settings)  # no doorbell: the test is the worker
    try:
        with db.session() as session:
            user, token = add_user(session, name=f"officer-{uuid.uuid4().hex[:8]}", unit="unit-a", role="officer")
        case = new_case(stack, token)
        with db.session() as session:
            user = session.merge(user)
            row = service.request_inspection(session, user=user, case_id=case["id"], url="http://example.invalid/",
                                             device_id="ws-01", seconds=1, note=None, settings=stack.settings,
                                             cookies=[{"name": "sid", "value": "secret-value"}])
            inspection_id = row.id
            session.flush()
            session.execute(delete(Work).where(Work.subject == inspection_id))
        first = service.start_capture(db, inspection_id)
        assert first["status"] == "queued" and first["cookies"] == [{"name": "sid", "value": "secret-value"}]
        run_inspection(db=db, store=None, settings=stack.settings, sealer=None, inspection_id=inspection_id)
        with db.read() as session:
            row = session.get(Inspection, inspection_id)
            assert row.status.value == "failed" and "interrupted" in row.error
            assert row.cookies == []  # the session cookie is not kept
        with stack.client(token) as c:
            ledger = c.get("/api/v1/ledger/entries", params={"case_id": case["id"]})
        assert ledger.status_code == 200
        actions = [e["action"] for e in ledger.json()]
        assert "inspection_requested" in actions and "inspection_failed" in actions, actions
        assert "secret-value" not in ledger.text and "sid" in ledger.text
    finally:
        db.dispose()


@embedded_only
def test_https_page_captured_with_its_certificate_chain(capture_stack: Stack, tls_site) -> None:
    stack = capture_stack
    url, _ca, leaf = tls_site
    token = stack.user(role="officer", unit="unit-a")
    case = new_case(stack, token)
    got = inspect(stack, token, case, f"{url}/static", seconds=1)
    assert got["status"] == "done", got
    records = warc_records(content(stack, token, got["item"]))
    assert any(t == "response" and u == f"{url}/static" and "测试书店".encode() in body for t, u, _s, body in records)
    assert any(t == "response" and u == f"{url}/logo.png" and body == PNG for t, u, _s, body in records)
    with stack.client(token) as c:
        wacz = c.get(f"/api/v1/evidence/{got['item']}").json()
    env = next(json.loads(content(stack, token, m["id"])) for m in wacz["members"]
               if m["media_type"] in ("application/json", "text/plain"))
    assert env["tls_chains"]["127.0.0.1"][0].strip() == leaf.strip()
    assert env["software"]["browser"].startswith("Chromium ") and env["host"]["os"]
    assert abs(env["clock"]["offset_seconds"]) <= env["clock"]["uncertainty_seconds"]  # the built-in TSA is this clock
    assert env["dns"]["127.0.0.1"] == ["127.0.0.1"] and env["redirects"][-1]["status"] == 200


@embedded_only
def test_long_address_and_note_make_a_record_of_many_pages_sealed_twice(capture_stack: Stack, site: str,
                                                                         tmp_path: Path) -> None:
    """A 5,000-character address and an 8,000-character Chinese note (the record's table rows
    split across pages) give a done inspection with its bundle and record; the record, signed
    when made, gets its PAdES copy in a new field: both signatures verify, no flag."""
    from pypdf import PdfReader

    from archive.models import LedgerEntry
    from signing import pades
    from signing.certs import load_certificates

    stack = capture_stack
    token = stack.user(role="officer", unit="unit-a")
    case = new_case(stack, token)
    url = f"{site}/long/" + "a" * (5000 - len(site) - len("/long/"))
    note = "现场备注" * 2000
    assert len(url) == 5000 and len(note) == 8000
    got = inspect(stack, token, case, url, seconds=1, note=note)
    assert got["status"] == "done" and got["error"] is None and got["error_code"] is None, got
    assert got["item"] and got["record"], got
    record = stack.wait_item(token, got["record"],
                             lambda i: (i["processing"] or {}).get("seal", {}).get("state") in ("done", "failed"))
    assert record["processing"]["seal"]["state"] == "done", record
    assert "pdf_not_sealable" not in record["flags"], record
    assert "pades" in {d["role"] for d in record["derived"]}, record
    original = content(stack, token, got["record"])
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(original)).pages).replace("\n", "")
    pages = len(PdfReader(io.BytesIO(original)).pages)
    assert pages >= 5, pages
    assert text.count("a" * 10) >= (5000 - len(site)) // 10 - 80 and text.count("现场备注") == 2000, pages
    with stack.client(token) as c:
        copy = c.get(f"/api/v1/evidence/{got['record']}/derived/pades")
        (tmp_path / "roots.pem").write_bytes(c.get("/api/v1/trust/chain.pem").content)
    roots = load_certificates(tmp_path / "roots.pem")
    assert copy.status_code == 200 and copy.content.startswith(original)
    report = pades.verify_pdf(data=copy.content, trust_roots=roots)
    assert report.signature_count == 2 and report.field_name == "EvidenceSeal2", report
    with stack.services.db.snapshot() as s:
        sealed = [json.loads(e.details) for e in s.query(LedgerEntry).filter_by(item_id=got["record"],
                                                                                 action="item_sealed")]
    assert sealed and not any(d.get("pades_problem") for d in sealed), sealed

