"""Continuity analysis through the real API and worker, on both stacks.

Clips are generated at test time at one frame per second (160x90, ultrafast), so a
minute of recording encodes in a fraction of a second; recorded_start places each clip
in time.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from archive.models import LedgerEntry
from tests.tools import CLIENT_TLS, sign_in

# Slow: recordings made by ffmpeg and analysed through the worker's pipeline.
pytestmark = pytest.mark.slow

T0 = datetime(2026, 3, 1, 2, 0, 0, tzinfo=timezone.utc)


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("continuity-clips")
    out = {}
    for seconds in (30, 60, 120):
        path = d / f"clip{seconds}.mp4"
        _ffmpeg("-f", "lavfi", "-i", f"testsrc=size=160x90:rate=1:duration={seconds}",
                "-c:v", "libx264", "-preset", "ultrafast", "-g", "10", str(path))
        out[f"s{seconds}"] = path
    # Timestamps jump 5 s after second 3: the recorder paused inside the file.
    shift = "'if(gte(T,3),PTS+5/TB,PTS)'"
    jump = d / "jump.mp4"
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x90:rate=25:duration=6",
            "-vf", f"setpts={shift}", "-fps_mode", "passthrough",
            "-c:v", "libx264", "-preset", "ultrafast", "-bf", "3", str(jump))
    out["jump"] = jump
    # The recording: 113 s of H.264/AAC at 10 fps without B-frames, the recorder
    # paused 7 s at second 40. In MP4 the frame before the pause "lasts" 7.1 s.
    shift = "'if(gte(T,40),PTS+7/TB,PTS)'"
    paused = d / "paused-no-bframes.mp4"
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x90:rate=10:duration=106", "-f", "lavfi", "-i", "sine=duration=106",
            "-vf", f"setpts={shift}", "-af", f"asetpts={shift}", "-fps_mode", "passthrough",
            "-c:v", "libx264", "-preset", "ultrafast", "-bf", "0", "-c:a", "aac", str(paused))
    out["paused"] = paused
    # An interview room's audio-only recording, paused 5 s at second 20.
    shift = "'if(gte(T,20),PTS+5/TB,PTS)'"
    voice = d / "interview.m4a"
    _ffmpeg("-f", "lavfi", "-i", "sine=duration=40", "-af", f"asetpts={shift}", "-c:a", "aac", str(voice))
    out["voice"] = voice
    return out


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value)


def close(value: str, expected: datetime, tol: float = 0.1) -> bool:
    return abs((parse(value) - expected).total_seconds()) <= tol


def device() -> str:
    return f"CAM-{uuid.uuid4().hex[:8]}"


def unique_copy(path: Path) -> Path:
    """The same media with a tag of its own: other bytes, so not the same evidence twice
    (one case holds one item per content)."""
    out = path.with_name(f"{path.stem}-{uuid.uuid4().hex[:8]}{path.suffix}")
    _ffmpeg("-i", str(path), "-map", "0", "-c", "copy", "-metadata", f"comment={out.stem}", str(out))
    return out


def upload_clip(client, case_id: str, path: Path, *, device_id: str | None, start: datetime | None,
                kind: str = "bodycam_video", unique: bool = True) -> dict:
    if unique:
        path = unique_copy(path)
    params = {"kind": kind, "filename": path.name, "device_id": device_id,
              "recorded_start": iso(start) if start else None}
    r = client.post(f"/api/v1/cases/{case_id}/evidence", content=path.read_bytes(),
                    params={k: v for k, v in params.items() if v is not None})
    assert r.status_code == 201, r.text
    return r.json()


def settled(client, case_id: str, timeout: float = 120.0) -> dict:
    """The continuity report once nothing is pending."""
    deadline = time.monotonic() + timeout
    while True:
        r = client.get(f"/api/v1/cases/{case_id}/continuity")
        assert r.status_code == 200, r.text
        report = r.json()
        if not report["pending"]:
            return report
        if time.monotonic() > deadline:
            raise AssertionError(f"continuity still pending: {report}")
        time.sleep(0.3)


def test_gap_inside_a_file(stack, officer, case, clips):
    cam = device()
    with stack.client(officer) as c:
        item = upload_clip(c, case["id"], clips["jump"], device_id=cam, start=T0)
        assert c.get(f"/api/v1/cases/{case['id']}/continuity").json()["pending"] is True
        report = settled(c, case["id"])
    assert [g["level"] for g in report["gaps"]] == ["in_file"], report
    gap = report["gaps"][0]
    assert gap["device"] == cam and gap["item"] == item["id"] and gap["action"] is None
    assert close(gap["start"], T0 + timedelta(seconds=3)) and close(gap["end"], T0 + timedelta(seconds=8))
    assert abs(gap["duration_seconds"] - 5.0) <= 0.1
    assert gap["status"] == "open" and gap["explanation"] is None and gap["start"].endswith("Z")
    assert report["complete"] is False


@pytest.mark.parametrize("device_id", [None, "CAM-NO-CLOCK"])
def test_a_pause_is_found_in_a_recording_with_no_start_time(stack, officer, case, clips, device_id):
    """No recorded_start and no creation time in the file (the README's own upload): the
    pause is still a gap to account for, at times that say they are assumed, and the
    report names the recording it could not place; a placed clip of the same device is not
    compared with it."""
    with stack.client(officer) as c:
        item = upload_clip(c, case["id"], clips["jump"], device_id=device_id, start=None)
        if device_id:
            upload_clip(c, case["id"], clips["s30"], device_id=device_id, start=T0)
        report = settled(c, case["id"])
        received = datetime.fromisoformat(c.get(f"/api/v1/evidence/{item['id']}").json()["received_at"])
    (gap,) = report["gaps"]
    assert gap["level"] == "in_file" and gap["item"] == item["id"] and gap["device"] == device_id, gap
    assert abs(gap["duration_seconds"] - 5.0) <= 0.1
    assert gap["cause"].startswith("recording paused 5.0 s at 00:00:03.0 into the file"), gap["cause"]
    assert "start time is unknown" in gap["cause"], gap["cause"]
    assert datetime.fromisoformat(gap["end"].replace("Z", "+00:00")) < received
    assert report["complete"] is False and report["summary"]["unplaced_items"] == [item["id"]], report
    with httpx.Client(verify=CLIENT_TLS, base_url=stack.url, timeout=60, cookies={"evidence_lang": "zh"}) as b:
        assert sign_in(b, officer).status_code == 303
        page = b.get(f"/cases/{case['id']}")
    assert page.status_code == 200
    assert 'data-testid="gaps-unplaced"' in page.text and "有 1 段录像没有开始时间" in page.text
    assert page.text.count('data-testid="gap-row"') == 1


@pytest.mark.parametrize(("clip", "kind", "at", "pause"), [
    ("paused", "bodycam_video", 40.0, 7.0),
    ("voice", "interview_video", 20.0, 5.0),
])
def test_pause_without_b_frames_is_found(stack, officer, case, clips, clip, kind, at, pause):
    cam = device()
    with stack.client(officer) as c:
        item = upload_clip(c, case["id"], clips[clip], device_id=cam, start=T0, kind=kind)
        report = settled(c, case["id"])
    (gap,) = report["gaps"]
    assert gap["level"] == "in_file" and gap["item"] == item["id"]
    assert close(gap["start"], T0 + timedelta(seconds=at)), gap
    assert close(gap["end"], T0 + timedelta(seconds=at + pause)), gap
    assert abs(gap["duration_seconds"] - pause) <= 0.1
    assert gap["cause"].startswith(f"recording paused {pause:.1f} s at 00:00:{at:04.1f}"), gap["cause"]


def test_missing_middle_segment(stack, officer, case, clips):
    cam = device()
    with stack.client(officer) as c:
        first = upload_clip(c, case["id"], clips["s30"], device_id=cam, start=T0)
        third = upload_clip(c, case["id"], clips["s30"], device_id=cam, start=T0 + timedelta(seconds=60))
        report = settled(c, case["id"])
    assert len(report["gaps"]) == 1, report
    gap = report["gaps"][0]
    assert gap["level"] == "between_segments" and gap["device"] == cam
    assert gap["previous_item"] == first["id"] and gap["item"] == third["id"]
    assert close(gap["start"], T0 + timedelta(seconds=30)) and close(gap["end"], T0 + timedelta(seconds=60))
    assert abs(gap["duration_seconds"] - 30.0) <= 0.1


def test_action_window_hole_explained_and_accepted(stack, officer, case, clips):
    cam_a, cam_b = device(), device()
    start, end = T0, T0 + timedelta(seconds=420)
    with stack.client(officer) as c:
        upload_clip(c, case["id"], clips["s60"], device_id=cam_a, start=start)
        upload_clip(c, case["id"], clips["s60"], device_id=cam_b, start=start + timedelta(seconds=360))
        r = c.post(f"/api/v1/cases/{case['id']}/actions",
                   json={"kind": "seizure", "start": iso(start), "end": iso(end), "devices": [cam_a, cam_b]})
        assert r.status_code == 201, r.text
        action = r.json()
        assert action["id"] and action["devices"] == [cam_a, cam_b]
        assert [a["id"] for a in c.get(f"/api/v1/cases/{case['id']}/actions").json()] == [action["id"]]
        report = settled(c, case["id"])
    assert len(report["gaps"]) == 1, report
    gap = report["gaps"][0]
    assert gap["level"] == "action_window" and gap["action"] == action["id"]
    assert close(gap["start"], start + timedelta(seconds=60)) and close(gap["end"], start + timedelta(seconds=360))
    assert abs(gap["duration_seconds"] - 300.0) <= 0.1
    assert report["complete"] is False

    reviewer = stack.user(role="reviewer", unit="unit-a")
    other_officer = stack.user(role="officer", unit="unit-b")
    with stack.client(officer) as c, stack.client(reviewer) as rv, stack.client(other_officer) as other:
        # Only an officer explains, only a reviewer reviews, only within their unit.
        assert rv.post(f"/api/v1/gaps/{gap['id']}/explanation", json={"reason": "x"}).status_code == 403
        assert other.post(f"/api/v1/gaps/{gap['id']}/explanation", json={"reason": "x"}).status_code == 404
        r = rv.post(f"/api/v1/gaps/{gap['id']}/review", json={"accept": True})
        assert r.status_code == 409 and r.json()["error"]["code"] == "gap_not_explained"
        assert c.post(f"/api/v1/gaps/{gap['id']}/explanation", json={"reason": ""}).status_code == 422

        r = c.post(f"/api/v1/gaps/{gap['id']}/explanation", json={"reason": "battery swap on camera A"})
        assert r.status_code == 200 and r.json()["status"] == "explained"
        assert c.post(f"/api/v1/gaps/{gap['id']}/review", json={"accept": True}).status_code == 403
        # A rejection says why (the officer saw 已退回 and no reason): no comment, a blank one or
        # one nobody could read is refused, and the gap stays explained.
        for said in ({}, {"comment": None}, {"comment": "  "}, {"comment": "\u200b"}):
            r = rv.post(f"/api/v1/gaps/{gap['id']}/review", json={"accept": False, **said})
            assert (r.status_code, r.json()["error"]["code"]) == (422, "comment_required"), (said, r.text)
        assert c.get(f"/api/v1/gaps/{gap['id']}").json()["status"] == "explained"
        r = rv.post(f"/api/v1/gaps/{gap['id']}/review", json={"accept": False, "comment": "which battery?"})
        assert r.json()["status"] == "rejected"
        # Reviewed already (a second click): said as what it is, not as a gap nobody explained.
        r = rv.post(f"/api/v1/gaps/{gap['id']}/review", json={"accept": True})
        assert (r.status_code, r.json()["error"]["code"]) == (409, "gap_already_rejected"), r.text
        r = c.post(f"/api/v1/gaps/{gap['id']}/explanation", json={"reason": "x" * 8001})
        assert (r.status_code, r.json()["error"]["code"]) == (422, "invalid_reason"), r.text
        assert settled(c, case["id"])["complete"] is False
        c.post(f"/api/v1/gaps/{gap['id']}/explanation", json={"reason": "battery swap; B covered the door"})
        r = rv.post(f"/api/v1/gaps/{gap['id']}/review", json={"accept": True, "comment": "ok"})
        assert r.status_code == 200 and r.json()["status"] == "accepted"
        r = rv.post(f"/api/v1/gaps/{gap['id']}/review", json={"accept": True, "comment": "ok"})
        assert (r.status_code, r.json()["error"]["code"]) == (409, "gap_already_accepted"), r.text
        report = settled(c, case["id"])
        assert report["complete"] is True
        accepted = report["gaps"][0]
        assert accepted["explanation"] == "battery swap; B covered the door"
        # Who explained and who reviewed, and when, by name.
        assert accepted["explained_by"] and accepted["reviewed_by"] and accepted["explained_by"] != accepted["reviewed_by"]
        assert parse(accepted["explained_at"]) <= parse(accepted["reviewed_at"])
        # The page shows the gap in the corps' time (+08:00) at 0.1 s, and who accounted for it.
        with httpx.Client(verify=CLIENT_TLS, base_url=stack.url, timeout=60) as browser:
            sign_in(browser, reviewer)
            page = browser.get(f"/cases/{case['id']}", params={"lang": "en"}).text
        assert "2026-03-01 10:01:00.0 +08:00" in page and "2026-03-01 10:06:00.0 +08:00" in page, page
        assert "300.0 s" in page and f"explained by {accepted['explained_by']}" in page
        assert f"reviewed by {accepted['reviewed_by']}" in page and "UTC" not in page

        # A re-analysis (another clip elsewhere in time) keeps the explanation and review.
        upload_clip(c, case["id"], clips["s30"], device_id=cam_a, start=start - timedelta(seconds=600))
        report = settled(c, case["id"])
        window = [g for g in report["gaps"] if g["level"] == "action_window"]
        assert [g["id"] for g in window] == [gap["id"]] and window[0]["status"] == "accepted"
    with stack.services.db.snapshot() as s:
        actions = [e.action for e in s.execute(select(LedgerEntry).where(LedgerEntry.case_id == case["id"])).scalars()]
    assert actions.count("gap_explained") == 2 and actions.count("gap_reviewed") == 2
    assert "action_recorded" in actions and "continuity_analysed" in actions


@pytest.mark.slow  # waits for a case verification
def test_a_gap_accepted_in_the_database_without_a_review_fails_verification(stack, officer, case, clips):
    """Two pauses: one explained, rejected, explained again and accepted through the API; the
    other marked accepted by writing its row. The continuity report names only the second as
    altered (it does not count as accepted), and the case's verification fails naming it."""
    from sqlalchemy import text

    reviewer = stack.user(role="reviewer", unit="unit-a")
    with stack.client(officer) as c, stack.client(reviewer) as rv:
        upload_clip(c, case["id"], clips["jump"], device_id=device(), start=T0)
        upload_clip(c, case["id"], clips["jump"], device_id=device(), start=T0 + timedelta(seconds=60))
        honest, forged = (g["id"] for g in settled(c, case["id"])["gaps"])
        c.post(f"/api/v1/gaps/{honest}/explanation", json={"reason": "battery swap"})
        rv.post(f"/api/v1/gaps/{honest}/review", json={"accept": False, "comment": "which battery?"})
        c.post(f"/api/v1/gaps/{honest}/explanation", json={"reason": "battery swap on the second camera"})
        assert rv.post(f"/api/v1/gaps/{honest}/review", json={"accept": True}).json()["status"] == "accepted"
        with stack.services.db.session() as s:
            s.execute(text("UPDATE gaps SET status = 'accepted', explanation = 'forged', reviewed_at = explained_at "
                           "WHERE id = :g"), {"g": forged})
        report = settled(c, case["id"])
        assert [(o["subject"], o["reason"]) for o in report["outstanding"]] == [(forged, "gap_record_altered")], report
        assert report["complete"] is False
        r = rv.post(f"/api/v1/cases/{case['id']}/verify")
        assert r.status_code == 202, r.text
        deadline = time.monotonic() + 120
        while (receipt := next(x for x in rv.get(f"/api/v1/cases/{case['id']}/verifications").json()
                               if x["id"] == r.json()["id"]))["status"] not in ("passed", "incomplete", "failed"):
            assert time.monotonic() < deadline, receipt
            time.sleep(0.3)
    assert receipt["status"] == "failed", receipt
    (check,) = [x for x in receipt["checks"] if x["what"] == "continuity"]
    assert check["outcome"] == "failed" and forged in check["detail"] and honest not in check["detail"], check
    assert "custody ledger" in check["detail"]


def test_clock_offset_removes_false_gap(stack, officer, case, clips):
    cam = device()
    start = T0 + timedelta(hours=1)
    with stack.client(officer) as c:
        # The camera's clock runs 90 s ahead: by its clock it started 90 s after the action.
        upload_clip(c, case["id"], clips["s120"], device_id=cam, start=start + timedelta(seconds=90))
        r = c.post(f"/api/v1/cases/{case['id']}/actions",
                   json={"kind": "inspection", "start": iso(start), "end": iso(start + timedelta(seconds=120)),
                         "devices": [cam]})
        assert r.status_code == 201
        before = settled(c, case["id"])
        assert [(g["level"], round(g["duration_seconds"])) for g in before["gaps"]] == [("action_window", 90)]
        r = c.put(f"/api/v1/devices/{cam}", json={"clock_offset_seconds": 30, "description": "declared 30 s"})
        assert r.status_code == 200 and r.json()["description"] == "declared 30 s"
        r = c.put(f"/api/v1/devices/{cam}", json={"clock_offset_seconds": 90})
        assert r.status_code == 200, r.text
        assert r.json()["clock_offset_seconds"] == 90 and r.json()["cases"] == [case["id"]]
        # The old description spoke of the old offset: it does not stay on the new one.
        assert r.json()["description"] is None
        r = c.put(f"/api/v1/devices/{cam}", json={"clock_offset_seconds": 90, "description": "measured at docking"})
        assert r.json()["description"] == "measured at docking"
        assert c.put(f"/api/v1/devices/{cam}", json={"clock_offset_seconds": 90}).json()["description"] == "measured at docking"
        after = settled(c, case["id"])
        assert after["gaps"] == [] and after["complete"] is True
        history = c.get(f"/api/v1/cases/{case['id']}/continuity", params={"history": "true"}).json()
        # Kept, no longer current (an analysis run while the clip was still being
        # processed may have left an earlier, whole-window gap there too).
        assert (before["gaps"][0]["id"], False) in [(g["id"], g["current"]) for g in history["gaps"]]
        assert not any(g["current"] for g in history["gaps"])
        r = c.post(f"/api/v1/gaps/{before['gaps'][0]['id']}/explanation", json={"reason": "late"})
        assert r.status_code == 409 and r.json()["error"]["code"] == "gap_not_current"
    with stack.services.db.snapshot() as s:
        entries = s.execute(select(LedgerEntry).where(
            LedgerEntry.case_id == case["id"], LedgerEntry.action == "device_clock_set")).scalars().all()
    # One per change of the clock (30 s, 90 s, its new description, 90 s again).
    assert len(entries) == 4 and all(cam in e.details for e in entries)


def test_action_validation(stack, officer, case):
    with stack.client(officer) as c:
        url = f"/api/v1/cases/{case['id']}/actions"
        r = c.post(url, json={"kind": "seizure", "start": "2026-03-01T10:00:00", "end": "2026-03-01T11:00:00",
                              "devices": []})
        assert r.status_code == 422 and r.json()["error"]["code"] == "timezone_required"
        r = c.post(url, json={"kind": "seizure", "start": "2026-03-01T10:00:00Z", "end": "2026-03-01T09:00:00Z",
                              "devices": []})
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_window"
        r = c.post(url, json={"kind": "seizure", "start": "not a time", "end": "2026-03-01T09:00:00Z"})
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
        r = c.post(f"/api/v1/cases/{uuid.uuid4()}/actions",
                   json={"kind": "seizure", "start": "2026-03-01T10:00:00Z", "end": "2026-03-01T11:00:00Z"})
        assert r.status_code == 404
        assert c.put("/api/v1/devices/CAM-X", json={"clock_offset_seconds": "NaN"}).status_code == 422
        assert c.put("/api/v1/devices/CAM-X", json={"clock_offset_seconds": 1e12}).status_code == 422
        assert c.get(f"/api/v1/gaps/{uuid.uuid4()}").status_code == 404
        # Nothing changed: the case has no gaps and nothing pending, so it is complete.
        report = settled(c, case["id"])
        assert report == {**report, "complete": True, "pending": False, "gaps": []}
        # Given in local time, answered in UTC, the same at creation as when read back.
        made = c.post(url, json={"kind": "seizure", "start": "2026-03-01T09:59:50+08:00",
                                 "end": "2026-03-01T10:00:30+08:00", "devices": []}).json()
        assert (made["start"], made["end"]) == ("2026-03-01T01:59:50Z", "2026-03-01T02:00:30Z"), made
        (listed,) = [a for a in c.get(url).json() if a["id"] == made["id"]]
        assert (listed["start"], listed["end"]) == (made["start"], made["end"])


def _bundle(start: str, end: str, members: dict[str, bytes]) -> bytes:
    import io
    import json
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("manifest.json", json.dumps({
            "target_url": "https://shop.example.com/live/1", "capture_start": start, "capture_end": end,
            "operator": "Officer Li", "tool": "CaptureKit 2.1"}))
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _upload_bundle(c, case_id: str, data: bytes, workstation: str) -> dict:
    r = c.post(f"/api/v1/cases/{case_id}/evidence", content=data,
               params={"kind": "remote_capture", "filename": "capture.zip", "device_id": workstation})
    assert r.status_code == 201, r.text
    return r.json()


def _inspection(c, case_id: str, workstation: str) -> dict:
    r = c.post(f"/api/v1/cases/{case_id}/actions", json={
        "kind": "remote_inspection", "start": "2026-03-01T11:00:00+08:00", "end": "2026-03-01T11:05:00+08:00",
        "devices": [workstation]})
    assert r.status_code == 201, r.text
    return r.json()


def test_capture_bundle_window_covers_its_remote_inspection(stack, officer, case):
    ws = f"WS-{uuid.uuid4().hex[:8]}"
    with stack.client(officer) as c:
        bundle = _upload_bundle(c, case["id"], _bundle("2026-03-01T11:00:00+08:00", "2026-03-01T11:05:00+08:00",
                                                       {"page.html": b"<p>shop</p>"}), ws)
        _inspection(c, case["id"], ws)
        report = settled(c, case["id"])
        item = c.get(f"/api/v1/evidence/{bundle['id']}").json()
    assert report["gaps"] == [], report
    assert parse(item["recorded_start"]) == datetime(2026, 3, 1, 3, 0, tzinfo=timezone.utc)


def test_missing_minute_of_a_capture_window_is_reported(stack, officer, case, tmp_path):
    ws, ws_short = f"WS-{uuid.uuid4().hex[:8]}", f"WS-{uuid.uuid4().hex[:8]}"
    # The screen recording inside paused for a minute at 00:02:00.
    screen = tmp_path / "screen.mp4"
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x90:rate=1:duration=240",
            "-vf", "setpts='if(gte(T,120),PTS+60/TB,PTS)'", "-fps_mode", "passthrough",
            "-c:v", "libx264", "-preset", "ultrafast", "-bf", "0", str(screen))
    t11 = datetime(2026, 3, 1, 3, 0, tzinfo=timezone.utc)
    with stack.client(officer) as c:
        holed = _upload_bundle(c, case["id"], _bundle("2026-03-01T11:00:00+08:00", "2026-03-01T11:05:00+08:00",
                                                      {"screen.mp4": screen.read_bytes()}), ws)
        action = _inspection(c, case["id"], ws)
        # A manifest that ends a minute early leaves the last minute of the inspection uncovered.
        _upload_bundle(c, case["id"], _bundle("2026-03-01T11:00:00+08:00", "2026-03-01T11:04:00+08:00",
                                              {"page.html": b"<p>shop</p>"}), ws_short)
        short = _inspection(c, case["id"], ws_short)
        report = settled(c, case["id"])
    spans = sorted((g["level"], g["item"] or g["action"], parse(g["start"]), g["duration_seconds"])
                   for g in report["gaps"])
    assert spans == sorted([
        ("in_file", holed["id"], t11 + timedelta(minutes=2), 60.0),
        ("action_window", action["id"], t11 + timedelta(minutes=2), 60.0),
        ("action_window", short["id"], t11 + timedelta(minutes=4), 60.0),
    ]), report


