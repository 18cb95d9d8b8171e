"""HEAD, conditional and range requests on evidence content (RFC 9110 sections 9.3.2, 13, 14),
on both stacks.

A HEAD or a 304 sends no evidence bytes, so it records no ``content_read`` custody entry;
it is authenticated and authorised exactly like the GET it stands for.
"""

from __future__ import annotations

import hashlib
import os

import pytest

from archive.custody import ledger

DATA = b"abcdef"
ETAG = f'"{hashlib.sha256(DATA).hexdigest()}"'
SAME = ("content-length", "content-type", "etag", "accept-ranges", "digest", "repr-digest", "content-disposition",
        "content-range")


def _item(client, case: dict, data: bytes, filename: str = "c.bin") -> dict:
    r = client.post(f"/api/v1/cases/{case['id']}/evidence", params={"kind": "other", "filename": filename},
                    content=data)
    assert r.status_code == 201, r.text
    return r.json()


@pytest.fixture
def abcdef(stack, officer, case) -> dict:
    """An item holding :data:`DATA`."""
    with stack.client(officer) as c:
        return _item(c, case, DATA)


def _reads(stack, item_id: str) -> int:
    with stack.services.db.snapshot() as s:
        return ledger.count_actions(s, item_id=item_id, action="content_read")


def _head_like_get(client, url: str, **headers: str) -> None:
    """HEAD answers GET's status and representation headers, without a body."""
    got, head = client.get(url, headers=headers), client.head(url, headers=headers)
    assert head.status_code == got.status_code and head.content == b"", (url, headers)
    assert {h: head.headers.get(h) for h in SAME} == {h: got.headers.get(h) for h in SAME}, (url, headers)


def test_head_answers_like_get_without_a_body_and_is_no_read(stack, officer, case):
    data = os.urandom(1000)
    with stack.client(officer) as c:
        item = _item(c, case, data)
        stack.wait_item(officer, item["id"], lambda i: i["seal_status"] == "sealed")
        before = _reads(stack, item["id"])
        derived = f"/api/v1/evidence/{item['id']}/derived/manifest"
        for url in (item["content_url"], f"{item['content_url']}?inline=true", derived):
            head = c.head(url)
            assert head.status_code == 200 and head.content == b"", url
            assert head.headers["etag"].startswith('"') and head.headers["accept-ranges"] == "bytes"
        head = c.head(item["content_url"])
        assert head.headers["content-length"] == "1000" and head.headers["etag"] == f'"{hashlib.sha256(data).hexdigest()}"'
        part = c.head(item["content_url"], headers={"Range": "bytes=10-19"})
        assert (part.status_code, part.headers["content-range"], part.headers["content-length"]) == (
            206, "bytes 10-19/1000", "10")
        assert _reads(stack, item["id"]) == before  # a HEAD sends no evidence bytes
        _head_like_get(c, item["content_url"])
        _head_like_get(c, item["content_url"], Range="bytes=10-19")
        _head_like_get(c, item["content_url"], Range="bytes=5000-")
        _head_like_get(c, derived, Range="bytes=-5")
        assert _reads(stack, item["id"]) == before + 3  # only the GETs that sent bytes


def test_head_is_authenticated_and_authorised_like_get(stack, officer, case):
    with stack.client(officer) as c:
        item = _item(c, case, b"secret")
    with stack.client(None) as anonymous:
        assert anonymous.head(item["content_url"]).status_code == anonymous.get(item["content_url"]).status_code == 401
    with stack.client(stack.user(role="officer", unit="unit-b")) as stranger:
        got, head = stranger.get(item["content_url"]), stranger.head(item["content_url"])
        assert got.status_code in (403, 404) and head.status_code == got.status_code and head.content == b""
        # A precondition does not let a stranger learn that the item exists.
        assert stranger.get(item["content_url"], headers={"If-None-Match": "*"}).status_code == got.status_code
        assert stranger.get(item["content_url"], headers={"If-Match": '"x"'}).status_code == got.status_code
    assert _reads(stack, item["id"]) == 0


