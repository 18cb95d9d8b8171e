"""Replay of a captured page in a real browser: a reviewer opens a WACZ from the case page and
sees the captured page inside ReplayWeb.page (served by the archive, its service worker under
/replay/, the WACZ read from the evidence content endpoint with range requests).

Both the archive's own capture of a local site (a real inspection) and an uploaded WACZ (made
with warcio and ``wacz create``) are replayed, on a stack whose captures may reach 127.0.0.0/8.
"""

from __future__ import annotations

import time

import pytest

from tests.browser.conftest import axe_violations, open_as
from tests.browser.test_pages_a11y import SCREENSHOTS
from tests.capture.support import capture_stack, inspect, new_case, site, tls_site  # noqa: F401 - fixtures
from tests.conftest import Stack
from tests.wacz import make_wacz

pytestmark = pytest.mark.slow


def test_reviewer_replays_the_archives_own_capture(browser, capture_stack: Stack, site: str) -> None:
    """The capture's target opens first; text its script fetched after load is replayed too."""
    stack = capture_stack
    officer, reviewer = stack.user(role="officer", unit="unit-a"), stack.user(role="reviewer", unit="unit-a")
    case = new_case(stack, officer)
    done = inspect(stack, officer, case, f"{site}/changing")
    assert done["status"] == "done", done
    assert done["replay"] == f"/evidence/{done['item']}/replay"
    page = open_as(browser, stack, reviewer)
    page.goto(f"/cases/{case['id']}")
    page.get_by_test_id("wacz-replay").click()
    page.wait_for_url(f"**/evidence/{done['item']}/replay")
    frame = _frame_showing(page, "CHANGED-BY-SCRIPT")
    assert frame.url.endswith(f"{site}/changing")
    reads = _content_reads(stack, reviewer, case["id"], done["item"])
    print(f"replay of the capture: {len(reads)} content_read entries")


def test_reviewer_replays_an_uploaded_wacz(browser, capture_stack: Stack, tmp_path) -> None:
    stack = capture_stack
    officer, reviewer = stack.user(role="officer", unit="unit-a"), stack.user(role="reviewer", unit="unit-a")
    text, target = "无证经营网络游戏的店铺首页", "http://shop.example/"
    wacz = make_wacz(tmp_path, url=target, title="店铺",
                     html=f"<html><head><title>店铺</title></head><body><h1>{text}</h1></body></html>")
    case = new_case(stack, officer)
    with stack.client(officer) as c:
        item = c.post(f"/api/v1/cases/{case['id']}/evidence", params={"kind": "other", "filename": "capture.wacz"},
                      content=wacz.read_bytes()).json()
    page = open_as(browser, stack, reviewer)
    # An upload has no capture target, so ask for its page, as a link to one captured page does.
    page.goto(f"/evidence/{item['id']}/replay?url={target}")
    frame = _frame_showing(page, text)
    assert target in frame.url
    assert axe_violations(page) == []  # the page and the player: nothing serious or critical
    if SCREENSHOTS is not None and stack.name == "embedded":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "reviewer-replay-zh.png"), full_page=True)
    reads = _content_reads(stack, reviewer, case["id"], item["id"])
    print(f"replay of a {item['size']}-byte WACZ: {len(reads)} content_read entries")


def _content_reads(stack: Stack, token: str, case_id: str, item_id: str) -> list[dict]:
    """The item's custody entries of reads: the player's range requests, each one of the reader."""
    with stack.client(token) as c:
        entries = c.get("/api/v1/ledger/entries", params={"case_id": case_id}).json()
    reads = [e for e in entries if e["action"] == "content_read" and e["item"] == item_id]
    assert reads and len({e["actor"] for e in reads}) == 1, reads
    return reads


def _frame_showing(page, text: str, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    """The frame (however deep in the player's shadow roots and iframes) that shows ``text``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for frame in page.frames:
            try:
                if frame.get_by_text(text).count():
                    return frame
            except Exception:  # noqa: BLE001 - a frame may navigate or go away while looked at
                continue
        page.wait_for_timeout(250)
    shown = {f.url[:120]: f.evaluate("() => document.documentElement.outerHTML.slice(0, 400)") for f in page.frames}
    raise AssertionError(f"no frame shows {text!r}; frames: {shown}")