@pytest.mark.parametrize(("start", "end", "why"), [
    ("1900-01-01T00:00:00Z", "2999-01-01T00:00:00Z", "longer than 7 days"),
    # 1900-01-01 in Beijing is still 1899 in UTC.
    ("1900-01-01T00:00:00+08:00", "2999-01-01T00:00:00+08:00", "within the years 1900-2999"),
    ("2026-02-20T11:00:00+08:00", "2026-03-01T11:05:00+08:00", "longer than 7 days"),
    ("2099-03-01T11:00:00+08:00", "2099-03-01T11:05:00+08:00", "is after the bundle was received"),
    ("0001-01-01T00:00:00+08:00", "2026-03-01T11:05:00+08:00", "within the years 1900-2999"),
], ids=["1100-years", "1899-utc", "9-days", "future", "year-1"])
def test_implausible_capture_window_is_flagged_and_covers_nothing(stack, officer, case, start, end, why):
    ws = f"WS-{uuid.uuid4().hex[:8]}"
    t11 = datetime(2026, 3, 1, 3, 0, tzinfo=timezone.utc)
    with stack.client(officer) as c:
        bundle = _upload_bundle(c, case["id"], _bundle(start, end, {"page.html": uuid.uuid4().bytes}), ws)
        action = _inspection(c, case["id"], ws)
        item = stack.wait_item(officer, bundle["id"], lambda i: i["seal_status"] == "sealed", timeout=60)
        report = settled(c, case["id"])
    # Kept, unpacked and sealed, but flagged with the reason; its window is not the workstation's recording.
    assert item["flags"] == ["implausible_capture_window"] and item["status"] == "flagged", item
    assert why in item["details"]["capture_window_problem"]
    assert item["processing"]["bundle"]["state"] == "done"
    assert item["processing"]["bundle"]["reason"].startswith("implausible capture window, not counted as recording")
    assert item["recorded_start"] is None and len(item["members"]) == 1
    gaps = [(g["level"], g["action"], parse(g["start"]), g["duration_seconds"]) for g in report["gaps"]]
    assert gaps == [("action_window", action["id"], t11, 300.0)], report


