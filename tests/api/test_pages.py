"""The web pages a reviewer reads: sign-in by token, the unit's cases, one case's record."""

from __future__ import annotations

import hashlib
import os

import httpx

from tests.tools import sign_in


def _browser(stack) -> httpx.Client:
    return httpx.Client(base_url=stack.url, follow_redirects=False, timeout=60)


def test_pages_require_sign_in(stack):
    with _browser(stack) as b:
        r = b.get("/cases")
        assert r.status_code == 303 and r.headers["location"] == "/login"
        b.cookies.set("evidence_token", "ev_forged")
        assert b.get("/cases").status_code == 303
        r = sign_in(b, "ev_forged")
        assert r.status_code == 401 and "not valid" in r.text


def test_case_page_shows_items_seals_gaps_and_custody(stack, officer, case):
    data = os.urandom(5000)
    with stack.client(officer) as c:
        item = c.post(f"/api/v1/cases/{case['id']}/evidence", params={"kind": "other", "filename": "scan.bin"},
                      content=data).json()
    reviewer = stack.user(role="reviewer", unit="unit-a")
    stack.wait_item(reviewer, item["id"], lambda i: i["seal_status"] == "sealed")
    with _browser(stack) as b:
        r = sign_in(b, reviewer)
        assert r.status_code == 303
        set_cookie = r.headers["set-cookie"].lower()
        assert "httponly" in set_cookie and "samesite=strict" in set_cookie
        listing = b.get("/cases")
        assert listing.status_code == 200 and case["case_number"] in listing.text
        page = b.get(f"/cases/{case['id']}")
    assert page.status_code == 200
    assert "scan.bin" in page.text and hashlib.sha256(data).hexdigest() in page.text
    assert hashlib.new("sm3", data).hexdigest() in page.text
    assert "sealed" in page.text and "evidence_received" in page.text and "case_created" in page.text
    assert "No gaps found." in page.text


def test_other_units_case_page_is_not_found(stack, case):
    stranger = stack.user(role="reviewer", unit="unit-z")
    with _browser(stack) as b:
        sign_in(b, stranger)
        r = b.get(f"/cases/{case['id']}")
        assert r.status_code == 404 and case["title"] not in r.text
        assert case["case_number"] not in b.get("/cases").text
