"""The upload area on its own: files dropped on it are uploaded; a file whose hash the browser
declares wrongly is refused by the server and kept nowhere as evidence."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from archive.models import EvidenceItem
from tests.browser.conftest import open_as

pytestmark = pytest.mark.slow

DROP = """([name, text]) => {
  const data = new DataTransfer();
  data.items.add(new File([text], name, {type: 'text/plain'}));
  const zone = document.getElementById('dropzone');
  zone.dispatchEvent(new DragEvent('dragover', {dataTransfer: data, bubbles: true, cancelable: true}));
  zone.dispatchEvent(new DragEvent('drop', {dataTransfer: data, bubbles: true, cancelable: true}));
}"""


def _case(stack, officer: str) -> dict:  # type: ignore[type-arg]
    with stack.client(officer) as c:
        return c.post("/api/v1/cases", json={"case_number": f"U-{uuid.uuid4().hex[:8]}", "title": "upload"}).json()


def test_dropped_files_are_uploaded(browser, stack):
    officer = stack.user(role="officer", unit="unit-a")
    case = _case(stack, officer)
    page = open_as(browser, stack, officer, lang="zh")
    page.goto(f"/cases/{case['id']}")
    page.evaluate(DROP, ["note-1.txt", "first dropped note"])
    page.evaluate(DROP, ["note-2.txt", "second dropped note"])
    assert page.get_by_test_id("upload-row").count() == 2
    # The queue names each file's kind as the page's list does, in the page's language.
    assert page.locator("[data-testid=upload-row] td:nth-child(2)").all_inner_texts() == ["其他", "其他"]
    page.get_by_test_id("upload-begin").click()
    page.locator("[data-testid=upload-row][data-state=done]").nth(1).wait_for()
    page.wait_for_function("() => document.querySelectorAll('[data-testid=item-row]').length === 2")
    # The heading counts what the refreshed table shows (it said 证据（0） until a reload).
    page.wait_for_function("() => document.getElementById('items-title').textContent.trim() === '证据（2）'")
    # The custody table follows: both receipts, and the sealing the worker did after them, show
    # without a reload (it stayed at the case's creation until one).
    page.wait_for_function("() => document.querySelectorAll('[data-testid=custody-row][data-action=evidence_received]').length === 2")
    page.wait_for_function("() => document.querySelectorAll('[data-testid=custody-row][data-action=item_sealed]').length === 2",
                           timeout=60_000)
    with stack.services.db.read() as s:
        names = set(s.execute(select(EvidenceItem.original_filename).where(EvidenceItem.case_id == case["id"])).scalars())
    assert names == {"note-1.txt", "note-2.txt"}


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_a_wrong_declared_hash_is_refused(browser, stack, lang):
    """The server refuses bytes that do not match the declared hash, and the page says why in
    its reader's language: the server's message in English, the code's explanation in Chinese
    (not the reply's JSON)."""
    from archive.i18n.messages import MESSAGES

    officer = stack.user(role="officer", unit="unit-a")
    case = _case(stack, officer)
    page = open_as(browser, stack, officer, lang=lang)
    # The browser lies about the hash (as a corrupted read would): the server must refuse.
    page.add_init_script("""window.addEventListener('DOMContentLoaded', () => {
        const real = hashwasm.createSHA256;
        hashwasm.createSHA256 = async () => { const h = await real(); const d = h.digest.bind(h);
            h.digest = () => d('hex').replace(/^./, c => c === '0' ? '1' : '0'); return h; };
    });""")
    page.goto(f"/cases/{case['id']}")
    page.evaluate(DROP, ["tampered.txt", "these bytes are not what was declared"])
    page.get_by_test_id("upload-begin").click()
    row = page.locator("[data-testid=upload-row][data-state=failed]")
    row.wait_for(timeout=60_000)
    said = row.inner_text()
    assert "hash_mismatch" not in said and "{" not in said, said
    if lang == "en":
        assert "declared sha256" in said and "nothing was kept" in said, said
    else:
        assert MESSAGES["error_code.hash_mismatch"]["zh"] in said and "declared" not in said, said
    with stack.services.db.read() as s:
        assert s.execute(select(EvidenceItem.id).where(EvidenceItem.case_id == case["id"])).first() is None


def test_an_upload_survives_a_dropped_connection(browser, stack):
    from archive.models import Upload

    officer = stack.user(role="officer", unit="unit-a")
    case = _case(stack, officer)
    page = open_as(browser, stack, officer, lang="en")
    page.context.add_init_script("window.EVIDENCE_UPLOAD_CHUNK = 128 * 1024;")
    page.goto(f"/cases/{case['id']}")
    page.evaluate(DROP, ["long-note.txt", "x" * (6 * 1024 * 1024)])
    page.get_by_test_id("upload-begin").click()
    page.wait_for_function("() => { const r = document.querySelector('[data-testid=upload-row]');"
                           " return r.dataset.state === 'uploading' && r.querySelector('progress').value > 0.1; }")
    page.context.set_offline(True)  # the link drops: requests fail until it is back
    page.locator("[data-testid=upload-row][data-state=offline]").wait_for(timeout=30_000)
    page.context.set_offline(False)
    page.locator("[data-testid=upload-row][data-state=done]").wait_for(timeout=60_000)
    with stack.services.db.read() as s:
        uploads = s.execute(select(Upload).where(Upload.case_id == case["id"])).scalars().all()
        items = s.execute(select(EvidenceItem).where(EvidenceItem.case_id == case["id"])).scalars().all()
    assert [u.status for u in uploads] == ["complete"]  # the same upload went on, none started anew
    assert [i.size for i in items] == [6 * 1024 * 1024]


@pytest.fixture(scope="module")
def two_clips(tmp_path_factory) -> list[Path]:
    """Two different 10 s clips (of one camera, as the test declares them)."""
    d = tmp_path_factory.mktemp("live-clips")
    out = []
    for i, source in enumerate(("testsrc", "testsrc2"), start=1):
        path = d / f"cam-{i}.mp4"
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                        f"{source}=size=160x90:rate=10:duration=10", "-c:v", "libx264", "-preset", "ultrafast",
                        "-g", "10", str(path)], check=True)
        out.append(path)
    return out