def signed_record_pdf(signed_at: str) -> bytes:
    """A one-page PDF with a signature field whose signing time (/M) is ``signed_at``."""
    import io

    from pypdf import PdfWriter
    from pypdf.generic import ArrayObject, DictionaryObject, NameObject, NumberObject, TextStringObject

    writer = PdfWriter()
    writer.add_blank_page(612, 792)
    sig = writer._add_object(DictionaryObject({
        NameObject("/Type"): NameObject("/Sig"), NameObject("/M"): TextStringObject(signed_at),
    }))
    field = writer._add_object(DictionaryObject({
        NameObject("/FT"): NameObject("/Sig"), NameObject("/T"): TextStringObject("party"),
        NameObject("/V"): sig, NameObject("/Subtype"): NameObject("/Widget"),
        NameObject("/Rect"): ArrayObject([NumberObject(0)] * 4),
    }))
    writer._root_object[NameObject("/AcroForm")] = DictionaryObject({NameObject("/Fields"): ArrayObject([field])})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_interview_runs_to_the_signing_of_its_record(stack, officer, case, clips):
    room = f"ROOM-{uuid.uuid4().hex[:8]}"
    with stack.client(officer) as c:
        upload_clip(c, case["id"], clips["s120"], device_id=room, start=T0, kind="interview_video")
        # Signed three minutes after the start (10:03 +08:00): the last minute was not recorded.
        r = c.post(f"/api/v1/cases/{case['id']}/evidence", content=signed_record_pdf("D:20260301100300+08'00'"),
                   params={"kind": "document", "filename": "interview-record.pdf"})
        assert r.status_code == 201, r.text
        record = r.json()
        r = c.post(f"/api/v1/cases/{case['id']}/actions", json={
            "kind": "interview", "start": iso(T0), "devices": [room], "record_item": record["id"],
            "description": "interview of the shop owner"})
        assert r.status_code == 201, r.text
        action = r.json()
        assert action["end"] is None and action["record_item"] == record["id"]
        report = settled(c, case["id"])
        r = c.post(f"/api/v1/cases/{case['id']}/actions", json={"kind": "interview", "start": iso(T0),
                                                               "devices": [room]})
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_window"
    (gap,) = report["gaps"]
    assert gap["level"] == "action_window" and gap["action"] == action["id"]
    assert close(gap["start"], T0 + timedelta(seconds=120)) and close(gap["end"], T0 + timedelta(seconds=180))
    assert gap["cause"].startswith("window of interview (interview of the shop owner) not covered"), gap["cause"]