def test_if_none_match_naming_the_current_tag_is_304_and_no_read(stack, officer, abcdef):
    item, url = abcdef, abcdef["content_url"]
    with stack.client(officer) as c:
        for value in (ETAG, f'"other", {ETAG}', "*", f"W/{ETAG}", f'"x" ,W/{ETAG}'):
            for method in ("GET", "HEAD"):
                r = c.request(method, url, headers={"If-None-Match": value, "Range": "bytes=0-1"})
                assert (r.status_code, r.content, r.headers.get("etag")) == (304, b"", ETAG), (method, value)
        repeated = c.get(url, headers=[("If-None-Match", '"other"'), ("If-None-Match", ETAG)])
        assert repeated.status_code == 304
        assert _reads(stack, item["id"]) == 0
        for value in ('"other"', f'"{ETAG[1:-2]}"', "", "nonsense"):
            r = c.get(url, headers={"If-None-Match": value})
            assert (r.status_code, r.content) == (200, DATA), value
        assert _reads(stack, item["id"]) == 4


def test_if_match_naming_another_tag_is_412_and_no_read(stack, officer, abcdef):
    item, url = abcdef, abcdef["content_url"]
    with stack.client(officer) as c:
        # Weak tags never match If-Match (strong comparison, RFC 9110 13.1.1).
        for value in ('"other"', f"W/{ETAG}", "nonsense"):
            r = c.get(url, headers={"If-Match": value, "Range": "bytes=50-"})
            assert r.status_code == 412, value
            assert r.json()["error"]["code"] == "precondition_failed", r.text
            head = c.head(url, headers={"If-Match": value})
            assert (head.status_code, head.content) == (412, b"")
        assert _reads(stack, item["id"]) == 0
        for value in (ETAG, f'"other", {ETAG}', "*"):
            r = c.get(url, headers={"If-Match": value})
            assert (r.status_code, r.content) == (200, DATA), value
        # If-Match is evaluated before If-None-Match; both hold here, the copy is current.
        assert c.get(url, headers={"If-Match": ETAG, "If-None-Match": ETAG}).status_code == 304
        assert _reads(stack, item["id"]) == 3


def test_if_range_with_another_validator_sends_the_whole_content(stack, officer, abcdef):
    url = abcdef["content_url"]
    with stack.client(officer) as c:
        r = c.get(url, headers={"Range": "bytes=1-2", "If-Range": ETAG})
        assert (r.status_code, r.content, r.headers["content-range"]) == (206, b"bc", "bytes 1-2/6")
        # Another tag, a weak one (If-Range compares strongly) or a date (no Last-Modified is sent).
        for value in ('"other"', f"W/{ETAG}", "Sat, 01 Mar 2026 10:00:00 GMT"):
            for asked in ("bytes=1-2", "bytes=50-"):
                r = c.get(url, headers={"Range": asked, "If-Range": value})
                assert (r.status_code, r.content) == (200, DATA), (value, asked)
                assert "content-range" not in r.headers


