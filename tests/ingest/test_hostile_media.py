"""Files that try to make the media tools read elsewhere or run for ever, with real ffmpeg.

A playlist or list names other files: the tools refuse its format rather than follow it,
and the upload is kept byte for byte and flagged. A run that does not end is killed at its
time limit and says so. Reasons users see hold no server paths or heap addresses.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from api.pages.i18n import processing_reason
from archive import work
from archive.evidence import items as evidence
from archive.models import EvidenceItem
from ingest import ffmpeg_adapter, pipeline
from ingest.derive import make_proxy
from ingest.errors import DeriveFailed, ProbeFailed
from ingest.media import probe
from ingest.packets import scan_packets
from ingest.workspace import Workspace
from tests.conftest import receive_directly

pytestmark = pytest.mark.usefixtures("ffmpeg")

MEDIA_ROLES = {"thumbnail", "proxy"}


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def secret(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A video on the server's own disk, which no upload may bring into evidence."""
    out = tmp_path_factory.mktemp("server-files") / "secret.ts"
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x90:rate=10:duration=2", "-c:v", "libx264", "-preset", "ultrafast",
            str(out))
    return out


def _playlist(target: Path) -> bytes:
    return f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:2.0,\n{target}\n#EXT-X-ENDLIST\n".encode()


# A live playlist (no ENDLIST) naming a missing file: ffmpeg's hls demuxer reloads it for ever.
NEVER_ENDING = b"#EXTM3U\n#EXT-X-TARGETDURATION:5\n#EXTINF:5.0,\n/nonexistent/x.mp4\n"


def _clean(reason: str) -> None:
    assert "/tmp" not in reason and "evidence-work-" not in reason and " @ 0x" not in reason, reason


def _referring_files(secret: Path) -> dict[str, bytes]:
    return {
        "lfi.m3u8": _playlist(secret),
        "hang.m3u8": NEVER_ENDING,
        "list.ffconcat": f"ffconcat version 1.0\nfile '{secret}'\n".encode(),
        "list.txt": f"file '{secret}'\n".encode(),
        "noise.bin": os.urandom(4000),  # ffmpeg's bin/bintext demuxers "read" any bytes as pictures of text
    }


@pytest.mark.parametrize("name", ["lfi.m3u8", "hang.m3u8", "list.ffconcat", "list.txt", "noise.bin"])
def test_formats_that_name_other_files_are_refused(tmp_path: Path, secret: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(_referring_files(secret)[name])
    started = time.monotonic()
    for read in (probe, scan_packets):
        # A concat list without its "ffconcat" header is not taken for one: plain text, not media.
        with pytest.raises(ProbeFailed, match="not on whitelist|Invalid data found") as err:
            read(path)
        _clean(err.value.message)
    with pytest.raises(DeriveFailed, match="not on whitelist|Invalid data found"):
        make_proxy(path, tmp_path / "proxy.mp4")
    assert not (tmp_path / "proxy.mp4").exists()
    assert time.monotonic() - started < 10  # refused at once: the live playlist is never reloaded


@pytest.mark.parametrize(("suffix", "args", "container"), [
    (".mp4", ["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"], "mov,mp4"),
    (".mkv", ["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"], "matroska"),
    (".ts", ["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"], "mpegts"),
    (".avi", ["-c:v", "mpeg4", "-c:a", "libmp3lame"], "avi"),
    (".wav", ["-vn"], "wav"),
    (".mp3", ["-vn"], "mp3"),
    (".m2v", ["-c:v", "mpeg2video", "-an", "-f", "mpeg2video"], "mpegvideo"),
    (".mjpg", ["-c:v", "mjpeg", "-an", "-f", "mpjpeg"], "mpjpeg"),
    (".ivf", ["-c:v", "libvpx", "-an"], "ivf"),
    (".jpg", ["-an", "-frames:v", "1"], "image2"),
    (".png", ["-an", "-frames:v", "1"], "png_pipe"),
])
def test_recordings_and_stills_are_still_read(tmp_path: Path, suffix: str, args: list[str], container: str) -> None:
    path = tmp_path / f"clip{suffix}"
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x90:rate=10:duration=2", "-f", "lavfi", "-i", "sine=duration=2",
            *args, str(path))
    facts = probe(path)
    assert facts.container.startswith(container) and facts.streams
    if suffix not in (".jpg", ".png"):
        assert scan_packets(path).packet_count > 0


def _children(name: str) -> list[int]:
    """Our own child processes running ``name``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
        except (OSError, ValueError):
            continue
        comm, _, rest = stat.partition(")")
        if comm.endswith(f"({name}") and int(rest.split()[1]) == os.getpid():
            found.append(int(entry.name))
    return found


def test_a_tool_past_its_time_limit_is_killed_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A FIFO nobody writes to makes a real ffprobe wait for ever, as a stalled read would."""
    fifo = tmp_path / "original.ts"
    os.mkfifo(fifo)
    monkeypatch.setattr(ffmpeg_adapter, "READING", ffmpeg_adapter.Pace(floor_seconds=1, seconds_per_gib=0))
    said = work.STEP_REASONS.say("time_limit", tool="ffprobe", limit=1)
    started = time.monotonic()
    with pytest.raises(ProbeFailed) as err:
        probe(fifo)
    assert err.value.message == said and time.monotonic() - started < 5
    # The streamed run (the packet scan's) is stopped the same way, while its reader waits.
    started = time.monotonic()
    with pytest.raises(ProbeFailed) as err:
        with ffmpeg_adapter.stream([ffmpeg_adapter.FFPROBE, "-v", "error", "-show_packets",
                                    *ffmpeg_adapter.input_args(fifo)], limit=1, fallback="scan") as out:
            assert out.read() == b""
    assert err.value.message == said and time.monotonic() - started < 5
    assert _children("ffprobe") == []
    assert "已被终止" in processing_reason("zh", work.STEP_REASONS.say("unprobeable", detail=said))