def test_an_action_whose_record_never_signs_is_refused_or_outstanding(stack, officer, case, tmp_path):
    from archive.continuity.models import EnforcementAction
    from archive.models import Case
    from tests.ingest.conftest import make_pdf

    room = f"ROOM-{uuid.uuid4().hex[:8]}"
    unsigned = make_pdf(tmp_path / "record.pdf", [f"Interview record {uuid.uuid4()}"]).read_bytes()
    with stack.client(officer) as c:
        r = c.post(f"/api/v1/cases/{case['id']}/evidence", content=unsigned,
                   params={"kind": "document", "filename": "interview-record.pdf"})
        assert r.status_code == 201, r.text
        record = r.json()
        stack.wait_item(officer, record["id"], lambda i: i["seal_status"] == "sealed", timeout=60)
        # Processed, and no signature nor recorded_start: its signing would never end the window.
        interview = {"kind": "interview", "start": iso(T0), "devices": [room], "record_item": record["id"]}
        r = c.post(f"/api/v1/cases/{case['id']}/actions", json=interview)
        assert r.status_code == 422 and r.json()["error"]["code"] == "record_not_signed", r.text
        assert record["id"] in r.json()["error"]["message"]
        # With its end given the record is only named.
        r = c.post(f"/api/v1/cases/{case['id']}/actions", json={**interview, "end": iso(T0 + timedelta(minutes=3))})
        assert r.status_code == 201, r.text
        # Recorded while the record was still processing (as then it could not be refused).
        with stack.services.db.session() as s:
            waiting = EnforcementAction(case_id=case["id"], kind="interview", window_start=T0, window_end=None,
                                        devices=[room], record_item_id=record["id"],
                                        created_by=s.get(Case, case["id"]).created_by)
            s.add(waiting)
            s.flush()
            waiting_id = waiting.id
        report = settled(c, case["id"])
        gates = c.get(f"/api/v1/cases/{case['id']}/closing-gates").json()["reasons"]
    assert report["complete"] is False and not report["pending"], report
    (left,) = [o for o in report["outstanding"] if o["what"] == "action"]
    assert left["subject"] == waiting_id and left["reason"] == "action_end_unknown", left
    assert "has no signing time after the action's start" in left["detail"]
    assert [g for g in gates if g["code"] == "action_end_unknown"], gates
    # Its window is given an end of its own, with a reason (a custody entry): the case can close
    # again. A window with an end is never moved afterwards.
    with stack.client(officer) as c:
        end = {"end": iso(T0 + timedelta(minutes=5)), "reason": "笔录未签名，以询问结束时间为准"}
        assert c.post(f"/api/v1/actions/{waiting_id}/end", json={**end, "reason": "\u200b"}).status_code == 422
        r = c.post(f"/api/v1/actions/{waiting_id}/end", json=end)
        assert r.status_code == 200 and r.json()["end"].startswith(iso(T0 + timedelta(minutes=5))[:16]), r.text
        r = c.post(f"/api/v1/actions/{waiting_id}/end", json={**end, "end": iso(T0 + timedelta(minutes=1))})
        assert r.status_code == 409 and r.json()["error"]["code"] == "action_end_known", r.text
        report = settled(c, case["id"])
        assert not [o for o in report["outstanding"] if o["what"] == "action"], report
    with stack.client(stack.user(role="officer", unit="unit-b")) as stranger:
        r = stranger.post(f"/api/v1/actions/{waiting_id}/end", json=end)
        assert r.status_code == 404 and r.json()["error"]["code"] == "action_not_found", r.text


