"""Defects found reviewing the HTTP API: authorisation holes and bad input that gave a 500."""

from __future__ import annotations

import base64
import uuid

import pytest

from sqlalchemy import select

from archive.continuity.models import Device
from archive.models import LedgerEntry

TUS = {"Tus-Resumable": "1.0.0"}


def _is_error(r, status: int, code: str | None = None) -> None:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"code", "message"}
    if code is not None:
        assert error["code"] == code, error


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_device_clock_only_by_the_units_that_use_the_device(stack, officer, case):
    cam = f"CAM-{uuid.uuid4().hex[:8]}"
    with stack.client(officer) as c:
        r = c.post(f"/api/v1/cases/{case['id']}/evidence", params={"kind": "bodycam_video", "filename": "a.mp4",
                                                                    "device_id": cam}, content=b"not a video")
        assert r.status_code == 201, r.text
    other = stack.user(role="officer", unit="unit-b")
    with stack.client(other) as c:
        # Another unit's officer would move the gaps of unit-a's case (and learn its id).
        _is_error(c.put(f"/api/v1/devices/{cam}", json={"clock_offset_seconds": 3600}), 403, "device_of_other_unit")
        # A device no case uses yet is anyone's to describe.
        fresh = f"CAM-{uuid.uuid4().hex[:8]}"
        r = c.put(f"/api/v1/devices/{fresh}", json={"clock_offset_seconds": 2})
        assert r.status_code == 200 and r.json()["cases"] == [], r.text
    with stack.services.db.snapshot() as s:
        assert s.get(Device, cam) is None
        assert not s.execute(select(LedgerEntry).where(LedgerEntry.action == "device_clock_set",
                                                       LedgerEntry.case_id == case["id"])).first()
    with stack.client(officer) as c:
        r = c.put(f"/api/v1/devices/{cam}", json={"clock_offset_seconds": 5})
        assert r.status_code == 200 and r.json()["cases"] == [case["id"]], r.text
        # Devices named in an action (a plan, not recordings) stay theirs who record with them.
        named = [f"CAM-{uuid.uuid4().hex[:8]}" for _ in range(3)]
        r = c.post(f"/api/v1/cases/{case['id']}/actions", json={
            "kind": "seizure", "start": "2026-03-01T10:00:00+08:00", "end": "2026-03-01T10:05:00+08:00", "devices": named})
        assert r.status_code == 201, r.text
    with stack.client(other) as c:
        r = c.put(f"/api/v1/devices/{named[1]}", json={"clock_offset_seconds": 2})
        assert r.status_code == 200, r.text
        assert r.json()["cases"] == []  # unit-a's case is analysed again, but not named to unit-b
    with stack.client(stack.user(role="admin", unit="hq")) as c:
        r = c.put(f"/api/v1/devices/{cam}", json={"clock_offset_seconds": 6})
        assert r.status_code == 200 and r.json()["clock_offset_seconds"] == 6, r.text


def _recorded_start_refused(c, case: dict, value: str) -> None:  # type: ignore[no-untyped-def]
    """``value`` as recorded_start is 422 invalid_recorded_start on the direct upload and on tus."""
    r = c.post(f"/api/v1/cases/{case['id']}/evidence",
               params={"kind": "other", "filename": "a.bin", "recorded_start": value}, content=b"x")
    _is_error(r, 422, "invalid_recorded_start")
    meta = f"case_id {_b64(case['id'])},kind {_b64('other')},filename {_b64('a.bin')},recorded_start {_b64(value)}"
    r = c.post("/api/v1/uploads", headers={**TUS, "Upload-Length": "3", "Upload-Metadata": meta})
    _is_error(r, 422, "invalid_recorded_start")


@pytest.mark.parametrize("edge", [
    "0001-01-01T00:00:00+14:00",  # valid ISO 8601, but has no UTC form
    "9999-12-31T20:00:00Z",  # has no +08:00 form: the case page and reports could not show it
    "1899-12-31T23:59:59Z", "3000-01-01T00:00:00Z",  # outside 1900-2999
])
def test_calendar_edge_times_are_refused_not_500(stack, officer, case, edge):
    with stack.client(officer) as c:
        r = c.post(f"/api/v1/cases/{case['id']}/actions",
                   json={"kind": "seizure", "start": edge, "end": "2026-03-01T11:00:00Z", "devices": []})
        _is_error(r, 422, "invalid_window")
        _recorded_start_refused(c, case, edge)


@pytest.mark.parametrize("number", ["1700000000", "1700000000.5", "0", "-1"])
def test_a_number_is_not_a_time_on_any_entry_point(stack, officer, case, number):
    """Lax parsers read "1700000000" as Unix seconds (2023-11-14): an officer's typo or a
    client's epoch would become a recording start nobody wrote. Only ISO 8601 text is a time,
    on the direct upload, tus and actions alike."""
    with stack.client(officer) as c:
        r = c.post(f"/api/v1/cases/{case['id']}/actions",
                   json={"kind": "seizure", "start": number, "end": "2026-03-01T11:00:00Z", "devices": []})
        assert r.status_code == 422 and "ISO 8601" in r.text, r.text
        _recorded_start_refused(c, case, number)
        assert c.get(f"/api/v1/cases/{case['id']}/evidence").json() == []


