"""scan_packets() over listings too long (or too odd) to make with ffmpeg in a test.

A 12-hour interview-room recording has millions of packets; encoding one takes minutes. The
scan reads nothing of the file itself but ffprobe's answers, so here a stand-in ffprobe writes
exactly those answers (the stream table, then the packet listing in ffprobe's CSV) for a
recording described in the test, and the real scan reads them through the real pipe.
"""

from __future__ import annotations

import os
import sys
import textwrap
import time
import tracemalloc
from pathlib import Path

import pytest

from ingest import packets
from ingest.packets import scan_packets

_FAKE_FFPROBE = """\
#!{python}
import json, sys

def packets():
{body}

if "json" in sys.argv:
    print(json.dumps({streams}))
else:
    out = sys.stdout.buffer
    lines = []
    for index, pts, dts in packets():
        lines.append(f"{{index}},{{pts}},{{dts}}\\n")
        if len(lines) == 20000:
            out.write("".join(lines).encode())
            lines = []
    out.write("".join(lines).encode())
"""


def _fake_ffprobe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, streams: list[dict[str, object]],
                  body: str) -> Path:
    """Make ``ffprobe`` for the scan a script answering with ``streams`` and the packets
    yielded by ``body`` (a generator's body, yielding (stream index, pts, dts) with "N/A"
    for a missing time); returns the path of a stand-in recording."""
    script = tmp_path / "ffprobe"
    script.write_text(_FAKE_FFPROBE.format(python=sys.executable, body=textwrap.indent(textwrap.dedent(body), "    "),
                                           streams=repr({"streams": streams, "format": {"format_name": "mpegts"}})))
    os.chmod(script, 0o755)
    monkeypatch.setattr(packets, "FFPROBE", str(script))
    recording = tmp_path / "recording.ts"
    recording.write_bytes(b"")
    return recording


def test_a_long_recording_is_scanned_in_flat_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Four hours at 25 fps with B-frames (stored I P B B, shown I B B P) and 48 kHz AAC:
    # 1,035,000 packets. A 10 s pause after the first hour, and the clock restarts after
    # the second (both streams, as when a recorder reboots).
    recording = _fake_ffprobe(tmp_path, monkeypatch, streams=[
        {"index": 0, "codec_type": "video"}, {"index": 1, "codec_type": "audio"},
    ], body="""
        shown = (0, 3, 1, 2)  # presentation slot of each stored frame in a group of four
        audio = 0
        for i in range(360_000):
            base = 1.0 if i < 180_000 else 1.0 - 7200.0  # restart after two hours
            pause = 10.0 if 90_000 <= i < 180_000 else 0.0
            group, slot = divmod(i, 4)
            pts = base + pause + (group * 4 + shown[slot]) * 0.04
            yield 0, f"{pts:.6f}", f"{base + pause + i * 0.04 - 0.08:.6f}"
            while audio * 1024 / 48000 < (i + 1) * 0.04:
                a = audio * 1024 / 48000
                apause = 10.0 if 3600 <= a < 7200 else 0.0
                at = (1.0 if a < 7200 else 1.0 - 7200.0) + apause + a
                yield 1, f"{at:.6f}", f"{at:.6f}"
                audio += 1
    """)
    began = time.perf_counter()
    tracemalloc.start()
    try:
        scan = scan_packets(recording)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Keeping every packet's times took 16 bytes a packet (16 MB here) and sorting a run
    # another ~40 a packet; the stream's window, runs and steps fit in far less than either.
    assert peak < 6 * 2**20, f"peak {peak / 2**20:.1f} MiB"
    assert scan.packet_count == 360_000
    assert scan.nominal_interval == pytest.approx(0.04)
    assert scan.first_pts == pytest.approx(1.0)
    pause, restart = scan.gaps
    assert (pause.stream, pause.start_offset, pause.end_offset) == (None, pytest.approx(3600), pytest.approx(3610))
    assert (restart.stream, restart.duration) == ("restart", 0)
    assert restart.start_offset == pytest.approx(7210, abs=0.05)
    assert scan.media_duration == pytest.approx(14410, abs=0.05)
    assert time.perf_counter() - began < 30  # about 5 s on a 2-core worker under tracemalloc


def test_a_frame_stored_far_from_its_time_still_splits_a_pause(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # 120 s of frames, a 10 s pause, 120 s more; one frame shown 5 s into the pause is stored
    # 2,000 frames later (far past any B-frame reordering, and past the scan's window), with no
    # decoding time. It was recorded, so the pause is two, as sorting all the times shows.
    recording = _fake_ffprobe(tmp_path, monkeypatch, streams=[{"index": 0, "codec_type": "video"}], body="""
        for i in range(6000):
            t = i * 0.04 + (10.0 if i >= 3000 else 0.0)
            yield 0, f"{t:.6f}", f"{t:.6f}"
            if i == 5000:
                yield 0, "125.000000", "N/A"
    """)
    scan = scan_packets(recording)
    assert scan.packet_count == 6001
    assert [(g.start_offset, g.end_offset, g.stream) for g in scan.gaps] == [
        (pytest.approx(120.0), pytest.approx(125.0), None), (pytest.approx(125.04), pytest.approx(130.0), None),
    ]
