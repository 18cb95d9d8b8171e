"""Continuity analysis: in-file holes, missing segments, uncovered action windows."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from archive.continuity.analysis import (
    Action,
    DeviceClock,
    InFileGap,
    Recording,
    Unreadable,
    analyse,
)

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=timezone.utc)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def rec(item: str, device: str | None, start: float, duration: float, *holes: InFileGap) -> Recording:
    return Recording(
        item_id=item, device_id=device, start=at(start), duration_seconds=duration, in_file_gaps=holes
    )


def close(a: datetime, b: datetime, tol: float = 0.1) -> bool:
    return abs((a - b).total_seconds()) <= tol


def test_missing_middle_segment_is_one_between_segments_gap() -> None:
    # A camera splits at 600 s; clip 2 (600-1200) never arrived.
    report = analyse(
        recordings=[rec("c1", "cam1", 0, 600), rec("c3", "cam1", 1200, 600)],
        clocks={},
        actions=[],
    )
    assert len(report.gaps) == 1
    gap = report.gaps[0]
    assert gap.level == "between_segments"
    assert (gap.device, gap.item, gap.previous_item) == ("cam1", "c3", "c1")
    assert close(gap.start, at(600)) and close(gap.end, at(1200))
    assert gap.duration_seconds == pytest.approx(600, abs=0.01)
    assert "c1" in gap.cause and "c3" in gap.cause


def test_consecutive_segments_within_tolerance_are_continuous() -> None:
    report = analyse(
        recordings=[rec("c1", "cam1", 0, 600), rec("c2", "cam1", 600.5, 600), rec("c3", "cam1", 1200.5, 10)],
        clocks={},
        actions=[],
    )
    assert report.gaps == ()


def test_action_window_hole_between_two_devices() -> None:
    # Seizure 0-3600 s. cam1 records 0-1500, cam2 1200-1800 and 2100-3600:
    # nobody records 1800-2100 (a 5-minute hole).
    seizure = Action(
        action_id="A1", kind="seizure", start=at(0), end=at(3600), devices=("cam1", "cam2")
    )
    report = analyse(
        recordings=[
            rec("a", "cam1", 0, 1500),
            rec("b", "cam2", 1200, 600),
            rec("c", "cam2", 2100, 1500),
        ],
        clocks={},
        actions=[seizure],
        segment_tolerance_seconds=3600,  # only the action level is under test here
    )
    (gap,) = report.gaps
    assert gap.level == "action_window"
    assert gap.action == "A1"
    assert close(gap.start, at(1800)) and close(gap.end, at(2100))
    assert gap.duration_seconds == pytest.approx(300, abs=0.01)
    assert gap.cause == "window of seizure not covered by devices cam1, cam2"  # the kind, not the id


def test_clock_offset_removes_a_false_gap() -> None:
    # cam2's clock runs 90 s fast: by its own clock its clip starts at 1890 s, which
    # would leave 1800-1890 uncovered; in true time it starts at 1800.
    action = Action(action_id="A2", kind="interview", start=at(0), end=at(3600), devices=("cam1", "cam2"))
    recordings = [rec("a", "cam1", 0, 1800), rec("b", "cam2", 1890, 1800)]
    assert len(analyse(recordings=recordings, clocks={}, actions=[action]).gaps) == 1
    report = analyse(recordings=recordings, clocks={"cam2": 90.0}, actions=[action])
    assert report.gaps == ()
    # The same with DeviceClock values.
    assert analyse(recordings=recordings, clocks=[DeviceClock("cam2", 90.0)], actions=[action]).gaps == ()


def test_clock_offset_shifts_between_segment_gaps() -> None:
    report = analyse(
        recordings=[rec("c1", "cam1", 0, 100), rec("c2", "cam1", 200, 100)],
        clocks={"cam1": -30.0},  # clock 30 s slow: true = device + 30
        actions=[],
    )
    (gap,) = report.gaps
    assert close(gap.start, at(130)) and close(gap.end, at(230))


def test_in_file_holes_are_reported_and_uncover_the_action_window() -> None:
    hole = InFileGap(start_offset=100.0, end_offset=160.0, duration=60.0)
    action = Action(action_id="A3", kind="seizure", start=at(0), end=at(600), devices=("cam1",))
    report = analyse(
        recordings=[rec("clip", "cam1", 0, 600, hole)],
        clocks={"cam1": 10.0},
        actions=[action],
    )
    in_file = report.by_level("in_file")
    window = report.by_level("action_window")
    assert len(report.gaps) == 3  # the hole, the window's hole, the window's start
    (f,) = in_file
    assert (f.device, f.item) == ("cam1", "clip")
    assert close(f.start, at(90)) and close(f.end, at(150))
    assert f.cause == "recording paused 60.0 s at 00:01:40.0 into the file"
    # True start is 10 s before the device's 0 s: the window 0-600 is short at the end.
    spans = sorted((g.start, g.end) for g in window)
    assert close(spans[0][0], at(90)) and close(spans[0][1], at(150))
    assert close(spans[1][0], at(590)) and close(spans[1][1], at(600))


def test_hole_in_one_recording_covered_by_another_device_is_not_a_window_gap() -> None:
    hole = InFileGap(start_offset=100.0, end_offset=160.0, duration=60.0)
    action = Action(action_id="A4", kind="seizure", start=at(0), end=at(600), devices=("cam1", "cam2"))
    report = analyse(
        recordings=[rec("x", "cam1", 0, 600, hole), rec("y", "cam2", 50, 200)],
        clocks={},
        actions=[action],
    )
    assert [g.level for g in report.gaps] == ["in_file"]


def test_fully_covered_case_has_no_gaps() -> None:
    recordings = [rec(f"c{i}", "cam1", i * 300, 300) for i in range(12)]
    recordings += [rec(f"d{i}", "cam2", i * 300 + 5, 300) for i in range(12)]
    action = Action(action_id="A5", kind="inspection", start=at(10), end=at(3500), devices=("cam1", "cam2"))
    assert analyse(recordings=recordings, clocks={}, actions=[action]).gaps == ()


def test_overlapping_recordings_are_not_holes_but_are_reported() -> None:
    # A long clip overlapping two short ones; the short ones end before the next starts,
    # but the long one still covers the time. One device cannot record twice at once, so
    # each overlap is reported with its stretch.
    report = analyse(
        recordings=[
            rec("long", "cam1", 0, 1000),
            rec("s1", "cam1", 100, 50),
            rec("s2", "cam1", 400, 50),
            rec("after", "cam1", 990, 100),
        ],
        clocks={},
        actions=[Action(action_id="A", kind="k", start=at(0), end=at(1090), devices=("cam1",))],
    )
    assert [(g.level, g.item, g.previous_item, g.duration_seconds) for g in report.gaps] == [
        ("overlap", "s1", "long", 50.0), ("overlap", "s2", "long", 50.0), ("overlap", "after", "long", 10.0),
    ]
    assert close(report.gaps[2].start, at(990)) and close(report.gaps[2].end, at(1000))
    assert "overlaps clip long" in report.gaps[0].cause


def test_device_with_no_recordings_leaves_whole_window_uncovered() -> None:
    action = Action(action_id="A6", kind="seizure", start=at(0), end=at(120), devices=("cam9",))
    (gap,) = analyse(recordings=[], clocks={}, actions=[action]).gaps
    assert close(gap.start, at(0)) and close(gap.end, at(120))
    assert gap.duration_seconds == 120.0


def test_recordings_without_device_get_only_in_file_gaps() -> None:
    hole = InFileGap(start_offset=5.0, end_offset=15.0, duration=10.0)
    report = analyse(
        recordings=[rec("u1", None, 0, 60, hole), rec("u2", None, 500, 60)],
        clocks={},
        actions=[],
    )
    assert [(g.level, g.device, g.item) for g in report.gaps] == [("in_file", None, "u1")]


def test_keys_are_stable_and_distinct() -> None:
    recordings = [rec("c1", "cam1", 0, 600), rec("c3", "cam1", 1200, 600), rec("d", "cam2", 0, 10)]
    action = Action(action_id="A", kind="k", start=at(0), end=at(1800), devices=("cam1",))
    first = analyse(recordings=recordings, clocks={}, actions=[action])
    again = analyse(recordings=list(reversed(recordings)), clocks={}, actions=[action])
    assert [g.key for g in first.gaps] == [g.key for g in again.gaps]
    assert len({g.key for g in first.gaps}) == len(first.gaps) == 2
    assert all(len(g.key) == 16 for g in first.gaps)
    assert json.loads(json.dumps(first.as_dict()))["gaps"][0]["key"] == first.gaps[0].key


def test_times_are_accurate_to_a_hundredth() -> None:
    report = analyse(
        recordings=[rec("c1", "cam1", 0, 12.345), rec("c2", "cam1", 20.125, 5)],
        clocks={"cam1": 0.01},
        actions=[],
    )
    (gap,) = report.gaps
    assert abs((gap.start - at(12.335)).total_seconds()) < 0.005
    assert abs((gap.end - at(20.115)).total_seconds()) < 0.005
    assert gap.duration_seconds == pytest.approx(7.78, abs=0.005)


def test_naive_datetimes_are_taken_as_utc() -> None:
    naive = Recording(item_id="n", device_id="cam1", start=datetime(2024, 5, 1, 10, 0), duration_seconds=60)
    action = Action(action_id="A", kind="k", start=at(0), end=at(60), devices=("cam1",))
    assert analyse(recordings=[naive], clocks={}, actions=[action]).gaps == ()


def test_hundred_thousand_segments_are_fast() -> None:
    import time

    recordings = []
    for d in range(200):
        for i in range(500):
            # Every 50th segment of every device is missing.
            if i % 50 == 49:
                continue
            recordings.append(rec(f"{d}-{i}", f"cam{d}", i * 60.0, 60.0))
    actions = [
        Action(action_id=f"A{k}", kind="k", start=at(k * 600), end=at(k * 600 + 1200),
               devices=tuple(f"cam{d}" for d in range(k % 200, k % 200 + 3) if d < 200))
        for k in range(40)
    ]  # fmt: skip
    began = time.perf_counter()
    report = analyse(recordings=recordings, clocks={f"cam{d}": d * 0.5 for d in range(200)}, actions=actions)
    elapsed = time.perf_counter() - began
    assert len(report.by_level("between_segments")) == 200 * 9
    assert elapsed < 2.0


def test_unreadable_recordings_are_listed_to_be_accounted_for() -> None:
    # cam1's middle clip could not be read: the analysis cannot know what it held, so it says
    # so beside the gap it leaves; an empty file of cam2 is listed too.
    report = analyse(
        recordings=[rec("c1", "cam1", 0, 600), rec("c3", "cam1", 1200, 600)],
        clocks={"cam1": 30.0},
        unreadable=[Unreadable(item_id="c2", device_id="cam1", at=at(600), reason="moov atom not found",
                               declared=True),
                    Unreadable(item_id="e1", device_id="cam2", at=at(5000), reason="")],
    )
    assert [g.level for g in report.gaps] == ["between_segments", "unreadable", "unreadable"]
    lost = report.by_level("unreadable")
    assert [(g.item, g.device) for g in lost] == [("c2", "cam1"), ("e1", "cam2")]
    assert close(lost[0].start, at(570)) and lost[0].end == lost[0].start  # the declared start, on true time
    assert close(lost[1].start, at(5000))  # received: already true time
    assert lost[0].cause == "recording could not be read, so it is not on the timeline: moov atom not found"
    assert lost[1].cause == "recording is an empty file (0 bytes), so it is not on the timeline"
    assert report.unreadable == ("c2", "e1") and report.as_dict()["unreadable"] == ["c2", "e1"]
    again = analyse(recordings=[], unreadable=[Unreadable(item_id="e1", device_id="cam2", at=at(5000), reason="")])
    assert again.gaps[0].key == lost[1].key  # stable: an explanation stays attached


def test_counted_audio_ending_before_the_video_says_its_place_is_unknown() -> None:
    # PCM in MOV or AVI beside video: the audio ends 3 s early, and its counted times cannot
    # tell whether it stopped there or earlier, going on out of step with the picture.
    hole = InFileGap(start_offset=8.0, end_offset=11.0, duration=3.0, stream="audio_counted")
    (gap,) = analyse(recordings=[rec("clip", "cam1", 0, 11, hole)], clocks={}, actions=[]).gaps
    assert gap.cause == ("audio ends 3.0 s before the video, at 00:00:08.0 into the file; its times are counted"
                         " from its samples, so it may have stopped earlier and gone on out of step with the picture")