def test_range_edge_cases(stack, officer, case, abcdef):
    url = abcdef["content_url"]
    with stack.client(officer) as c:
        for asked in ("bytes=6-", "bytes=9-10", "bytes=-0"):
            r = c.get(url, headers={"Range": asked})
            assert (r.status_code, r.json()["error"]["code"]) == (416, "range_not_satisfiable"), asked
            assert r.headers["content-range"] == "bytes */6", asked
        # last-pos before first-pos is not a valid range: ignored (RFC 9110 14.1.1, 14.2).
        r = c.get(url, headers={"Range": "bytes=3-1"})
        assert (r.status_code, r.content) == (200, DATA)
        # A suffix longer than the content is all of it, as a range.
        r = c.get(url, headers={"Range": "bytes=-100"})
        assert (r.status_code, r.content, r.headers["content-range"]) == (206, DATA, "bytes 0-5/6")
        r = c.get(url, headers={"Range": "bytes=4-100"})
        assert (r.status_code, r.content, r.headers["content-range"]) == (206, b"ef", "bytes 4-5/6")
        r = c.get(url, headers={"Range": "BYTES=4-5"})  # range units are compared case-insensitively
        assert (r.status_code, r.content) == (206, b"ef")
        # However many digits a position past the end has (RFC 9110 sets no bound).
        for huge in ("9" * 19, "9" * 30, "1" + "0" * 60):
            r = c.get(url, headers={"Range": f"bytes=4-{huge}"})
            assert (r.status_code, r.content, r.headers["content-range"]) == (206, b"ef", "bytes 4-5/6"), huge
            r = c.get(url, headers={"Range": f"bytes=-{huge}"})
            assert (r.status_code, r.content, r.headers["content-range"]) == (206, DATA, "bytes 0-5/6"), huge
            r = c.get(url, headers={"Range": f"bytes={huge}-"})
            assert (r.status_code, r.headers["content-range"]) == (416, "bytes */6"), huge

        empty = _item(c, case, b"", filename="empty.bin")["content_url"]
        for asked in ("bytes=0-", "bytes=0-0", "bytes=-0"):
            r = c.get(empty, headers={"Range": asked})
            assert (r.status_code, r.headers["content-range"]) == (416, "bytes */0"), asked
        # A non-zero suffix of nothing selects nothing that Content-Range could name: the whole (empty) content.
        for asked in ("bytes=-5", "bytes=3-1"):
            r = c.get(empty, headers={"Range": asked})
            assert (r.status_code, r.content, r.headers["content-length"]) == (200, b"", "0"), asked


def test_openapi_lists_head_and_the_conditional_statuses(stack):
    with stack.client(None) as anonymous:
        paths = anonymous.get("/openapi.json").json()["paths"]
    for path in ("/api/v1/evidence/{item_id}/content", "/api/v1/evidence/{item_id}/derived/{role}"):
        for method in ("get", "head"):
            operation = paths[path][method]
            assert {"200", "206", "304", "412", "416"} <= set(operation["responses"]), (path, method)
            sent = {p["name"].lower() for p in operation["parameters"] if p["in"] == "header"}
            assert {"range", "if-range", "if-match", "if-none-match"} <= sent, (path, method, sent)
    for method in ("get", "head"):  # an export is served whole: preconditions, no ranges
        operation = paths["/api/v1/exports/{export_id}/download"][method]
        assert {"200", "304", "412"} <= set(operation["responses"]), method
        sent = {p["name"].lower() for p in operation["parameters"] if p["in"] == "header"}
        assert {"if-match", "if-none-match"} <= sent and "range" not in sent, (method, sent)


def test_a_read_the_reader_leaves_part_way_is_recorded_as_interrupted(stack, officer, case):
    """A reader who stops taking an original part-way (a closed browser tab, a lost link): the
    read is on record from its first byte (``content_read``), and now so is its end short of the
    whole, ``content_read_interrupted`` with the bytes sent; a whole read adds nothing."""
    import time

    data = os.urandom(24 * 1024 * 1024)  # more than the sockets between API and reader hold
    with stack.client(officer) as c:
        item = _item(c, case, data)
        with c.stream("GET", item["content_url"]) as r:
            assert r.status_code == 200
            received = len(next(r.iter_raw()))
        deadline = time.monotonic() + 20
        while not (cut := _interrupted(stack, item["id"])):
            assert time.monotonic() < deadline, "no content_read_interrupted entry"
            time.sleep(0.2)
        assert _reads(stack, item["id"]) == 1
        details = cut[0]
        assert received <= details["sent"] < len(data) and details["reason"], details
        assert c.get(item["content_url"]).content == data
        assert _reads(stack, item["id"]) == 2
        assert len(_interrupted(stack, item["id"])) == 1


def _interrupted(stack, item_id: str) -> list[dict]:
    """The details of the item's ``content_read_interrupted`` entries."""
    import json

    from sqlalchemy import select

    from archive.models import LedgerEntry

    with stack.services.db.snapshot() as s:
        return [json.loads(d) for d in s.execute(select(LedgerEntry.details).where(
            LedgerEntry.item_id == item_id, LedgerEntry.action == "content_read_interrupted")).scalars()]
