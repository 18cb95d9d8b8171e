"""Each role's pages, with what a working day puts in them (a long Chinese file name, a court's
ready export, users with tokens, cases in the disposal report), fit a phone (390 px: wide tables
scroll in their own box, the page never sideways) and a laptop (1366 px: a short status such as
已签章 stays on one line). The pages, not the store, are under test: the embedded default only."""

from __future__ import annotations

import hashlib
import time
import uuid

import pytest

from tests.browser.conftest import axe_violations, open_as

pytestmark = pytest.mark.slow

LONG_NAME = "现场执法记录仪视频_某某文化娱乐有限公司_第一段_2026年3月1日上午十点至十一点四十分_询问笔录同步录像.pdf"


@pytest.fixture(scope="module")
def day(stack) -> dict:  # type: ignore[type-arg]
    """A case with a sealed document of a long name, exported to a court user (ready)."""
    tag = uuid.uuid4().hex[:6]
    units = {"officer": "unit-a", "reviewer": "unit-a", "reviewer_b": "unit-a", "court": "court-1", "admin": "hq"}
    tokens = {who: stack.user(role=who.removesuffix("_b"), unit=unit, name=f"{who}-{tag}") for who, unit in units.items()}
    number = f"文旅执罚〔2026〕第{tag}号"
    data = b"%PDF-1.4 a day's record " + tag.encode()
    with stack.client(tokens["officer"]) as c:
        case = c.post("/api/v1/cases", json={"case_number": number,
                                             "title": "某某网络科技有限公司利用网络直播平台传播含有禁止内容的网络表演案" * 3}).json()
        item = c.post(f"/api/v1/cases/{case['id']}/evidence", content=data,
                      params={"kind": "document", "filename": LONG_NAME, "sha256": hashlib.sha256(data).hexdigest()}).json()
    stack.wait_item(tokens["reviewer"], item["id"], lambda i: i["seal_status"] == "sealed")
    with stack.client(tokens["reviewer"]) as c:
        export = c.post(f"/api/v1/cases/{case['id']}/exports", json={"recipient": f"court-{tag}"}).json()
    with stack.client(tokens["reviewer_b"]) as c:
        assert c.post(f"/api/v1/exports/{export['id']}/approve").status_code == 200
        deadline = time.monotonic() + 60
        while c.get(f"/api/v1/exports/{export['id']}").json()["status"] != "ready":
            assert time.monotonic() < deadline
            time.sleep(0.3)
    return {"tokens": tokens, "case": case}


WIDTH = "() => [document.documentElement.scrollWidth, window.innerWidth]"


@pytest.mark.parametrize("stack", ["embedded"], indirect=True)
def test_each_roles_pages_fit_a_phone(browser, stack, day) -> None:
    """At 390 px the court page (its export's row: 422 px), the administrator's page (a user's
    row with its forms: 433 px), the disposal report (a character a line) and a reviewer's case
    page (the custody filter listing a long file name: 462 px) scrolled sideways; the legal
    review's aspects were squeezed to a character a line once the page no longer did."""
    wide = {}
    for role, path in [("court", "/court"), ("admin", "/admin"), ("admin", "/disposal"), ("reviewer", "/queue"),
                       ("reviewer", "/cases/{case}"), ("officer", "/cases"), ("officer", "/cases/{case}")]:
        page = open_as(browser, stack, day["tokens"][role], lang="zh")
        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(path.format(case=day["case"]["id"]))
        scroll, width = page.evaluate(WIDTH)
        if scroll > width:
            wide[f"{role} {path}"] = scroll
        if path == "/court":
            assert page.get_by_test_id("export-download").count() == 1
        if role == "reviewer" and path == "/cases/{case}":  # a legal review's aspects too (自由裁量 in four lines)
            lines = page.evaluate("""() => [...document.querySelectorAll('table.aspects tbody th')].map(th => {
                const r = document.createRange(); r.selectNodeContents(th); return r.getClientRects().length; })""")
            assert lines == [1] * 5, lines
        if path == "/disposal":  # the report's columns are readable, not a character a line
            cell = page.locator("main table th").first.bounding_box()
            assert cell["height"] < 40, cell
        page.context.close()
    assert wide == {}


