"""Replay of a WACZ in the workspace: the page, who may open it, the player's scripts and the
range reads the player makes of the original (each a custody entry)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.tools import CLIENT_TLS, sign_in
from tests.wacz import make_wacz

VENDOR = Path(__file__).resolve().parents[2] / "api/static/vendor/replaywebpage"


@pytest.fixture
def wacz_item(stack, officer, case, tmp_path) -> dict:
    """A one-page WACZ uploaded to ``case``."""
    wacz = make_wacz(tmp_path, url="http://shop.example/", html="<h1>店铺首页</h1>", title="店铺")
    with stack.client(officer) as c:
        r = c.post(f"/api/v1/cases/{case['id']}/evidence", params={"kind": "other", "filename": "capture.wacz"},
                   content=wacz.read_bytes())
    assert r.status_code == 201, r.text
    return r.json()


@contextmanager
def _signed_in(stack, token: str) -> Iterator[httpx.Client]:
    """A browser (Chinese, the default) signed in with ``token``."""
    with httpx.Client(verify=CLIENT_TLS, base_url=stack.url, follow_redirects=False, timeout=60) as browser:
        assert sign_in(browser, token).status_code == 303
        yield browser


def test_replay_page_for_those_who_may_read_the_case(stack, case, wacz_item):
    reviewer = stack.user(role="reviewer", unit="unit-a")
    with _signed_in(stack, reviewer) as b:
        assert f'href="/evidence/{wacz_item["id"]}/replay" data-testid="wacz-replay"' in b.get(f"/cases/{case['id']}").text
        page = b.get(f"/evidence/{wacz_item['id']}/replay")
        english = b.get(f"/evidence/{wacz_item['id']}/replay?lang=en&url=http://shop.example/")
    assert page.status_code == 200 and "网页回放" in page.text
    assert f'source="/api/v1/evidence/{wacz_item["id"]}/content"' in page.text
    assert 'replayBase="/replay/" noCache' in page.text and "/static/vendor/replaywebpage/ui.js" in page.text
    assert english.status_code == 200 and "Replay: capture.wacz" in english.text
    assert 'url="http://shop.example/"' in english.text
    stranger = stack.user(role="reviewer", unit="unit-z")
    with _signed_in(stack, stranger) as b:
        refused = b.get(f"/evidence/{wacz_item['id']}/replay")
    assert refused.status_code == 404 and "capture.wacz" not in refused.text
    with httpx.Client(verify=CLIENT_TLS, base_url=stack.url, follow_redirects=False) as anonymous:
        assert anonymous.get(f"/evidence/{wacz_item['id']}/replay").status_code == 303


def test_only_a_wacz_is_replayed(stack, officer, case):
    with stack.client(officer) as c:
        item = c.post(f"/api/v1/cases/{case['id']}/evidence", params={"kind": "other", "filename": "scan.bin"},
                      content=b"not a web archive").json()
    with _signed_in(stack, officer) as b:
        assert 'data-testid="wacz-replay"' not in b.get(f"/cases/{case['id']}").text
        r = b.get(f"/evidence/{item['id']}/replay")
    assert r.status_code == 404 and "not_replayable" in r.text


def test_player_scripts_are_served_under_the_replay_base_to_signed_in_users(stack, officer):
    with _signed_in(stack, officer) as b:
        worker = b.get("/replay/sw.js")
        ui = b.get("/replay/ui.js")
        frame = b.get("/replay/")
        assert b.get("/replay/other.js").status_code == 404
    assert worker.status_code == 200 and worker.content == (VENDOR / "sw.js").read_bytes()
    assert worker.headers["content-type"].startswith("text/javascript")
    assert worker.headers["service-worker-allowed"] == "/replay/"
    assert worker.headers["cache-control"] == "no-cache"
    assert ui.status_code == 200 and ui.content == (VENDOR / "ui.js").read_bytes()
    assert frame.status_code == 200 and '<script src="./ui.js">' in frame.text and "<replay-app-main>" in frame.text
    with httpx.Client(verify=CLIENT_TLS, base_url=stack.url, follow_redirects=False) as anonymous:
        for path in ("/replay/sw.js", "/replay/ui.js", "/replay/"):
            r = anonymous.get(path)
            assert r.status_code == 303 and r.headers["location"] == "/login", path


def test_player_range_reads_with_the_session_are_each_a_custody_entry(stack, officer, wacz_item):
    """What the player does: a suffix range for the ZIP's directory, then ranges inside it."""
    url = wacz_item["content_url"]
    with _signed_in(stack, officer) as b:
        tail = b.get(url, headers={"Range": "bytes=-22"})
        head = b.get(url, headers={"Range": "bytes=0-3"})
    size = wacz_item["size"]
    assert tail.status_code == 206 and tail.headers["content-range"] == f"bytes {size - 22}-{size - 1}/{size}"
    assert head.status_code == 206 and head.content == b"PK\x03\x04"
    with stack.client(officer) as c:
        entries = c.get("/api/v1/ledger/entries", params={"case_id": wacz_item["case_id"]}).json()
    reads = [e for e in entries if e["action"] == "content_read" and e["item"] == wacz_item["id"]]
    assert len(reads) == 2 and {'"range":[0,3]' in e["details"] for e in reads} == {True, False}