def test_same_recording_twice_is_one_item_and_overlaps_are_reported(stack, officer, case, clips):
    cam = device()
    interview = unique_copy(clips["s60"])
    with stack.client(officer) as c:
        first = upload_clip(c, case["id"], interview, device_id=cam, start=T0, unique=False)
        # The same interview uploaded again (same device, same start): the existing item answers.
        r = c.post(f"/api/v1/cases/{case['id']}/evidence", content=interview.read_bytes(),
                   params={"kind": "bodycam_video", "filename": "again.mp4", "device_id": cam,
                           "recorded_start": iso(T0)})
        assert r.status_code == 200, r.text
        assert r.json()["id"] == first["id"] and r.headers["Duplicate-Of"] == first["id"]
        # Another recording of the same camera claiming seconds 40-70: it overlaps the first by 20 s.
        later = upload_clip(c, case["id"], clips["s30"], device_id=cam, start=T0 + timedelta(seconds=40))
        report = settled(c, case["id"])
        items = c.get(f"/api/v1/cases/{case['id']}/evidence").json()
        assert sorted(i["id"] for i in items) == sorted([first["id"], later["id"]])
        # The same file brought into another case of the unit is kept there, and flagged.
        r = c.post("/api/v1/cases", json={"case_number": f"CASE-{uuid.uuid4().hex[:10]}", "title": "Other"})
        other = r.json()
        copy = upload_clip(c, other["id"], interview, device_id=cam, start=T0, unique=False)
        assert copy["id"] != first["id"] and copy["duplicate_of"] == [first["id"]]
        assert "duplicate_content" in copy["flags"]
        assert c.get(f"/api/v1/evidence/{first['id']}").json()["duplicate_of"] == [copy["id"]]
    # Someone of another unit does not learn that their copy is held elsewhere.
    stranger = stack.user(role="officer", unit="unit-b")
    with stack.client(stranger) as c:
        r = c.post("/api/v1/cases", json={"case_number": f"CASE-{uuid.uuid4().hex[:10]}", "title": "Theirs"})
        theirs = upload_clip(c, r.json()["id"], interview, device_id=cam, start=T0, unique=False)
        assert theirs["duplicate_of"] == [] and "duplicate_content" not in theirs["flags"]
        (listed,) = c.get(f"/api/v1/cases/{r.json()['id']}/evidence").json()
        assert listed["id"] == theirs["id"] and listed["duplicate_of"] == []
    # Nor does the unit learn of theirs: its lists name its own copies only.
    with stack.client(officer) as c:
        (listed,) = c.get(f"/api/v1/cases/{other['id']}/evidence").json()
        assert listed["id"] == copy["id"] and listed["duplicate_of"] == [first["id"]]
    (gap,) = report["gaps"]
    assert gap["level"] == "overlap" and gap["item"] == later["id"] and gap["previous_item"] == first["id"]
    assert close(gap["start"], T0 + timedelta(seconds=40)) and close(gap["end"], T0 + timedelta(seconds=60))
    assert gap["duration_seconds"] == 20.0


