"""Time continuity analysis of 100,000 segments from 200 devices against a sort baseline.

Run: .venv/bin/python bench/bench_continuity.py [--segments N] [--devices D] [--actions A]
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import datetime, timedelta, timezone

from archive.continuity.analysis import Action, InFileGap, Recording, analyse

T0 = datetime(2024, 5, 1, tzinfo=timezone.utc)


def build(segments: int, devices: int, actions: int, seed: int = 7):
    """Return (recordings, clocks, actions, spans) for a synthetic corps-sized case load."""
    rng = random.Random(seed)
    per_device = segments // devices
    recordings = []
    spans = []
    for d in range(devices):
        t = rng.uniform(0, 600)
        for i in range(per_device):
            duration = rng.uniform(280, 300)
            holes = ()
            if rng.random() < 0.01:
                holes = (InFileGap(start_offset=30.0, end_offset=35.0, duration=5.0),)
            recordings.append(
                Recording(
                    item_id=f"d{d}-{i}",
                    device_id=f"cam{d}",
                    start=T0 + timedelta(seconds=t),
                    duration_seconds=duration,
                    in_file_gaps=holes,
                )
            )
            spans.append((t, t + duration))
            # Mostly back to back, sometimes a missing segment or an overlap.
            t += duration + rng.choice((0.0, 0.0, 0.0, 0.3, -2.0, 320.0))
    rng.shuffle(recordings)
    clocks = {f"cam{d}": rng.uniform(-120, 120) for d in range(devices)}
    horizon = per_device * 290.0
    acts = []
    for k in range(actions):
        start = rng.uniform(0, horizon - 7200)
        devs = tuple(f"cam{rng.randrange(devices)}" for _ in range(3))
        acts.append(
            Action(
                action_id=f"A{k}",
                kind="seizure",
                start=T0 + timedelta(seconds=start),
                end=T0 + timedelta(seconds=start + rng.uniform(600, 7200)),
                devices=devs,
            )
        )
    return recordings, clocks, acts, spans


def main() -> None:
    """Build the data, time analyse() and a plain sort of the same spans, print both."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--segments", type=int, default=100_000)
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--actions", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    recordings, clocks, actions, spans = build(args.segments, args.devices, args.actions)
    best = best_sort = float("inf")
    report = None
    for _ in range(args.repeat):
        shuffled = spans[:]
        random.Random(1).shuffle(shuffled)
        began = time.perf_counter()
        sorted(shuffled)
        best_sort = min(best_sort, time.perf_counter() - began)
        began = time.perf_counter()
        report = analyse(recordings=recordings, clocks=clocks, actions=actions)
        best = min(best, time.perf_counter() - began)
    assert report is not None
    levels = {lvl: len(report.by_level(lvl)) for lvl in ("in_file", "between_segments", "action_window")}
    print(f"recordings={len(recordings)} devices={args.devices} actions={len(actions)} gaps={levels}")
    print(f"analyse: {best * 1000:.1f} ms   sort baseline: {best_sort * 1000:.1f} ms   ratio: {best / best_sort:.1f}x")


if __name__ == "__main__":
    main()
