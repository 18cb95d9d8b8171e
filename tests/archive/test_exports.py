"""Certified exports on both stacks: who may request, approve and download; the bag checks
out with bagit, sha256sum, openssl, pyHanko, pdfsig and ``evidence verify-export``."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
import sys
import time
import uuid
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import bagit
import pytest
from sqlalchemy import delete, select

from tests.conftest import Stack, settings_from_env

# Slow: exports built by the worker and checked with standard tools.
pytestmark = pytest.mark.slow


def run(*args: object, **kw) -> subprocess.CompletedProcess:  # type: ignore[no-untyped-def]
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=180, **kw)


def tiny_clip(path: Path) -> bytes:
    run("ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=160x90:rate=10:duration=2",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", path, check=True)
    return path.read_bytes()


def tiny_pdf() -> bytes:
    from reportlab.pdfgen import canvas

    out = io.BytesIO()
    c = canvas.Canvas(out)
    c.drawString(72, 720, "Record of on-site inspection")
    c.save()
    return out.getvalue()


def capture_bundle() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", json.dumps({
            "target_url": "https://shop.example.com/live/1", "capture_start": "2026-03-01T10:00:00+08:00",
            "capture_end": "2026-03-01T10:05:00+08:00", "operator": "Officer Li", "tool": "CaptureKit 2.1"}))
        zf.writestr("page.html", "<!doctype html><p>unlicensed books</p>")
        zf.writestr("screenshots/one.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    return buf.getvalue()


def upload(c, case_id: str, data: bytes, kind: str, filename: str) -> dict:  # type: ignore[no-untyped-def]
    r = c.post(f"/api/v1/cases/{case_id}/evidence", params={"kind": kind, "filename": filename}, content=data)
    assert r.status_code == 201, r.text
    return r.json()


def wait_case_sealed(stack: Stack, token: str, case_id: str, count: int, timeout: float = 180) -> list[dict]:
    deadline = time.monotonic() + timeout
    with stack.client(token) as c:
        while True:
            items = c.get(f"/api/v1/cases/{case_id}/evidence").json()
            if len(items) >= count and all(i["seal_status"] in ("sealed", "failed") for i in items):
                assert all(i["seal_status"] == "sealed" for i in items), items
                return items
            assert time.monotonic() < deadline, f"items never all sealed: {[(i['filename'], i['seal_status']) for i in items]}"
            time.sleep(0.5)


def wait_export(stack: Stack, token: str, export_id: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    with stack.client(token) as c:
        while True:
            e = c.get(f"/api/v1/exports/{export_id}").json()
            if e["status"] in ("ready", "failed"):
                return e
            assert time.monotonic() < deadline, e
            time.sleep(0.5)


@pytest.fixture
def people(stack: Stack) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:6]
    names = {"officer": f"off-{suffix}", "requester": f"rev1-{suffix}", "approver": f"rev2-{suffix}",
             "judge": f"judge-{suffix}", "other_judge": f"judge2-{suffix}", "outsider": f"rev3-{suffix}"}
    tokens = {
        "officer": stack.user(role="officer", unit="unit-x", name=names["officer"]),
        "requester": stack.user(role="reviewer", unit="unit-x", name=names["requester"]),
        "approver": stack.user(role="reviewer", unit="unit-x", name=names["approver"]),
        "judge": stack.user(role="court", unit="court-1", name=names["judge"]),
        "other_judge": stack.user(role="court", unit="court-1", name=names["other_judge"]),
        "outsider": stack.user(role="reviewer", unit="unit-y", name=names["outsider"]),
    }
    return {**tokens, **{f"{k}_name": v for k, v in names.items()}}


def _downloads(stack: Stack, export_id: str) -> int:
    """The export's ``export_downloaded`` custody entries."""
    from archive.models import LedgerEntry

    with stack.services.db.snapshot() as s:
        actions = s.execute(select(LedgerEntry.details).where(LedgerEntry.action == "export_downloaded")).scalars()
        return sum(1 for details in actions if json.loads(details)["export"] == export_id)


@pytest.fixture
def sealed_case(stack: Stack, people: dict[str, str], tmp_path: Path) -> dict:
    with stack.client(people["officer"]) as c:
        case = c.post("/api/v1/cases", json={"case_number": f"WH-{uuid.uuid4().hex[:8]}", "title": "Export case"}).json()
        upload(c, case["id"], tiny_clip(tmp_path / "clip.mp4"), "bodycam_video", "cam 1 clip.mp4")
        upload(c, case["id"], tiny_pdf(), "document", "inspection record.pdf")
        upload(c, case["id"], capture_bundle(), "remote_capture", "capture.zip")
    # video + pdf + bundle + its 2 members (its manifest.json is metadata)
    case["items"] = wait_case_sealed(stack, people["officer"], case["id"], 5)
    return case