def test_huge_integers_in_queries_are_refused_not_500(stack, officer):
    huge = str(2**31)
    with stack.client(officer) as c:
        for path, params in (("/api/v1/ledger/entries", {"start": huge}),
                             ("/api/v1/ledger/checkpoints", {"start": huge}),
                             ("/api/v1/cases", {"offset": huge}),
                             ("/api/v1/ledger/entries", {"start": "9" * 40})):
            _is_error(c.get(path, params=params), 422, "invalid_request")
        assert c.get("/api/v1/ledger/entries", params={"start": str(2**31 - 1)}).json() == []


def test_non_ascii_link_signature_is_refused_not_500(stack):
    with stack.client(None) as c:
        r = c.get(f"/api/v1/exports/{uuid.uuid4()}/download", params={"expires": "1", "user": "x", "sig": "é"})
        _is_error(r, 401, "invalid_link")


@pytest.mark.parametrize("link", [
    {"expires": "17964937AA", "user": "x", "sig": "abc"}, {"expires": "１７９６", "user": "x", "sig": "abc"},
    {"user": "x", "sig": "abc"}, {"expires": "1796493790", "user": "x"}, {"sig": "abc"},
    {"expires": "9" * 40, "user": "x", "sig": "abc"},
])
def test_a_download_link_cut_short_or_altered_is_a_bad_link(stack, link):
    """A signed link whose expiry is not a number, or with a part missing (a mail client broke
    it, a clerk copied half of it), was answered 401 ``missing_token``, "a bearer token is
    required": a court clerk, who has no token, was told to get one. It is ``invalid_link``."""
    with stack.client(None) as c:
        r = c.get(f"/api/v1/exports/{uuid.uuid4()}/download", params=link)
        _is_error(r, 401, "invalid_link")
        assert "ask for a new link" in r.json()["error"]["message"]
        r = c.head(f"/api/v1/exports/{uuid.uuid4()}/download", params=link)
        assert r.status_code == 401


def test_tus_headers_with_non_ascii_digits_or_base64_are_refused_not_500(stack, officer, case):
    meta = f"case_id {_b64(case['id'])},kind {_b64('other')},filename {_b64('a.bin')}"
    with stack.client(officer) as c:
        # str.isdigit() holds for superscript digits, which int() refuses.
        _is_error(c.post("/api/v1/uploads", headers={**TUS, "Upload-Length": b"\xb2", "Upload-Metadata": meta}),
                  400, "invalid_upload_length")
        _is_error(c.post("/api/v1/uploads", headers={**TUS, "Upload-Length": "3", "Upload-Metadata": b"case_id \xe9"}),
                  400, "invalid_metadata")
        # A key given twice (in one field or across two) is refused, not read as its last value.
        twice = f"{meta},filename {_b64('evil.exe')}"
        _is_error(c.post("/api/v1/uploads", headers={**TUS, "Upload-Length": "3", "Upload-Metadata": twice}),
                  400, "invalid_metadata")
        split = [*TUS.items(), ("Upload-Length", "3"), ("Upload-Metadata", meta),
                 ("Upload-Metadata", f"filename {_b64('evil.exe')}")]
        _is_error(c.post("/api/v1/uploads", headers=split), 400, "invalid_metadata")
        r = c.post("/api/v1/uploads", headers={**TUS, "Upload-Length": "3", "Upload-Metadata": meta})
        assert r.status_code == 201, r.text
        url = r.headers["Location"]
        patch = {**TUS, "Content-Type": "application/offset+octet-stream"}
        _is_error(c.patch(url, headers={**patch, "Upload-Offset": b"\xb9"}, content=b"abc"),
                  400, "invalid_upload_offset")
        _is_error(c.patch(url, headers={**patch, "Upload-Offset": "0", "Upload-Checksum": b"sha1 \xe9"},
                          content=b"abc"), 400, "invalid_checksum")
        assert c.get(url).json()["offset"] == 0


def test_who_may_not_approve_learns_nothing_about_export_ids(stack, officer, case):
    court = f"court-{uuid.uuid4().hex[:8]}"
    stack.user(role="court", unit="court", name=court)
    with stack.client(officer) as c:
        assert c.post(f"/api/v1/cases/{case['id']}/evidence", params={"kind": "other", "filename": "a"},
                      content=b"x").status_code == 201
    with stack.client(stack.user(role="reviewer", unit="unit-a")) as c:
        r = c.post(f"/api/v1/cases/{case['id']}/exports", json={"recipient": court})
        assert r.status_code == 201, r.text
        export_id = r.json()["id"]
    with stack.client(stack.user(role="officer", unit="unit-b")) as c:
        known = c.post(f"/api/v1/exports/{export_id}/approve")
        unknown = c.post(f"/api/v1/exports/{uuid.uuid4()}/approve")
        assert (known.status_code, known.json()["error"]["code"]) == (unknown.status_code, unknown.json()["error"]["code"])
        _is_error(known, 403, "forbidden_role")