def _page(stack, token: str, case_id: str, lang: str) -> str:
    with httpx.Client(verify=CLIENT_TLS, base_url=stack.url, timeout=60, cookies={"evidence_lang": lang}) as b:
        sign_in(b, token)
        r = b.get(f"/cases/{case_id}")
        assert r.status_code == 200, r.text
        return r.text



def test_a_still_image_sent_as_a_recording_is_listed_as_holding_none(stack, officer, case, tmp_path):
    """A photo uploaded as a camera's video (or an interview room's) probes, but holds no
    recording: kept, sealed and flagged, and continuity lists it as it lists an unreadable
    clip, so it keeps the case open until it is accounted for. A photo of kind ``other`` is
    no recording of a device and is not listed."""
    cam = device()
    photo = tmp_path / "photo.jpg"
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x90", "-frames:v", "1", "-metadata", f"comment={uuid.uuid4()}",
            str(photo))
    with stack.client(officer) as c:
        still = upload_clip(c, case["id"], photo, device_id=cam, start=T0, unique=False)
        named = photo.with_name("FILE0009.MP4")
        named.write_bytes(photo.read_bytes() + b"\0")  # other bytes: one case holds one item per content
        room = upload_clip(c, case["id"], named, device_id=None, start=None, kind="interview_video", unique=False)
        other = photo.with_name("scene.jpg")
        other.write_bytes(photo.read_bytes() + b"\0\0")
        kept = upload_clip(c, case["id"], other, device_id=None, start=None, kind="other", unique=False)
        report = settled(c, case["id"])
    for lost in (still, room):
        item = stack.wait_item(officer, lost["id"], lambda i: i["seal_status"] == "sealed")
        assert item["flags"] == ["no_recording"] and item["status"] == "flagged", item
        assert item["processing"]["probe"]["reason"].startswith("no recording in it"), item["processing"]
    listed = {g["item"]: g for g in report["gaps"] if g["level"] == "unreadable"}
    assert set(listed) == {still["id"], room["id"]}, report["gaps"]
    assert kept["id"] not in {g["item"] for g in report["gaps"]}
    assert sorted(report["summary"]["unreadable_items"]) == sorted(listed)
    assert listed[still["id"]]["device"] == cam and close(listed[still["id"]]["start"], T0)
    for gap in listed.values():
        assert gap["cause"].startswith("file holds no recording (no audio or video with a duration, such as a still"
                                       " image; read as "), gap["cause"]
        assert gap["start"] == gap["end"] and gap["status"] == "open"
    assert report["complete"] is False
    waiting = {p["subject"] for p in report["outstanding"] if p["reason"] == "gap_unexplained"}
    assert {g["id"] for g in listed.values()} <= waiting
    zh = _page(stack, officer, case["id"], "zh")
    assert "文件中没有录像（没有有时长的音频或视频，例如静态图片；按 " in zh and "file holds no recording" not in zh

