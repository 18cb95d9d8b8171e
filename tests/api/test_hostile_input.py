"""Hostile input gets its documented 4xx and leaves nothing behind, on both stacks.

Raw sockets where an HTTP client would refuse to misbehave (huge heads, a body cut short
by a half-close); httpx elsewhere.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import socket
import time
import uuid
from pathlib import Path
from typing import Annotated

import httpx
import pytest
from fastapi import FastAPI, Query
from fastapi.testclient import TestClient

from api import errors
from archive.evidence.filenames import check_filename
from archive.errors import InvalidInput
from tests.tools import CLIENT_TLS, sign_in

TUS = {"Tus-Resumable": "1.0.0"}
CHINESE = "执法记录仪 2026-03-01 10点.mp4"


def _exchange(stack, raw: bytes, *, half_close: bool = False, timeout: float = 30, port: int | None = None) -> tuple[int, dict]:
    """Send ``raw`` on a fresh connection (then half-close if asked); the status and JSON body."""
    with socket.create_connection(("127.0.0.1", port or stack.api.port), timeout=timeout) as sock:
        try:
            sock.sendall(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and stop reading before all of it was sent
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        return _answer(sock)


def _answer(sock: socket.socket) -> tuple[int, dict]:
    """The status and JSON body of the answer read from ``sock``."""
    answer = b""
    while b"\r\n\r\n" not in answer or len(answer.partition(b"\r\n\r\n")[2]) < _length(answer):
        chunk = sock.recv(65536)
        if not chunk:
            break
        answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 "), answer[:200]
    assert body, answer[:500]
    return int(head.split()[1]), json.loads(body[: _length(answer)])


def _length(answer: bytes) -> int:
    for line in answer.partition(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 1 << 30


def _auth(token: str) -> bytes:
    return f"Authorization: Bearer {token}\r\nHost: test\r\n".encode()


def _nothing_stored(stack, officer: str, case: dict) -> None:
    """No item in the case, no object in its vault, no partial file in it on the local store
    (other tests' items are still being sealed beside it in the shared stack)."""
    with stack.client(officer) as c:
        assert c.get(f"/api/v1/cases/{case['id']}/evidence").json() == []
    assert list(stack.services.store.list(case["vault"] + "/")) == []
    root = getattr(stack.services.store, "root", None)
    if root is not None:
        assert [p for p in (Path(root) / case["vault"]).rglob("*") if p.name.endswith(".partial")] == []


# --- request heads ----------------------------------------------------------------------


def test_a_huge_header_line_is_431(stack, officer):
    raw = b"GET /api/v1/cases HTTP/1.1\r\n" + _auth(officer) + b"X-Big: " + b"a" * (1 << 20) + b"\r\n\r\n"
    status, body = _exchange(stack, raw)
    assert (status, body["error"]["code"]) == (431, "headers_too_large")


@pytest.mark.parametrize("count", [101, 20_000])
def test_too_many_headers_are_431(stack, officer, count):
    headers = b"".join(b"X-H-%d: v\r\n" % i for i in range(count))
    status, body = _exchange(stack, b"GET /api/v1/cases HTTP/1.1\r\n" + _auth(officer) + headers + b"\r\n")
    assert (status, body["error"]["code"]) == (431, "headers_too_large")


def test_a_field_over_8_kib_is_431_but_normal_heads_pass(stack, officer):
    with stack.client(officer) as c:
        r = c.get("/api/v1/cases", headers={"X-Long": "b" * 9000})
        assert (r.status_code, r.json()["error"]["code"]) == (431, "headers_too_large")
        assert "X-Long" in r.json()["error"]["message"] or "x-long" in r.json()["error"]["message"]
        extra = {f"X-Fine-{i}": "c" * 100 for i in range(60)}
        assert c.get("/api/v1/cases", headers=extra).status_code == 200


# --- request bodies that are not evidence ----------------------------------------------


def test_a_huge_declared_body_is_413_at_once_before_any_token_is_checked(stack):
    """200 MiB declared on a JSON route, without a token: refused on its head (64 KiB sent),
    not after the API held the body in memory for its 401."""
    raw = (b"POST /api/v1/cases HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
           + b"Content-Length: %d\r\n\r\n" % (200 << 20) + b"{" + b" " * (64 << 10))
    status, body = _exchange(stack, raw, timeout=10)
    assert (status, body["error"]["code"]) == (413, "too_large"), body
    assert "tus" in body["error"]["message"]


@pytest.mark.parametrize("path", ["/api/v1/cases", "/login"])
def test_a_body_without_a_length_is_refused_at_the_bound_not_after_its_end(stack, officer, path):
    """Chunked, no end in sight: answered once 1 MiB (the bound) is passed. Before the bound
    the server waited for the whole body, however long (a test timeout here)."""
    chunk = b"%x\r\n" % (64 << 10) + b" " * (64 << 10) + b"\r\n"
    raw = (f"POST {path} HTTP/1.1\r\n".encode() + _auth(officer)
           + b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 17)
    status, body = _exchange(stack, raw, timeout=10)
    assert (status, body["error"]["code"]) == (413, "too_large"), body


def test_evidence_is_not_bounded_by_the_body_limit_and_small_bodies_pass(stack, officer, case):
    content = os.urandom(3 << 20)
    with stack.client(officer) as c:
        r = c.post(f"/api/v1/cases/{case['id']}/evidence", params={"kind": "other", "filename": "big.bin"},
                   content=iter([content[i:i + (1 << 20)] for i in range(0, len(content), 1 << 20)]))
        assert r.status_code == 201, r.text
        assert r.json()["size"] == len(content)
        r = c.post("/api/v1/cases", json={"case_number": "X" * 5000, "title": "t" * (900 << 10)})
        assert r.status_code == 422 and r.json()["error"]["code"] != "too_large", r.text


# --- file names -----------------------------------------------------------------------

BAD_NAMES = [
    ("a\x00b.mp4", "nul_character"),
    ("../evil.mp4", "invalid_filename"),
    ("dir/clip.mp4", "invalid_filename"),
    ("dir\\clip.mp4", "invalid_filename"),
    ("..", "invalid_filename"),
    (".", "invalid_filename"),
    ("clip\x1b.mp4", "invalid_filename"),
    ("clip\x85.mp4", "invalid_filename"),
    ("clip\x7f.mp4", "invalid_filename"),
    ("report\u202egpj.exe", "invalid_filename"),
    ("a\u2066b.mp4", "invalid_filename"),
    ("a\u200fb.mp4", "invalid_filename"),
    ("\ufffd\ufffd.txt", "invalid_filename"),  # what %FF%FE becomes once decoded: not the name sent
    ("CON", "invalid_filename"),
    ("nul.txt", "invalid_filename"),
    ("Com1.mp4", "invalid_filename"),
    ("lpt9", "invalid_filename"),
    ("clip.mp4.", "invalid_filename"),
    ("clip.mp4 ", "invalid_filename"),
    ("执" * 86, "invalid_filename"),  # 258 UTF-8 bytes
    ("a" * 1001, "invalid_filename"),
    ("", "invalid_filename"),
]


@pytest.mark.parametrize(("name", "code"), BAD_NAMES)
def test_check_filename_refuses(name, code):
    with pytest.raises(InvalidInput) as caught:
        check_filename(name)
    assert caught.value.code == code and caught.value.status == 422


@pytest.mark.parametrize("name", [CHINESE, "clip.mp4", "a b.c.d", "console.log", "COM10.mp4", "执" * 85, "📹.mp4"])
def test_check_filename_accepts_unchanged(name):
    assert check_filename(name) == name


def test_bad_names_are_refused_on_every_entry_point(stack, officer, case):
    with stack.client(officer) as c:
        for name, code in BAD_NAMES:
            r = c.post(f"/api/v1/cases/{case['id']}/evidence", params={"kind": "other", "filename": name}, content=b"x")
            assert (r.status_code, r.json()["error"]["code"]) == (422, code), (name, r.text)
            meta = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" if v else k  # tus: a key alone is empty
                            for k, v in {"case_id": case["id"], "kind": "other", "filename": name}.items())
            r = c.post("/api/v1/uploads", headers={**TUS, "Upload-Length": "1", "Upload-Metadata": meta})
            assert (r.status_code, r.json()["error"]["code"]) == (422, code), (name, r.text)
        assert r.json()["error"]["message"]
    _nothing_stored(stack, officer, case)


