"""The case page's timeline: per device, its recordings and the gaps between or inside them,
on one time axis (true time: each device's clock offset applied), so a reviewer sees at a
glance where the record is interrupted and can play any piece of it."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from archive.continuity.models import Device, Gap
from archive.continuity.runs import recording_of
from archive.models import EvidenceItem
from archive.timefmt import local_time

LEAD_SECONDS = 3.0
"""A gap plays from this many seconds before it starts."""

MAX_RECORDINGS_DRAWN = 200
"""A device's recordings are drawn one by one up to this many. Past it (a month of a body
camera's five-minute segments is 8,640), a track draws its continuous stretches instead,
each playing from its first recording: thousands of bars on one line of the page are not
told apart, and drawing them made the case page of a 10,000-item case 4 MB and 3 s. Every
gap is still drawn, whatever the count; the item list shows each recording."""

NARROWEST = 0.5
"""Percent of the axis: no bar is drawn narrower (a short gap must still be seen and pressed)."""

TOUCHING = timedelta(seconds=1)
"""When a track draws stretches, recordings closer than this, or than the narrowest bar, are
one stretch: a space between them could not be seen (a gap the analysis found in it is drawn
over the stretch, like every gap)."""


@dataclass(frozen=True)
class Placed:
    """A recording placed in true time (the continuity analysis's own reading of the item)."""

    item_id: str
    device: str
    start: datetime
    end: datetime
    name: str


@dataclass(frozen=True)
class Bar:
    """One span on a device's track: a recording (``rec``) or a gap (``gap``)."""

    kind: str
    left: float
    """Percent of the axis from its start."""
    width: float
    label: str
    item_id: str | None
    at: float
    """Seconds into the item's proxy where playing starts."""
    cause: str | None = None
    """A gap's cause as stored (the page says it in its language, before the label)."""


@dataclass(frozen=True)
class Track:
    device: str
    bars: tuple[Bar, ...]


@dataclass(frozen=True)
class Timeline:
    start: str
    end: str
    tracks: tuple[Track, ...]
    names: dict[str, str]
    """The file name of each recording drawn, by item id (how a gap's cause names its clips)."""
    stretched_past: int | None = None
    """Set when a track draws its continuous stretches: the count of recordings past which it does."""


def placed_recordings(session: Session, *, case_id: str, only: Collection[str] | None = None) -> list[Placed]:
    """The case's recordings of a device that can be placed in time, in true time (those of
    the ids ``only`` names, if given)."""
    # Rows of the columns read (recording_of reads them by name), not the case's items as
    # objects: a case page of a 10,000-item case spent most of its time making those.
    items = session.execute(
        select(EvidenceItem.id, EvidenceItem.device_id, EvidenceItem.recorded_start, EvidenceItem.received_at,
               EvidenceItem.media_facts, EvidenceItem.original_filename)
        .where(EvidenceItem.case_id == case_id, EvidenceItem.device_id.is_not(None),
               *([EvidenceItem.id.in_(only)] if only is not None else []))
    ).all()
    devices = {i.device_id for i in items}
    offsets = dict(session.execute(select(Device.id, Device.clock_offset_seconds).where(Device.id.in_(devices))).all()) \
        if devices else {}
    placed = []
    for item in items:
        rec = recording_of(item)
        if rec is None or rec.device_id is None or not rec.placed:
            continue  # a recording with no start time has no place on the timeline
        start = rec.start - timedelta(seconds=offsets.get(rec.device_id, 0.0))
        placed.append(Placed(item.id, rec.device_id, start, start + timedelta(seconds=rec.duration_seconds),
                             item.original_filename))
    return sorted(placed, key=lambda p: p.start)


def play_point(gap: Gap, starts: dict[str, datetime]) -> tuple[str | None, float | None]:
    """Which item's proxy shows a gap and from when: a few seconds before it, in the item that
    holds it (a gap inside a file) or the one that ends at it."""
    item = gap.item_id if gap.level == "in_file" or not gap.previous_item_id else gap.previous_item_id
    if item is None or item not in starts:
        return None, None
    return item, max(0.0, (gap.start - starts[item]).total_seconds() - LEAD_SECONDS)


def build_timeline(placed: list[Placed], gaps: Iterable[Gap], *, zone: str,
                   action_devices: Mapping[str, Sequence[str]] | None = None) -> Timeline | None:
    """The tracks of the devices with placed recordings and of the devices assigned to an
    action whose window they left uncovered (``action_devices``: action id -> its devices), or
    None when there are none.

    An action's uncovered window is a gap of no one device (the analysis checks the union of
    the action's devices): it is drawn on the track of each device the action assigned, so a
    seizure at 10:02-11:40 that a camera recorded only till 10:05 shows red after its blue,
    and a device that recorded nothing of it has a track of red alone."""
    devices = {p.device for p in placed}
    starts = {p.item_id: p.start for p in placed}
    assigned = action_devices or {}

    def drawn_on(g: Gap) -> tuple[str, ...]:
        if g.device is None and g.level == "action_window":
            return tuple(assigned.get(g.action_id or "", ()))
        return (g.device,) if g.device in devices else ()

    # A pause inside a recording that has no place in time is listed with the gaps, not drawn;
    # so is a recording that could not be read (it has no span to draw).
    gaps = [g for g in gaps if drawn_on(g) and g.level != "unreadable" and (g.level != "in_file" or g.item_id in starts)]
    devices |= {d for g in gaps for d in drawn_on(g)}
    if not devices:
        return None
    lo = min([p.start for p in placed] + [g.start for g in gaps])
    hi = max([p.end for p in placed] + [g.end for g in gaps])
    total = max((hi - lo).total_seconds(), 1.0)

    def bar(kind: str, a: datetime, b: datetime, label: str, item: str | None, at: float, cause: str | None = None) -> Bar:
        left = (a - lo).total_seconds() / total * 100
        return Bar(kind, round(left, 3), round(max((b - a).total_seconds() / total * 100, NARROWEST), 3), label, item,
                   at, cause)

    def stretches(recordings: list[Placed]) -> list[Bar]:
        """Runs of touching recordings, each a bar playing its first one."""
        join = max(TOUCHING, timedelta(seconds=total * NARROWEST / 100))
        runs: list[list[Placed]] = []
        end = None
        for p in recordings:  # in order of start
            if end is not None and p.start <= end + join:
                runs[-1].append(p)
                end = max(end, p.end)
            else:
                runs.append([p])
                end = p.end
        drawn = []
        for run in runs:
            first, last = run[0], max(run, key=lambda p: p.end)
            label = f"{first.name} {local_time(first.start, zone)}"
            if len(run) > 1:
                label += f" – {last.name} {local_time(last.end, zone)} (×{len(run)})"
            drawn.append(bar("rec", first.start, last.end, label, first.item_id, 0.0))
        return drawn

    tracks = []
    stretched = False
    for device in sorted(devices):
        recordings = [p for p in placed if p.device == device]
        if len(recordings) > MAX_RECORDINGS_DRAWN:
            bars, stretched = stretches(recordings), True
        else:
            bars = [bar("rec", p.start, p.end, f"{p.name} {local_time(p.start, zone)}", p.item_id, 0.0)
                    for p in recordings]
        for g in gaps:
            if device in drawn_on(g):
                item, at = play_point(g, starts)
                bars.append(bar("gap", g.start, g.end, f"({g.duration_seconds:.1f} s)", item, at or 0.0, g.cause))
        tracks.append(Track(device, tuple(bars)))
    return Timeline(local_time(lo, zone), local_time(hi, zone), tuple(tracks), {p.item_id: p.name for p in placed},
                    MAX_RECORDINGS_DRAWN if stretched else None)