COMPLETE_SEEN = """() => {
  // Samples the page: did the continuity section ever say "complete" or "no gaps" once the
  // upload began? (Nothing was analysed yet then, and a gap was coming.)
  window.completeSeen = [];
  document.querySelector('[data-testid=upload-begin]').addEventListener('click', () => setInterval(() => {
    const gaps = document.getElementById('gaps');
    const said = Array.from(gaps.querySelectorAll('.tag.ok, [data-testid=gaps-none] span'))
      .filter(e => e.checkVisibility() && /完整|未发现中断/.test(e.textContent));
    if (said.length) window.completeSeen.push(said.map(e => e.textContent.trim()).join(' '));
  }, 50));
}"""


@pytest.mark.parametrize("stack", ["embedded"], indirect=True)  # the page's behaviour, not the store's
def test_continuity_follows_an_upload_without_a_reload(browser, stack, two_clips):
    """After two clips of one camera with a pause between them are uploaded, the page's
    continuity section says the analysis is pending (never "complete"), then shows the gap with
    its explain form, the timeline draws it and the closing gates name it, all without a reload
    (the section said 连续性：完整 / 未发现中断 until one)."""
    officer = stack.user(role="officer", unit="unit-a")
    case = _case(stack, officer)
    page = open_as(browser, stack, officer, lang="zh")
    page.goto(f"/cases/{case['id']}")
    assert "完整" in page.locator("#gaps-title").inner_text()  # an empty case: nothing owed
    page.evaluate(COMPLETE_SEEN)
    for clip, start in zip(two_clips, ("2026-03-01T10:00:00", "2026-03-01T10:00:30")):
        page.get_by_test_id("upload-device").fill("CAM-LIVE")
        page.get_by_test_id("upload-recorded-start").fill(start)
        page.get_by_test_id("upload-input").set_input_files([str(clip)])
    page.get_by_test_id("upload-begin").click()
    page.locator("[data-testid=upload-row][data-state=done]").nth(1).wait_for(timeout=60_000)
    gap = page.get_by_test_id("gap-row").first
    gap.wait_for(timeout=120_000)
    assert gap.get_by_test_id("gap-explain-submit").is_visible()
    assert "存在待处理的中断" in page.locator("#gaps-title").inner_text()
    page.get_by_test_id("timeline-gap").first.wait_for(timeout=30_000)
    assert page.get_by_test_id("timeline-rec").count() == 2
    assert page.get_by_test_id("timeline-stale").is_hidden()
    page.locator("[data-testid=closing-gate][data-code=gap_unexplained]").wait_for(timeout=30_000)
    assert page.locator("[data-testid=closing-gate][data-code=continuity_analysis_pending]").count() == 0
    assert page.evaluate("window.completeSeen") == []


def _settled(client, case_id: str) -> dict:  # type: ignore[type-arg]
    """The case's continuity report once nothing is pending."""
    deadline = time.monotonic() + 120
    while (report := client.get(f"/api/v1/cases/{case_id}/continuity").json())["pending"]:
        assert time.monotonic() < deadline, report
        time.sleep(0.3)
    return report


