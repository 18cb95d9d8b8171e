"""In-file pauses on every container officers bring, made by ffmpeg at test time.

Each recording is 8 s of 160x90 video at 10 fps (or audio only). A "pause" file is the
same recording with the recorder paused 3 s at second 4: the timestamps jump from 4.0 to
7.0 (setpts with passthrough keeps ffmpeg from filling the hole). Formats without
timestamps of their own (WAV, MP3, PCM in MOV) can only show a pause as inserted digital
silence, so theirs is 4 s of tone, 3 s of silence, 4 s of tone. Clean files must give no gap,
with and without B-frames, at a variable frame rate and at NTSC's 29.97 fps.
"""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ingest.packets import scan_packets

pytestmark = pytest.mark.usefixtures("ffmpeg")

PAUSE_AT, PAUSE = 4.0, 3.0
_SHIFT = f"'if(gte(T,{PAUSE_AT}),PTS+{PAUSE}/TB,PTS)'"
_SHIFT_AT_END = f"'if(gte(T,7.5),PTS+{PAUSE}/TB,PTS)'"  # half a second recorded after the pause
_VIDEO = ["-f", "lavfi", "-i", "testsrc=size=160x90:rate=10:duration=8"]
_AUDIO = ["-f", "lavfi", "-i", "sine=frequency=440:duration=8"]
_H264 = ["-c:v", "libx264", "-preset", "ultrafast", "-bf", "0"]
_PAUSED = ["-vf", f"setpts={_SHIFT}", "-af", f"asetpts={_SHIFT}", "-fps_mode", "passthrough"]
_TONE_SILENCE_TONE = [
    "-f", "lavfi", "-i", "sine=duration=4", "-f", "lavfi", "-i", f"anullsrc=r=44100:cl=mono:d={PAUSE}",
    "-f", "lavfi", "-i", "sine=duration=4", "-filter_complex", "[0][1][2]concat=n=3:v=0:a=1",
]  # fmt: skip
# The camera's microphone stopped while its picture ran on, and the recorder filled the audio's
# stretch with digital silence (PCM or ADPCM beside 11 s of video): audio whose times are counted
# from its samples can keep no other trace of it.
_SILENCE_BESIDE_VIDEO = [
    "-f", "lavfi", "-i", "testsrc=size=160x90:rate=10:duration=11", "-f", "lavfi", "-i", "sine=duration=4",
    "-f", "lavfi", "-i", f"anullsrc=r=44100:cl=mono:d={PAUSE}", "-f", "lavfi", "-i", "sine=duration=4",
    "-filter_complex", "[1][2][3]concat=n=3:v=0:a=1[a]", "-map", "0:v", "-map", "[a]",
]  # fmt: skip

