"""Gaps inside one file: pauses of the recorder, read from packet timestamps with ffprobe.

A pause is judged by the timestamps and the stream's nominal packet interval (its frame
interval, or its audio frame interval), never by a packet's stated duration: in MP4 and
MOV a packet's duration comes from the sample table, so the frame before a pause "lasts"
the whole pause and a duration-based test sees no jump at all. Packets are sorted by
time first because B-frames store them out of presentation order.

The first video and the first audio stream are both scanned. A stretch where both stop
is one pause; a stretch where only one stops is reported as that stream's gap (for
instance video frozen while the audio runs on).

Formats that carry no timestamps of their own (WAV, MP3, raw AAC) cannot show a pause in
their timing: a recorder that paused simply wrote on. There the only trace a pause can
leave in the file is inserted digital silence, which is what is looked for instead.

ffprobe's packet listing is streamed from a pipe and parsed in large chunks, because a
four-hour recording has hundreds of thousands of packets and this scan should cost
little more than ffprobe itself.
"""

from __future__ import annotations

import json
import re
from array import array
from dataclasses import dataclass
from pathlib import Path

from archive.continuity.analysis import InFileGap
from ingest.errors import ProbeFailed
from ingest.ffmpeg_adapter import FFMPEG, FFPROBE, input_args, run, stream, time_limit

__all__ = ["InFileGap", "PacketScan", "scan_packets"]

_CHUNK = 1 << 20
# Steps sampled for the nominal interval: enough to outvote a VFR stretch, cheap to sort.
_NOMINAL_SAMPLE = 5000
# Containers whose audio packets carry no timestamps: the demuxer counts samples.
_UNTIMED_FORMATS = frozenset({"wav", "w64", "mp3", "aac", "flac", "ac3", "eac3", "amr", "au", "aiff", "avi"})
# Digital silence: below any real microphone's noise floor, so only inserted fill.
_SILENCE_DB = -90


@dataclass(frozen=True, slots=True)
class PacketScan:
    """Result of scanning a file's packet timestamps."""

    stream: str
    """The primary stream scanned: ``"video"`` (first video stream) or ``"audio"``."""
    packet_count: int
    """Packets of the primary stream with a timestamp."""
    first_pts: float
    """First timestamp of the primary stream, seconds (the origin of gap offsets)."""
    last_pts: float
    """Largest timestamp of the primary stream, seconds."""
    media_duration: float
    """Seconds from ``first_pts`` to the end of the last packet of any scanned stream, gaps included."""
    nominal_interval: float
    """The primary stream's nominal packet interval (median timestamp step), seconds."""
    tolerance_seconds: float
    """Pauses up to this many seconds beyond one nominal interval were not reported."""
    gaps: tuple[InFileGap, ...]
    """Every pause longer than the tolerance, in time order, offsets from ``first_pts``."""
    method: str = "timestamps"
    """``timestamps``, or ``digital_silence`` for formats without timestamps of their own."""


def scan_packets(path: Path, *, tolerance_seconds: float = 1.0) -> PacketScan:
    """Find the pauses inside a recording (first video and first audio stream).

    Raises:
        ProbeFailed: ffprobe cannot read the file, or it has no timed packets.
    """
    path = Path(path)
    video, audio, format_name = _streams(path)
    if video is None and audio is None:
        raise ProbeFailed(message=f"{path.name}: no video or audio packets with timestamps")
    wanted = {i: kind for i, kind in ((video, "video"), (audio, "audio")) if i is not None}
    times = _read_packets(path, wanted)
    timed = {kind: ts for kind, ts in times.items() if len(ts)}
    if not timed:
        raise ProbeFailed(message=f"{path.name}: no video or audio packets with timestamps")
    primary = "video" if "video" in timed else "audio"
    untimed = bool(set(format_name.split(",")) & _UNTIMED_FORMATS)
    if primary == "video" and untimed:
        # AVI's audio times are counted from its samples: they run on through any pause,
        # so they say nothing about whether the video stopped alone.
        timed.pop("audio", None)
    scans = {kind: _stream_gaps(ts, tolerance_seconds) for kind, ts in timed.items()}
    ordered, nominal, _ = scans[primary]
    # Offsets count from the primary stream's first packet, the file's time zero: AAC
    # priming can put the audio's first packet a few milliseconds before it.
    origin = ordered[0]
    end = max(ts[-1] + step for ts, step, _ in scans.values())
    method = "timestamps"
    if primary == "audio" and untimed:
        method = "digital_silence"
        holes = _silences(path, tolerance_seconds, origin)
    else:
        holes = _merge(scans, origin)
    return PacketScan(
        stream=primary,
        packet_count=len(ordered),
        first_pts=origin,
        last_pts=ordered[-1],
        media_duration=round(end - origin, 6),
        nominal_interval=nominal,
        tolerance_seconds=tolerance_seconds,
        gaps=tuple(holes),
        method=method,
    )


def _streams(path: Path) -> tuple[int | None, int | None, str]:
    """(index of the first video stream, of the first audio stream, format name)."""
    stdout = run([FFPROBE, "-v", "error", "-show_entries", "stream=index,codec_type,disposition:format=format_name",
                  "-of", "json", *input_args(path)], limit=time_limit(path), fallback=f"ffprobe failed on {path.name}")
    info = json.loads(stdout or b"{}")
    video = audio = None
    for s in info.get("streams") or ():
        if s.get("codec_type") == "video" and video is None:
            # A cover picture is a video stream of one still frame, not a recording.
            if not (s.get("disposition") or {}).get("attached_pic"):
                video = s["index"]
        elif s.get("codec_type") == "audio" and audio is None:
            audio = s["index"]
    return video, audio, (info.get("format") or {}).get("format_name", "")