def test_a_clip_whose_index_was_cut_inside_covers_no_time(stack, officer, case, clips, tmp_path):
    """A camera that lost power while writing its index (moov, last in the file) leaves a header
    stating the whole duration over no readable media: cut early, no audio or video stream; cut
    later, a video stream without one packet. Neither is time recorded: each is kept, sealed,
    flagged ``no_recording`` and listed as unreadable, and the action's window they claim to
    cover is a gap."""
    cam = device()
    whole = unique_copy(clips["s30"]).read_bytes()
    moov = whole.rindex(b"moov")
    no_stream, no_packet = tmp_path / "FILE0011.MP4", tmp_path / "FILE0012.MP4"
    no_stream.write_bytes(whole[: moov + 150])
    no_packet.write_bytes(whole[: moov + 400])
    with stack.client(officer) as c:
        first = upload_clip(c, case["id"], no_stream, device_id=cam, start=T0, unique=False)
        second = upload_clip(c, case["id"], no_packet, device_id=cam, start=T0 + timedelta(seconds=30), unique=False)
        r = c.post(f"/api/v1/cases/{case['id']}/actions",
                   json={"kind": "seizure", "start": iso(T0), "end": iso(T0 + timedelta(seconds=60)), "devices": [cam]})
        assert r.status_code == 201, r.text
        report = settled(c, case["id"])
    for lost, streams in ((first, {"data"}), (second, {"video"})):
        item = stack.wait_item(officer, lost["id"], lambda i: i["seal_status"] == "sealed")
        assert {s["codec_type"] for s in item["media_facts"]["streams"]} == streams  # what the header holds
        assert item["media_facts"]["duration_seconds"] == pytest.approx(30.0)
        assert item["flags"] == ["no_recording"] and item["status"] == "flagged", item
    listed = {g["item"]: g for g in report["gaps"] if g["level"] == "unreadable"}
    assert set(listed) == {first["id"], second["id"]}, report["gaps"]
    for gap in listed.values():
        assert gap["cause"].startswith("file holds no recording"), gap["cause"]
    (window,) = [g for g in report["gaps"] if g["level"] == "action_window"]
    assert close(window["start"], T0) and close(window["end"], T0 + timedelta(seconds=60)), window
    assert not [g for g in report["gaps"] if g["level"] in ("between_segments", "in_file", "overlap")], report["gaps"]