# name -> (ffmpeg arguments before the output file, suffix, expected gap: None or (start, end, stream))
CORPUS: dict[str, tuple[list[str], str, tuple[float, float, str | None] | None]] = {
    "mp4": ([*_VIDEO, *_AUDIO, *_H264, "-c:a", "aac"], ".mp4", None),
    "mp4-pause": ([*_VIDEO, *_AUDIO, *_PAUSED, *_H264, "-c:a", "aac"], ".mp4", (4.0, 7.0, None)),
    "mp4-bframes": ([*_VIDEO, *_AUDIO, "-c:v", "libx264", "-preset", "ultrafast", "-bf", "3", "-c:a", "aac"], ".mp4", None),
    "mp4-bframes-pause": ([*_VIDEO, *_AUDIO, *_PAUSED, "-c:v", "libx264", "-preset", "ultrafast", "-bf", "3",
                           "-c:a", "aac"], ".mp4", (4.0, 7.0, None)),
    "mov": ([*_VIDEO, *_AUDIO, *_H264, "-c:a", "aac"], ".mov", None),
    "mov-pause": ([*_VIDEO, *_AUDIO, *_PAUSED, *_H264, "-c:a", "aac"], ".mov", (4.0, 7.0, None)),
    "fmp4": ([*_VIDEO, *_AUDIO, *_H264, "-c:a", "aac", "-movflags", "frag_keyframe+empty_moov"], ".mp4", None),
    "fmp4-pause": ([*_VIDEO, *_AUDIO, *_PAUSED, *_H264, "-c:a", "aac", "-movflags", "frag_keyframe+empty_moov"],
                   ".mp4", (4.0, 7.0, None)),
    "ts": ([*_VIDEO, *_AUDIO, *_H264, "-c:a", "aac"], ".ts", None),
    "ts-pause": ([*_VIDEO, *_AUDIO, *_PAUSED, *_H264, "-c:a", "aac"], ".ts", (4.0, 7.0, None)),
    "mkv": ([*_VIDEO, *_AUDIO, *_H264, "-c:a", "aac"], ".mkv", None),
    "mkv-pause": ([*_VIDEO, *_AUDIO, *_PAUSED, *_H264, "-c:a", "aac"], ".mkv", (4.0, 7.0, None)),
    "webm": ([*_VIDEO, *_AUDIO, "-c:v", "libvpx", "-deadline", "realtime", "-c:a", "libopus"], ".webm", None),
    "webm-pause": ([*_VIDEO, *_AUDIO, *_PAUSED, "-c:v", "libvpx", "-deadline", "realtime", "-c:a", "libopus"],
                   ".webm", (4.0, 7.0, None)),
    "avi": ([*_VIDEO, *_AUDIO, "-c:v", "mpeg4", "-c:a", "libmp3lame"], ".avi", None),
    "avi-pause": ([*_VIDEO, "-vf", f"setpts={_SHIFT}", "-fps_mode", "vfr", "-c:v", "mpeg4"], ".avi",
                  (4.0, 7.0, None)),
    "m4a": ([*_AUDIO, "-c:a", "aac"], ".m4a", None),
    "m4a-pause": ([*_AUDIO, "-af", f"asetpts={_SHIFT}", "-c:a", "aac"], ".m4a", (4.0, 7.0, None)),
    "wav": ([*_AUDIO, "-c:a", "pcm_s16le"], ".wav", None),
    "wav-pause": ([*_TONE_SILENCE_TONE, "-c:a", "pcm_s16le"], ".wav", (4.0, 7.0, "silence")),
    "mp3": ([*_AUDIO, "-c:a", "libmp3lame"], ".mp3", None),
    "mp3-pause": ([*_TONE_SILENCE_TONE, "-c:a", "libmp3lame"], ".mp3", (4.0, 7.0, "silence")),
    # PCM in QuickTime: its times are counted from its samples, so they run on through a pause
    # (the muxer writes samples, not times): only the video shows where the recorder paused.
    "mov-pcm": ([*_VIDEO, *_AUDIO, *_H264, "-c:a", "pcm_s16le"], ".mov", None),
    "mov-pcm-pause": ([*_VIDEO, *_AUDIO, *_PAUSED, *_H264, "-c:a", "pcm_s16le"], ".mov", (4.0, 7.0, None)),
    "mov-pcm-pause-at-end": ([*_VIDEO, *_AUDIO, "-vf", f"setpts={_SHIFT_AT_END}", "-af", f"asetpts={_SHIFT_AT_END}",
                              "-fps_mode", "passthrough", *_H264, "-c:a", "pcm_s16le"], ".mov", (7.5, 10.5, None)),
    "mov-pcm-audio-pause": ([*_TONE_SILENCE_TONE, "-c:a", "pcm_s16le"], ".mov", (4.0, 7.0, "silence")),
    "mov-pcm-audio-silent-beside-video": ([*_SILENCE_BESIDE_VIDEO, *_H264, "-c:a", "pcm_s16le"], ".mov",
                                          (4.0, 7.0, "audio")),
    "avi-pcm-audio-silent-beside-video": ([*_SILENCE_BESIDE_VIDEO, "-c:v", "mpeg4", "-c:a", "pcm_s16le"], ".avi",
                                          (4.0, 7.0, "audio")),
    # AVI gives decoding times only; with H.264's B-frames the first picture is shown two frames late.
    "avi-h264-bframes-pause": ([*_VIDEO, *_AUDIO, *_PAUSED, "-c:v", "libx264", "-preset", "ultrafast", "-bf", "3",
                                "-c:a", "pcm_s16le"], ".avi", (4.0, 7.0, None)),
    # The same microphone's stretch not filled: counted audio closes up over it, so nothing tells
    # where it stopped; it ends 3 s before the picture, and is named as audio whose place is unknown.
    "mov-pcm-audio-short-beside-video": (["-f", "lavfi", "-i", "testsrc=size=160x90:rate=10:duration=11", *_AUDIO,
                                          "-af", f"asetpts={_SHIFT}", *_H264, "-c:a", "pcm_s16le"], ".mov",
                                         (8.0, 11.0, "audio_counted")),
    "avi-adpcm-ms-audio-short-beside-video": (["-f", "lavfi", "-i", "testsrc=size=160x90:rate=10:duration=11",
                                               *_AUDIO, "-af", f"asetpts={_SHIFT}", "-c:v", "mpeg4", "-c:a",
                                               "adpcm_ms"], ".avi", (8.0, 11.0, "audio_counted")),
    # ADPCM: QuickTime stores IMA's and Microsoft's blocks in a sample table, so theirs are counted
    # as PCM's are; AVI counts all audio.
    "mov-adpcm-ima": ([*_VIDEO, *_AUDIO, *_H264, "-c:a", "adpcm_ima_qt"], ".mov", None),
    "mov-adpcm-ima-pause": ([*_VIDEO, *_AUDIO, *_PAUSED, *_H264, "-c:a", "adpcm_ima_qt"], ".mov", (4.0, 7.0, None)),
    "mov-adpcm-ms": ([*_VIDEO, *_AUDIO, *_H264, "-c:a", "adpcm_ms"], ".mov", None),
    "mov-adpcm-ms-pause": ([*_VIDEO, *_AUDIO, *_PAUSED, *_H264, "-c:a", "adpcm_ms"], ".mov", (4.0, 7.0, None)),
    "mov-adpcm-ima-audio-silent-beside-video": ([*_SILENCE_BESIDE_VIDEO, *_H264, "-c:a", "adpcm_ima_qt"], ".mov",
                                                (4.0, 7.0, "audio")),
    "avi-adpcm-ms": ([*_VIDEO, *_AUDIO, "-c:v", "mpeg4", "-c:a", "adpcm_ms"], ".avi", None),
    "avi-adpcm-ms-pause": ([*_VIDEO, *_AUDIO, *_PAUSED, "-c:v", "mpeg4", "-c:a", "adpcm_ms"], ".avi",
                           (4.0, 7.0, None)),
    "avi-adpcm-ms-audio-silent-beside-video": ([*_SILENCE_BESIDE_VIDEO, "-c:v", "mpeg4", "-c:a", "adpcm_ms"],
                                               ".avi", (4.0, 7.0, "audio")),
    # Variable frame rate: frames 0.05-0.15 s apart.
    "mp4-vfr": ([*_VIDEO, *_AUDIO, "-vf", "setpts='(N/10+0.05*sin(N))/TB'", "-fps_mode", "passthrough", *_H264,
                 "-c:a", "aac"], ".mp4", None),
    "mp4-vfr-pause": ([*_VIDEO, *_AUDIO, "-vf", f"setpts='(N/10+0.05*sin(N)+if(gte(N,40),{PAUSE},0))/TB'",
                       "-af", f"asetpts={_SHIFT}", "-fps_mode", "passthrough", *_H264, "-c:a", "aac"], ".mp4",
                      (4.0, 7.0, None)),
    "mp4-ntsc": (["-f", "lavfi", "-i", "testsrc=size=160x90:rate=30000/1001:duration=8", *_AUDIO, *_H264,
                  "-c:a", "aac"], ".mp4", None),
    "ts-ntsc-bframes": (["-f", "lavfi", "-i", "testsrc=size=160x90:rate=30000/1001:duration=8", *_AUDIO,
                         "-c:v", "libx264", "-preset", "ultrafast", "-bf", "2", "-c:a", "aac"], ".ts", None),
    # The camera's video froze while its microphone kept recording (all 11 s: audio that
    # stopped at 8 s would be a gap of its own, at the end).
    "mp4-video-frozen": ([*_VIDEO, "-f", "lavfi", "-i", "sine=frequency=440:duration=11", "-vf", f"setpts={_SHIFT}",
                          "-fps_mode", "passthrough", *_H264, "-c:a", "aac"], ".mp4", (4.0, 7.0, "video")),
}


