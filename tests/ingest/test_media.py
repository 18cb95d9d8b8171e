"""probe() and scan_packets() against real ffmpeg output."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from ingest.errors import IngestError, ProbeFailed
from ingest.media import probe
from ingest.packets import scan_packets

pytestmark = pytest.mark.usefixtures("ffmpeg")


def test_probe_reports_container_streams_and_tags(clip: Path) -> None:
    facts = probe(clip)
    assert "mp4" in facts.container
    assert facts.duration_seconds == pytest.approx(4.0, abs=0.1)
    assert facts.size == clip.stat().st_size
    assert facts.bit_rate and facts.bit_rate > 0
    assert facts.creation_time == datetime(2024, 5, 1, 8, 30, tzinfo=timezone.utc)
    assert facts.device_tags["model"] == "BodyCam X1"
    video, audio = facts.streams
    assert (video.codec_type, video.codec_name, video.width, video.height) == (
        "video", "h264", 160, 90,
    )  # fmt: skip
    assert video.frame_rate == pytest.approx(25.0)
    assert (audio.codec_type, audio.codec_name) == ("audio", "aac")
    assert audio.sample_rate and audio.channels == 1
    assert facts.has_video and facts.has_audio
    # The dict goes into JSON columns and sealed manifests.
    assert json.loads(json.dumps(facts.as_dict()))["streams"][0]["codec_name"] == "h264"


def test_probe_without_creation_time(jump_clip: Path) -> None:
    assert probe(jump_clip).creation_time is None


@pytest.mark.parametrize("fixture", ["truncated_mp4", "zero_byte", "random_mp4"])
def test_unreadable_media_raises_probe_failed(fixture: str, request: pytest.FixtureRequest) -> None:
    path = request.getfixturevalue(fixture)
    with pytest.raises(ProbeFailed) as probe_err:
        probe(path)
    with pytest.raises(ProbeFailed) as scan_err:
        scan_packets(path)
    for err in (probe_err.value, scan_err.value):
        assert isinstance(err, IngestError)
        assert err.message.strip()
        assert "see stderr output" not in err.message  # the tool's words, not a wrapper's


def test_truncated_mp4_message_names_the_missing_index(truncated_mp4: Path) -> None:
    with pytest.raises(ProbeFailed, match="moov atom not found"):
        probe(truncated_mp4)
    with pytest.raises(ProbeFailed, match="moov atom not found"):
        scan_packets(truncated_mp4)


def test_missing_file_raises_probe_failed(tmp_path: Path) -> None:
    with pytest.raises(ProbeFailed):
        probe(tmp_path / "nope.mp4")
    with pytest.raises(ProbeFailed):
        scan_packets(tmp_path / "nope.mp4")


def test_timestamp_jump_is_one_in_file_gap(jump_clip: Path) -> None:
    scan = scan_packets(jump_clip)
    assert scan.stream == "video"
    assert len(scan.gaps) == 1
    gap = scan.gaps[0]
    assert gap.duration == pytest.approx(5.0, abs=0.1)
    assert gap.start_offset == pytest.approx(3.0, abs=0.1)
    assert gap.end_offset == pytest.approx(8.0, abs=0.1)
    assert scan.media_duration == pytest.approx(11.0, abs=0.1)
    assert scan.packet_count == 150


def test_b_frames_cause_no_false_gap(clip: Path) -> None:
    scan = scan_packets(clip, tolerance_seconds=0.05)
    assert scan.gaps == ()
    assert scan.packet_count == 100
    assert scan.first_pts == pytest.approx(0.0, abs=0.1)
    assert scan.last_pts == pytest.approx(3.96, abs=0.05)
    assert scan.media_duration == pytest.approx(4.0, abs=0.05)
    assert scan.nominal_interval == pytest.approx(0.04)


def test_jump_below_tolerance_is_not_reported(jump_clip: Path) -> None:
    assert scan_packets(jump_clip, tolerance_seconds=6.0).gaps == ()


def test_audio_only_file_scans_the_audio_stream(audio_only: Path) -> None:
    scan = scan_packets(audio_only)
    assert scan.stream == "audio"
    assert scan.gaps == ()
    assert scan.media_duration == pytest.approx(2.0, abs=0.1)
