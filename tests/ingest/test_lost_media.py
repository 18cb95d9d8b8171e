"""Recordings that lost part of what they held, made by ffmpeg at test time: a file cut short
after its index, one stream starting late or stopping early, timestamps that start again.

Each is scanned (:func:`ingest.packets.scan_packets`) and analysed
(:func:`archive.continuity.analysis.analyse`) as the pipeline does, so the gap is checked as a
reviewer reads it: its stream, where it starts, how long it lasts, and its cause.
"""

from __future__ import annotations

import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from archive.continuity.analysis import Recording, analyse
from ingest.packets import PacketScan, scan_packets

pytestmark = pytest.mark.usefixtures("ffmpeg")

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=timezone.utc)
_H264 = ["-c:v", "libx264", "-preset", "ultrafast"]


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


def _video(seconds: float, *, offset: float = 0.0) -> list[str]:
    return [*(["-itsoffset", str(offset)] if offset else []), "-f", "lavfi", "-i",
            f"testsrc=size=160x90:rate=10:duration={seconds}"]


def _audio(seconds: float, *, offset: float = 0.0) -> list[str]:
    return [*(["-itsoffset", str(offset)] if offset else []), "-f", "lavfi", "-i",
            f"sine=frequency=440:duration={seconds}"]


def _causes(scan: PacketScan) -> list[str]:
    """The in-file gaps' causes as the analysis words them (default tolerance)."""
    recording = Recording(item_id="clip", device_id="cam1", start=T0, duration_seconds=scan.media_duration,
                          in_file_gaps=scan.gaps)
    return [g.cause for g in analyse(recordings=[recording]).gaps]


def _cut_at(source: Path, dest: Path, seconds: float, *, stream: str = "") -> None:
    """``source`` up to the first byte of the first packet (in file order) at ``seconds`` or later
    (of the streams ``stream`` selects, ffprobe's specifier: ``"a"`` for audio; all when empty)."""
    listing = subprocess.run(["ffprobe", "-v", "error", *(["-select_streams", stream] if stream else []),
                              "-show_entries", "packet=pts_time,pos", "-of", "csv=p=0", str(source)],
                             check=True, capture_output=True, text=True).stdout
    packets = [line.split(",")[:2] for line in listing.split()]
    cut = min(int(pos) for pts, pos in packets if pts != "N/A" and float(pts) >= seconds)
    dest.write_bytes(source.read_bytes()[:cut])