@pytest.mark.parametrize("stack", ["embedded"], indirect=True)  # the page's behaviour, not the store's
def test_the_case_page_fits_a_phone(browser, stack, two_clips):
    """At 390x844 (a phone) the case page is usable: the hashes no longer wrap one character a
    line (a 5-item table was 161,519 px tall), the full hash is still there to copy, and the gap
    table's explain form is within the screen's width once scrolled to (it was 784 px wide)."""
    officer = stack.user(role="officer", unit="unit-a")
    case = _case(stack, officer)
    with stack.client(officer) as c:
        for clip, start in zip(two_clips, ("2026-03-01T02:00:00Z", "2026-03-01T02:00:30Z")):
            r = c.post(f"/api/v1/cases/{case['id']}/evidence", content=clip.read_bytes(),
                       params={"kind": "bodycam_video", "filename": clip.name, "device_id": "CAM-PHONE",
                               "recorded_start": start})
            assert r.status_code == 201, r.text
        for n in range(3):
            assert c.post(f"/api/v1/cases/{case['id']}/evidence", content=f"note {n}".encode(),
                          params={"kind": "other", "filename": f"note-{n}.txt"}).status_code == 201
        assert _settled(c, case["id"])["gaps"]
    page = open_as(browser, stack, officer, lang="zh")
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"/cases/{case['id']}")
    assert page.get_by_test_id("item-row").count() == 5
    items_height = page.evaluate("() => document.getElementById('items').getBoundingClientRect().height")
    assert items_height < 2000, items_height  # 12,481 px before, 946 now
    height, width = page.evaluate("() => [document.documentElement.scrollHeight, document.documentElement.scrollWidth]")
    assert height < 15_000, height  # 133,218 px before, about 10,200 now (every section, one under another)
    assert width <= 390, width  # wide tables scroll in their own box; the page does not
    digest = page.locator("[data-testid=item-row] code.digest").first
    full = digest.get_attribute("title")
    assert len(full) == 64 and digest.text_content() == full  # shortened on screen only
    button = page.get_by_test_id("gap-explain-submit").first
    box = page.evaluate("""() => { const b = document.querySelector('[data-testid=gap-explain-submit]');
        window.scrollTo(0, b.getBoundingClientRect().top + window.scrollY - 200);
        const r = b.getBoundingClientRect(); const t = document.querySelector('[data-testid=gap-explain]').getBoundingClientRect();
        return {left: r.left, right: r.right, text_left: t.left, text_right: t.right, width: window.innerWidth}; }""")
    assert 0 <= box["left"] and box["right"] <= box["width"], box
    assert 0 <= box["text_left"] and box["text_right"] <= box["width"], box
    # The explanation can be given from the phone.
    row = page.get_by_test_id("gap-row").first
    row.get_by_test_id("gap-explain").fill("电池耗尽，更换后继续录制。")
    button.click()
    page.wait_for_url("**notice=gap_explained**")


@pytest.mark.parametrize("stack", ["embedded"], indirect=True)  # the page's behaviour, not the store's
def test_a_final_refusal_is_not_sent_again_and_a_passing_one_is(browser, stack):
    """A refusal that cannot change (409 case_closed: the case was closed meanwhile) fails the
    upload at once, the request sent once (it was sent six times over about 20 s); one that can
    (423: another request holds the upload) is sent again and the upload goes through."""
    officer = stack.user(role="officer", unit="unit-a")
    case = _case(stack, officer)
    page = open_as(browser, stack, officer, lang="zh")
    page.goto(f"/cases/{case['id']}")
    sent: list[str] = []

    def closed(route) -> None:  # type: ignore[no-untyped-def]
        sent.append(route.request.method)
        route.fulfill(status=409, content_type="application/json",
                      body='{"error": {"code": "case_closed", "message": "case is closed"}}')

    page.route("**/api/v1/uploads", closed)
    page.evaluate(DROP, ["late.txt", "evidence for a closed case"])
    started = time.monotonic()
    page.get_by_test_id("upload-begin").click()
    row = page.locator("[data-testid=upload-row][data-state=failed]")
    row.wait_for(timeout=30_000)
    assert time.monotonic() - started < 5 and sent == ["POST"], sent
    from archive.i18n.messages import MESSAGES
    assert MESSAGES["error_code.case_closed"]["zh"] in row.inner_text()
    page.unroute("**/api/v1/uploads", closed)

    locked: list[str] = []

    def busy_once(route) -> None:  # type: ignore[no-untyped-def]
        if not locked:
            locked.append(route.request.method)
            route.fulfill(status=423, content_type="application/json",
                          body='{"error": {"code": "upload_locked", "message": "busy"}}')
        else:
            route.continue_()

    page.route("**/api/v1/uploads", busy_once)
    page.evaluate(DROP, ["later.txt", "evidence sent again after a 423"])
    page.get_by_test_id("upload-begin").click()
    page.locator("[data-testid=upload-row][data-filename='later.txt'][data-state=done]").wait_for(timeout=30_000)
    assert locked == ["POST"]