def test_export_lifecycle_and_standard_tools(stack: Stack, people, sealed_case, tmp_path: Path) -> None:
    case = sealed_case
    with stack.client(people["requester"]) as req, stack.client(people["approver"]) as appr, \
            stack.client(people["judge"]) as judge, stack.client(people["other_judge"]) as judge2, \
            stack.client(people["officer"]) as officer, stack.client(people["outsider"]) as outsider:
        # Officers and other units' reviewers cannot request; court users not before a share.
        assert officer.post(f"/api/v1/cases/{case['id']}/exports", json={"recipient": people["judge_name"]}).status_code == 403
        assert outsider.post(f"/api/v1/cases/{case['id']}/exports", json={"recipient": people["judge_name"]}).status_code == 404
        assert judge.post(f"/api/v1/cases/{case['id']}/exports", json={}).status_code == 404
        bad = req.post(f"/api/v1/cases/{case['id']}/exports", json={"recipient": people["officer_name"]})
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "recipient_not_court"

        r = req.post(f"/api/v1/cases/{case['id']}/exports",
                     json={"recipient": people["judge_name"], "include_derived": True})
        assert r.status_code == 201, r.text
        export = r.json()
        assert export["status"] == "requested" and export["id"]
        eid = export["id"]

        # Not approved: nobody can download it.
        for client in (req, judge):
            d = client.get(f"/api/v1/exports/{eid}/download")
            assert d.status_code == 409 and d.json()["error"]["code"] == "export_not_approved"
        # The requester cannot approve their own request.
        own = req.post(f"/api/v1/exports/{eid}/approve")
        assert own.status_code == 403 and own.json()["error"]["code"] == "separation_of_duties"
        assert judge.post(f"/api/v1/exports/{eid}/approve").status_code == 403
        assert outsider.post(f"/api/v1/exports/{eid}/approve").status_code == 404

        ok = appr.post(f"/api/v1/exports/{eid}/approve")
        assert ok.status_code == 200 and ok.json()["status"] in ("approved", "building", "ready"), ok.text
        assert appr.post(f"/api/v1/exports/{eid}/approve").json()["error"]["code"] == "export_not_pending"
        done = wait_export(stack, people["approver"], eid)
        assert done["status"] == "ready", done

        # Court users see only what is shared with them.
        assert [e["id"] for e in judge.get("/api/v1/exports").json()] == [eid]
        assert judge2.get("/api/v1/exports").json() == []
        assert judge2.get(f"/api/v1/exports/{eid}").status_code == 404
        assert judge2.get(f"/api/v1/exports/{eid}/download").status_code == 404
        assert officer.get(f"/api/v1/exports/{eid}/download").status_code == 403

        zip_bytes = judge.get(f"/api/v1/exports/{eid}/download")
        assert zip_bytes.status_code == 200, zip_bytes.text
        import hashlib

        assert hashlib.sha256(zip_bytes.content).hexdigest() == done["sha256"]
        # HEAD and conditional downloads are authorised like GET; they send no ZIP, so record no download.
        url, etag, downloads = f"/api/v1/exports/{eid}/download", f'"{done["sha256"]}"', _downloads(stack, eid)
        head = judge.head(url)
        assert (head.status_code, head.content) == (200, b"")
        assert {h: head.headers[h] for h in ("content-length", "content-type", "etag", "repr-digest")} == {
            h: zip_bytes.headers[h] for h in ("content-length", "content-type", "etag", "repr-digest")}
        for header in ({"If-None-Match": etag}, {"If-None-Match": f'W/"x", W/{etag}'}, {"If-None-Match": "*"}):
            for method in ("GET", "HEAD"):
                r = judge.request(method, url, headers=header)
                assert (r.status_code, r.content, r.headers.get("etag")) == (304, b"", etag), (method, header)
        r = judge.get(url, headers={"If-Match": f"W/{etag}"})
        assert (r.status_code, r.json()["error"]["code"]) == (412, "precondition_failed")
        assert (judge2.head(url).status_code, officer.head(url).status_code) == (404, 403)
        assert judge2.get(url, headers={"If-None-Match": "*"}).status_code == 404
        assert _downloads(stack, eid) == downloads
        assert judge.get(url, headers={"If-Match": etag, "If-None-Match": '"x"'}).content == zip_bytes.content
        assert _downloads(stack, eid) == downloads + 1

        # A signed link works without a token, and not once tampered with.
        link = judge.post(f"/api/v1/exports/{eid}/link").json()
        with stack.client(None) as anon:
            assert anon.get(link["url"]).content == zip_bytes.content
            # Whoever holds the link downloads as the judge it was made for: the entry says from where.
            from archive.models import LedgerEntry
            with stack.services.db.snapshot() as s:
                last = json.loads(s.execute(select(LedgerEntry.details).where(
                    LedgerEntry.action == "export_downloaded").order_by(LedgerEntry.seq.desc()).limit(1)).scalar_one())
            assert (last["export"], last["via"], last["client"]) == (eid, "signed_link", "127.0.0.1"), last
            assert anon.get(link["url"].replace("sig=", "sig=x")).status_code == 401
            assert anon.get(f"/api/v1/exports/{eid}/download").status_code == 401
            assert anon.head(f"/api/v1/exports/{eid}/download").status_code == 401
            assert anon.head(link["url"]).status_code == 200

        # Now shared, the judge may ask for a further export of the case (for themselves only).
        again = judge.post(f"/api/v1/cases/{case['id']}/exports", json={"items": [case["items"][0]["id"]]})
        assert again.status_code == 201, again.text
        assert judge.post(f"/api/v1/cases/{case['id']}/exports",
                          json={"recipient": people["other_judge_name"]}).status_code == 403

        ledger = req.get("/api/v1/ledger/entries", params={"case_id": case["id"], "limit": 1000})
        if ledger.status_code == 200:
            actions = [e["action"] for e in ledger.json()]
            assert {"export_requested", "export_approved", "export_built", "export_downloaded"} <= set(actions)

    zpath = tmp_path / "export.zip"
    zpath.write_bytes(zip_bytes.content)
    root = stack.settings.resolved_keys_dir / "root.pem"
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(zpath) as z:
        z.extractall(unpacked)
    (bag_dir,) = unpacked.iterdir()

    bag = bagit.Bag(str(bag_dir))
    bag.validate()
    # The Library of Congress command line, as a court would run it.
    r = run(Path(sys.executable).with_name("bagit.py"), "--validate", bag_dir)
    assert r.returncode == 0 and "is valid" in r.stderr + r.stdout, r.stdout + r.stderr
    assert bag.info["External-Identifier"] == case["case_number"]
    names = {p.relative_to(bag_dir).as_posix() for p in bag_dir.rglob("*") if p.is_file()}
    assert any(n.startswith("data/originals/") and n.endswith("clip.mp4") for n in names)
    assert any(n.startswith("data/derived/") and n.endswith(".pdf") for n in names)  # the PAdES copy
    assert sum(1 for n in names if n.startswith("data/originals/")) == 5
    # Originals are stored, not recompressed.
    with zipfile.ZipFile(zpath) as z:
        assert all(i.compress_type == zipfile.ZIP_STORED for i in z.infolist() if "/data/" in i.filename)

    for manifest in ("manifest-sha256.txt", "tagmanifest-sha256.txt"):
        r = run("sha256sum", "--strict", "-c", manifest, cwd=bag_dir)
        assert r.returncode == 0, r.stdout + r.stderr
    seals = sorted(bag_dir.rglob("*.p7s"))
    assert len(seals) == 5 + 3  # items, checkpoint, continuity, export manifest
    for seal in seals:
        r = run("openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", seal,
                "-content", seal.with_suffix(""), "-CAfile", root, "-out", "/dev/null")
        assert r.returncode == 0, (seal, r.stderr)
    # The README's SM2 recipe: each seal against the key the sealed export vouches for; a seal
    # made with a key of the forger's own, written into the seal file, does not verify.
    for seal in sorted(bag_dir.rglob("*.sm2.json")):
        signature = tmp_path / "sm2.sig"
        signature.write_bytes(base64.b64decode(json.loads(seal.read_text())["signature"]))
        r = run("openssl", "pkeyutl", "-verify", "-rawin", "-digest", "sm3", "-pkeyopt", "distid:1234567812345678",
                "-pubin", "-inkey", bag_dir / "trust/sm2-public.pem", "-in", seal.with_name(seal.name[:-len(".sm2.json")]),
                "-sigfile", signature)
        assert r.returncode == 0 and "Signature Verified Successfully" in r.stdout, (seal, r.stdout + r.stderr)
    forged_key = tmp_path / "forged.pem"
    run("openssl", "genpkey", "-algorithm", "SM2", "-out", forged_key)
    run("openssl", "pkeyutl", "-sign", "-rawin", "-digest", "sm3", "-pkeyopt", "distid:1234567812345678",
        "-inkey", forged_key, "-in", bag_dir / "export-manifest.json", "-out", signature)
    r = run("openssl", "pkeyutl", "-verify", "-rawin", "-digest", "sm3", "-pkeyopt", "distid:1234567812345678",
            "-pubin", "-inkey", bag_dir / "trust/sm2-public.pem", "-in", bag_dir / "export-manifest.json",
            "-sigfile", signature)
    assert r.returncode != 0 and "Signature Verified Successfully" not in r.stdout, r.stdout
    pdf = bag_dir / "certificate.pdf"
    r = run(shutil.which("pyhanko") or Path(sys.executable).with_name("pyhanko"), "sign", "validate", "--trust", root, "--trust-replace", pdf)
    assert r.returncode == 0 and "INTACT:TRUSTED" in r.stdout, r.stdout + r.stderr
    from tests.tools import pdfsig_trusting

    out = pdfsig_trusting(pdf, root)
    assert "Signature is Valid" in out and "Certificate is Trusted" in out and "Total document signed" in out, out
    from pypdf import PdfReader

    # Times as the corps reads them: its zone (Asia/Shanghai by default), the offset written.
    text = " ".join(page.extract_text() for page in PdfReader(pdf).pages)
    issued = re.search(r"Issued by .* on (\d{4}-\d\d-\d\d) \d\d:\d\d:\d\d \+08:00", text)
    assert issued, text[:500]
    assert bag.info["Bagging-Date"] == issued.group(1)  # the corps' date, not UTC's
    assert "the whole case: all 5 items" in text
    sealed = json.loads((bag_dir / "export-manifest.json").read_text())
    assert sealed["scope"] == {"selected": False, "items": 5, "case_items": 5}
    assert "UTC" not in text
    # Sealed as built: Chinese first, stored values in words, nothing escaped twice.
    shown = run("pdftotext", "-layout", pdf, "-").stdout
    assert "核证导出证明书" in shown and "执法记录仪视频" in shown and "文书" in shown, shown[:2000]
    assert "&lt;" not in shown and "bodycam_video" not in shown and "evidence_received" not in shown

    for source in (zpath, bag_dir):
        r = stack.cli("verify-export", str(source), "--trust", str(root), "--lang", "en")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "EXPORT VERIFIED" in r.stdout
        assert "WARNING" not in r.stderr, r.stderr
    # A clerk copies the bag under a name of their own: the name is not content, only a warning.
    renamed = shutil.copytree(bag_dir, tmp_path / "y")
    r = stack.cli("verify-export", str(renamed), "--trust", str(root), "--lang", "en")
    assert r.returncode == 0 and "EXPORT VERIFIED" in r.stdout, r.stdout + r.stderr
    assert (f"WARNING export-manifest: export-manifest.json: names bag directory '{bag_dir.name}', "
            "the export has 'y'") in r.stderr, r.stderr


