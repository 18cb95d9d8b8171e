"""A reviewer opens a photo from the case page and sees it in the browser, in a sandboxed
document where nothing of the evidence can run."""

from __future__ import annotations

import uuid

import pytest

from tests.browser.conftest import open_as
from tests.capture.support import PNG

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("stack", ["embedded"], indirect=True)  # the page, not the store, is under test
def test_reviewer_views_a_photo_in_place(browser, stack, officer, case) -> None:
    with stack.client(officer) as c:
        item = c.post(f"/api/v1/cases/{case['id']}/evidence", params={"kind": "other", "filename": "现场照片.png"},
                      content=PNG).json()
    reviewer = stack.user(role="reviewer", unit="unit-a")
    stack.wait_item(reviewer, item["id"], lambda i: i["seal_status"] == "sealed")
    page = open_as(browser, stack, reviewer)
    page.goto(f"/cases/{case['id']}")
    row = page.locator(f'[data-testid="item-row"][data-item-id="{item["id"]}"]')
    with page.context.expect_page() as opened:
        row.get_by_test_id("item-view").click()
    view = opened.value
    view.wait_for_load_state()
    assert view.url.endswith(f"/api/v1/evidence/{item['id']}/content?inline=true")
    assert view.evaluate("document.images.length === 1 && document.images[0].naturalWidth === 1")
    assert view.evaluate("(() => { try { return window.localStorage && 'storage'; } catch (e) { return 'sandboxed'; } })()") \
        == "sandboxed"  # an opaque origin: the evidence cannot reach the archive's storage or cookies


def test_a_refused_form_leads_back_to_itself_with_what_was_typed(browser, stack, officer, case) -> None:
    """A form the archive refuses (a case number the unit already has) answers with the error
    page; its way back returns to the form with the title still typed in it, where the link
    to the start page lost everything."""
    page = open_as(browser, stack, officer, lang="zh")
    page.goto("/cases")
    page.get_by_test_id("new-case-number").fill(case["case_number"])
    page.get_by_test_id("new-case-title").fill("无证经营（网络直播）现场检查")
    page.get_by_test_id("new-case-submit").click()
    page.get_by_test_id("error-code").wait_for()
    assert page.get_by_test_id("error-code").inner_text() == "case_number_taken"
    back = page.get_by_test_id("error-back-to-form")
    assert back.get_attribute("href") == "/cases"
    back.click()
    page.get_by_test_id("new-case-title").wait_for()
    assert page.get_by_test_id("new-case-title").input_value() == "无证经营（网络直播）现场检查"


@pytest.mark.parametrize("stack", ["embedded"], indirect=True)
def test_an_administrator_adds_a_user_without_typos_making_units_and_refresh_is_harmless(browser, stack) -> None:
    """A unit typed with a typo made a new unit (its user saw none of the team's cases): a unit no
    one is in yet is made only when "new unit" is ticked. The page showing a new user's one-time
    token, refreshed, sent the form again (409 user_exists, the token gone)."""
    admin = stack.user(role="admin", unit="hq")
    stack.user(role="officer", unit="Team 7")
    page = open_as(browser, stack, admin, lang="zh")
    page.goto("/admin")
    name = f"li-{uuid.uuid4().hex[:6]}"
    page.get_by_test_id("new-user-name").fill(name)
    page.get_by_test_id("new-user-unit").fill("Tem 7")
    page.get_by_test_id("new-user-submit").click()
    assert "没有这个单位" in page.content()
    page.go_back()
    page.get_by_test_id("new-user-unit").fill("team  7")  # the existing unit, typed loosely
    page.get_by_test_id("new-user-submit").click()
    token = page.get_by_test_id("new-token").inner_text()
    assert token and page.url.endswith("/admin?notice=user_created#users"), page.url
    page.reload()
    assert page.get_by_test_id("new-token").count() == 0 and "用户已存在" not in page.content()
    row = page.locator(f'[data-testid="user-row"][data-user="{name}"]')
    assert row.count() == 1 and "Team 7" in row.inner_text()
    with stack.client(token) as c:
        assert c.get("/api/v1/cases").status_code == 200


@pytest.mark.parametrize("stack", ["embedded"], indirect=True)
def test_after_a_forms_action_the_keyboard_carries_on_where_it_was_done(browser, stack, officer, case) -> None:
    """After placing a legal hold the page came back with focus on <body>: a keyboard user
    started again from the top. Focus is on the part of the page the action was done in (the
    address names it), and a page with no such part focuses its notice."""
    admin = stack.user(role="admin", unit="hq")
    page = open_as(browser, stack, admin, lang="zh")
    page.goto("/admin")
    row = page.locator(f'[data-testid="record-row"][data-case-id="{case["id"]}"]')
    row.get_by_test_id("hold-reason").fill("行政诉讼进行中")
    row.get_by_test_id("hold-place").click()
    page.get_by_test_id("notice").wait_for()
    assert page.url.endswith("#records"), page.url
    assert page.evaluate("document.activeElement.id") == "records"
    page.goto("/admin?notice=user_updated")  # no part named: the notice
    assert page.evaluate("document.activeElement.dataset.testid") == "notice"
    page.goto("/admin")  # no action done: focus is left where the browser puts it
    assert page.evaluate("document.activeElement.tagName") == "BODY"