def _read_packets(path: Path, wanted: dict[int, str]) -> dict[str, array]:
    try:
        return _run_ffprobe(path, wanted, buffered=True)
    except ProbeFailed as exc:
        if "Unrecognized option 'o'" not in exc.message:
            raise
        # ffprobe predates the -o option (FFmpeg < 5.0).
        return _run_ffprobe(path, wanted, buffered=False)


def _run_ffprobe(path: Path, wanted: dict[int, str], *, buffered: bool) -> dict[str, array]:
    cmd = [
        FFPROBE, "-v", "error",
        "-show_entries", "packet=stream_index,pts_time,dts_time", "-of", "csv=p=0",
    ]  # fmt: skip
    if buffered:
        # Plain stdout is flushed after every packet: one write, and one wake-up of
        # this reader, per line. Through -o ffprobe buffers its output (32 KiB), which
        # makes the pipe as cheap as writing to /dev/null.
        cmd += ["-o", "pipe:1"]
    cmd += input_args(path)
    by_index: dict[int, array] = {i: array("d") for i in wanted}
    with stream(cmd, limit=time_limit(path), fallback=f"ffprobe failed on {path.name}") as stdout:
        rest = b""
        while chunk := stdout.read(_CHUNK):
            cut = chunk.rfind(b"\n")
            if cut < 0:
                rest += chunk
                continue
            _parse_block(rest + chunk[:cut], by_index)
            rest = chunk[cut + 1 :]
        if rest:
            _parse_block(rest, by_index)
    return {wanted[i]: ts for i, ts in by_index.items()}


def _parse_block(block: bytes, by_index: dict[int, array]) -> None:
    """Append each line's time (PTS, else DTS: AVI gives only DTS) to its stream's array."""
    fields = block.replace(b",", b"\n").split(b"\n")
    # The fast path needs every line to be exactly "index,pts,dts" with numbers.
    if b"N/A" not in block and len(fields) % 3 == 0:
        try:
            values = array("d", map(float, fields))
        except ValueError:
            pass
        else:
            index = values[0::3]
            pts = values[1::3]
            for i, ts in by_index.items():
                ts.extend(p for s, p in zip(index, pts) if s == i)
            return
    for line in block.split(b"\n"):
        parts = line.split(b",")
        if len(parts) < 3:
            continue
        try:
            ts = by_index.get(int(parts[0]))
        except ValueError:
            continue
        if ts is None:
            continue
        for field in (parts[1], parts[2]):
            try:
                ts.append(float(field))
                break
            except ValueError:
                continue  # N/A: try the DTS; a packet with neither cannot be placed in time


def _stream_gaps(times: array, tolerance: float) -> tuple[array, float, list[tuple[float, float]]]:
    """(sorted times, nominal interval, [(stop, resume)] of every pause beyond the tolerance).

    The media stops one nominal interval after the last packet before a jump and resumes
    at the first packet after it.
    """
    ordered = array("d", sorted(times))
    steps = sorted(b - a for a, b in zip(ordered[:_NOMINAL_SAMPLE], ordered[1 : _NOMINAL_SAMPLE + 1]) if b > a)
    nominal = steps[len(steps) // 2] if steps else 0.0
    limit = nominal + tolerance
    holes = [(a + nominal, b) for a, b in zip(ordered, ordered[1:]) if b - a > limit]
    return ordered, nominal, holes


def _merge(scans: dict[str, tuple[array, float, list[tuple[float, float]]]], origin: float) -> list[InFileGap]:
    """One gap where all scanned streams stop; a stream's own gap where only it stops."""
    video = scans.get("video", (None, 0.0, []))[2]
    audio = scans.get("audio", (None, 0.0, []))[2]
    both = len(scans) == 2
    gaps: list[InFileGap] = []
    used: set[int] = set()
    for v_start, v_end in video:
        partner = None
        for j, (a_start, a_end) in enumerate(audio):
            if j not in used and a_start < v_end and v_start < a_end:
                partner = j
                break
        if partner is not None:
            used.add(partner)
            a_start, a_end = audio[partner]
            gaps.append(_hole(min(v_start, a_start), max(v_end, a_end), origin, None))
        else:
            gaps.append(_hole(v_start, v_end, origin, "video" if both else None))
    for j, (a_start, a_end) in enumerate(audio):
        if j not in used:
            gaps.append(_hole(a_start, a_end, origin, "audio" if both else None))
    gaps.sort(key=lambda g: g.start_offset)
    return gaps


def _hole(start: float, end: float, origin: float, stream: str | None) -> InFileGap:
    return InFileGap(
        start_offset=round(start - origin, 6), end_offset=round(end - origin, 6),
        duration=round(end - start, 6), stream=stream,
    )


_SILENCE_LINE = re.compile(rb"silence_(start|end): (-?[0-9.]+)")


def _silences(path: Path, tolerance: float, origin: float) -> list[InFileGap]:
    """Stretches of digital silence longer than the tolerance in the first audio stream."""
    cmd = [
        FFMPEG, "-nostdin", "-hide_banner", "-nostats", "-v", "info", *input_args(path), "-map", "0:a:0",
        "-af", f"silencedetect=noise={_SILENCE_DB}dB:duration={tolerance}", "-f", "null", "-",
    ]  # fmt: skip
    stderr = run(cmd, limit=time_limit(path, decoding=True), fallback=f"ffmpeg failed on {path.name}", output="stderr")
    gaps: list[InFileGap] = []
    start: float | None = None
    for kind, value in _SILENCE_LINE.findall(stderr):
        if kind == b"start":
            start = max(float(value), origin)
        elif start is not None:
            gaps.append(_hole(start, float(value), origin, "silence"))
            start = None
    return gaps