def test_export_of_an_empty_case_is_refused_and_one_failing_reopens_its_court_request(stack: Stack, people) -> None:
    """An export of a case with no evidence is refused when asked (409 ``nothing_to_export``).
    One that still fails when built (asked before that check) is a failure of the request, not
    of the system: the export says why, the court request it fulfilled waits again for a
    reviewer (declined here, 409 ``court_request_decided`` before), and /healthz does not count
    it as failed work for ever."""
    from archive import work
    from archive.exports import court_requests
    from archive.models import ExportRequest, LedgerEntry, User, Work, utcnow

    with stack.client(people["officer"]) as c:
        case = c.post("/api/v1/cases", json={"case_number": f"WH-{uuid.uuid4().hex[:8]}", "title": "Empty"}).json()
    with stack.client(people["judge"]) as judge:
        asked = judge.post("/api/v1/export-requests", json={
            "case_number": case["case_number"], "unit": "unit-x", "court_reference": "(2026)京0101行初1号",
            "legal_basis": "行政诉讼法第40条"}).json()["id"]
    with stack.client(people["requester"]) as req:
        for body in ({"request": asked}, {"recipient": people["judge_name"]}):
            r = req.post(f"/api/v1/cases/{case['id']}/exports", json=body)
            assert r.status_code == 409 and r.json()["error"]["code"] == "nothing_to_export", r.text
    with stack.client(people["approver"]) as appr:
        failed_before = appr.get("/healthz").json()["work"]["failed"]
    with stack.services.db.session() as session:  # as an export asked and approved before the check
        names = {u.name: u for u in session.execute(select(User).where(User.name.in_(
            [people["requester_name"], people["approver_name"], people["judge_name"]]))).scalars()}
        export = ExportRequest(
            case_id=case["id"], requested_by=names[people["requester_name"]].id, items=None, include_derived=False,
            recipient_id=names[people["judge_name"]].id, status="approved", progress={},
            approved_by=names[people["approver_name"]].id, approved_at=utcnow())
        session.add(export)
        session.flush()
        eid = export.id
        request = court_requests.check_fulfilment(session, user=names[people["requester_name"]], request_id=asked,
                                                  case_id=case["id"])
        court_requests.fulfil(session, user=names[people["requester_name"]], request=request, export=export)
        work.want(session, task=work.BUILD_EXPORT, subject=eid)
    with stack.client(people["approver"]) as appr:
        done = wait_export(stack, people["approver"], eid)
        assert done["status"] == "failed" and "no evidence" in done["error"]
        d = appr.get(f"/api/v1/exports/{eid}/download")
        assert d.status_code == 409 and d.json()["error"]["code"] == "export_failed"
        deadline = time.monotonic() + 30
        while True:  # the worker drops the work row just after it records the failure
            with stack.services.db.snapshot() as s:
                if s.get(Work, (work.BUILD_EXPORT, eid)) is None:
                    break
            assert time.monotonic() < deadline, "the failed export's work stayed"
            time.sleep(0.2)
        assert appr.get("/healthz").json()["work"]["failed"] == failed_before
    with stack.client(people["judge"]) as judge:
        mine = {r["id"]: r for r in judge.get("/api/v1/export-requests").json()}
        assert mine[asked]["status"] == "pending" and mine[asked]["export_id"] is None
    with stack.client(people["requester"]) as req:
        declined = req.post(f"/api/v1/export-requests/{asked}/decline", json={"reason": "案件无证据"})
        assert declined.status_code == 200 and declined.json()["status"] == "declined", declined.text
    with stack.services.db.snapshot() as s:
        reopened = s.execute(select(LedgerEntry.details).where(
            LedgerEntry.case_id == case["id"], LedgerEntry.action == "court_request_reopened")).scalars().all()
    assert [json.loads(d) for d in reopened] == [{"request": asked, "export": eid, "reason": done["error"]}]


