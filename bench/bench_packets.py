"""Time scan_packets() against a bare ffprobe packet listing of the same file.

Run: .venv/bin/python bench/bench_packets.py [FILE] [--minutes M] [--repeat R]
Without FILE a low-resolution clip of M minutes (default 5) is generated first.
The target is a ratio of at most 1.2 on long files; on short ones the extra ffprobe that finds the
streams (one process start, ~40 ms) dominates.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
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


def main() -> None:
    """Generate or take a clip, time both alternately, print best times and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("file", nargs="?", type=Path)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=15, help="rounds; the best of each is kept (one run takes ~0.1 s, so a few are noise)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.file or generate(Path(tmp) / "bench.mp4", args.minutes)
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