def test_a_chinese_name_is_kept_as_given(stack, officer, case):
    with stack.client(officer) as c:
        r = c.post(f"/api/v1/cases/{case['id']}/evidence", params={"kind": "other", "filename": CHINESE}, content=b"v")
        assert r.status_code == 201, r.text
        assert r.json()["filename"] == CHINESE


# --- bodies that end early ------------------------------------------------------------


def _upload_head(case: dict, token: str, extra: bytes) -> bytes:
    return (f"POST /api/v1/cases/{case['id']}/evidence?kind=other&filename=cut.bin HTTP/1.1\r\n".encode()
            + _auth(token) + extra + b"\r\n")


def test_half_close_after_10_of_1000_bytes_is_answered_400(stack, officer, case):
    raw = _upload_head(case, officer, b"Content-Length: 1000\r\n") + b"0123456789"
    status, body = _exchange(stack, raw, half_close=True)
    assert (status, body["error"]["code"]) == (400, "upload_incomplete")
    _nothing_stored(stack, officer, case)


def test_chunked_body_cut_short_is_answered_400(stack, officer, case):
    raw = _upload_head(case, officer, b"Transfer-Encoding: chunked\r\n") + b"a\r\n0123456789\r\n"
    status, body = _exchange(stack, raw, half_close=True)
    assert (status, body["error"]["code"]) == (400, "upload_incomplete")
    _nothing_stored(stack, officer, case)


def _meta(case: dict, filename: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}"
                    for k, v in {"case_id": case["id"], "kind": "other", "filename": filename}.items())


@pytest.mark.parametrize("sent", [10, 300_000])
def test_tus_patch_cut_short_is_answered_400_and_stays_resumable(stack, officer, case, sent):
    with stack.client(officer) as c:
        r = c.post("/api/v1/uploads", headers={**TUS, "Upload-Length": "1000000", "Upload-Metadata": _meta(case, "t.bin")})
        assert r.status_code == 201, r.text
        url = r.headers["Location"]
    raw = (f"PATCH {url} HTTP/1.1\r\n".encode() + _auth(officer)
           + b"Tus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\n"
           + b"Content-Length: 1000000\r\n\r\n" + os.urandom(sent))
    status, body = _exchange(stack, raw, half_close=True)
    assert (status, body["error"]["code"]) == (400, "upload_incomplete")
    with stack.client(officer) as c:
        # tus keeps every byte that arrived for the client to resume from: those in the last
        # message were dropped with the half-close, and up to 1 MiB of a body cut mid-batch.
        assert int(c.head(url, headers=TUS).headers["Upload-Offset"]) == sent
    _nothing_stored(stack, officer, case)


@pytest.fixture
def short_idle(stack, monkeypatch):  # type: ignore[no-untyped-def]
    """The API gives up an upload body silent for 2 s (EVIDENCE_UPLOAD_IDLE_SECONDS, 60 by default)."""
    services = stack.services
    monkeypatch.setattr(services, "settings", services.settings.model_copy(update={"upload_idle_seconds": 2.0}))
    return 2.0


def test_an_upload_whose_body_falls_silent_is_given_up_and_frees_its_slot(stack, officer, case, short_idle):
    """A client that sends part of its body then nothing, its connection left open (a dropped
    mobile link, or someone holding slots on purpose), is answered 408 upload_stalled after the
    idle limit: nothing is kept, and its upload slot serves the next upload."""
    raw = _upload_head(case, officer, b"Content-Length: 1000\r\n") + b"0123456789"
    began = time.monotonic()
    status, body = _exchange(stack, raw)  # no half-close: the socket stays open, silent
    assert (status, body["error"]["code"]) == (408, "upload_stalled"), body
    assert short_idle <= time.monotonic() - began < short_idle + 10
    _nothing_stored(stack, officer, case)


def test_a_tus_patch_that_falls_silent_keeps_its_bytes_and_releases_its_lock(stack, officer, case, short_idle):
    """A tus PATCH whose client went silent without closing: after the idle limit the upload
    holds what arrived and is no longer locked, so the client's resume PATCH goes on from
    there (it was 423 upload_locked for as long as the silent socket stayed open)."""
    with stack.client(officer) as c:
        r = c.post("/api/v1/uploads", headers={**TUS, "Upload-Length": "300100", "Upload-Metadata": _meta(case, "s.bin")})
        assert r.status_code == 201, r.text
        url = r.headers["Location"]
    data = os.urandom(300_100)
    head = (f"PATCH {url} HTTP/1.1\r\n".encode() + _auth(officer)
            + b"Tus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\n"
            + b"Content-Length: 300100\r\n\r\n")
    status, body = _exchange(stack, head + data[:300_000])
    assert (status, body["error"]["code"]) == (408, "upload_stalled"), body
    with stack.client(officer) as c:
        offset = int(c.head(url, headers=TUS).headers["Upload-Offset"])
        assert offset == 300_000
        r = c.patch(url, content=data[offset:], headers={**TUS, "Upload-Offset": str(offset),
                                                         "Content-Type": "application/offset+octet-stream"})
        assert r.status_code == 204, r.text


