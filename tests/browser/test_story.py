"""Issue 16's story in a real browser, each role on its own pages:

* the officer creates a case, uploads two clips and a PDF through the page (hashed in the
  browser, sent with tus, one interrupted by a page reload and resumed), sees them sealed
  (live) and explains the gap between the clips;
* a reviewer plays the proxy at the gap (the video's time advances), accepts it and records
  the case's filing legal review on the page (sealed, listed with its time-stamp);
* a court user requests the case by number; reviewer A fulfils the request, reviewer B
  approves the export; the court user downloads it from their page;
* an administrator disables the officer, whose next request is refused.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from archive.models import Upload
from tests.browser.conftest import open_as

pytestmark = pytest.mark.slow


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    """Two different clips of one camera (20 s each) and a PDF; the second clip is large
    enough (several MiB) for its upload to be interrupted."""
    d = tmp_path_factory.mktemp("browser-media")
    first, second = d / "cam-part1.mp4", d / "cam-part3.mp4"
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x90:rate=10:duration=20", "-c:v", "libx264", "-preset",
            "ultrafast", "-g", "10", str(first))
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25:duration=20", "-c:v", "libx264", "-preset",
            "ultrafast", "-crf", "4", "-g", "25", str(second))
    pdf = d / "record.pdf"
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(pdf))
    c.drawString(72, 720, "Record of the inspection")
    c.save()
    return {"first": first, "second": second, "pdf": pdf}


def test_story_of_a_case_from_upload_to_court(browser, stack, media):
    tag = uuid.uuid4().hex[:6]
    names = {role: f"{role}-{tag}" for role in ("officer", "reviewer_a", "reviewer_b", "court", "admin")}
    tokens = {
        "officer": stack.user(role="officer", unit="unit-a", name=names["officer"]),
        "reviewer_a": stack.user(role="reviewer", unit="unit-a", name=names["reviewer_a"]),
        "reviewer_b": stack.user(role="reviewer", unit="unit-a", name=names["reviewer_b"]),
        "court": stack.user(role="court", unit="court-1", name=names["court"]),
        "admin": stack.user(role="admin", unit="hq", name=names["admin"]),
    }
    number, case_id, page = _officer_uploads_and_explains(browser, stack, media, tokens["officer"])
    _reviewer_plays_and_accepts(browser, stack, tokens["reviewer_a"], case_id)
    export_id = _court_requests_reviewers_fulfil_and_approve(browser, stack, tokens, names, number, case_id)
    _court_downloads(browser, stack, tokens["court"], export_id, tmp=stack.tmp)
    _admin_disables(browser, stack, tokens["admin"], names["officer"], officer_page=page,
                    officer_token=tokens["officer"])


def _officer_uploads_and_explains(browser, stack, media, token):  # type: ignore[no-untyped-def]
    page = open_as(browser, stack, token)
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    # Small tus chunks, so the reload below lands in the middle of the second clip.
    page.context.add_init_script("window.EVIDENCE_UPLOAD_CHUNK = 256 * 1024;")
    number = f"文旅执罚〔2026〕{uuid.uuid4().hex[:6]}号"
    page.goto("/cases")
    page.get_by_test_id("new-case-number").fill(number)
    page.get_by_test_id("new-case-title").fill("某网吧违规经营案")
    page.get_by_test_id("new-case-submit").click()
    page.wait_for_url("**/cases/*")
    case_id = page.url.split("/cases/")[1].split("?")[0]

    # First clip and the PDF: device and start time given on the page.
    page.get_by_test_id("upload-device").fill("CAM-07")
    page.get_by_test_id("upload-recorded-start").fill("2026-03-01T10:00:00")
    page.get_by_test_id("upload-input").set_input_files([str(media["first"])])
    page.get_by_test_id("upload-device").fill("")
    page.get_by_test_id("upload-recorded-start").fill("")
    page.get_by_test_id("upload-input").set_input_files([str(media["pdf"])])
    assert page.get_by_test_id("upload-row").count() == 2
    page.get_by_test_id("upload-begin").click()
    page.locator('[data-testid=upload-row][data-state=done]').nth(1).wait_for()

    # The second clip: interrupted by a reload once a part has arrived, then resumed.
    page.get_by_test_id("upload-device").fill("CAM-07")
    page.get_by_test_id("upload-recorded-start").fill("2026-03-01T10:00:40")
    page.get_by_test_id("upload-input").set_input_files([str(media["second"])])

    def slow_part(route) -> None:  # type: ignore[no-untyped-def]
        # Each part waits a little, so the whole clip cannot arrive before the reload does.
        if route.request.method == "PATCH":
            time.sleep(0.2)
        route.continue_()

    page.route("**/api/v1/uploads/**", slow_part)
    page.get_by_test_id("upload-begin").click()
    page.wait_for_function(
        "() => { const r = document.querySelector('[data-testid=upload-row][data-filename=\"cam-part3.mp4\"]');"
        " return r && r.dataset.state === 'uploading' && r.querySelector('progress').value > 0.15"
        " && Object.keys(localStorage).some(k => k.startsWith('tus::')); }")
    page.reload()
    page.unroute("**/api/v1/uploads/**", slow_part)
    page.get_by_test_id("upload-resumable").wait_for()
    page.get_by_test_id("upload-device").fill("CAM-07")
    page.get_by_test_id("upload-recorded-start").fill("2026-03-01T10:00:40")
    page.get_by_test_id("upload-input").set_input_files([str(media["second"])])
    page.get_by_test_id("upload-begin").click()
    row = page.locator('[data-testid=upload-row][data-filename="cam-part3.mp4"]')
    row.and_(page.locator("[data-state=done]")).wait_for(timeout=60_000)
    assert row.get_attribute("data-resumed") == "true"
    assert row.get_attribute("data-sha256") == hashlib.sha256(media["second"].read_bytes()).hexdigest()

    # Three items, sealed, the page updating itself (no reload).
    sealed = page.locator('[data-testid=item-row][data-seal-status=sealed]')
    page.wait_for_function("() => document.querySelectorAll('[data-testid=item-row][data-seal-status=sealed]').length === 3",
                           timeout=120_000)
    assert sealed.count() == 3
    with stack.services.db.read() as s:
        uploads = s.execute(select(Upload).where(Upload.case_id == case_id)).scalars().all()
    # One upload per file: the interrupted one was resumed, not started again.
    assert sorted(u.status for u in uploads) == ["complete"] * 3

    # The gap between the two clips (10:00:20 to 10:00:40 on CAM-07): explained.
    page.reload()
    gap = page.get_by_test_id("gap-row").first
    gap.wait_for(timeout=60_000)
    gap.get_by_test_id("gap-explain").fill("记录仪电量耗尽，更换电池。")
    gap.get_by_test_id("gap-explain-submit").click()
    page.wait_for_url("**notice=gap_explained**")
    assert page.get_by_test_id("gap-row").first.get_attribute("data-gap-status") == "explained"
    page.goto("/cases")
    assert page.get_by_test_id("case-row").filter(has_text=number).get_attribute("data-open-gaps") == "0"
    return number, case_id, page


def _reviewer_plays_and_accepts(browser, stack, token, case_id):  # type: ignore[no-untyped-def]
    page = open_as(browser, stack, token, lang="en")
    assert page.url.endswith("/queue") and page.locator("html").get_attribute("lang") == "en"
    page.get_by_test_id("queue-gap").first.get_by_role("link").click()
    page.wait_for_url(f"**/cases/{case_id}**")
    # The timeline: CAM-07's two recordings and the gap between them.
    assert page.get_by_test_id("timeline-rec").count() == 2 and page.get_by_test_id("timeline-gap").count() == 1
    gap = page.get_by_test_id("gap-row").first
    play = gap.get_by_test_id("gap-play")
    assert page.get_by_test_id("timeline-gap").get_attribute("data-at") == play.get_attribute("data-at")
    start_at = float(play.get_attribute("data-at"))
    assert 15.0 <= start_at <= 18.0  # a few seconds before the end of the first clip (20 s)
    play.click()
    page.wait_for_function(
        f"() => {{ const v = document.querySelector('[data-testid=video-player]');"
        f" return v && !v.paused && v.currentTime > {start_at + 0.5}; }}", timeout=30_000)
    # Enter in the comment starts a new line of it: no decision is taken by a key press.
    comment = gap.get_by_test_id("gap-comment")
    comment.fill("Seen on the proxy")
    comment.press("Enter")
    page.wait_for_timeout(500)
    assert "notice=" not in page.url and gap.get_attribute("data-gap-status") == "explained"
    gap.get_by_test_id("gap-accept").click()
    page.wait_for_url("**notice=gap_reviewed**")
    assert page.get_by_test_id("gap-row").first.get_attribute("data-gap-status") == "accepted"
    _reviewer_records_filing_review(page, case_id)
    # Verify the whole case; the receipt appears on the page when the worker is done.
    page.get_by_test_id("verify-case").click()
    page.wait_for_url("**notice=verification_requested**")
    page.wait_for_function(
        "() => { const r = document.querySelector('[data-testid=receipt]');"
        " return r && !['queued', 'running'].includes(r.dataset.status); }", timeout=120_000)
    receipt = page.get_by_test_id("receipt").first
    assert receipt.get_attribute("data-status") in ("passed", "incomplete"), receipt.inner_text()
    assert receipt.locator("tbody tr").count() > 0
    page.context.close()


def _reviewer_records_filing_review(page, case_id):  # type: ignore[no-untyped-def]
    """The case is filed: its filing review is due; the reviewer records it on the page,
    with the keyboard's own controls (checkboxes, select, text), and sees it sealed."""
    assert page.get_by_test_id("review-due").count() == 1
    assert page.get_by_test_id("review-checkpoint").input_value() == "filing"
    for aspect in ("subject", "facts", "basis", "discretion", "procedure"):
        page.get_by_test_id(f"review-aspect-{aspect}-ok").check()
        page.get_by_test_id(f"review-aspect-{aspect}-comment").fill(f"{aspect}: 经审查无误")
    page.get_by_test_id("review-decision").select_option("approve")
    page.get_by_test_id("review-opinion").fill("同意立案。")
    page.get_by_test_id("review-submit").click()
    page.wait_for_url(f"**/cases/{case_id}?notice=review_recorded**")
    row = page.locator('[data-testid=review-row][data-checkpoint=filing]')
    assert row.count() == 1 and row.get_attribute("data-decision") == "approve"
    sealed = row.get_by_test_id("review-sealed").get_attribute("data-sealed-at")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d\d:\d\d", sealed or ""), sealed
    assert "同意立案。" in row.inner_text()
    assert page.get_by_test_id("review-due").count() == 0
    assert page.get_by_test_id("stage-form").count() == 0  # a reviewer does not move the stage