@pytest.fixture(scope="module")
def faststart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 s of video and audio in an MP4 whose index (moov) comes first."""
    out = tmp_path_factory.mktemp("lost") / "faststart.mp4"
    _ffmpeg(*_video(6), *_audio(6), *_H264, "-c:a", "aac", "-movflags", "+faststart", str(out))
    return out


def test_a_file_cut_short_after_its_index_is_missing_its_tail(faststart: Path, tmp_path: Path) -> None:
    # The camera lost power at 3 s: the index at the front still declares 6 s.
    cut = tmp_path / "cut.mp4"
    _cut_at(faststart, cut, 3.0)
    scan = scan_packets(cut)
    (gap,) = scan.gaps
    assert gap.stream == "cut_short"
    assert gap.start_offset == pytest.approx(3.0, abs=0.1)
    assert gap.end_offset == pytest.approx(6.0, abs=0.1) and gap.duration == pytest.approx(3.0, abs=0.1)
    assert scan.media_duration == pytest.approx(6.0, abs=0.1)  # the recording as declared, its tail a hole
    (cause,) = _causes(scan)
    assert cause.startswith("file ends at 00:00:03.0, 3.0 s before the duration its container declares (cut short")
    assert scan_packets(faststart).gaps == ()  # the whole file is clean


def test_a_container_declaring_an_absurd_duration_does_not_pass_silently(faststart: Path, tmp_path: Path) -> None:
    # The movie header (mvhd) patched to declare 2**32 - 1 units: some 49 days at 1000 a second.
    data = bytearray(faststart.read_bytes())
    mvhd = data.index(b"mvhd")
    assert data[mvhd + 4] == 0  # version 0: 32-bit times, duration after creation, modification, timescale
    data[mvhd + 20 : mvhd + 24] = b"\xff\xff\xff\xff"
    patched = tmp_path / "patched.mp4"
    patched.write_bytes(bytes(data))
    timescale = int.from_bytes(data[mvhd + 16 : mvhd + 20], "big")
    scan = scan_packets(patched)
    (gap,) = scan.gaps
    assert gap.stream == "cut_short"
    assert gap.start_offset == pytest.approx(6.0, abs=0.1)
    assert gap.end_offset == pytest.approx(0xFFFFFFFF / timescale, abs=0.1)
    assert "before the duration its container declares" in _causes(scan)[0]


_PAUSED = "'if(gte(T,4),PTS+3/TB,PTS)'"  # the recorder paused 3 s at 4 s
_FRAGMENTED = ["-movflags", "frag_keyframe+empty_moov"]  # each fragment: its index, its video, its audio
# name -> (ffmpeg arguments, where the audio is cut, the tail lost: (start, end))
FRAGMENTED_CUTS = {
    # Paused 3 s at 4 s (one fragment), cut in the audio after the pause: the index declares
    # 11 s; the demuxer gives packets in time order and stops at the first missing one, so the
    # audio ends at the pause while the video runs on a second past it. Only the recorder
    # paused at 4 s, and from there the audio is lost: the tail is cut short, not a pause.
    "paused": ([*_video(8), *_audio(8), "-vf", f"setpts={_PAUSED}", "-af", f"asetpts={_PAUSED}",
                "-fps_mode", "passthrough", *_H264, "-bf", "0", "-c:a", "aac", *_FRAGMENTED], 7.0, (4.0, 11.0)),
    # Fragments of 4 s, cut a second into the second one's audio: the video ends a second after
    # the audio, and both streams lost their tails from where the audio ends.
    "two-fragments": ([*_video(12), *_audio(12), *_H264, "-bf", "0", "-g", "40", "-c:a", "aac", *_FRAGMENTED],
                      5.0, (5.0, 8.0)),
}


@pytest.mark.parametrize("name", list(FRAGMENTED_CUTS))
def test_a_fragmented_mp4_cut_inside_its_media_data_is_cut_short(tmp_path: Path, name: str) -> None:
    args, at, (start, end) = FRAGMENTED_CUTS[name]
    whole, cut = tmp_path / "fragmented.mp4", tmp_path / "cut.mp4"
    _ffmpeg(*args, str(whole))
    _cut_at(whole, cut, at, stream="a")
    scan = scan_packets(cut)
    (gap,) = scan.gaps
    assert gap.stream == "cut_short"
    assert gap.start_offset == pytest.approx(start, abs=0.1) and gap.end_offset == pytest.approx(end, abs=0.1)
    assert scan.media_duration == pytest.approx(end, abs=0.1)
    (cause,) = _causes(scan)
    assert cause.startswith(f"file ends at 00:00:0{start:.1f}, {end - start:.1f} s before the duration its"
                            " container declares (cut short")
    assert [g.stream for g in scan_packets(whole).gaps] == ([None] if name == "paused" else [])


# name -> (ffmpeg inputs, suffix, the gap expected: (start, end, stream))
ONE_STREAM = {
    "mp4-audio-stops": ([*_video(6), *_audio(2)], ".mp4", (2.0, 6.0, "audio")),
    "mp4-video-stops": ([*_video(2), *_audio(6)], ".mp4", (2.0, 6.0, "video")),
    "mp4-audio-late": ([*_video(6), *_audio(3, offset=3)], ".mp4", (0.0, 3.0, "audio")),
    "mp4-video-late": ([*_video(3, offset=3), *_audio(6)], ".mp4", (0.0, 3.0, "video")),
    "mkv-audio-stops": ([*_video(6), *_audio(2)], ".mkv", (2.0, 6.0, "audio")),
    "ts-audio-late": ([*_video(6), *_audio(3, offset=3)], ".ts", (0.0, 3.0, "audio")),
}
_WORDS = {"audio": "audio stops while video continues", "video": "video stops while audio continues"}


@pytest.mark.parametrize("name", list(ONE_STREAM))
def test_one_stream_starting_late_or_stopping_early_is_named(tmp_path: Path, name: str) -> None:
    inputs, suffix, (start, end, stream) = ONE_STREAM[name]
    path = tmp_path / f"{name}{suffix}"
    # passthrough: MP4's constant frame rate would fill a late start with copies of the first frame.
    _ffmpeg(*inputs, *_H264, "-c:a", "aac", "-fps_mode", "passthrough", str(path))
    scan = scan_packets(path)
    (gap,) = scan.gaps
    assert gap.stream == stream
    assert gap.start_offset == pytest.approx(start, abs=0.1)
    assert gap.duration == pytest.approx(end - start, abs=0.1)
    assert scan.media_duration == pytest.approx(6.0, abs=0.1)
    (cause,) = _causes(scan)
    assert cause == f"{_WORDS[stream]} {end - start:.1f} s at 00:00:0{start:.1f} into the file"


def test_pcm_in_quicktime_still_shows_audio_stopping_early_and_a_tail_cut_short(tmp_path: Path) -> None:
    # PCM's times in MOV are counted from its samples (see the corpus's mov-pcm-pause), which
    # hide where it paused; where the video runs on unbroken they still show the audio ending
    # early (named as such: it may have stopped earlier and gone on), and the sample table
    # still lists a tail that a file cut short lacks.
    stops, whole, cut = tmp_path / "stops.mov", tmp_path / "audio.mov", tmp_path / "cut.mov"
    _ffmpeg(*_video(6), *_audio(2), *_H264, "-c:a", "pcm_s16le", str(stops))
    (gap,) = scan_packets(stops).gaps
    assert (gap.stream, gap.start_offset, gap.end_offset) == ("audio_counted", pytest.approx(2.0, abs=0.1),
                                                              pytest.approx(6.0, abs=0.1))
    _ffmpeg(*_audio(6), "-c:a", "pcm_s16le", "-movflags", "+faststart", str(whole))
    _cut_at(whole, cut, 3.0)
    scan = scan_packets(cut)
    assert scan.method == "digital_silence"
    (gap,) = scan.gaps
    assert (gap.stream, gap.start_offset, gap.end_offset) == ("cut_short", pytest.approx(3.0, abs=0.1),
                                                              pytest.approx(6.0, abs=0.1))


@pytest.fixture(scope="module")
def ts_parts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two recordings of 3 s and 2 s in MPEG-TS, each with its timestamps from the same start."""
    directory = tmp_path_factory.mktemp("ts")
    parts = directory / "a.ts", directory / "b.ts"
    for part, seconds, tone in zip(parts, (3, 2), (440, 660)):
        _ffmpeg("-f", "lavfi", "-i", f"testsrc=size=160x90:rate=10:duration={seconds}", "-f", "lavfi", "-i",
                f"sine=frequency={tone}:duration={seconds}", *_H264, "-bf", "2", "-c:a", "aac", str(part))
    return parts