def test_nul_characters_are_refused_alike_on_both_stacks(stack, officer, case):
    # PostgreSQL text cannot hold NUL: these were 500s there (and accepted on SQLite).
    window = {"start": "2026-03-01T10:00:00Z", "end": "2026-03-01T11:00:00Z", "devices": []}
    with stack.client(officer) as c:
        for r in (
            c.post("/api/v1/cases", json={"case_number": f"N-{uuid.uuid4().hex[:6]}", "title": "a\x00b"}),
            c.put(f"/api/v1/devices/D-{uuid.uuid4().hex[:6]}", json={"clock_offset_seconds": 1, "description": "a\x00"}),
            c.post(f"/api/v1/cases/{case['id']}/actions", json={"kind": "k\x00", **window}),
            c.post(f"/api/v1/cases/{case['id']}/actions", json={"kind": "k", "description": "\x00", **window}),
        ):
            _is_error(r, 422, "nul_character")
        # Refused before the bytes are stored, not when the row is written after them.
        r = c.post(f"/api/v1/cases/{case['id']}/evidence", params={"kind": "other", "filename": "a",
                                                                  "device_id": "x\x00"}, content=b"x")
        _is_error(r, 422, "invalid_device_id")
        assert not list(stack.services.store.list(f"{case['vault']}/originals/"))
        _is_error(c.get("/api/v1/cases/%00"), 422, "nul_character")
        _is_error(c.get("/api/v1/evidence/a%00b/content"), 422, "nul_character")
        assert c.get(f"/api/v1/cases/{case['id']}/actions").json() == []


def test_a_leap_second_is_refused_as_one_not_as_a_malformed_time(stack, officer, case):
    """``2016-12-31T23:59:60Z`` is RFC 3339 (a leap second), which the archive cannot place: it
    was refused as "not an ISO 8601 time", which it is. The refusal says what it is and what to
    give instead, on the direct upload, tus and an action's window; nothing is kept."""
    leap = "2016-12-31T23:59:60Z"
    with stack.client(officer) as c:
        r = c.post(f"/api/v1/cases/{case['id']}/actions",
                   json={"kind": "seizure", "start": leap, "end": "2017-01-01T11:00:00Z", "devices": []})
        _is_error(r, 422, "invalid_request")
        assert "leap second" in r.text and "not an ISO 8601 time" not in r.text, r.text
        _recorded_start_refused(c, case, leap)
        r = c.post(f"/api/v1/cases/{case['id']}/evidence",
                   params={"kind": "other", "filename": "a.bin", "recorded_start": "2017-01-01T07:59:60+08:00"},
                   content=b"x")
        assert "leap second" in r.json()["error"]["message"], r.text
        assert c.get(f"/api/v1/cases/{case['id']}/evidence").json() == []


@pytest.mark.parametrize("garbage", [
    "2026-01-01T10:00:00\x00+08:00", "2026-01-01T10:00:00a+08:00", "2026-01-01T10:00:00 +08:00",
    "2026-01-01T10:00:00.+08:00", "20260101T100000+0800", "2026-W01-4T10:00:00+08:00", "2026-01-01T10+08",
    "2026-01-01T10:00:00,5+08:00", "2026-01-01T10:00:00+08:00\n", "2026-01-01T10:00:00+0800",
    "2026-01-01T10:00:00+08:60", "2026-01-01T10:00:00+08:00:60", "2026-01-01T10:00:00-05:99",
])
def test_a_time_with_anything_around_it_is_not_a_time(stack, officer, case, garbage):
    """``datetime.fromisoformat`` skips a stray character before the zone (``10:00:00\\x00+08:00``
    was kept as 10:00+08:00) and reads week dates, basic forms and comma fractions: text nobody
    wrote as a time became a recording start or an action's window. Only RFC 3339's form is a
    time (and an offset with seconds, as the upload page writes a local mean time), on the
    direct upload, tus and actions alike; nothing is kept."""
    with stack.client(officer) as c:
        r = c.post(f"/api/v1/cases/{case['id']}/actions",
                   json={"kind": "seizure", "start": garbage, "end": "2026-03-01T11:00:00Z", "devices": []})
        _is_error(r, 422, "invalid_request")
        assert "ISO 8601" in r.text, r.text
        _recorded_start_refused(c, case, garbage)
        assert c.get(f"/api/v1/cases/{case['id']}/evidence").json() == []
        assert c.get(f"/api/v1/cases/{case['id']}/actions").json() == []
        for kept, end in (("2026-03-01T10:02:00+08:00", "2026-03-01T11:00:00Z"),
                          ("2026-03-01 10:02:00.5Z", "2026-03-01T11:00:00z"),
                          ("2026-03-01T10:02+08:00", "2026-03-01t11:00:00.123456789Z"),
                          ("1900-06-01T10:00:00+08:05:43", "1900-06-01T11:00:00+08:05:43")):
            r = c.post(f"/api/v1/cases/{case['id']}/actions",
                       json={"kind": "seizure", "start": kept, "end": end, "devices": []})
            assert r.status_code == 201, (kept, r.text)
