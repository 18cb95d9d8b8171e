"""Times as people read them: the corps' zone, the offset written, gaps at one precision."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from archive.settings import Settings
from archive.timefmt import gap_span, local_time, shown


def test_local_time_writes_the_zone_and_offset() -> None:
    moment = datetime(2026, 3, 1, 2, 0, 30, 600_000, tzinfo=timezone.utc)
    assert local_time(moment) == "2026-03-01 10:00:31 +08:00"  # rounded, not cut
    assert local_time(moment, "Europe/Berlin", tenths=True) == "2026-03-01 03:00:30.6 +01:00"
    assert local_time("2026-03-01T02:00:30.000000Z") == "2026-03-01 10:00:30 +08:00"
    assert local_time(None) == ""


def test_gap_span_agrees_with_itself_at_a_tenth() -> None:
    # The gap: 02:00:30.023 to 02:00:38.000 was shown as "02:00:30 -> 02:00:37, 8.0 s".
    start, end, duration = gap_span("2026-03-01T02:00:30.023Z", "2026-03-01T02:00:38.000Z")
    assert (start, end, duration) == ("2026-03-01 10:00:30.0 +08:00", "2026-03-01 10:00:38.0 +08:00", "8.0 s")
    # Shown as 10:00:31.0 and 10:00:38.9: the duration shown is their difference.
    assert gap_span("2026-03-01T02:00:30.96Z", "2026-03-01T02:00:38.94Z")[2] == "7.9 s"


def test_unknown_time_zone_fails_at_start_up() -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        Settings(time_zone="Mars/Olympus")


def test_stored_moments_are_shown_in_local_time_wherever_they_stand() -> None:
    """Custody details and receipt lines carry UTC moments in ISO 8601; a person reads them
    local with the offset, whether a value is the moment alone or a sentence holding one; to
    the tenth of a second when the stored moment has a fraction (a gap's start is read at the
    precision of its duration, 0.1 s)."""
    assert shown("2026-12-03T18:17:50Z") == "2026-12-04 02:17:50 +08:00"
    assert shown("2026-12-03T18:17:50.000000Z") == "2026-12-04 02:17:50.0 +08:00"
    assert shown("2056-12-02T18:17:04.824284+00:00") == "2056-12-03 02:17:04.8 +08:00"
    assert shown("overlap gap of 7.5 s on CAM-21 from 2026-03-02T08:06:20.400000Z: open") == \
        "overlap gap of 7.5 s on CAM-21 from 2026-03-02 16:06:20.4 +08:00: open"
    assert shown(datetime(2026, 3, 1, 2, 0, tzinfo=timezone.utc)) == "2026-03-01 10:00:00 +08:00"
    for unchanged in ("2026-03-01", "sha256 abc; sealed True", 42, None, "2026-13-45T99:99:99Z"):
        assert shown(unchanged) == unchanged


def test_a_local_time_across_a_daylight_saving_change_keeps_its_own_offset() -> None:
    # Berlin falls back at 01:00 UTC on 2026-10-25: 00:30Z is 02:30 +02:00, 01:30Z is 02:30 +01:00.
    assert local_time("2026-10-25T00:30:00Z", "Europe/Berlin") == "2026-10-25 02:30:00 +02:00"
    assert local_time("2026-10-25T01:30:00Z", "Europe/Berlin") == "2026-10-25 02:30:00 +01:00"
    assert local_time("2026-10-25T01:29:59.96Z", "Europe/Berlin", tenths=True) == "2026-10-25 02:30:00.0 +01:00"
    assert gap_span("2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z", "Europe/Berlin") == (
        "2026-10-25 02:30:00.0 +02:00", "2026-10-25 02:30:00.0 +01:00", "3600.0 s")


def test_the_last_moments_of_the_calendar_are_shown_not_raised() -> None:
    # 9999-12-31 20:00 UTC has no +08:00 form: it is shown in UTC, with its offset.
    assert local_time("9999-12-31T20:00:00Z") == "9999-12-31 20:00:00 +00:00"