@pytest.mark.parametrize("stack", ["embedded"], indirect=True)
def test_a_short_status_stays_on_one_line_beside_a_long_name(browser, stack, day) -> None:
    """At 1366 px a long Chinese file name squeezed the case page's status tags to a character a
    line (已签章 in three lines), as the court page's 可下载 at 390 px."""
    page = open_as(browser, stack, day["tokens"]["officer"], lang="zh")
    page.set_viewport_size({"width": 1366, "height": 768})
    page.goto(f"/cases/{day['case']['id']}")
    seal = page.get_by_test_id("seal-status").first
    assert seal.inner_text() == "已签章"
    line = page.evaluate("() => parseFloat(getComputedStyle(document.querySelector('[data-testid=seal-status]')).lineHeight)")
    assert seal.bounding_box()["height"] < 1.5 * line, (seal.bounding_box(), line)
    court = open_as(browser, stack, day["tokens"]["court"], lang="zh")
    court.set_viewport_size({"width": 390, "height": 844})
    court.goto("/court")
    status = court.locator("[data-testid=export-row] .tag").first
    assert status.inner_text() == "可下载" and status.bounding_box()["height"] < 1.5 * line


@pytest.mark.parametrize("stack", ["embedded"], indirect=True)
def test_a_table_that_scrolls_sideways_is_scrolled_by_keyboard(browser, stack, day) -> None:
    """At 390 px a list's table scrolls in its own box, which the keyboard could not reach: no
    Tab stopped on it, so the arrow keys scrolled nothing, and the custody entries' hashes could
    be read only by touch or mouse (axe: scrollable-region-focusable). While it overflows the
    box is a named region in the tab order with a visible focus ring; at 1280 px, where it fits,
    it is not a stop at all."""
    page = open_as(browser, stack, day["tokens"]["reviewer"], lang="zh")
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"/cases/{day['case']['id']}")
    box = page.locator(".wide:has(#custody-table)")
    page.get_by_test_id("custody-apply").focus()
    page.keyboard.press("Tab")
    assert box.evaluate("b => b === document.activeElement")
    assert box.get_attribute("role") == "region"
    caption = page.locator("#custody-table caption").inner_text().strip()
    assert box.get_attribute("aria-label").startswith(caption) and "可左右滚动" in box.get_attribute("aria-label")
    assert box.evaluate("b => getComputedStyle(b).outlineStyle") != "none"
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    page.wait_for_function("() => document.querySelector('.wide:has(#custody-table)').scrollLeft > 0")
    found = [v for v in axe_violations(page) if v["id"] == "scrollable-region-focusable"]
    assert found == [], found
    page.set_viewport_size({"width": 1280, "height": 900})
    page.wait_for_function("() => !document.querySelector('.wide:has(#custody-table)').hasAttribute('tabindex')")
    assert box.get_attribute("role") is None
    page.context.close()
    # The court page's verification commands scroll sideways too: a named stop, scrolled by keys.
    page = open_as(browser, stack, day["tokens"]["court"], lang="zh")
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/court")
    commands = page.get_by_test_id("verify-commands")
    assert commands.get_attribute("tabindex") == "0" and "可左右滚动" in commands.get_attribute("aria-label")
    names = [page.get_by_test_id(f"verify-commands{os}").get_attribute("aria-label") for os in ("", "-windows")]
    assert names[0].startswith("Linux 或 macOS") and names[1].startswith("Windows"), names
    commands.focus()
    page.keyboard.press("End")
    page.keyboard.press("ArrowRight")
    page.wait_for_function("() => document.querySelector('[data-testid=verify-commands]').scrollLeft > 0")
    page.context.close()
