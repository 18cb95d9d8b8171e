"""Gaps inside one file: jumps in packet timestamps, read with ffprobe.

ffprobe's packet listing is streamed from a pipe and parsed in large chunks, because a
four-hour recording has hundreds of thousands of packets and this scan should cost
little more than ffprobe itself.
"""

from __future__ import annotations

import subprocess
import tempfile
from array import array
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ingest.continuity import InFileGap
from ingest.errors import ProbeFailed
from ingest.media import tool_message

__all__ = ["InFileGap", "PacketScan", "scan_packets"]

_CHUNK = 1 << 20
_FFPROBE = "ffprobe"


@dataclass(frozen=True, slots=True)
class PacketScan:
    """Result of scanning one stream's packet timestamps."""

    stream: str
    """Which stream was scanned: ``"video"`` (first video stream) or ``"audio"``."""
    packet_count: int
    """Packets with a presentation timestamp."""
    first_pts: float
    """Smallest presentation timestamp, seconds (the origin of gap offsets)."""
    last_pts: float
    """Largest presentation timestamp, seconds."""
    media_duration: float
    """Seconds from the first PTS to the end of the last packet, gaps included."""
    nominal_interval: float
    """Typical packet duration in seconds, used when a packet states none."""
    tolerance_seconds: float
    """Jumps up to this many seconds were not reported."""
    gaps: tuple[InFileGap, ...]
    """Every jump longer than the tolerance, in timestamp order, offsets from ``first_pts``."""


def scan_packets(path: Path, *, tolerance_seconds: float = 1.0) -> PacketScan:
    """Scan the packet timestamps of the first video (else first audio) stream for jumps.

    PTS are sorted before comparison because B-frames store packets out of
    presentation order. A jump is ``next_pts - (pts + packet duration)``; when a packet
    states no duration the stream's nominal packet interval is used.

    Raises:
        ProbeFailed: ffprobe cannot read the file, or it has no timed packets.
    """
    path = Path(path)
    stream = "video"
    pts, durations = _read_packets(path, "v:0")
    if not pts:
        stream = "audio"
        pts, durations = _read_packets(path, "a:0")
    if not pts:
        raise ProbeFailed(message=f"{path.name}: no video or audio packets with timestamps")
    return _analyse(stream, pts, durations, tolerance_seconds)


def _read_packets(path: Path, selector: str) -> tuple[array, array]:
    try:
        return _run_ffprobe(path, selector, buffered=True)
    except _OldFFprobe:
        return _run_ffprobe(path, selector, buffered=False)


class _OldFFprobe(Exception):
    """ffprobe predates the -o option (FFmpeg < 5.0)."""


def _run_ffprobe(path: Path, selector: str, *, buffered: bool) -> tuple[array, array]:
    cmd = [
        _FFPROBE, "-v", "error", "-select_streams", selector,
        "-show_entries", "packet=pts_time,duration_time", "-of", "csv=p=0",
    ]  # fmt: skip
    if buffered:
        # Plain stdout is flushed after every packet: one write, and one wake-up of
        # this reader, per line. Through -o ffprobe buffers its output (32 KiB), which
        # makes the pipe as cheap as writing to /dev/null.
        cmd += ["-o", "pipe:1"]
    cmd.append(str(path))
    pts = array("d")
    durations = array("d")
    # stderr goes to a file, not a pipe: a damaged file can make ffprobe write more
    # than a pipe buffer of warnings while we are still reading stdout.
    with tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err)
        except OSError as exc:
            raise ProbeFailed(message=f"cannot run ffprobe: {exc}") from exc
        with proc:
            assert proc.stdout is not None
            rest = b""
            while chunk := proc.stdout.read(_CHUNK):
                cut = chunk.rfind(b"\n")
                if cut < 0:
                    rest += chunk
                    continue
                _parse_block(rest + chunk[:cut], pts, durations)
                rest = chunk[cut + 1 :]
            if rest:
                _parse_block(rest, pts, durations)
            code = proc.wait()
        if code != 0:
            err.seek(0)
            stderr = err.read()
            if buffered and b"Unrecognized option 'o'" in stderr:
                raise _OldFFprobe()
            raise ProbeFailed(
                message=tool_message(stderr, fallback=f"ffprobe failed on {path.name} ({code})")
            )
    return pts, durations


def _parse_block(block: bytes, pts: array, durations: array) -> None:
    fields = block.replace(b",", b"\n").split(b"\n")
    # The fast path needs every line to be exactly "pts,duration" with numbers.
    if b"N/A" not in block and len(fields) % 2 == 0:
        try:
            p = array("d", map(float, fields[0::2]))
            d = array("d", map(float, fields[1::2]))
        except ValueError:
            pass
        else:
            pts.extend(p)
            durations.extend(d)
            return
    for line in block.split(b"\n"):
        head, _, tail = line.partition(b",")
        try:
            value = float(head)
        except ValueError:
            continue  # packets without a PTS cannot be placed in time
        try:
            dur = float(tail.partition(b",")[0])
        except ValueError:
            dur = 0.0
        pts.append(value)
        durations.append(dur)


def _nominal_interval(durations: array, ordered: array) -> float:
    sample = [d for d in durations[:2000] if d > 0]
    if sample:
        return Counter(sample).most_common(1)[0][0]
    steps = sorted(b - a for a, b in zip(ordered[:2000], ordered[1:2001]) if b > a)
    return steps[len(steps) // 2] if steps else 0.0


def _analyse(stream: str, pts: array, durations: array, tolerance: float) -> PacketScan:
    ordered = array("d", sorted(pts))
    nominal = _nominal_interval(durations, ordered)
    first = ordered[0]
    n = len(ordered)
    # A jump can only exceed the tolerance if the raw PTS step does; durations are
    # looked up only for those rare candidates.
    candidates = [i for i, (a, b) in enumerate(zip(ordered, ordered[1:])) if b - a > tolerance]
    dur_of: dict[float, float] = {}
    if candidates:
        dur_of = dict(zip(pts, durations))
    gaps = []
    for i in candidates:
        a, b = ordered[i], ordered[i + 1]
        step = dur_of.get(a, 0.0)
        end_of_packet = a + (step if step > 0 else nominal)
        jump = b - end_of_packet
        if jump > tolerance:
            gaps.append(
                InFileGap(
                    start_offset=round(end_of_packet - first, 6),
                    end_offset=round(b - first, 6),
                    duration=round(jump, 6),
                )
            )
    last = ordered[-1]
    last_step = durations[pts.index(last)]
    if last_step <= 0:
        last_step = nominal
    return PacketScan(
        stream=stream,
        packet_count=n,
        first_pts=first,
        last_pts=last,
        media_duration=round(last + last_step - first, 6),
        nominal_interval=nominal,
        tolerance_seconds=tolerance,
        gaps=tuple(gaps),
    )