def test_reviewer_verification_receipt(stack: Stack, people, sealed_case) -> None:
    case = sealed_case
    with stack.client(people["officer"]) as officer, stack.client(people["requester"]) as rev:
        assert officer.post(f"/api/v1/cases/{case['id']}/verify").status_code == 403
        # "passed" needs processing and continuity finished, not only the seals.
        deadline = time.monotonic() + 120
        while officer.get(f"/api/v1/cases/{case['id']}/continuity").json()["pending"]:
            assert time.monotonic() < deadline
            time.sleep(0.3)
        r = rev.post(f"/api/v1/cases/{case['id']}/verify")
        assert r.status_code == 202, r.text
        rid = r.json()["id"]
        deadline = time.monotonic() + 180
        while True:
            receipts = rev.get(f"/api/v1/cases/{case['id']}/verifications").json()
            mine = next(x for x in receipts if x["id"] == rid)
            if mine["status"] in ("passed", "incomplete", "failed"):
                break
            assert time.monotonic() < deadline, mine
            time.sleep(0.5)
        assert mine["status"] == "passed", mine["checks"]
        whats = {c["what"] for c in mine["checks"]}
        assert {"item", "ledger", "checkpoints", "continuity"} <= whats
        assert sum(1 for c in mine["checks"] if c["what"] == "item") == 5
    r = stack.cli("verify-case", case["case_number"])
    assert r.returncode == 0, r.stdout + r.stderr