def _court_requests_reviewers_fulfil_and_approve(browser, stack, tokens, names, number, case_id):  # type: ignore[no-untyped-def]
    court = open_as(browser, stack, tokens["court"])
    assert court.url.endswith("/court")
    court.get_by_test_id("court-case-number").fill(number)
    court.get_by_test_id("court-reference").fill("(2026)京0105行初88号")
    court.get_by_test_id("court-basis").fill("《行政诉讼法》第四十条 调取证据")
    court.get_by_test_id("court-request-submit").click()
    court.wait_for_url("**notice=request_sent**")
    assert court.get_by_test_id("court-request-row").first.get_attribute("data-status") == "pending"
    court.context.close()

    a = open_as(browser, stack, tokens["reviewer_a"])
    a.get_by_test_id("queue-request").filter(has_text=number).get_by_test_id("queue-request-open").click()
    a.wait_for_url(f"**/cases/{case_id}**")
    assert a.get_by_test_id("export-recipient").input_value() == names["court"]
    a.get_by_test_id("export-request").click()
    a.wait_for_url("**notice=export_requested**")
    row = a.get_by_test_id("export-row").first
    export_id = row.get_attribute("data-export-id")
    assert row.get_attribute("data-status") == "requested"
    assert row.get_by_test_id("export-approve").count() == 0  # never one's own
    a.context.close()

    b = open_as(browser, stack, tokens["reviewer_b"])
    b.goto(f"/cases/{case_id}")
    b.locator(f'[data-testid=export-row][data-export-id="{export_id}"]').get_by_test_id("export-approve").click()
    b.wait_for_url("**notice=export_approved**")
    b.context.close()
    return export_id