def test_an_empty_recording_is_its_own_fact_not_a_duplicate_of_another_empty_file(stack, officer, case, tmp_path):
    """No bytes are no content: an empty camera file is not "the same evidence" as an empty
    file of another kind or device of the case; it is kept and listed as an unreadable gap.
    The same empty file sent again (kind, device, start, name alike) is still one item."""
    cam, other_cam = device(), device()
    empty = tmp_path / "FILE0007.MP4"
    empty.write_bytes(b"")
    with stack.client(officer) as c:
        r = c.post(f"/api/v1/cases/{case['id']}/evidence", content=b"", params={"kind": "other", "filename": "note.txt"})
        assert r.status_code == 201, r.text
        note = r.json()
        camera = upload_clip(c, case["id"], empty, device_id=cam, start=T0, unique=False)
        assert camera["id"] != note["id"] and camera["size"] == 0
        # Another camera's empty file of the same name and start is another fact too.
        other = upload_clip(c, case["id"], empty, device_id=other_cam, start=T0, unique=False)
        # Sent again alike: one piece of evidence, answered with the first.
        params = {"kind": "bodycam_video", "filename": empty.name, "device_id": cam, "recorded_start": iso(T0)}
        again = c.post(f"/api/v1/cases/{case['id']}/evidence", content=b"", params=params)
        assert again.status_code == 200 and again.headers["Duplicate-Of"] == camera["id"], again.text
        report = settled(c, case["id"])
    unreadable = {g["item"]: g for g in report["gaps"] if g["level"] == "unreadable"}
    assert set(unreadable) == {camera["id"], other["id"]}, report["gaps"]
    assert unreadable[camera["id"]]["cause"] == "recording is an empty file (0 bytes), so it is not on the timeline"
    assert unreadable[camera["id"]]["device"] == cam and close(unreadable[camera["id"]]["start"], T0)


def test_clips_that_cannot_be_read_are_listed_to_be_accounted_for(stack, officer, case, clips, tmp_path):
    """A truncated clip, an empty one and one of noise are kept as evidence; continuity lists each
    as an ``unreadable`` entry (device, file, why) that keeps the case's continuity from being
    complete until it is explained and accepted, like a gap."""
    cam = device()
    whole = unique_copy(clips["s30"]).read_bytes()
    truncated = tmp_path / "FILE0002.MP4"
    truncated.write_bytes(whole[: len(whole) // 2])  # the camera lost power: no moov atom
    empty = tmp_path / "FILE0003.MP4"
    empty.write_bytes(b"")
    noise = tmp_path / "FILE0004.MP4"
    noise.write_bytes(b"not a recording; " * 500 + uuid.uuid4().hex.encode())  # no format ffprobe knows
    reviewer = stack.user(role="reviewer", unit="unit-a")
    with stack.client(officer) as c:
        good = upload_clip(c, case["id"], clips["s30"], device_id=cam, start=T0)
        cut = upload_clip(c, case["id"], truncated, device_id=cam, start=T0 + timedelta(seconds=30), unique=False)
        nothing = upload_clip(c, case["id"], empty, device_id=cam, start=None, unique=False)
        garbage = upload_clip(c, case["id"], noise, device_id=cam, start=None, unique=False)
        report = settled(c, case["id"])
        items = {i["id"]: i for i in c.get(f"/api/v1/cases/{case['id']}/evidence").json()}
    # Preserved as evidence and sealed, whatever their bytes.
    for lost in (cut, nothing, garbage):
        item = stack.wait_item(officer, lost["id"], lambda i: i["seal_status"] == "sealed")
        assert item["size"] == items[lost["id"]]["size"]
    unreadable = {g["item"]: g for g in report["gaps"] if g["level"] == "unreadable"}
    assert set(unreadable) == {cut["id"], nothing["id"], garbage["id"]}, report["gaps"]
    assert sorted(report["summary"]["unreadable_items"]) == sorted(unreadable)
    assert good["id"] not in unreadable
    assert all(g["device"] == cam and g["start"] == g["end"] and g["status"] == "open" for g in unreadable.values())
    assert unreadable[cut["id"]]["cause"].startswith("recording could not be read, so it is not on the timeline: ")
    assert len(unreadable[cut["id"]]["cause"]) > len("recording could not be read, so it is not on the timeline: ")
    assert close(unreadable[cut["id"]]["start"], T0 + timedelta(seconds=30))  # where it was declared to start
    assert unreadable[nothing["id"]]["cause"] == "recording is an empty file (0 bytes), so it is not on the timeline"
    # Each keeps the continuity incomplete, as an unexplained gap does.
    assert report["complete"] is False
    waiting = {p["subject"] for p in report["outstanding"] if p["reason"] == "gap_unexplained"}
    assert {g["id"] for g in unreadable.values()} <= waiting
    # Explained by the officer and accepted by a reviewer, it no longer keeps it incomplete.
    with stack.client(officer) as c, stack.client(reviewer) as rv:
        for g in unreadable.values():
            assert c.post(f"/api/v1/gaps/{g['id']}/explanation", json={"reason": "相机断电，文件未写完"}).status_code == 200
            assert rv.post(f"/api/v1/gaps/{g['id']}/review", json={"accept": True}).status_code == 200
        after = settled(c, case["id"])
    assert not any(p["subject"] in {g["id"] for g in unreadable.values()} for p in after["outstanding"]), after
    # The pages list each one in the reader's language: file, device, and why.
    zh, en = _page(stack, reviewer, case["id"], "zh"), _page(stack, reviewer, case["id"], "en")
    assert zh.count('data-testid="gap-row"') == len(report["gaps"])
    for name in ("FILE0002.MP4", "FILE0003.MP4", "FILE0004.MP4"):
        assert f'data-testid="gap-file">{name}</a>: ' in zh and f'data-testid="gap-file">{name}</a>: ' in en
    assert "无法读取的录像" in zh and "录像无法读取，未能放入时间轴：" in zh and "录像文件为空（0 字节），未能放入时间轴" in zh
    assert 'data-testid="gaps-unreadable">有 3 段录像无法读取' in zh
    assert "could not be read, so it is not on the timeline" not in zh and "empty file (0 bytes)" not in zh
    assert "unreadable recording" in en and "recording is an empty file (0 bytes), so it is not on the timeline" in en
    assert cam in zh