def test_export_approved_before_sealing_waits_and_builds(stack: Stack, people) -> None:
    """Approved while the bundle and its members are still being sealed: the export waits
    (status ``waiting``, naming what it waits for) and becomes ready without a new request.

    Whether the workers seal the bundle before the builder looks is a race the test cannot
    hold still on a shared stack, so it tries up to four cases: every one must be built
    exactly once and never fail, and at least one must have been caught waiting."""
    waited = 0
    for _ in range(4):
        with stack.client(people["officer"]) as c:
            case = c.post("/api/v1/cases", json={"case_number": f"WT-{uuid.uuid4().hex[:8]}", "title": "Waiting"}).json()
            upload(c, case["id"], capture_bundle(), "remote_capture", "capture.zip")
        with stack.client(people["requester"]) as req, stack.client(people["approver"]) as appr:
            eid = req.post(f"/api/v1/cases/{case['id']}/exports", json={"recipient": people["judge_name"]}).json()["id"]
            r = appr.post(f"/api/v1/exports/{eid}/approve")
            assert r.status_code == 200, r.text
            export = wait_export(stack, people["requester"], eid)
            assert export["status"] == "ready", export
            entries = req.get("/api/v1/ledger/entries", params={"case_id": case["id"]}).json()
        actions = [e["action"] for e in entries]
        assert actions.count("export_built") == 1 and "export_failed" not in actions, actions
        items = wait_case_sealed(stack, people["officer"], case["id"], 3)
        assert {i["filename"] for i in items} == {"capture.zip", "page.html", "one.png"}
        if "export_waiting" in actions:
            # It did wait (the bundle was not sealed when it was approved), then was built once.
            assert actions.index("export_waiting") < actions.index("export_built")
            waited += 1
            break
    assert waited, "the export never waited: the bundle was sealed before every approval"