def _court_downloads(browser, stack, token, export_id, *, tmp):  # type: ignore[no-untyped-def]
    page = open_as(browser, stack, token)
    row = page.locator(f'[data-testid=export-row][data-export-id="{export_id}"]')
    for _ in range(120):
        if row.get_attribute("data-status") == "ready":
            break
        page.wait_for_timeout(1000)
        page.reload()
    assert row.get_attribute("data-status") == "ready"
    with page.expect_download() as info:
        row.get_by_test_id("export-download").click()
    saved = tmp / f"export-{export_id}.zip"
    info.value.save_as(saved)
    assert hashlib.sha256(saved.read_bytes()).hexdigest() == row.locator(".hash").inner_text().strip()
    assert "vv/bin/evidence-verify EXPORT.zip --trust ROOT.pem" in page.get_by_test_id("verify-commands").inner_text()
    page.context.close()


def _admin_disables(browser, stack, token, officer_name, *, officer_page, officer_token):  # type: ignore[no-untyped-def]
    page = open_as(browser, stack, token)
    assert page.url.endswith("/admin")
    user_row = page.locator(f'[data-testid=user-row][data-user="{officer_name}"]')
    user_row.get_by_test_id("user-disable").click()
    page.wait_for_url("**notice=user_updated**")
    assert user_row.get_attribute("data-active") == "false"
    # The officer's next request is refused: the page sends them to sign in, the API says why.
    officer_page.goto("/cases")
    assert "/login" in officer_page.url
    with stack.client(officer_token) as c:
        r = c.get("/api/v1/cases")
    assert r.status_code == 401 and r.json()["error"]["code"] == "user_disabled"
