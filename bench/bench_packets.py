"""Time scan_packets() against a bare ffprobe packet listing of the same file.

Run: .venv/bin/python bench/bench_packets.py [FILE] [--minutes M] [--repeat R]
Without FILE a low-resolution clip of M minutes (default 5) is generated first.
The target is a ratio of at most 1.2 on long files; on short ones the extra ffprobe that finds the
streams (one process start, ~40 ms) dominates.

Memory: .venv/bin/python bench/bench_packets.py --memory [--short 2] [--long 60] [SHORT LONG]
Generates (or takes) a short and a long clip and measures, each in a fresh child process, the
peak of Python's allocations (tracemalloc) and the peak RSS of: the baseline, reading ffprobe's
packet listing through a pipe in the scan's chunks and throwing it away; and scan_packets. The
scan streams, so its peak on the long clip should be no higher than on the short one.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from ingest.packets import scan_packets


def generate(dest: Path, minutes: float) -> Path:
    """Encode ``minutes`` of 160x90 25 fps H.264 with B-frames and AAC at ``dest``."""
    seconds = f"{minutes * 60:g}"
    subprocess.run(
        [
            "ffmpeg", "-nostdin", "-v", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc=size=160x90:rate=25:duration={seconds}",
            "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
            "-c:v", "libx264", "-preset", "ultrafast", "-bf", "3", "-c:a", "aac", str(dest),
        ],  # fmt: skip
        check=True,
    )
    return dest


def bare(path: Path) -> float:
    """Seconds taken by plain ffprobe listing the packet times scan_packets reads (every
    stream: video and audio are both scanned, to name a stream that stops alone) to /dev/null."""
    began = time.perf_counter()
    subprocess.run(
        [
            "ffprobe", "-v", "error",
            "-show_entries", "packet=stream_index,pts_time,dts_time", "-of", "csv=p=0", str(path),
        ],  # fmt: skip
        stdout=subprocess.DEVNULL,
        check=True,
    )
    return time.perf_counter() - began


def ours(path: Path) -> tuple[float, int]:
    """Seconds taken by scan_packets, and the packets it saw."""
    began = time.perf_counter()
    scan = scan_packets(path)
    return time.perf_counter() - began, scan.packet_count


def _drain(path: Path) -> int:
    """The baseline of the memory bench: ffprobe's packet listing read in the scan's chunks and
    thrown away; returns the lines read."""
    from ingest.packets import _CHUNK

    lines = 0
    with subprocess.Popen(
        [
            "ffprobe", "-v", "error",
            "-show_entries", "packet=stream_index,pts_time,dts_time", "-of", "csv=p=0", "-o", "pipe:1", str(path),
        ],  # fmt: skip
        stdout=subprocess.PIPE,
    ) as proc:
        assert proc.stdout is not None
        while chunk := proc.stdout.read(_CHUNK):
            lines += chunk.count(b"\n")
    return lines


def _child(what: str, path: Path) -> dict[str, float]:
    """Run one measurement (``drain`` or ``scan``) in a fresh interpreter; its peaks."""
    out = subprocess.run([sys.executable, __file__, "--measure", what, str(path)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def _measure(what: str, path: Path) -> None:
    """In the child: the tracemalloc peak and the peak RSS of one drain or scan, as JSON."""
    tracemalloc.start()
    began = time.perf_counter()
    packets = _drain(path) if what == "drain" else scan_packets(path).packet_count
    seconds = time.perf_counter() - began
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"peak_bytes": peak, "rss_kib": rss, "seconds": seconds, "packets": packets}))


def memory(short: Path, long: Path) -> None:
    """Print the baseline's and the scan's peaks on both clips, and long/short ratios."""
    rows = {name: {what: _child(what, path) for what in ("drain", "scan")} for name, path in (("short", short), ("long", long))}
    for name, path in (("short", short), ("long", long)):
        drain, scan = rows[name]["drain"], rows[name]["scan"]
        print(
            f"{name:5} {path.name}: {drain['packets']:.0f} lines, {scan['packets']:.0f} primary packets | "
            f"baseline peak {drain['peak_bytes'] / 2**20:.1f} MiB (RSS {drain['rss_kib'] / 1024:.0f} MiB) | "
            f"scan peak {scan['peak_bytes'] / 2**20:.1f} MiB (RSS {scan['rss_kib'] / 1024:.0f} MiB, {scan['seconds']:.1f} s"
            " under tracemalloc)"
        )
    ratio = rows["long"]["scan"]["peak_bytes"] / rows["short"]["scan"]["peak_bytes"]
    base = rows["long"]["drain"]["peak_bytes"] / rows["short"]["drain"]["peak_bytes"]
    rss = rows["long"]["scan"]["rss_kib"] / rows["short"]["scan"]["rss_kib"]
    print(f"long/short: scan peak {ratio:.2f} (baseline {base:.2f}), scan RSS {rss:.2f} -> "
          f"{'flat' if ratio < 1.25 else 'GROWS'}")


def main() -> None:
    """Generate or take a clip, time both alternately, print best times and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("file", nargs="*", type=Path)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=15, help="rounds; the best of each is kept (one run takes ~0.1 s, so a few are noise)")
    parser.add_argument("--memory", action="store_true", help="compare peak memory on a short and a long clip")
    parser.add_argument("--short", type=float, default=2.0, help="minutes of the short clip (--memory)")
    parser.add_argument("--long", type=float, default=60.0, help="minutes of the long clip (--memory)")
    parser.add_argument("--measure", choices=("drain", "scan"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        _measure(args.measure, args.file[0])
        return
    if args.memory:
        with tempfile.TemporaryDirectory() as tmp:
            short, long = args.file or (generate(Path(tmp) / "short.mp4", args.short),
                                        generate(Path(tmp) / "long.mp4", args.long))
            memory(short, long)
        return
    if len(args.file) > 1:
        parser.error("one FILE")
    with tempfile.TemporaryDirectory() as tmp:
        path = args.file[0] if args.file else generate(Path(tmp) / "bench.mp4", args.minutes)
        ours(path)  # warm the page cache for both
        best_bare = best_ours = float("inf")
        packets = 0
        for _ in range(args.repeat):
            best_bare = min(best_bare, bare(path))
            elapsed, packets = ours(path)
            best_ours = min(best_ours, elapsed)
        print(f"file={path.name} size={path.stat().st_size} packets={packets}")
        print(
            f"bare ffprobe: {best_bare * 1000:.1f} ms   scan_packets: {best_ours * 1000:.1f} ms"
            f"   ratio: {best_ours / best_bare:.2f}"
        )


if __name__ == "__main__":
    main()