def test_a_creation_whose_body_breaks_names_its_upload_to_resume(stack, officer, case):
    """tus creation-with-upload whose body is cut short: the upload exists, so the error
    carries its Location (without it the client could neither resume nor end the upload)."""
    data = os.urandom(1000)
    raw = (b"POST /api/v1/uploads HTTP/1.1\r\n" + _auth(officer)
           + f"Tus-Resumable: 1.0.0\r\nUpload-Length: 1000\r\nUpload-Metadata: {_meta(case, 'c.bin')}\r\n".encode()
           + b"Content-Type: application/offset+octet-stream\r\nContent-Length: 1000\r\n\r\n" + data[:10])
    with socket.create_connection(("127.0.0.1", stack.api.port), timeout=30) as sock:
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head = answer.partition(b"\r\n\r\n")[0].decode().lower()
    assert head.startswith("http/1.1 400"), head
    location = re.search(r"^location: (\S+)", head, re.M)
    assert location, head
    url = location.group(1)
    with stack.client(officer) as c:
        offset = int(c.head(url, headers=TUS).headers["Upload-Offset"])
        assert offset <= 10
        r = c.patch(url, content=data[offset:], headers={
            **TUS, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"})
        assert r.status_code == 204 and r.headers["Upload-Offset"] == "1000", r.text
        item_id = c.get(url).json()["item_id"]
        assert c.get(f"/api/v1/evidence/{item_id}").json()["sha256"] == hashlib.sha256(data).hexdigest()


def test_a_creation_whose_checksum_fails_names_its_upload(stack, officer, case):
    with stack.client(officer) as c:
        r = c.post("/api/v1/uploads", content=b"abc", headers={
            **TUS, "Upload-Length": "3", "Upload-Metadata": _meta(case, "k.bin"),
            "Content-Type": "application/offset+octet-stream",
            "Upload-Checksum": "sha1 " + base64.b64encode(hashlib.sha1(b"abd").digest()).decode()})
        assert r.status_code == 460 and r.json()["error"]["code"], r.text
        assert r.headers["Upload-Offset"] == "0"
        assert c.delete(r.headers["Location"], headers=TUS).status_code == 204


def test_two_idempotency_keys_are_refused_and_create_nothing(stack, officer, case):
    """The header is one Structured Field item: sent twice, neither is used (each alone is valid)."""
    from archive.models import Upload

    twice = [("Idempotency-Key", str(uuid.uuid4())), ("Idempotency-Key", str(uuid.uuid4()))]
    number = f"TWICE-{uuid.uuid4().hex[:10]}"
    with stack.client(officer) as c:
        replies = [
            c.post("/api/v1/cases", json={"case_number": number, "title": "twice"}, headers=twice),
            c.post(f"/api/v1/cases/{case['id']}/evidence", params={"kind": "other", "filename": "a.bin"},
                   content=b"abc", headers=twice),
            c.post("/api/v1/uploads", content=b"abc", headers=[
                *TUS.items(), ("Upload-Length", "3"), ("Upload-Metadata", _meta(case, "b.bin")),
                ("Content-Type", "application/offset+octet-stream"), *twice]),
        ]
        assert [x for x in c.get("/api/v1/cases").json() if x["case_number"] == number] == []
    for r in replies:
        assert (r.status_code, r.json()["error"]["code"]) == (422, "invalid_idempotency_key"), r.text
        assert "once" in r.json()["error"]["message"]
    _nothing_stored(stack, officer, case)
    with stack.services.db.read() as s:
        assert s.query(Upload).filter(Upload.case_id == case["id"]).count() == 0


def test_a_tus_header_sent_twice_is_refused_and_nothing_is_written(stack, officer, case):
    """Upload-Length 10 and 20: which one a proxy or the server would use is a guess, so neither is."""
    from archive.models import Upload

    meta = _meta(case, "twice.bin")
    body = [*TUS.items(), ("Content-Type", "application/offset+octet-stream")]
    with stack.client(officer) as c:
        for headers, code in (
            ([("Upload-Length", "10"), ("Upload-Length", "20"), ("Upload-Metadata", meta)], "invalid_upload_length"),
            ([("Upload-Length", "3"), ("Upload-Length", "3"), ("Upload-Metadata", meta)], "invalid_upload_length"),
            ([("Upload-Length", "3"), ("Upload-Metadata", meta), ("Upload-Metadata", "note")], "invalid_metadata"),
        ):
            r = c.post("/api/v1/uploads", content=b"abc", headers=[*body, *headers])
            assert (r.status_code, r.json()["error"]["code"]) == (400, code), r.text
            assert "sent once" in r.json()["error"]["message"]
        with stack.services.db.read() as s:
            assert s.query(Upload).filter(Upload.case_id == case["id"]).count() == 0
        r = c.post("/api/v1/uploads", headers=[*TUS.items(), ("Upload-Length", "3"), ("Upload-Metadata", meta)])
        assert r.status_code == 201, r.text
        url = r.headers["Location"]
        r = c.patch(url, content=b"abc", headers=[*body, ("Upload-Offset", "0"), ("Upload-Offset", "1")])
        assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_upload_offset"), r.text
        assert c.head(url, headers=TUS).headers["Upload-Offset"] == "0"
        assert c.delete(url, headers=TUS).status_code == 204
    _nothing_stored(stack, officer, case)


def test_a_json_body_cut_short_is_answered_400(stack, officer):
    raw = (b"POST /api/v1/cases HTTP/1.1\r\n" + _auth(officer)
           + b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n" + b'{"case_number": "X')
    status, body = _exchange(stack, raw, half_close=True)
    assert (status, body["error"]["code"]) == (400, "upload_incomplete")


# --- types and documented statuses ----------------------------------------------------


@pytest.mark.parametrize(("query", "named"), [
    ("kind=video&kind=document&filename=a.bin", "kind"),
    ("kind=other&filename=a.bin&filename=b.bin", "filename"),
    ("kind=other&filename=a.bin&sha256=&sha256=", "sha256"),
])
def test_a_scalar_query_parameter_given_twice_is_refused_before_the_body(stack, officer, case, query, named):
    """FastAPI would take the last of the two silently; which one the client meant is unknown."""
    raw = (f"POST /api/v1/cases/{case['id']}/evidence?{query} HTTP/1.1\r\n".encode() + _auth(officer)
           + b"Content-Length: 1000000\r\n\r\n" + os.urandom(1000))  # the rest never comes
    status, body = _exchange(stack, raw)
    assert (status, body["error"]["code"]) == (422, "invalid_request"), body
    assert f"query.{named}:" in body["error"]["message"] and "once" in body["error"]["message"]
    _nothing_stored(stack, officer, case)


def test_repeated_query_parameters_elsewhere(stack, officer, case):
    with stack.client(officer) as c:
        listed = c.get("/api/v1/cases?limit=5&limit=6")
        unknown = c.get("/api/v1/cases?limit=5&extra=1&extra=2")  # not a parameter of the route
    with httpx.Client(verify=CLIENT_TLS, base_url=stack.url, timeout=60) as browser:
        sign_in(browser, officer)
        page = browser.get(f"/cases/{case['id']}?actor=a&actor=b")  # pages are left as they are
    assert (listed.status_code, listed.json()["error"]["code"]) == (422, "invalid_request")
    assert "query.limit:" in listed.json()["error"]["message"]
    assert unknown.status_code == page.status_code == 200


def test_list_query_parameters_may_be_repeated():
    """No API route declares a list yet: one that does takes every value, scalars beside it once."""
    from api.deps import ONE_VALUE_PER_QUERY_PARAMETER

    app = FastAPI()
    errors.install(app)

    @app.get("/t", dependencies=ONE_VALUE_PER_QUERY_PARAMETER)
    def t(tag: Annotated[list[str], Query()], limit: int = 1) -> dict:  # type: ignore[type-arg]
        return {"tag": tag, "limit": limit}

    with TestClient(app) as c:
        assert c.get("/t?tag=a&tag=b&limit=2").json() == {"tag": ["a", "b"], "limit": 2}
        r = c.get("/t?tag=a&limit=2&limit=3")
        assert (r.status_code, r.json()["error"]["code"]) == (422, "invalid_request")


@pytest.mark.parametrize("value", [False, True, "1.5", None, "NaN"])
def test_clock_offsets_are_numbers_only(stack, officer, value):
    device = f"D-{uuid.uuid4().hex[:8]}"
    with stack.client(officer) as c:
        r = c.put(f"/api/v1/devices/{device}", json={"clock_offset_seconds": value})
        assert (r.status_code, r.json()["error"]["code"]) == (422, "invalid_request"), r.text
        r = c.put(f"/api/v1/devices/{device}", json={"clock_offset_seconds": 2})
        assert r.status_code == 200 and r.json()["clock_offset_seconds"] == 2.0


def test_export_flags_are_booleans_only(stack, case):
    reviewer = stack.user(role="reviewer", unit="unit-a")
    with stack.client(reviewer) as c:
        r = c.post(f"/api/v1/cases/{case['id']}/exports", json={"include_derived": "yes"})
        assert (r.status_code, r.json()["error"]["code"]) == (422, "invalid_request"), r.text


@pytest.mark.parametrize(("content_type", "body"), [
    ("application/json", b"\xff\xfe not utf-8"), ("application/json", b"{nope"), ("text/plain", b"hello"),
])
def test_non_json_bodies_get_a_documented_status(stack, officer, content_type, body):
    with stack.client(officer) as c:
        r = c.post("/api/v1/cases", content=body, headers={"Content-Type": content_type})
        assert (r.status_code, r.json()["error"]["code"]) == (422, "invalid_request"), r.text
        documented = c.get("/openapi.json").json()["paths"]["/api/v1/cases"]["post"]["responses"]
        assert "422" in documented


def test_every_operation_documents_the_common_errors(stack):
    with stack.client(None) as c:
        schema = c.get("/openapi.json").json()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            codes = set(operation["responses"])
            expected = {"400", "404", "409", "413", "415", "422", "431", "503"}
            if operation.get("security"):
                expected |= {"401", "403"}
            assert expected <= codes, (method, path, expected - codes)
            assert operation["responses"]["431"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorResponse"}


def test_a_method_a_path_does_not_serve_is_405_naming_those_it_does(stack, officer):
    """For every documented path: a method it does not serve answers 405 in the error shape,
    with an Allow header naming exactly the methods the path documents (RFC 9110 15.5.6)."""
    with stack.client(officer) as c:
        paths = c.get("/openapi.json").json()["paths"]
        assert len(paths) > 20
        for template, operations in paths.items():
            served = {m.upper() for m in operations}
            other = next(m for m in ("PUT", "PATCH", "DELETE", "POST", "GET") if m not in served)
            path = re.sub(r"\{[^}]+\}", lambda _m: str(uuid.uuid4()), template)
            r = c.request(other, path, json={})
            assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed", (other, path, r.text)
            allowed = {m.strip() for m in r.headers["allow"].split(",")}
            assert served <= allowed and allowed - served <= {"HEAD"}, (other, template, r.headers["allow"])


def test_the_h11_implementation_behaves_alike(stack, officer, case):
    """uvicorn without httptools falls back to h11: the same 431, 400 and JSON shape."""
    from tests.conftest import ApiServer

    api = ApiServer(stack.settings, http="h11")
    try:
        big = b"GET /api/v1/cases HTTP/1.1\r\n" + _auth(officer) + b"X-Big: " + b"a" * (1 << 20) + b"\r\n\r\n"
        assert _exchange(stack, big, port=api.port)[1]["error"]["code"] == "headers_too_large"
        many = b"".join(b"X-H-%d: v\r\n" % i for i in range(200))
        status, body = _exchange(stack, b"GET /api/v1/cases HTTP/1.1\r\n" + _auth(officer) + many + b"\r\n", port=api.port)
        assert (status, body["error"]["code"]) == (431, "headers_too_large")
        cut = _upload_head(case, officer, b"Content-Length: 1000\r\n") + b"0123456789"
        status, body = _exchange(stack, cut, half_close=True, port=api.port)
        assert (status, body["error"]["code"]) == (400, "upload_incomplete")
        status, body = _exchange(stack, b"GET /\x01 nonsense\r\n\r\n", port=api.port)
        assert (status, body["error"]["code"]) == (400, "bad_request")
    finally:
        api.stop()
    _nothing_stored(stack, officer, case)


@pytest.mark.parametrize(("model", "body"), [
    ("ReviewCreate", {"accept": "true"}),
    ("ReviewCreate", {"accept": 1}),
    ("DeviceUpdate", {"clock_offset_seconds": True}),
    ("DeviceUpdate", {"clock_offset_seconds": "2"}),
    ("DeviceUpdate", {"clock_offset_seconds": 1, "source": "guessed"}),
    ("ExportCreate", {"include_derived": 1}),
    ("ActionCreate", {"kind": "seizure", "start": 0, "end": "2026-03-01T10:00:00+08:00"}),
])
def test_request_schemas_refuse_lax_coercions(model, body):
    from pydantic import ValidationError

    from api import schemas
    from api.routes import exports

    cls = getattr(schemas, model, None) or getattr(exports, model)
    with pytest.raises(ValidationError):
        cls.model_validate(body)


def test_a_range_that_is_not_one_bytes_range_is_ignored(stack, officer, case):
    with stack.client(officer) as c:
        r = c.post(f"/api/v1/cases/{case['id']}/evidence", params={"kind": "other", "filename": "r.bin"}, content=b"abcdef")
        url = r.json()["content_url"]
        for value in ("null", "items=0-1", "bytes=0-1,3-4", "bytes=x-y", "bytes=-", "bytes=3-1"):
            r = c.get(url, headers={"Range": value})
            assert (r.status_code, r.content) == (200, b"abcdef"), value
        assert c.get(url, headers={"Range": "bytes=2-3"}).content == b"cd"
        r = c.get(url, headers={"Range": "bytes=9-"})
        assert (r.status_code, r.headers["content-range"]) == (416, "bytes */6")


def test_a_json_key_given_twice_is_refused_and_creates_nothing(stack, officer):
    """``{"case_number": "D-1", "case_number": "D-2"}`` was taken as D-2: which the client
    meant is unknown, so it is 422 naming the key, at any depth, and nothing is made."""
    number = f"D-{uuid.uuid4().hex[:6]}"
    with stack.client(officer) as c:
        r = c.post("/api/v1/cases", content=f'{{"case_number": "{number}", "case_number": "{number}-2", "title": "x"}}',
                   headers={"Content-Type": "application/json"})
        assert (r.status_code, r.json()["error"]["code"]) == (422, "invalid_request"), r.text
        assert "body.case_number:" in r.json()["error"]["message"] and "once" in r.json()["error"]["message"]
        assert not [k for k in c.get("/api/v1/cases").json() if k["case_number"].startswith(number)]
        case = c.post("/api/v1/cases", json={"case_number": number, "title": "x"}).json()
        start = "2026-03-01T09:00:00+08:00"
        r = c.post(f"/api/v1/cases/{case['id']}/actions", headers={"Content-Type": "application/json"},
                   content='{"kind": "seizure", "start": "%s", "end": "%s", "end": "%s", "devices": []}'
                   % (start, "2026-03-01T09:05:00+08:00", "2026-03-01T09:06:00+08:00"))
        assert (r.status_code, r.json()["error"]["code"]) == (422, "invalid_request"), r.text
        assert "body.end:" in r.json()["error"]["message"]
        # Named by its whole path (it was "body.ok", the nested object's key alone).
        r = c.post(f"/api/v1/cases/{case['id']}/reviews", headers={"Content-Type": "application/json"},
                   content='{"checkpoint": "filing", "aspects": {"subject": {"ok": true, "ok": false}}, '
                           '"decision": "approve", "opinion": "x", "x": [{"a": 1, "a": 2}]}')
        assert (r.status_code, r.json()["error"]["code"]) == (422, "invalid_request"), r.text
        message = r.json()["error"]["message"]
        assert "body.aspects.subject.ok: given more than once" in message and "body.x.0.a:" in message, message
        assert "body.ok:" not in message


def test_text_that_would_show_otherwise_than_written_is_refused_in_every_note_and_description(stack, officer, case):
    """An action's kind and description, a device's description, a stage document's note and
    an inspection's note (printed on its sealed record) were kept with a right-to-left override
    or a control character in them (``扣押\\u202e0001`` shows as ``扣押1000``), as reasons and
    opinions are not: each is 422 naming the field's code, and nothing is recorded. Plain
    Chinese text is kept as written."""
    window = {"start": "2026-03-01T10:02:00+08:00", "end": "2026-03-01T11:40:00+08:00", "devices": ["CAM-T"]}
    with stack.client(officer) as c:
        doc = c.post(f"/api/v1/cases/{case['id']}/evidence", params={"kind": "document", "filename": "notice.pdf"},
                     content=os.urandom(64))
        assert doc.status_code == 201, doc.text
        for bad in ("扣押\u202e0001", "扣押\x1b[2J", "\u2067扣押"):
            attempts = [
                (c.post(f"/api/v1/cases/{case['id']}/actions", json={**window, "kind": bad}), "invalid_kind"),
                (c.post(f"/api/v1/cases/{case['id']}/actions", json={**window, "kind": "seizure", "description": bad}),
                 "invalid_description"),
                (c.put("/api/v1/devices/CAM-T", json={"clock_offset_seconds": 2, "description": bad}),
                 "invalid_description"),
                (c.post(f"/api/v1/cases/{case['id']}/stage-documents",
                        json={"item": doc.json()["id"], "role": "notice", "note": bad}), "invalid_note"),
                (c.post(f"/api/v1/cases/{case['id']}/inspections",
                        json={"url": "http://127.0.0.1:9/", "device_id": "WS-1", "seconds": 5, "note": bad}),
                 "invalid_note"),
            ]
            for r, code in attempts:
                assert r.status_code == 422 and r.json()["error"]["code"] == code, (bad, r.text)
        assert c.get(f"/api/v1/cases/{case['id']}/actions").json() == []
        assert c.get(f"/api/v1/cases/{case['id']}/inspections").json() == []
        kept = c.post(f"/api/v1/cases/{case['id']}/actions", json={**window, "kind": "扣押", "description": "现场扣押 1000 册"})
        assert kept.status_code == 201 and kept.json()["description"] == "现场扣押 1000 册", kept.text


@pytest.mark.parametrize("mark", ["\u200e", "\u200f", "\u061c"])
def test_invisible_direction_marks_are_refused_in_written_text_as_in_file_names(stack, officer, case, mark):
    """LRM, RLM and ALM (U+200E, U+200F, U+061C) were refused in file names but kept in reasons,
    opinions, comments, notes and descriptions, where they are invisible and change how the
    digits and signs beside them are shown (``退回\\u200f-1000`` may show as ``退回1000-``); no
    Chinese or English legal text needs them. One route of each field family is 422 with its
    field's code, naming the character, and nothing is recorded."""
    bad = f"扣押{mark}-1000 册"
    unit = "unit-a"
    reviewer = stack.user(role="reviewer", unit=unit)
    window = {"start": "2026-03-01T10:02:00+08:00", "end": "2026-03-01T11:40:00+08:00", "devices": ["CAM-M"]}
    aspects = {name: {"ok": True, "comment": ""} for name in ("subject", "facts", "basis", "discretion", "procedure")}
    with stack.client(officer) as c, stack.client(reviewer) as rv:
        doc = c.post(f"/api/v1/cases/{case['id']}/evidence", params={"kind": "document", "filename": "notice.pdf"},
                     content=os.urandom(64))
        assert doc.status_code == 201, doc.text
        review = {"checkpoint": "filing", "decision": "approve", "opinion": "同意", "aspects": aspects}
        attempts = [
            (c.post(f"/api/v1/cases/{case['id']}/stage", json={"to": "withdrawn", "reason": bad}), "reason_required"),
            (rv.post(f"/api/v1/cases/{case['id']}/reviews", json={**review, "opinion": bad}), "invalid_opinion"),
            (rv.post(f"/api/v1/cases/{case['id']}/reviews",
                     json={**review, "aspects": {**aspects, "facts": {"ok": True, "comment": bad}}}), "invalid_aspects"),
            (c.post(f"/api/v1/cases/{case['id']}/stage-documents",
                    json={"item": doc.json()["id"], "role": "notice", "note": bad}), "invalid_note"),
            (c.post(f"/api/v1/cases/{case['id']}/actions", json={**window, "kind": "seizure", "description": bad}),
             "invalid_description"),
        ]
        for r, code in attempts:
            assert (r.status_code, r.json()["error"]["code"]) == (422, code), r.text
            assert f"U+{ord(mark):04X}" in r.json()["error"]["message"], r.text
        assert c.get(f"/api/v1/cases/{case['id']}").json()["stage"] == "filed"
        assert c.get(f"/api/v1/cases/{case['id']}/reviews").json() == []
        assert c.get(f"/api/v1/cases/{case['id']}/actions").json() == []


def _in_two_halves(stack, request_line: str, token: str, between, *, tus: bool) -> tuple[int, dict]:  # type: ignore[no-untyped-def]
    """Send a 200,000-byte body in two halves, calling ``between()`` after the first; the answer."""
    kind = (b"Tus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\n" if tus
            else b"Content-Type: application/octet-stream\r\n")
    with socket.create_connection(("127.0.0.1", stack.api.port), timeout=30) as sock:
        sock.sendall(f"{request_line} HTTP/1.1\r\n".encode() + _auth(token) + kind
                     + b"Content-Length: 200000\r\n\r\n" + os.urandom(100_000))
        time.sleep(0.5)
        between()
        sock.sendall(os.urandom(100_000))
        return _answer(sock)


@pytest.mark.parametrize(("withdraw", "answer"), [
    ("token_revoked", (401, "token_revoked")), ("user_disabled", (401, "user_disabled")),
    ("case_not_found", (410, "upload_failed")),  # moved to another unit: the case is no longer theirs
])
def test_an_uploader_withdrawn_while_the_body_streams_keeps_nothing(stack, case, withdraw, answer):
    """A token revoked (the user's own ``DELETE /api/v1/tokens/{id}``, say after a device was
    lost) or a user disabled by an administrator while a PATCH body is still arriving: the
    request was admitted before, so its bytes became evidence recorded in that user's name.
    Now the credential is checked again as the body streams and before completion: 401 with
    its code, the upload failed (410 from then on, a custody entry saying why), its staged
    bytes discarded, and no item. An uploader moved to another unit meanwhile is refused at
    completion (410 ``upload_failed``) likewise."""
    name = f"officer-{uuid.uuid4().hex[:8]}"
    officer = stack.user(role="officer", unit="unit-a", name=name)
    admin = stack.user(role="admin", unit="hq")
    with stack.client(officer) as c:
        r = c.post("/api/v1/uploads", headers={**TUS, "Upload-Length": "200000", "Upload-Metadata": _meta(case, "w.bin")})
        assert r.status_code == 201, r.text
        url = r.headers["Location"]
        token_id = c.get("/api/v1/tokens").json()[0]["id"]

    def between() -> None:
        if withdraw == "token_revoked":
            with stack.client(officer) as c:
                assert c.delete(f"/api/v1/tokens/{token_id}").status_code == 200
        else:
            change = {"active": False} if withdraw == "user_disabled" else {"unit": "unit-b"}
            with stack.client(admin) as a:
                assert a.patch(f"/api/v1/users/{name}", json=change).status_code == 200

    status, body = _in_two_halves(stack, f"PATCH {url}", officer, between, tus=True)
    assert (status, body["error"]["code"]) == answer, body
    from archive.custody import ledger
    from archive.models import LedgerEntry, Upload

    ledger.settle(stack.services.db.engine)  # PostgreSQL sequences entries after their commit
    with stack.services.db.read() as s:
        upload = s.get(Upload, url.rsplit("/", 1)[-1])
        assert (upload.status, upload.item_id) == ("failed", None), (upload.status, upload.error)
        assert withdraw in upload.error
        details = [e.details for e in s.query(LedgerEntry).filter(
            LedgerEntry.case_id == case["id"], LedgerEntry.action == "upload_failed")]
        assert [(json.loads(d) if isinstance(d, str) else d)["reason"] for d in details] == [withdraw]
    _nothing_stored(stack, admin, case)


@pytest.mark.parametrize("digits", [20, 5000])
def test_a_tus_number_of_thousands_of_digits_is_400_not_500(stack, officer, case, digits):
    """``Upload-Length`` or ``Upload-Offset`` of 5,000 nines passed the digit check and reached
    ``int()``, which refuses text over 4,300 digits with a ValueError: the connection dropped
    with a 500 in the log. A number of more than 19 digits is now its header's 400."""
    huge = "9" * digits
    with stack.client(officer) as c:
        r = c.post("/api/v1/uploads", headers={**TUS, "Upload-Length": huge, "Upload-Metadata": _meta(case, "h.bin")})
        assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_upload_length"), r.text
        r = c.post("/api/v1/uploads", headers={**TUS, "Upload-Length": "3", "Upload-Metadata": _meta(case, "h.bin")})
        url = r.headers["Location"]
        r = c.patch(url, headers={**TUS, "Upload-Offset": huge, "Content-Type": "application/offset+octet-stream"},
                    content=b"abc")
        assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_upload_offset"), r.text
        assert c.head(url, headers=TUS).headers["Upload-Offset"] == "0"


def test_a_direct_upload_whose_token_is_revoked_while_it_streams_keeps_nothing(stack, case):
    """The direct upload checked a disabled user when it registered the item, but not its
    token: one revoked while the body arrived (a lost device's) still made the item. The
    credential is now checked as the body streams and at its end: 401 ``token_revoked``, no
    item and no object."""
    officer, admin = stack.user(role="officer", unit="unit-a"), stack.user(role="admin", unit="hq")
    with stack.client(officer) as c:
        token_id = c.get("/api/v1/tokens").json()[0]["id"]

    def revoke() -> None:
        with stack.client(officer) as c:
            assert c.delete(f"/api/v1/tokens/{token_id}").status_code == 200

    status, body = _in_two_halves(stack, f"POST /api/v1/cases/{case['id']}/evidence?kind=other&filename=d.bin",
                                  officer, revoke, tus=False)
    assert (status, body["error"]["code"]) == (401, "token_revoked"), body
    _nothing_stored(stack, admin, case)


def test_a_token_that_expires_while_the_body_streams_does_not_stop_it(stack, case):
    """Expiry is a token's planned end, not a withdrawal: an upload admitted while its token
    was valid is kept though the token runs out before its body ends."""
    from archive.identity.users import add_user

    with stack.services.db.session() as session:
        _user, token = add_user(session, name=f"officer-{uuid.uuid4().hex[:8]}", unit="unit-a", role="officer",
                                expires_in=2)
    status, body = _in_two_halves(stack, f"POST /api/v1/cases/{case['id']}/evidence?kind=other&filename=e.bin",
                                  token, lambda: time.sleep(2), tus=False)
    assert status == 201 and body["size"] == 200_000, body


def test_a_withdrawn_upload_fails_though_its_stage_cannot_be_discarded(stack, case, monkeypatch):
    """The store refusing to discard the staged bytes (down for a moment) must not leave the
    upload open: with all its bytes, HEAD or the hourly task would make it evidence after all.
    It is failed first; the bytes stay for the debris sweep."""
    from archive.errors import StoreUnavailable
    from archive.models import Upload

    staging = type(stack.services.store.staging)

    def refuse(self, handle):  # type: ignore[no-untyped-def]
        raise StoreUnavailable("the store is down")

    officer, admin = stack.user(role="officer", unit="unit-a"), stack.user(role="admin", unit="hq")
    with stack.client(officer) as c:
        url = c.post("/api/v1/uploads", headers={**TUS, "Upload-Length": "200000",
                                                 "Upload-Metadata": _meta(case, "s.bin")}).headers["Location"]
        token_id = c.get("/api/v1/tokens").json()[0]["id"]
    monkeypatch.setattr(staging, "abort", refuse)

    def revoke() -> None:
        with stack.client(officer) as c:
            assert c.delete(f"/api/v1/tokens/{token_id}").status_code == 200

    status, body = _in_two_halves(stack, f"PATCH {url}", officer, revoke, tus=True)
    assert (status, body["error"]["code"]) == (401, "token_revoked"), body
    with stack.services.db.read() as s:
        assert s.get(Upload, url.rsplit("/", 1)[-1]).status == "failed"
    with stack.client(admin) as a:
        assert a.get(f"/api/v1/cases/{case['id']}/evidence").json() == []


def test_a_token_name_that_would_show_otherwise_is_refused(stack, officer):
    """Token names (listed to tell which device's token to revoke) were kept with controls and
    bidirectional overrides or marks: ``laptop\\u202e2`` could pass for another. 422
    ``invalid_token_name``, no token made; a Chinese name is kept as given."""
    with stack.client(officer) as c:
        before = len(c.get("/api/v1/tokens").json())
        for bad in ("laptop\u202e2", "phone\u200e1", "pad\x1b[2J", "cam\u200b1"):
            r = c.post("/api/v1/tokens", json={"name": bad})
            assert (r.status_code, r.json()["error"]["code"]) == (422, "invalid_token_name"), (bad, r.text)
        assert len(c.get("/api/v1/tokens").json()) == before
        r = c.post("/api/v1/tokens", json={"name": "执法记录仪 1 号"})
        assert r.status_code == 201, r.text


def test_the_pages_refuse_text_longer_than_its_column_as_the_api_does(stack, officer):
    """The workspace's forms are not the API's schemas: a case title over 500 characters and a
    user or unit name over 200 went past them to the database, kept longer than the API allows
    on SQLite and a 500 on PostgreSQL, whose columns hold no more. The domain refuses them (422
    ``invalid_title``, ``invalid_user_name``, ``invalid_unit``) whoever asks; nothing is kept."""
    admin = stack.user(role="admin", unit="hq")
    number = f"L-{uuid.uuid4().hex[:8]}"
    name = f"long-{uuid.uuid4().hex[:6]}"
    with httpx.Client(verify=CLIENT_TLS, base_url=stack.url, follow_redirects=False, timeout=60) as b:
        sign_in(b, officer)
        csrf = re.search(r'name="csrf_token" value="([0-9a-f]+)"', b.get("/cases").text).group(1)
        r = b.post("/cases", data={"case_number": number, "title": "案" * 501, "csrf_token": csrf})
        assert r.status_code == 422 and 'data-testid="error-code">invalid_title<' in r.text, r.text[-2000:]
        r = b.post("/cases", data={"case_number": number, "title": " " + "案" * 500 + " ", "csrf_token": csrf})
        assert r.status_code == 303, r.text[-2000:]  # 500 characters once trimmed, as kept
    with httpx.Client(verify=CLIENT_TLS, base_url=stack.url, follow_redirects=False, timeout=60) as b:
        sign_in(b, admin)
        csrf = re.search(r'name="csrf_token" value="([0-9a-f]+)"', b.get("/admin").text).group(1)
        for form, code in (({"name": "名" * 201, "unit": "unit-a"}, "invalid_user_name"),
                           ({"name": name, "unit": "单" * 201, "new_unit": "true"}, "invalid_unit")):
            r = b.post("/admin/users", data={**form, "role": "officer", "csrf_token": csrf})
            assert r.status_code == 422 and f'data-testid="error-code">{code}<' in r.text, r.text[-2000:]
        r = b.post("/admin/users/" + officer_name(stack, officer),
                   data={"unit": "单" * 201, "new_unit": "true", "csrf_token": csrf})
        assert r.status_code == 422 and 'data-testid="error-code">invalid_unit<' in r.text, r.text[-2000:]
    with stack.client(admin) as a:
        names = {u["name"]: u["unit"] for u in a.get("/api/v1/users").json()}
        assert not [n for n, unit in names.items() if len(n) > 200 or len(unit) > 200]
    with stack.client(officer) as c:
        titles = [case["title"] for case in c.get("/api/v1/cases", params={"limit": 1000}).json()]
        assert "案" * 500 in titles and not [t for t in titles if len(t) > 500]


def officer_name(stack, token: str) -> str:
    """The name of the user ``token`` signs in."""
    with stack.client(token) as c:
        return c.get("/api/v1/tokens").json()[0]["user"]


def test_a_user_named_as_long_as_allowed_can_act(stack):
    """The custody ledger names a user ``user:NAME`` in at most 200 characters, but names of 196
    to 200 characters were accepted: every action of such a user (a case created, a sign-in) was
    then a 500 on PostgreSQL, whose column holds no more (and on SQLite an actor longer than the
    column says). A name is at most 195 characters (422: the API's schema says so, and the pages,
    the CLI and single sign-on are refused ``invalid_user_name``), and one of 195 acts like any other."""
    from archive.errors import InvalidInput
    from archive.identity.users import add_user

    admin = stack.user(role="admin", unit="hq")
    stem = uuid.uuid4().hex[:8]
    with stack.client(admin) as a:
        r = a.post("/api/v1/users", json={"name": stem + "名" * 188, "unit": "unit-a", "role": "officer"})
        assert (r.status_code, r.json()["error"]["code"]) == (422, "invalid_request"), r.text
        assert "at most 195 characters" in r.json()["error"]["message"]
    with stack.services.db.session() as s, pytest.raises(InvalidInput) as refused:
        add_user(s, name=stem + "名" * 188, unit="unit-a", role="officer")
    assert refused.value.code == "invalid_user_name"
    with stack.client(admin) as a:
        r = a.post("/api/v1/users", json={"name": stem + "名" * 187, "unit": "unit-a", "role": "officer"})
        assert r.status_code == 201, r.text
        token = r.json()["token"]["token"]
    with stack.client(token) as c:
        r = c.post("/api/v1/cases", json={"case_number": f"N-{stem}", "title": "名字很长的执法人员"})
        assert r.status_code == 201, r.text
        entries = c.get("/api/v1/ledger/entries", params={"case_id": r.json()["id"]}).json()
        assert [e["actor"] for e in entries] == ["user:" + stem + "名" * 187]


def test_a_user_named_before_the_limit_with_200_characters_can_still_act(stack):
    """Names of 196 to 200 characters were allowed before: such a user, the actor
    ``user:NAME`` of up to 205 characters, acts like any other (revision 0028 widened the
    ledger's actor on PostgreSQL)."""
    from sqlalchemy import text

    admin = stack.user(role="admin", unit="hq")
    stem = uuid.uuid4().hex[:8]
    with stack.client(admin) as a:
        r = a.post("/api/v1/users", json={"name": f"short-{stem}", "unit": "unit-a", "role": "officer"})
        assert r.status_code == 201, r.text
        token = r.json()["token"]["token"]
    long_name = stem + "名" * 192  # 200 characters, as an earlier release let an administrator name a user
    with stack.services.db.engine.begin() as conn:
        conn.execute(text("UPDATE users SET name = :long WHERE name = :short"), {"long": long_name, "short": f"short-{stem}"})
    with stack.client(token) as c:
        r = c.post("/api/v1/cases", json={"case_number": f"L-{stem}", "title": "名字很长的执法人员"})
        assert r.status_code == 201, r.text
        entries = c.get("/api/v1/ledger/entries", params={"case_id": r.json()["id"]}).json()
        assert [e["actor"] for e in entries] == ["user:" + long_name]


@pytest.mark.parametrize("coding", ["gzip", "identity, gzip", "br"])
def test_evidence_sent_with_a_content_coding_is_refused_not_kept_coded(stack, officer, case, coding):
    """The archive decodes nothing: a clip sent ``Content-Encoding: gzip`` was kept as its own
    original, the compressed bytes under the clip's name (media type application/gzip), or
    refused 409 ``hash_mismatch`` against the SHA-256 the client rightly gave for the clip. A
    coded body is refused (415 ``unsupported_media_type``, ``Accept-Encoding: identity``) on the
    direct upload, tus creation and PATCH; nothing is kept, and ``identity`` is no coding."""
    import gzip

    clip = b"\x00\x00\x00\x18ftypmp42" + uuid.uuid4().bytes * 64
    coded = gzip.compress(clip)
    digest = hashlib.sha256(clip).hexdigest()
    with stack.client(officer) as c:
        for declared in (None, digest):
            params = {"kind": "other", "filename": "clip.mp4", **({"sha256": declared} if declared else {})}
            r = c.post(f"/api/v1/cases/{case['id']}/evidence", params=params, content=coded,
                       headers={"Content-Encoding": coding})
            assert (r.status_code, r.json()["error"]["code"]) == (415, "unsupported_media_type"), r.text
            assert r.headers["accept-encoding"] == "identity"
        meta = _meta(case, "clip.mp4") + f",sha256 {base64.b64encode(digest.encode()).decode()}"
        head = {**TUS, "Upload-Length": str(len(clip)), "Upload-Metadata": meta}
        r = c.post("/api/v1/uploads", headers={**head, "Content-Encoding": coding,
                                               "Content-Type": "application/offset+octet-stream"}, content=coded)
        assert (r.status_code, r.json()["error"]["code"]) == (415, "unsupported_media_type"), r.text
        assert "location" not in r.headers
        created = c.post("/api/v1/uploads", headers=head)
        assert created.status_code == 201, created.text
        url = created.headers["location"]
        r = c.patch(url, headers={**TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream",
                                  "Content-Encoding": coding}, content=coded)
        assert (r.status_code, r.json()["error"]["code"]) == (415, "unsupported_media_type"), r.text
        assert c.head(url, headers=TUS).headers["upload-offset"] == "0"
        assert c.get(f"/api/v1/cases/{case['id']}/evidence").json() == []
        r = c.patch(url, headers={**TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream",
                                  "Content-Encoding": "identity"}, content=clip)
        assert r.status_code == 204, r.text
        [item] = c.get(f"/api/v1/cases/{case['id']}/evidence").json()
        assert item["sha256"] == digest and item["size"] == len(clip)