def test_timestamps_that_start_again_are_reported_and_not_merged(ts_parts: tuple[Path, Path], tmp_path: Path) -> None:
    # A recorder that restarted, or segments joined byte for byte (cat a.ts b.ts).
    joined = tmp_path / "joined.ts"
    joined.write_bytes(ts_parts[0].read_bytes() + ts_parts[1].read_bytes())
    scan = scan_packets(joined)
    assert scan.media_duration == pytest.approx(5.0, abs=0.1)  # both parts, one after the other
    (restart,) = scan.gaps
    assert restart.stream == "restart" and restart.duration == 0.0
    assert restart.start_offset == pytest.approx(3.0, abs=0.1) and restart.end_offset == restart.start_offset
    # Reported although it has no duration: how much time passed there is unknown.
    (cause,) = _causes(scan)
    assert cause.startswith("timestamps start again at 00:00:03.0 into the file (the recorder's clock restarted")
    for part, seconds in zip(ts_parts, (3.0, 2.0)):
        clean = scan_packets(part)
        assert clean.gaps == () and clean.media_duration == pytest.approx(seconds, abs=0.1)


def test_the_mpeg_ts_clock_wrapping_is_not_a_restart(tmp_path: Path) -> None:
    # The 33-bit 90 kHz clock wraps at 95443.7 s (26.5 h): this one wraps 1 s in.
    wrapped = tmp_path / "wrap.ts"
    _ffmpeg(*_video(4), *_audio(4), *_H264, "-bf", "2", "-c:a", "aac", "-output_ts_offset", "95441.3", str(wrapped))
    scan = scan_packets(wrapped)
    assert scan.gaps == ()
    assert scan.media_duration == pytest.approx(4.0, abs=0.1)


@pytest.mark.parametrize("suffix", [".mp4", ".mov", ".mkv"])
def test_later_segments_of_a_split_recording_are_whole(tmp_path: Path, suffix: str) -> None:
    # A recorder that splits a long recording (here ffmpeg's segment muxer, every 4 s) writes
    # each later segment with its timestamps going on from the one before; MP4, MOV and
    # Matroska state the duration from time zero, so the second segment "declares" 8 s.
    _ffmpeg(*_video(12), *_audio(12), *_H264, "-bf", "0", "-g", "10", "-c:a", "aac",
            "-f", "segment", "-segment_time", "4", str(tmp_path / f"seg%d{suffix}"))
    scans = [scan_packets(tmp_path / f"seg{n}{suffix}") for n in range(3)]
    for scan in scans:
        assert scan.gaps == ()
        assert scan.media_duration == pytest.approx(4.0, abs=0.1)
    recordings = [Recording(item_id=f"seg{n}", device_id="cam1", start=T0 + timedelta(seconds=4 * n),
                            duration_seconds=scan.media_duration, in_file_gaps=scan.gaps)
                  for n, scan in enumerate(scans)]
    assert analyse(recordings=recordings).gaps == ()  # no tail cut short, no overlap of segments


def test_a_later_segment_cut_short_after_its_index_is_missing_its_tail(tmp_path: Path) -> None:
    # The second segment of a split recording (timestamps from 4 s), index first, cut at 6 s.
    _ffmpeg(*_video(8), *_audio(8), *_H264, "-bf", "0", "-g", "10", "-c:a", "aac", "-f", "segment",
            "-segment_time", "4", "-segment_format_options", "movflags=+faststart", str(tmp_path / "seg%d.mp4"))
    cut = tmp_path / "cut.mp4"
    _cut_at(tmp_path / "seg1.mp4", cut, 6.0)
    (gap,) = scan_packets(cut).gaps
    assert gap.stream == "cut_short"
    assert gap.start_offset == pytest.approx(2.0, abs=0.1) and gap.duration == pytest.approx(2.0, abs=0.1)