def test_export_seals_the_continuity_report_reviewers_see(stack: Stack, people, tmp_path: Path) -> None:
    """One continuity report: approved while its case is still being processed, an export
    seals the report the API shows once processing and analysis are done."""
    cam, start, end = f"CAM-{uuid.uuid4().hex[:8]}", "2026-03-01T02:00:00Z", "2026-03-01T02:01:00Z"
    with stack.client(people["officer"]) as c:
        case = c.post("/api/v1/cases", json={"case_number": f"WC-{uuid.uuid4().hex[:8]}", "title": "Gaps"}).json()
        r = c.post(f"/api/v1/cases/{case['id']}/evidence", content=tiny_clip(tmp_path / "clip.mp4"),
                   params={"kind": "bodycam_video", "filename": "clip.mp4", "device_id": cam, "recorded_start": start})
        assert r.status_code == 201, r.text
        action = c.post(f"/api/v1/cases/{case['id']}/actions",
                        json={"kind": "seizure", "start": start, "end": end, "devices": [cam]}).json()
    with stack.client(people["requester"]) as req, stack.client(people["approver"]) as appr:
        eid = req.post(f"/api/v1/cases/{case['id']}/exports", json={"recipient": people["judge_name"]}).json()["id"]
        assert appr.post(f"/api/v1/exports/{eid}/approve").status_code == 200
        export = wait_export(stack, people["requester"], eid)
        assert export["status"] == "ready", export
        report = req.get(f"/api/v1/cases/{case['id']}/continuity").json()
        download = req.get(f"/api/v1/exports/{eid}/download")
        assert download.status_code == 200, download.text
    sealed, manifest = _continuity_of(download.content)

    assert report["pending"] is False and sealed["pending"] is False
    assert report["complete"] is False and sealed["complete"] is False
    assert sealed["case"] == case["id"] and sealed["analysis"] == report["summary"]
    assert [g["level"] for g in report["gaps"]] == ["action_window"], report
    assert [_gap_shape(g) for g in sealed["gaps"]] == [_gap_shape(g) for g in report["gaps"]]
    counts = {"gaps": 1, "accepted": 0, "unresolved": 1, "status": "unexplained_gaps"}
    assert sealed["summary"] == manifest["continuity"] == counts
    assert [a["id"] for a in sealed["actions"]] == [action["id"]]


def test_export_waits_while_a_continuity_analysis_is_owed(stack: Stack, own_ledger) -> None:
    """On a database of its own (the test is the worker): an approved export of a case whose
    analysis is still owed waits, naming it; the analysis asks for it again, and it then
    seals the report as it stands."""
    from archive import work
    from archive.continuity import devices, runs
    from archive.continuity.report import build_report, report_document
    from archive.exports import build, waiting
    from archive.models import ExportRequest, User, Work
    from archive.seals.sealer import Sealer
    from archive.storage import open_store
    from tests.casefile import open_case_file

    env, database = own_ledger
    settings = settings_from_env(env)
    sealer, store = Sealer(settings), open_store(settings)
    casefile = open_case_file(database, store, sealer, case_number="OWN-1", title="Owed", unit="unit-a",
                              prefix="own-")
    case_id = casefile.case_id
    casefile.add_sealed("a.bin", [b"not a video" * 100])
    with database.session() as s:
        devices.create_action(s, user=s.get(User, casefile.officer_id), case_id=case_id, kind="seizure",
                              devices=["CAM-OWN"], start=datetime(2026, 3, 1, 2, tzinfo=timezone.utc),
                              end=datetime(2026, 3, 1, 3, tzinfo=timezone.utc))
    export_id = casefile.approved_export()

    assert build.build_export(db=database, store=store, settings=settings, export_id=export_id,
                                sealer=sealer) is None
    with database.session() as s:
        export = s.get(ExportRequest, export_id)
        assert export.status == "waiting", export.progress
        owed = export.progress["waiting_for_continuity"]
        assert [(o["what"], o["reason"]) for o in owed] == [("continuity", "continuity_analysis_pending")]
        s.execute(delete(Work).where(Work.task == work.BUILD_EXPORT))

    with database.session() as s:  # what the analysis task does
        assert runs.analyse_case(s, case_id=case_id, tolerance_seconds=settings.gap_tolerance_seconds)
        assert waiting.wake_waiting_exports(s, case_id=case_id) == [export_id]
    result = build.build_export(db=database, store=store, settings=settings, export_id=export_id, sealer=sealer)
    assert result is not None
    with database.session() as s:
        export = s.get(ExportRequest, export_id)
        assert export.status == "ready"
        expected = report_document(build_report(s, case_id=case_id))
        zip_bytes = b"".join(store.read(export.storage_key, version_id=export.storage_version))
    sealed, manifest = _continuity_of(zip_bytes)
    assert sealed == json.loads(json.dumps(expected))
    assert sealed["pending"] is False and [g["level"] for g in sealed["gaps"]] == ["action_window"]
    assert manifest["continuity"] == sealed["summary"]