def test_a_probe_killed_at_its_limit_leaves_the_item_flagged_with_why(
    stack, case, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clip = tmp_path / "clip.mp4"
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x90:rate=10:duration=2", "-c:v", "libx264", "-preset", "ultrafast",
            str(clip))
    item_id = receive_directly(stack, case, clip.read_bytes(), kind="bodycam_video", filename="clip.mp4")
    monkeypatch.setattr(ffmpeg_adapter, "READING", ffmpeg_adapter.Pace(floor_seconds=0.001, seconds_per_gib=0))
    db = stack.services.db
    with Workspace(db=db, store=stack.services.store, settings=stack.settings, item_id=item_id) as ws:
        note = pipeline.probe_step(ws)
        assert pipeline.packets_step(ws) is None  # nothing probed, nothing to scan
        with db.session() as session:  # as the worker records each step
            item = session.get(EvidenceItem, item_id)
            evidence.set_task_state(item, "probe", "done", note)
            evidence.set_task_state(item, "derive", "failed", work.STEP_REASONS.say(
                "derive_failed", role="proxy", failure=work.STEP_REASONS.say("time_limit", tool="ffmpeg", limit=1)))
        pipeline.continuity_step(ws, enqueue=lambda *args: None)
    with db.read() as session:
        item = session.get(EvidenceItem, item_id)
        assert note == work.STEP_REASONS.say("unprobeable", detail=work.STEP_REASONS.say(
            "time_limit", tool="ffprobe", limit=1))
        assert item.flags == ["unprobeable"] and item.status.value == "flagged"
        # The failed step says why with the item; it does not stop the case from closing.
        assert item.processing["derive"]["state"] == "failed" and "time limit" in item.processing["derive"]["reason"]
        assert "time limit" in item.details["unprobeable_reason"]


def _finished(item: dict) -> bool:
    processing = item.get("processing") or {}
    return bool(processing) and all((v or {}).get("state") in ("done", "failed") for v in processing.values()) \
        and (processing.get("seal") or {}).get("state") in ("done", "failed")


def _upload(client, case_id: str, data: bytes, filename: str, kind: str = "bodycam_video") -> dict:
    r = client.post(f"/api/v1/cases/{case_id}/evidence", params={"kind": kind, "filename": filename}, content=data)
    assert r.status_code == 201, r.text
    return r.json()


def test_an_uploaded_playlist_is_kept_flagged_and_never_followed(stack, officer, case, secret: Path) -> None:
    data = _playlist(secret)
    with stack.client(officer) as c:
        item = _upload(c, case["id"], data, "lfi.m3u8")
        done = stack.wait_item(officer, item["id"], _finished, timeout=60)
        assert "unprobeable" in done["flags"] and done["status"] == "flagged", done
        assert done["seal_status"] == "sealed", done
        facts = done["media_facts"]
        assert "container" not in facts and "streams" not in facts and "not on whitelist" in facts["probe_error"]
        assert not MEDIA_ROLES & {d["role"] for d in done["derived"]}
        secret_sha = hashlib.sha256(secret.read_bytes()).hexdigest()
        assert secret_sha not in {d["sha256"] for d in done["derived"]}
        assert c.get(item["content_url"]).content == data
        for state in done["processing"].values():
            _clean(state.get("reason") or "")


def test_never_ending_playlists_do_not_hold_the_workers(stack, officer, case, tmp_path: Path) -> None:
    clip = tmp_path / "after.mp4"
    # A comment of its own: the same bytes elsewhere in the stack would flag it duplicate_content.
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x90:rate=10:duration=2", "-c:v", "libx264", "-preset", "ultrafast",
            "-metadata", f"comment={uuid.uuid4()}", str(clip))
    with stack.client(officer) as c:
        # Two of them, as many as the worker's threads (the same bytes twice would be one upload).
        hangs = [_upload(c, case["id"], NEVER_ENDING.replace(b"x.mp4", f"{n}.mp4".encode()), "hang.m3u8")
                 for n in range(2)]
        normal = _upload(c, case["id"], clip.read_bytes(), "after.mp4")
    for item in hangs:
        done = stack.wait_item(officer, item["id"], _finished, timeout=60)
        assert "unprobeable" in done["flags"] and done["seal_status"] == "sealed", done
    done = stack.wait_item(officer, normal["id"], _finished, timeout=60)
    assert done["status"] == "processed" and done["flags"] == [], done
    assert MEDIA_ROLES <= {d["role"] for d in done["derived"]}


def test_random_bytes_named_bin_are_not_read_as_pictures(stack, officer, case) -> None:
    with stack.client(officer) as c:
        item = _upload(c, case["id"], os.urandom(4000), "noise.bin")
        done = stack.wait_item(officer, item["id"], _finished, timeout=60)
    assert done["flags"] == ["unprobeable"] and done["status"] == "flagged", done
    assert done["processing"]["derive"]["state"] == "done" and not MEDIA_ROLES & {d["role"] for d in done["derived"]}
    reason = done["processing"]["probe"]["reason"]
    assert reason.startswith("unprobeable: [bin] Format not on whitelist"), reason
    _clean(reason)
