"""The worker pipeline through the real API and worker, on both stacks: media facts,
derived files, unprobeable files, documents and capture bundles."""

from __future__ import annotations

import hashlib
import io
import json
import random
import subprocess
import uuid
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import select

from archive import work
from archive.custody import ledger
from archive.models import LedgerEntry
from ingest.media import probe
from tests.ingest.conftest import make_pdf

# Slow: media made by ffmpeg and taken through the worker's pipeline.
pytestmark = pytest.mark.slow

TERMINAL = ("done", "failed")
MEDIA_ROLES = {"thumbnail", "proxy"}


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    """Small generated files: a clip with creation_time, a truncated copy, empty, noise."""
    d = tmp_path_factory.mktemp("pipeline-media")
    clip = d / "clip.mp4"
    _ffmpeg(
        "-f", "lavfi", "-i", "testsrc=size=160x90:rate=25:duration=3",
        "-f", "lavfi", "-i", "sine=frequency=440:duration=3",
        "-c:v", "libx264", "-preset", "ultrafast", "-bf", "2", "-c:a", "aac",
        "-metadata", "creation_time=2024-05-01T08:30:00Z", str(clip),
    )  # fmt: skip
    data = clip.read_bytes()
    truncated = d / "truncated.mp4"
    truncated.write_bytes(data[: len(data) * 6 // 10])
    empty = d / "empty.mp4"
    empty.write_bytes(b"")
    noise = d / "noise.mp4"
    noise.write_bytes(random.Random(7).randbytes(48 * 1024))
    pdf = make_pdf(d / "record.pdf", ["Seizure record page one", "Signed by the officer"])
    return {"clip": clip, "truncated": truncated, "empty": empty, "noise": noise, "pdf": pdf}


def finished(item: dict) -> bool:
    """The item's processing reached its end (nothing queued or running)."""
    processing = item.get("processing") or {}
    return (processing.get("continuity") or {}).get("state") in TERMINAL and not any(
        (v or {}).get("state") in ("queued", "running") for v in processing.values()
    )


def finished_and_sealed(item: dict) -> bool:
    """:func:`finished`, and the seal (a task of its own, which may end after the others) is made."""
    return finished(item) and item.get("seal_status") != "pending"


def upload(client, case_id: str, path: Path | None = None, *, data: bytes | None = None, **params) -> dict:
    body = path.read_bytes() if path is not None else data
    params.setdefault("filename", path.name if path is not None else "file.bin")
    params.setdefault("kind", "other")
    r = client.post(f"/api/v1/cases/{case_id}/evidence", params=params, content=body)
    assert r.status_code == 201, r.text
    return r.json()


def count(stack, item_id: str, action: str) -> int:
    with stack.services.db.session() as s:
        return ledger.count_actions(s, item_id=item_id, action=action)


def test_video_is_probed_scanned_and_derived(stack, officer, case, media):
    with stack.client(officer) as c:
        item = upload(c, case["id"], media["clip"], kind="bodycam_video", device_id=f"CAM-{uuid.uuid4().hex[:6]}")
        assert item["processing"] == {} or not finished(item)
        done = stack.wait_item(officer, item["id"], finished, timeout=120)
        assert done["processing"]["probe"]["state"] == "done", done["processing"]
        facts = done["media_facts"]
        assert facts["container"].startswith("mov,mp4") and abs(facts["duration_seconds"] - 3.0) < 0.1
        assert {s["codec_name"] for s in facts["streams"]} == {"h264", "aac"}
        assert facts["packet_scan"]["gaps"] == [] and abs(facts["packet_scan"]["media_duration"] - 3.0) < 0.05
        # No recorded_start was given: the media's creation time is used.
        assert done["recorded_start"].startswith("2024-05-01T08:30:00")
        assert done["media_type"] == "video/mp4" and done["flags"] == [] and done["status"] == "processed"
        # Other steps (sealing) add derived objects of their own; these two are ours.
        roles = {d["role"]: d for d in done["derived"] if d["role"] in MEDIA_ROLES}
        assert set(roles) == MEDIA_ROLES
        assert roles["thumbnail"]["media_type"] == "image/jpeg" and roles["proxy"]["media_type"] == "video/mp4"
        for d in roles.values():
            got = c.get(d["content_url"])
            assert got.status_code == 200, got.text
            assert hashlib.sha256(got.content).hexdigest() == d["sha256"] and len(got.content) == d["size"]
        proxy_file = stack.tmp / f"proxy-{item['id']}.mp4"
        proxy_file.write_bytes(c.get(roles["proxy"]["content_url"]).content)
        assert [s.codec_name for s in probe(proxy_file).streams if s.codec_type == "video"] == ["h264"]
        assert c.get(f"/api/v1/evidence/{item['id']}/derived/pades").json()["error"]["code"] == "derived_not_found"
        part = c.get(roles["thumbnail"]["content_url"], headers={"Range": "bytes=0-9"})
        assert part.status_code == 206 and len(part.content) == 10
        # The original is untouched.
        original = c.get(item["content_url"]).content
        assert hashlib.sha256(original).hexdigest() == item["sha256"] == done["sha256"]
    # One custody entry per step result; each derived read is a custody entry naming its role.
    assert count(stack, item["id"], "media_probed") == 1
    assert count(stack, item["id"], "packets_scanned") == 1
    assert count(stack, item["id"], "derived_created") == 2
    with stack.services.db.snapshot() as s:
        purposes = [
            json.loads(e.details)["purpose"]
            for e in s.execute(select(LedgerEntry).where(
                LedgerEntry.item_id == item["id"], LedgerEntry.action == "content_read")).scalars()
        ]
    assert purposes.count("derived:proxy") == 2 and purposes.count("derived:thumbnail") == 2
    # Running the whole pipeline again adds nothing.
    stack.services.enqueue(work.PROCESS_ITEM, item["id"])
    stack.services.enqueue(work.PROCESS_ITEM, item["id"])
    again = stack.wait_item(officer, item["id"], finished, timeout=60)
    assert sorted(d["role"] for d in again["derived"] if d["role"] in MEDIA_ROLES) == ["proxy", "thumbnail"]
    assert count(stack, item["id"], "media_probed") == 1 and count(stack, item["id"], "derived_created") == 2


@pytest.mark.parametrize(
    ("name", "filename", "kind"),
    [("truncated", "truncated.mp4", "bodycam_video"), ("empty", "empty.mp4", "other"), ("noise", "noise.mp4", "other")],
)
def test_unprobeable_files_are_kept_and_flagged(stack, officer, case, media, name, filename, kind):
    data = media[name].read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    with stack.client(officer) as c:
        item = upload(c, case["id"], data=data, filename=filename, kind=kind, sha256=digest)
        assert item["sha256"] == digest and item["size"] == len(data)
        done = stack.wait_item(officer, item["id"], finished, timeout=120)
        assert "unprobeable" in done["flags"], done
        if name == "empty":
            assert "empty_file" in done["flags"]
        assert done["status"] == "flagged"
        probe_state = done["processing"]["probe"]
        assert probe_state["state"] == "done" and probe_state["reason"].startswith("unprobeable: ")
        assert done["details"]["unprobeable_reason"] and done["media_facts"]["probe_error"]
        assert not [d for d in done["derived"] if d["role"] in MEDIA_ROLES]
        assert all(v["state"] == "done" for v in done["processing"].values()), done["processing"]
        got = c.get(item["content_url"])
        assert got.status_code == 200 and got.content == data
        # Nothing the API offers about this item answers 500.
        for url in (
            f"/api/v1/evidence/{item['id']}", f"/api/v1/evidence/{item['id']}/derived/proxy",
            f"/api/v1/evidence/{item['id']}/derived/thumbnail", f"/api/v1/cases/{case['id']}/evidence",
            f"/api/v1/cases/{case['id']}/continuity",
        ):
            assert c.get(url).status_code < 500, url
    assert count(stack, item["id"], "media_probed") == 1


def test_document_page_count_and_text(stack, officer, case, media):
    with stack.client(officer) as c:
        item = upload(c, case["id"], media["pdf"], kind="document")
    done = stack.wait_item(officer, item["id"], finished, timeout=60)
    assert done["media_type"] == "application/pdf" and done["flags"] == []
    assert done["details"]["page_count"] == 2
    assert "Seizure record page one" in done["media_facts"]["document"]["text"]
    assert not [d for d in done["derived"] if d["role"] in MEDIA_ROLES]
    assert count(stack, item["id"], "document_read") == 1
    # The case's list shows the item as its own record does, less the document's text.
    with stack.client(officer) as c:
        listed = c.get(f"/api/v1/cases/{case['id']}/evidence").json()
        done = c.get(f"/api/v1/evidence/{item['id']}").json()
    assert [i["id"] for i in listed] == [item["id"]]
    facts = done["media_facts"]
    assert listed[0] == {**done, "media_facts": {**facts, "document": {
        k: v for k, v in facts["document"].items() if k != "text"}}}
    assert listed[0]["media_facts"]["document"]["page_count"] == 2


def _bundle(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    manifest = {
        "target_url": "https://shop.example.com/live/123", "capture_start": "2026-03-01T10:00:00+08:00",
        "capture_end": "2026-03-01T10:20:00+08:00", "operator": "Officer Li", "tool": "CaptureKit 2.1",
    }
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", json.dumps(manifest))
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_capture_bundle_members_are_registered(stack, officer, case, media):
    members = {
        "screenshots/page-1.png": b"\x89PNG\r\n\x1a\n" + random.Random(1).randbytes(2000),
        "page.html": b"<!doctype html><html><body><p>Live stream selling unlicensed books</p></body></html>",
        "recording/screen.mp4": media["clip"].read_bytes(),
    }
    with stack.client(officer) as c:
        item = upload(c, case["id"], data=_bundle(members), filename="capture.zip", kind="remote_capture")
        done = stack.wait_item(officer, item["id"], finished, timeout=120)
        assert done["processing"]["bundle"]["state"] == "done", done["processing"]
        assert done["details"]["target_url"] == "https://shop.example.com/live/123"
        assert done["details"]["operator"] == "Officer Li" and done["details"]["tool"] == "CaptureKit 2.1"
        listed = done["members"]
        assert len(listed) == 3 and all(m["role"] == "member" for m in listed)
        expected = {hashlib.sha256(v).hexdigest(): len(v) for v in members.values()}
        assert {m["sha256"]: m["size"] for m in listed} == expected
        for m in listed:
            got = c.get(m["content_url"])
            assert got.status_code == 200 and hashlib.sha256(got.content).hexdigest() == m["sha256"]
            child = stack.wait_item(officer, m["id"], finished, timeout=120)
            assert child["parent_id"] == item["id"] and child["vault"] == case["vault"]
            assert child["details"]["bundle_member"] in members
            info = stack.services.store.stat(child["storage_key"], version_id=child["storage_version"])
            assert info.locked
        by_name = {stack.wait_item(officer, m["id"], finished)["details"]["bundle_member"]: m for m in listed}
        assert by_name["page.html"]["media_type"] == "text/html"
        screen = stack.wait_item(officer, by_name["recording/screen.mp4"]["id"], finished)
        assert MEDIA_ROLES <= {d["role"] for d in screen["derived"]}
    assert count(stack, item["id"], "bundle_unpacked") == 1


def test_invalid_bundle_is_kept_and_flagged(stack, officer, case):
    data = b"PK\x03\x04 this is not really a zip"
    with stack.client(officer) as c:
        item = upload(c, case["id"], data=data, filename="capture.zip", kind="remote_capture")
        done = stack.wait_item(officer, item["id"], finished, timeout=60)
        assert "invalid_bundle" in done["flags"] and done["members"] == []
        assert done["processing"]["bundle"]["reason"].startswith("invalid bundle")
        # It names no file the case does not hold (the worker's copy was "original.zip").
        assert done["details"]["bundle_error"] == "the bundle is not a ZIP or tar archive", done["details"]
        assert "original" not in done["processing"]["bundle"]["reason"]
        assert c.get(item["content_url"]).content == data


def _not_utf8_names(members: dict[str, bytes]) -> bytes:
    """``_bundle(members)`` with member "éé.txt" renamed in bytes that are not UTF-8, while the
    archive's flag 0x800 still says its names are UTF-8."""
    data = _bundle({**members, "\u00e9\u00e9.txt": b"hello"})
    return data.replace("\u00e9\u00e9.txt".encode(), b"\xff\xfe\xfd\xfc.txt")


@pytest.mark.parametrize("kind", ["remote_capture", "document", "other"])
def test_zip_with_member_names_not_utf8_is_kept_flagged_and_sealed(stack, officer, case, kind):
    data = _not_utf8_names({"page.html": uuid.uuid4().bytes})
    with stack.client(officer) as c:
        item = upload(c, case["id"], data=data, filename="capture.zip", kind=kind)
        done = stack.wait_item(officer, item["id"], finished_and_sealed, timeout=60)
        assert "processing_failed" not in done["flags"], done
        assert all(s["state"] == "done" for s in done["processing"].values()), done["processing"]
        assert done["seal_status"] == "sealed" and done["media_type"] == "application/zip", done
        if kind == "remote_capture":
            assert "invalid_bundle" in done["flags"] and done["members"] == []
            assert "member name is not valid UTF-8" in done["processing"]["bundle"]["reason"]
        elif kind == "document":
            assert "unreadable_document" in done["flags"]
        else:
            assert done["flags"] == [], done
        assert c.get(item["content_url"]).content == data