def _continuity_of(zip_bytes: bytes) -> tuple[dict, dict]:
    """(continuity/report.json, export-manifest.json) of an export."""
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as zf:
        names = zf.namelist()
        report = json.loads(zf.read(next(n for n in names if n.endswith("/continuity/report.json"))))
        manifest = json.loads(zf.read(next(n for n in names if n.endswith("/export-manifest.json"))))
    return report, manifest


def _gap_shape(g: dict) -> tuple:
    return g["level"], g["device"], g["item"], g["action"], g["status"], g["cause"], g["duration_seconds"]


def _built_export(stack: Stack, people: dict[str, str], case_id: str) -> dict:
    with stack.client(people["requester"]) as req, stack.client(people["approver"]) as appr:
        eid = req.post(f"/api/v1/cases/{case_id}/exports", json={"recipient": people["judge_name"]}).json()["id"]
        assert appr.post(f"/api/v1/exports/{eid}/approve").status_code == 200
    return wait_export(stack, people["approver"], eid)


def _selection_downloaded(stack: Stack, people: dict[str, str], case_id: str, item_ids: list[str]) -> bytes:
    """An export of ``item_ids`` for the judge, approved, built and downloaded by the judge."""
    with stack.client(people["requester"]) as req, stack.client(people["approver"]) as appr:
        eid = req.post(f"/api/v1/cases/{case_id}/exports",
                       json={"recipient": people["judge_name"], "items": item_ids}).json()["id"]
        assert appr.post(f"/api/v1/exports/{eid}/approve").status_code == 200
    assert wait_export(stack, people["approver"], eid)["status"] == "ready"
    with stack.client(people["judge"]) as judge:
        return judge.get(f"/api/v1/exports/{eid}/download").content


def _one_document_case(stack: Stack, people: dict[str, str]) -> dict:
    with stack.client(people["officer"]) as c:
        case = c.post("/api/v1/cases", json={"case_number": f"WH-{uuid.uuid4().hex[:8]}", "title": "Tamper"}).json()
        upload(c, case["id"], tiny_pdf(), "document", "record.pdf")
    case["items"] = wait_case_sealed(stack, people["officer"], case["id"], 1)
    return case


def test_an_export_downloads_under_its_case_number(stack: Stack, people) -> None:
    """A clerk's browser (or ``curl -OJ``) saves the ZIP under the case's number, in UTF-8
    (RFC 6266 ``filename*``), a "/" in the number made "_"; a client that reads only
    ``filename`` gets the export's id."""
    from urllib.parse import quote

    number = f"文旅罚〔2026〕/{uuid.uuid4().hex[:6]}号"
    with stack.client(people["officer"]) as c:
        case = c.post("/api/v1/cases", json={"case_number": number, "title": "下载名"}).json()
        upload(c, case["id"], tiny_pdf(), "document", "record.pdf")
    wait_case_sealed(stack, people["officer"], case["id"], 1)
    export = _built_export(stack, people, case["id"])
    with stack.client(people["judge"]) as judge:
        for method in ("GET", "HEAD"):
            r = judge.request(method, f"/api/v1/exports/{export['id']}/download")
            assert r.status_code == 200, r.text
            saved = f"{number.replace('/', '_')}-export-{export['id'][:8]}.zip"
            assert r.headers["content-disposition"] == (
                f'attachment; filename="export-{export["id"]}.zip"; filename*=UTF-8\'\'{quote(saved, safe="")}')


def test_an_export_zip_altered_in_the_store_is_never_served_whole_and_is_failed(stack: Stack, people) -> None:
    """A download checks the ZIP as it sends it: an altered one ends short of its length, never
    reaching the court whole under the SHA-256 its headers and custody entry name; the export
    is then failed (no further download) and the ledger says why."""
    from archive.models import ExportRequest, LedgerEntry
    from tests.conftest import tamper_stored
    from tests.tools import received_cut_short

    if stack.name != "embedded":
        pytest.skip("S3: the ZIP's recorded version is locked; an insider's newer version is not what is read")
    export = _built_export(stack, people, _one_document_case(stack, people)["id"])
    assert export["status"] == "ready", export
    with stack.services.db.snapshot() as s:
        key = s.get(ExportRequest, export["id"]).storage_key
    tamper_stored(stack.services.store, key)
    url = f"/api/v1/exports/{export['id']}/download"
    with stack.client(people["judge"]) as judge:
        assert len(received_cut_short(judge, url)) < export["size"]
        again = judge.get(url)
        assert again.status_code == 409 and again.json()["error"]["code"] == "export_failed", again.text
        assert "no longer the one built" in again.json()["error"]["message"]
    with stack.services.db.snapshot() as s:
        entries = s.execute(select(LedgerEntry.details).where(LedgerEntry.action == "export_altered")).scalars()
        assert any(json.loads(d)["export"] == export["id"] for d in entries)


