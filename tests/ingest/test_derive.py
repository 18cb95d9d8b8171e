"""Thumbnail strips and proxies: produced, playable, and the source untouched."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from ingest.derive import make_proxy, make_thumbnail_strip
from ingest.errors import DeriveFailed
from ingest.media import probe
from ingest.packets import scan_packets

pytestmark = pytest.mark.usefixtures("ffmpeg")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_thumbnail_strip_tiles_frames_into_one_jpeg(clip: Path, tmp_path: Path) -> None:
    before = sha256(clip)
    dest = tmp_path / "strip.jpg"
    result = make_thumbnail_strip(clip, dest, count=4, width=80)
    assert sha256(clip) == before
    assert dest.read_bytes()[:3] == b"\xff\xd8\xff"
    facts = probe(dest)
    assert (facts.streams[0].width, facts.streams[0].height) == (320, 46)
    assert (result.width, result.height, result.media_type) == (320, 46, "image/jpeg")
    assert not list(tmp_path.glob(".*partial*"))


def test_proxy_is_h264_aac_faststart_and_source_unchanged(clip: Path, tmp_path: Path) -> None:
    before = sha256(clip)
    dest = tmp_path / "proxy.mp4"
    result = make_proxy(clip, dest, max_height=60)
    assert sha256(clip) == before
    facts = probe(dest)
    codecs = {s.codec_type: s for s in facts.streams}
    assert codecs["video"].codec_name == "h264"
    assert codecs["audio"].codec_name == "aac"
    assert codecs["video"].height == 60 and codecs["video"].width % 2 == 0
    assert (result.height, result.width) == (60, codecs["video"].width)
    # +faststart: the index (moov) comes before the media data (mdat).
    head = dest.read_bytes()[:4096]
    assert 0 <= head.find(b"moov") < head.find(b"mdat") or b"mdat" not in head


def test_proxy_of_video_without_audio(tmp_path: Path, clip: Path) -> None:
    silent = tmp_path / "silent.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-i", str(clip), "-an", "-c", "copy", str(silent)], check=True
    )
    dest = tmp_path / "proxy.mp4"
    make_proxy(silent, dest)
    assert [s.codec_name for s in probe(dest).streams] == ["h264"]


def test_derive_from_unreadable_source_raises(truncated_mp4: Path, tmp_path: Path) -> None:
    with pytest.raises(DeriveFailed, match="moov atom not found"):
        make_proxy(truncated_mp4, tmp_path / "p.mp4")
    with pytest.raises(DeriveFailed):
        make_thumbnail_strip(truncated_mp4, tmp_path / "s.jpg")
    assert not (tmp_path / "p.mp4").exists()


def test_audio_only_source_has_no_thumbnails(audio_only: Path, tmp_path: Path) -> None:
    with pytest.raises(DeriveFailed, match="no video stream"):
        make_thumbnail_strip(audio_only, tmp_path / "s.jpg")


def test_refuses_to_overwrite_source(clip: Path, tmp_path: Path) -> None:
    copy = tmp_path / "c.mp4"
    shutil.copyfile(clip, copy)
    before = sha256(copy)
    with pytest.raises(DeriveFailed, match="over its source"):
        make_proxy(copy, copy)
    assert sha256(copy) == before


def test_ffmpeg_failure_is_translated(clip: Path, tmp_path: Path) -> None:
    with pytest.raises(DeriveFailed) as err:
        make_proxy(clip, tmp_path / "missing-dir" / "p.mp4")
    assert err.value.__cause__ is not None


def test_still_image_gives_a_one_frame_strip(tmp_path: Path) -> None:
    """A source without a duration (one still frame) must not crash the graph builder."""
    import subprocess

    still = tmp_path / "still.png"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=160x90", "-frames:v", "1", str(still)],
                   check=True)
    out = make_thumbnail_strip(still, tmp_path / "strip.jpg", count=8, width=80)
    assert out.size > 0 and out.width == 80


@pytest.mark.parametrize("name, encoding", [
    ("one-key-frame.ts", ["-c:v", "libx264", "-g", "1000", "-f", "mpegts"]),
    ("raw.h264", ["-c:v", "libx264", "-g", "25", "-f", "h264"]),
    ("still.jpg", ["-frames:v", "1", "-f", "image2"]),
])
def test_what_cannot_be_sought_in_still_gives_its_first_picture(tmp_path: Path, name: str, encoding: list[str]) -> None:
    """A transport stream whose only key frame is its first, a raw H.264 stream (no timestamps
    to seek by) and a still JPEG: seeking finds no frame in them, and the strip is their first
    picture read from the start, not a failed step that would flag a plain recording."""
    source = tmp_path / name
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=duration=6:size=320x240:rate=25",
                    *encoding, str(source)], check=True)
    out = make_thumbnail_strip(source, tmp_path / "strip.jpg", count=8, width=160)
    assert out.size > 0 and (out.width, out.height) == (160, 120)
    assert probe(out.path).has_video


# A recorder paused 12 s at second 2 of 4 s recorded: longer than the 10 s past which ffmpeg
# closes a jump in the timestamps of MPEG-TS and MPEG-PS.
_PAUSE = "'if(gte(T,2),PTS+12/TB,PTS)'"


@pytest.mark.parametrize(("suffix", "encoding"), [
    (".mp4", ["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"]),
    (".ts", ["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"]),
    (".mpg", ["-c:v", "mpeg2video", "-c:a", "mp2"]),
])
def test_proxy_keeps_the_pause_of_the_original(tmp_path: Path, suffix: str, encoding: list[str]) -> None:
    paused = tmp_path / f"paused{suffix}"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y",
                    "-f", "lavfi", "-i", "testsrc=size=160x90:rate=10:duration=4",
                    "-f", "lavfi", "-i", "sine=frequency=440:duration=4",
                    "-vf", f"setpts={_PAUSE}", "-af", f"asetpts={_PAUSE}", "-fps_mode", "passthrough",
                    *encoding, str(paused)], check=True)
    (pause,) = scan_packets(paused).gaps
    assert (pause.start_offset, pause.end_offset) == (pytest.approx(2.0, abs=0.1), pytest.approx(14.0, abs=0.1))
    proxy = make_proxy(paused, tmp_path / "proxy.mp4").path
    scan = scan_packets(proxy)
    # The proxy's video holds its last picture through the pause (a constant frame rate); its
    # audio stops there and resumes at the original's time, so the two stay together.
    assert scan.media_duration == pytest.approx(16.0, abs=0.1)
    (gap,) = scan.gaps
    assert gap.stream == "audio"
    assert gap.start_offset == pytest.approx(2.0, abs=0.1) and gap.duration == pytest.approx(12.0, abs=0.1)
