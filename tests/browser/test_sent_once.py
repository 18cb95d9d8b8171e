"""A control pressed twice does its work once: a form posted again while its first request is on
its way, and the upload button pressed again while files are being sent. The pages, not the
store, are under test: the embedded default only."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from archive.models import LedgerEntry, Upload
from tests.browser.conftest import open_as
from tests.browser.test_upload import DROP, _case

pytestmark = pytest.mark.slow

TWICE = """([testid, after]) => { const b = document.querySelector(`[data-testid=${testid}]`);
  b.click(); setTimeout(() => b.click(), after); }"""
"""Press a button, and again ``after`` ms later (an impatient user, a slow answer)."""


@pytest.mark.parametrize("stack", ["embedded"], indirect=True)
def test_a_form_pressed_twice_is_sent_once_and_again_after_coming_back(browser, stack) -> None:
    """The second press sent the form again (two POSTs reached the archive: for a legal review,
    two sealed reviews). Back at the form from an error page, it can be sent again."""
    officer = stack.user(role="officer", unit="unit-a")
    page = open_as(browser, stack, officer, lang="zh")
    page.goto("/cases")
    held = []
    page.route("**/cases", lambda r: held.append(r) if r.request.method == "POST" else r.continue_())
    number = f"文旅执罚〔2026〕{uuid.uuid4().hex[:6]}号"
    page.get_by_test_id("new-case-number").fill(number)
    page.get_by_test_id("new-case-title").fill("重复提交测试")
    page.evaluate(TWICE, ["new-case-submit", 300])
    page.wait_for_timeout(1_000)
    assert len(held) == 1, [r.request.url for r in held]
    held[0].continue_()
    page.wait_for_url("**notice=case_created")
    page.unroute("**/cases")
    # The same number again is refused; back at the form, it is sent again when pressed.
    page.goto("/cases")
    page.get_by_test_id("new-case-number").fill(number)
    page.get_by_test_id("new-case-title").fill("重复提交测试")
    page.get_by_test_id("new-case-submit").click()
    page.get_by_test_id("error-back-to-form").click()
    page.get_by_test_id("new-case-number").fill(number + "-2")
    page.get_by_test_id("new-case-submit").click()
    page.wait_for_url("**notice=case_created")


@pytest.mark.parametrize("stack", ["embedded"], indirect=True)
def test_the_upload_button_pressed_twice_sends_each_file_once(browser, stack) -> None:
    """Pressed again while the first file was being sent, the files still waiting were sent a
    second time beside the first sending (each such file resumed twice at once: HEAD requests
    beside the creations; once finished, a second upload and a duplicate_received entry)."""
    officer = stack.user(role="officer", unit="unit-a")
    case = _case(stack, officer)
    page = open_as(browser, stack, officer, lang="zh")
    page.context.add_init_script("window.EVIDENCE_UPLOAD_CHUNK = 64 * 1024;")  # sending takes a while
    page.goto(f"/cases/{case['id']}")
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.method) if "/api/v1/uploads" in r.url and r.method != "PATCH" else None)
    for n in range(3):
        page.evaluate(DROP, [f"note-{n}.txt", f"note {n} " * 100_000])
    page.evaluate(TWICE, ["upload-begin", 100])
    page.wait_for_function("() => document.querySelectorAll('[data-testid=upload-row][data-state=done]').length === 3")
    page.wait_for_function("() => document.querySelectorAll('[data-testid=item-row]').length === 3")
    with stack.services.db.read() as s:
        uploads = s.execute(select(Upload.id).where(Upload.case_id == case["id"])).all()
        duplicates = s.execute(select(LedgerEntry.seq).where(LedgerEntry.case_id == case["id"],
                                                              LedgerEntry.action == "duplicate_received")).all()
    assert (len(uploads), len(duplicates), sent) == (3, 0, ["POST"] * 3)


@pytest.mark.parametrize("stack", ["embedded"], indirect=True)
def test_leaving_the_page_while_uploading_asks_first(browser, stack) -> None:
    """A link followed while a file was being sent stopped the upload without a word (it went
    on only when the same file was chosen again): the browser now asks, and staying lets the
    upload finish; once everything is received the page is left without a question."""
    officer = stack.user(role="officer", unit="unit-a")
    case = _case(stack, officer)
    page = open_as(browser, stack, officer, lang="zh")
    page.context.add_init_script("window.EVIDENCE_UPLOAD_CHUNK = 128 * 1024;")
    page.goto(f"/cases/{case['id']}")
    asked: list[str] = []

    def stay(dialog) -> None:  # type: ignore[no-untyped-def]
        asked.append(dialog.type)
        dialog.dismiss()

    page.on("dialog", stay)
    page.evaluate(DROP, ["long-note.txt", "x" * (4 * 1024 * 1024)])
    page.get_by_test_id("upload-begin").click()
    page.wait_for_function("() => document.querySelector('[data-testid=upload-row]').dataset.state === 'uploading'")
    page.locator("header nav a[href='/cases']").click(no_wait_after=True)
    page.wait_for_timeout(500)
    assert asked == ["beforeunload"] and page.url.endswith(f"/cases/{case['id']}"), (asked, page.url)
    page.locator("[data-testid=upload-row][data-state=done]").wait_for(timeout=30_000)
    page.locator("header nav a[href='/cases']").click()
    page.wait_for_url("**/cases")
    assert asked == ["beforeunload"]


@pytest.mark.parametrize("stack", ["embedded"], indirect=True)
def test_the_upload_button_with_nothing_chosen_says_so(browser, stack) -> None:
    """Pressed before any file was chosen, the button did nothing at all: it now says to choose
    files first and puts the keyboard on the file chooser; pressed again while files are being
    sent it says nothing of the kind."""
    officer = stack.user(role="officer", unit="unit-a")
    case = _case(stack, officer)
    page = open_as(browser, stack, officer, lang="zh")
    page.context.add_init_script("window.EVIDENCE_UPLOAD_CHUNK = 64 * 1024;")
    page.goto(f"/cases/{case['id']}")
    said = page.get_by_test_id("upload-nothing")
    assert said.is_hidden()
    page.get_by_test_id("upload-begin").click()
    assert said.is_visible() and "请先选择文件" in said.inner_text()
    assert page.evaluate("document.activeElement.dataset.testid") == "upload-input"
    page.evaluate(DROP, ["note.txt", "n" * 1_000_000])
    assert said.is_hidden()
    page.evaluate(TWICE, ["upload-begin", 100])
    page.wait_for_timeout(300)
    assert said.is_hidden()
    page.locator("[data-testid=upload-row][data-state=done]").wait_for(timeout=30_000)


@pytest.mark.parametrize("stack", ["embedded"], indirect=True)
def test_an_export_answering_a_court_request_goes_to_the_court_that_asked(browser, stack) -> None:
    """Two courts asked for one case. The export form offered both requests, each marked
    selected (the browser chose the last) while the recipient field held the first court's
    user: pressed as it stood, it was refused (接收人必须是提出调取申请的用户), and choosing a
    request left the recipient as it was. The first request is now chosen with its own court
    user, and choosing another request puts its court user in the recipient field."""
    tag = uuid.uuid4().hex[:6]
    officer = stack.user(role="officer", unit="unit-a")
    reviewer = stack.user(role="reviewer", unit="unit-a")
    case = _case(stack, officer)
    with stack.client(officer) as c:
        assert c.post(f"/api/v1/cases/{case['id']}/evidence", params={"kind": "document", "filename": "笔录.txt"},
                      content=b"record " + tag.encode()).status_code == 201
    courts = {}
    for n in (1, 2):
        name = f"court{n}-{tag}"
        with stack.client(stack.user(role="court", unit=f"court-{n}", name=name)) as c:
            courts[name] = c.post("/api/v1/export-requests", json={
                "case_number": case["case_number"], "court_reference": f"(2026)京010{n}行初{n}号",
                "legal_basis": "行政诉讼法第四十条"}).json()["id"]
    page = open_as(browser, stack, reviewer, lang="zh")
    for other in (True, False):  # the request not chosen first, then the one left, as it stands
        page.goto(f"/cases/{case['id']}#exports")
        chooser = page.get_by_test_id("export-court-request")
        requester = {r: n for n, r in courts.items()}
        assert page.get_by_test_id("export-recipient").input_value() == requester[chooser.input_value()]
        if other:
            chooser.select_option(index=2)
            assert page.get_by_test_id("export-recipient").input_value() == requester[chooser.input_value()]
        page.get_by_test_id("export-request").click()
        page.wait_for_url("**notice=export_requested**")
    with stack.client(reviewer) as c:
        answered = {r["id"]: r["status"] for r in c.get("/api/v1/export-requests").json() if r["id"] in courts.values()}
    assert answered == {r: "fulfilled" for r in courts.values()}, answered