def _make(directory: Path, name: str) -> Path:
    args, suffix, _ = CORPUS[name]
    out = directory / f"{name}{suffix}"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args, str(out)], check=True)
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every file of the corpus, encoded a few at a time (ffmpeg start-up dominates)."""
    directory = tmp_path_factory.mktemp("corpus")
    with ThreadPoolExecutor(4) as pool:
        paths = pool.map(lambda n: _make(directory, n), CORPUS)
        return dict(zip(CORPUS, paths))


@pytest.mark.parametrize("name", list(CORPUS))
def test_pause_found_and_clean_files_have_no_gap(corpus: dict[str, Path], name: str) -> None:
    expected = CORPUS[name][2]
    scan = scan_packets(corpus[name])
    if expected is None:
        assert scan.gaps == (), f"false gap in clean {name}: {scan.gaps}"
        assert scan.media_duration == pytest.approx(8.0, abs=0.15)
        return
    start, end, stream = expected
    assert len(scan.gaps) == 1, scan.gaps
    gap = scan.gaps[0]
    assert gap.start_offset == pytest.approx(start, abs=0.1)
    assert gap.end_offset == pytest.approx(end, abs=0.1)
    assert gap.duration == pytest.approx(end - start, abs=0.1)
    assert gap.stream == stream
    assert scan.media_duration == pytest.approx(11.0, abs=0.15)


# MPEG program streams (DVD's VOB, MPEG-1/2 files) time a packet (2 KiB) only where a picture
# starts in it: small pictures share one, and two to a dozen pictures around a pause carry no time
# at all (more with B-frames and H.264), so nothing in the file says on which side of the pause
# they were shown. The pause reported must hold the true one, begin a frame after a picture the
# file times and end at a picture it times, so it is placed to the frame where the file allows
# and never shortened; its length is over by at most the untimed pictures (12 at 25 fps), and the
# recording's length is exact. Video alone (the audio's pause moves with how the encoder framed
# it), at 25 fps, paused 3 s before frames 101, 106 and 108 (a GOP's start); MPEG-TS, which
# times every picture, as a check: there to the frame.
FRAME = 0.04
PROGRAM_STREAMS = {
    "vob": ["-c:v", "mpeg2video", "-f", "vob"],
    "vob-bframes": ["-c:v", "mpeg2video", "-bf", "2", "-f", "vob"],
    "mpeg": ["-c:v", "mpeg1video", "-f", "mpeg"],
    "mpeg-bframes": ["-c:v", "mpeg1video", "-bf", "2", "-f", "mpeg"],
    "vob-h264": ["-c:v", "libx264", "-preset", "ultrafast", "-bf", "0", "-f", "vob"],
    "vob-h264-bframes": ["-c:v", "libx264", "-preset", "ultrafast", "-bf", "3", "-f", "vob"],
    "ts": ["-c:v", "mpeg2video", "-bf", "2", "-f", "mpegts"],
}


@pytest.mark.parametrize("frame", [101, 106, 108])
@pytest.mark.parametrize("name", list(PROGRAM_STREAMS))
def test_a_pause_in_a_program_stream_is_held_between_the_pictures_it_times(tmp_path: Path, name: str,
                                                                           frame: int) -> None:
    path = tmp_path / f"{name}.mpg"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc=size=160x90:rate=25:duration=8", "-vf", f"setpts='if(gte(N,{frame}),PTS+{PAUSE}/TB,PTS)'",
                    "-fps_mode", "passthrough", *PROGRAM_STREAMS[name], str(path)], check=True)
    scan = scan_packets(path)
    at = frame * FRAME
    (gap,) = scan.gaps
    assert gap.stream is None
    assert scan.media_duration == pytest.approx(8.0 + PAUSE, abs=FRAME / 2)
    if name == "ts":
        assert (gap.start_offset, gap.end_offset) == (pytest.approx(at, abs=FRAME / 2),
                                                      pytest.approx(at + PAUSE, abs=FRAME / 2))
        return
    assert gap.start_offset <= at + 0.001 and gap.end_offset >= at + PAUSE - 0.001, "the true pause is not held"
    assert gap.duration - PAUSE <= 12 * FRAME + 0.001
    listing = subprocess.run(["ffprobe", "-v", "error", "-fflags", "+nofillin", "-select_streams", "v",
                              "-show_entries", "packet=pts_time,dts_time", "-of", "csv=p=0", str(path)],
                             capture_output=True, text=True, check=True).stdout
    carried = {round(float(t), 3) for t in listing.replace(",", "\n").split() if t != "N/A"}
    assert round(scan.first_pts + gap.start_offset - FRAME, 3) in carried
    assert round(scan.first_pts + gap.end_offset, 3) in carried
    # Pictures timed up to half a second apart are no pause, even at a fifth of a second's tolerance.
    assert [(g.start_offset, g.end_offset) for g in scan_packets(path, tolerance_seconds=0.2).gaps] == [
        (gap.start_offset, gap.end_offset)]