def test_an_item_seal_altered_in_the_store_is_not_certified(stack: Stack, people) -> None:
    """The export reads each item's manifest and seals from the store: one that no longer has
    the SHA-256 recorded when it was made fails the build (it was bagged and sealed as it was)."""
    from archive.models import DerivedObject
    from tests.conftest import tamper_stored

    if stack.name != "embedded":
        pytest.skip("S3: the seal's recorded version is locked; an insider's newer version is not what is read")
    case = _one_document_case(stack, people)
    item_id = case["items"][0]["id"]
    with stack.services.db.snapshot() as s:
        key = s.execute(select(DerivedObject.storage_key).where(
            DerivedObject.item_id == item_id, DerivedObject.role == "cades")).scalar_one()
    tamper_stored(stack.services.store, key)
    export = _built_export(stack, people, case["id"])
    assert export["status"] == "failed", export
    assert f"derived cades of item {item_id} no longer matches its sha256" in export["error"], export["error"]


def test_a_selection_says_it_is_one_in_its_sealed_manifest_and_certificate(stack: Stack, people) -> None:
    """A court must tell a selection of a case's evidence from the whole case."""
    from pypdf import PdfReader

    with stack.client(people["officer"]) as c:
        case = c.post("/api/v1/cases", json={"case_number": f"WH-{uuid.uuid4().hex[:8]}", "title": "Part"}).json()
        upload(c, case["id"], tiny_pdf(), "document", "record.pdf")
        upload(c, case["id"], b"statement of the party", "document", "statement.txt")
    first, _ = wait_case_sealed(stack, people["officer"], case["id"], 2)
    data = _selection_downloaded(stack, people, case["id"], [first["id"]])
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = zf.namelist()
        manifest = json.loads(zf.read(next(n for n in names if n.endswith("/export-manifest.json"))))
        pdf = zf.read(next(n for n in names if n.endswith("/certificate.pdf")))
    assert manifest["scope"] == {"selected": True, "items": 1, "case_items": 2}
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    assert "a selection: 1 of the case's 2 items" in " ".join(text.split()), text[:1500]


def test_a_selection_carries_the_custody_of_what_it_discloses_and_still_verifies(stack: Stack, people,
                                                                                 tmp_path: Path) -> None:
    """A court given one item of a case received the whole case's custody timeline: the
    receipt, reads and seals of the items it was not given, with their file names and hashes
    (and an earlier export's entries listing them). A selection now carries the entries of its
    items and the case's own entries that name no other item; each keeps its inclusion proof, so
    the export still verifies offline."""
    with stack.client(people["officer"]) as c:
        case = c.post("/api/v1/cases", json={"case_number": f"WH-{uuid.uuid4().hex[:8]}", "title": "Part"}).json()
        upload(c, case["id"], tiny_pdf(), "document", "record.pdf")
        secret = b"statement of an informant " + uuid.uuid4().hex.encode()
        upload(c, case["id"], secret, "document", "informant-statement.txt")
    items = wait_case_sealed(stack, people["officer"], case["id"], 2)
    given = next(i for i in items if i["filename"] == "record.pdf")
    withheld = next(i for i in items if i["filename"] == "informant-statement.txt")
    with stack.client(people["requester"]) as req:
        assert req.get(f"/api/v1/evidence/{withheld['id']}/content").status_code == 200  # a read of it
    assert _built_export(stack, people, case["id"])["status"] == "ready"  # a whole-case export names it
    zpath = tmp_path / "selection.zip"
    zpath.write_bytes(_selection_downloaded(stack, people, case["id"], [given["id"]]))
    with zipfile.ZipFile(zpath) as zf:
        ledger_text = zf.read(next(n for n in zf.namelist() if n.endswith("/ledger/entries.jsonl"))).decode()
    entries = [json.loads(line)["entry"] for line in ledger_text.splitlines()]
    for leak in (withheld["id"], withheld["filename"], withheld["sha256"]):
        assert leak not in ledger_text, leak
    actions = [(e["action"], e["item"]) for e in entries]
    assert ("case_created", None) in actions and ("evidence_received", given["id"]) in actions
    assert ("item_sealed", given["id"]) in actions and ("export_requested", None) in actions, actions
    r = stack.cli("verify-export", str(zpath), "--trust", str(stack.settings.resolved_keys_dir / "root.pem"), "--lang", "en")
    assert r.returncode == 0 and "EXPORT VERIFIED" in r.stdout, r.stdout + r.stderr
