"""Continuity (gap) analysis: inside files, between segments of a device, against actions.

Pure computation over plain values: no database, no media tools. Times inside the
algorithm are float seconds since the Unix epoch in true time (device clock minus the
device's offset), which keeps the sweeps cheap; datetimes are built only for the gaps
that are reported.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from archive.wording import Sentences

__all__ = [
    "Action",
    "ContinuityReport",
    "DeviceClock",
    "Gap",
    "GapLevel",
    "InFileGap",
    "Recording",
    "Unreadable",
    "analyse",
    "cause_of",
    "gap_key",
]

GapLevel = Literal["in_file", "between_segments", "action_window", "overlap", "unreadable"]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_LEVEL_ORDER = {"in_file": 0, "between_segments": 1, "action_window": 2, "overlap": 3, "unreadable": 4}
# Keys round times to this many decimals so that recomputing a report (other float
# noise, a re-probe) keeps the key an explanation was filed against.
_KEY_DECIMALS = 1


@dataclass(frozen=True, slots=True)
class InFileGap:
    """A jump in packet timestamps inside one file, in seconds from the file's start."""

    start_offset: float
    """Where the media stops: end of the last packet before the jump."""
    end_offset: float
    """Where the media resumes: PTS of the first packet after the jump."""
    duration: float
    """``end_offset - start_offset``: seconds with no media."""
    stream: str | None = None
    """None when every stream stops (a recorder pause); ``"video"`` or ``"audio"`` when only
    that stream stops (video frozen while audio runs on, or one stream starting late or
    stopping early); ``"audio_counted"`` for audio whose times are counted from its samples (PCM
    and ADPCM in MOV or AVI) ending before the video: where it stopped the file cannot tell, so
    it is placed where the audio runs out; ``"silence"`` for inserted digital silence in a format
    without timestamps (WAV, MP3); ``"cut_short"`` for the end of a file that stops before the duration its
    container declares; ``"restart"`` where the file's timestamps start again (start = end:
    how much time passed between is unknown, so it is reported whatever the tolerance)."""


@dataclass(frozen=True, slots=True)
class Recording:
    """One recorded file as far as continuity is concerned."""

    item_id: str
    """Evidence item identifier (opaque)."""
    device_id: str | None
    """Recording device; None when unknown (then only in-file gaps are reported)."""
    start: datetime
    """Recording start by the device's clock (timezone-aware; naive is taken as UTC)."""
    duration_seconds: float
    """Media duration including any in-file gaps."""
    in_file_gaps: tuple[InFileGap, ...] = ()
    """Timestamp jumps inside the file, offsets relative to ``start``."""
    placed: bool = True
    """False when the recording's start is unknown (none declared, none in the file): then
    ``start`` is an assumed placement, its in-file gaps are reported at times that say so,
    and it neither sits between the device's other recordings nor covers an action window."""


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A recording that cannot be placed on the timeline because its media cannot be read (a
    truncated or garbled file, or an empty one). It is kept, sealed and flagged as evidence all
    the same; the analysis lists it as an entry of level ``unreadable`` so that a reviewer
    accounts for it as for a gap: whatever it recorded is missing from the timeline."""

    item_id: str
    """Evidence item identifier (opaque)."""
    device_id: str | None
    """Recording device, when known."""
    at: datetime
    """Where it is listed: its declared start by the device's clock when ``declared``, else when
    the archive received it (true time)."""
    reason: str
    """Why it cannot be read (the media tool's own message); empty for an empty file; the
    format it was read as when ``no_recording``."""
    declared: bool = False
    """True when ``at`` is a start declared for the recording (the device's offset applies)."""
    no_recording: bool = False
    """True when the file was read but holds no recording: a still image, or media without
    a duration (whatever it recorded, if anything, is missing all the same)."""


@dataclass(frozen=True, slots=True)
class DeviceClock:
    """A device clock runs ``offset_seconds`` ahead of true time: true = device - offset."""

    device_id: str
    """Device the offset was measured for."""
    offset_seconds: float
    """Seconds the device clock is ahead of true time (negative when behind)."""


@dataclass(frozen=True, slots=True)
class Action:
    """An enforcement action whose declared window must be recorded end to end."""

    action_id: str
    """Action identifier (opaque)."""
    kind: str
    """Human kind, e.g. ``seizure``, ``interview``."""
    start: datetime
    """Window start in true time."""
    end: datetime
    """Window end in true time; windows with ``end <= start`` have nothing to cover."""
    devices: tuple[str, ...]
    """Devices assigned to record it; their recordings together must cover the window."""
    description: str | None = None
    """What the officer wrote about it; named in the causes of its gaps."""


@dataclass(frozen=True, slots=True)
class Gap:
    """One interruption of the record, in true time."""

    level: GapLevel
    """``in_file``, ``between_segments``, ``action_window``, ``overlap`` (not a hole: two
    recordings of one device claim the same stretch of true time), or ``unreadable`` (a
    recording that could not be read, so nothing of it is on the timeline: see
    :class:`Unreadable`; ``start`` = ``end``)."""
    device: str | None
    """Device concerned; None for action windows (several devices) or unknown devices."""
    item: str | None
    """In-file: the file with the hole. Between segments: the clip after the gap. Unreadable: the file."""
    previous_item: str | None
    """Between segments: the clip before the gap; otherwise None."""
    action: str | None
    """Action whose window is not covered (action_window only)."""
    start: datetime
    """First instant with no record (UTC)."""
    end: datetime
    """Instant the record resumes (UTC)."""
    duration_seconds: float
    """``end - start`` in seconds, rounded to 0.01 s."""
    cause: str
    """Human explanation of what is missing."""
    key: str
    """Stable identifier (16 hex) so explanations survive recomputation; see :func:`gap_key`."""

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict (times as ISO 8601 UTC)."""
        return {
            "level": self.level,
            "device": self.device,
            "item": self.item,
            "previous_item": self.previous_item,
            "action": self.action,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "duration_seconds": self.duration_seconds,
            "cause": self.cause,
            "key": self.key,
        }


@dataclass(frozen=True, slots=True)
class ContinuityReport:
    """All gaps found, ordered by start time, then level, device and item."""

    gaps: tuple[Gap, ...]
    """Every gap longer than its tolerance."""
    tolerance_seconds: float
    """Tolerance applied to in-file and action-window gaps."""
    segment_tolerance_seconds: float
    """Tolerance applied between consecutive segments of one device."""
    recording_count: int
    """Recordings analysed."""
    action_count: int
    """Actions analysed."""
    unplaced: tuple[str, ...] = ()
    """Items of the recordings whose start is unknown (see :attr:`Recording.placed`)."""
    unreadable: tuple[str, ...] = ()
    """Items of the recordings that could not be read (see :class:`Unreadable`)."""

    def by_level(self, level: GapLevel) -> tuple[Gap, ...]:
        """Return the gaps of one level, in report order."""
        return tuple(g for g in self.gaps if g.level == level)

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict, suitable for sealing."""
        return {
            "tolerance_seconds": self.tolerance_seconds,
            "segment_tolerance_seconds": self.segment_tolerance_seconds,
            "recording_count": self.recording_count,
            "action_count": self.action_count,
            "unplaced": list(self.unplaced),
            "unreadable": list(self.unreadable),
            "gaps": [g.as_dict() for g in self.gaps],
        }


def gap_key(
    *,
    level: str,
    device: str | None,
    item: str | None,
    action: str | None,
    start: float,
    end: float,
) -> str:
    """Return the stable key of a gap: sha256 of its identity with times rounded to 0.1 s.

    ``start`` and ``end`` are seconds since the Unix epoch (true time).
    """
    ident = "|".join(
        (
            level,
            device or "",
            item or "",
            action or "",
            f"{start:.{_KEY_DECIMALS}f}",
            f"{end:.{_KEY_DECIMALS}f}",
        )
    )
    return hashlib.sha256(ident.encode("utf-8")).hexdigest()[:16]


def analyse(
    *,
    recordings: Iterable[Recording],
    clocks: Mapping[str, float] | Iterable[DeviceClock] = (),
    actions: Iterable[Action] = (),
    tolerance_seconds: float = 1.0,
    segment_tolerance_seconds: float | None = None,
    unreadable: Iterable[Unreadable] = (),
) -> ContinuityReport:
    """Find every interruption of the record at the three levels of the design.

    - ``in_file``: each recording's timestamp jumps, mapped to true time;
    - ``between_segments``: per device, recordings sorted by true start; a gap where
      the next one starts more than ``segment_tolerance_seconds`` after the latest end
      so far;
    - ``overlap``: per device, the stretch where a recording starts more than
      ``segment_tolerance_seconds`` before the latest end so far (one device cannot
      record twice at once: a wrong clock, or the same recording twice);
    - ``action_window``: the parts of each action's window longer than
      ``tolerance_seconds`` not covered by the union of its devices' recordings, minus
      the recordings' own in-file holes.

    A recording whose start is unknown (``placed`` false) gets its in-file gaps only. Each
    recording of ``unreadable`` is one entry of level ``unreadable`` (no span: start = end).

    ``clocks`` maps device id to its offset (or is an iterable of :class:`DeviceClock`);
    devices without an entry are taken to be on true time.
    """
    tol = float(tolerance_seconds)
    seg_tol = tol if segment_tolerance_seconds is None else float(segment_tolerance_seconds)
    offsets = _offsets(clocks)
    recs = list(recordings)
    acts = list(actions)

    found: list[tuple[float, float, str, str | None, str | None, str | None, str | None, str]] = []
    # Per device: (true_start, true_end, index into recs); tuples sort fast in C.
    per_device: dict[str, list[tuple[float, float, int]]] = {}

    for idx, rec in enumerate(recs):
        start = _seconds(rec.start) - offsets.get(rec.device_id, 0.0)  # type: ignore[arg-type]
        end = start + max(rec.duration_seconds, 0.0)
        if rec.in_file_gaps:
            for hole in rec.in_file_gaps:
                if hole.end_offset - hole.start_offset > tol or hole.stream == "restart":
                    found.append(
                        (
                            start + hole.start_offset,
                            start + hole.end_offset,
                            "in_file",
                            rec.device_id,
                            rec.item_id,
                            None,
                            None,
                            _in_file_cause(hole) + ("" if rec.placed else UNPLACED_NOTE),
                        )
                    )
        if rec.device_id is not None and rec.placed:
            bucket = per_device.get(rec.device_id)
            if bucket is None:
                bucket = per_device[rec.device_id] = []
            bucket.append((start, end, idx))

    for device, bucket in per_device.items():
        bucket.sort()
        _segment_gaps(device, bucket, recs, seg_tol, found)

    coverage_cache: dict[str, tuple[list[float], list[tuple[float, float]]]] = {}
    for act in acts:
        _action_gaps(act, per_device, recs, tol, coverage_cache, found)

    lost = list(unreadable)
    for clip in lost:
        at = _seconds(clip.at) - (offsets.get(clip.device_id, 0.0) if clip.declared else 0.0)
        if clip.no_recording:
            cause = CAUSES["no_recording"].format(format=clip.reason)
        else:
            cause = CAUSES["unreadable"].format(reason=clip.reason) if clip.reason else CAUSES["empty"]
        found.append((at, at, "unreadable", clip.device_id, clip.item_id, None, None, cause))

    found.sort(key=lambda g: (g[0], _LEVEL_ORDER[g[2]], g[3] or "", g[4] or "", g[6] or ""))
    gaps = tuple(_gap(*g) for g in found)
    return ContinuityReport(
        gaps=gaps,
        tolerance_seconds=tol,
        segment_tolerance_seconds=seg_tol,
        recording_count=len(recs),
        action_count=len(acts),
        unplaced=tuple(r.item_id for r in recs if not r.placed),
        unreadable=tuple(c.item_id for c in lost),
    )


def _segment_gaps(
    device: str,
    bucket: list[tuple[float, float, int]],
    recs: list[Recording],
    seg_tol: float,
    found: list,
) -> None:
    # Compare with the latest end so far, not the previous clip's end: a long clip
    # overlapping several short ones leaves no gap.
    latest_end, latest_idx = bucket[0][1], bucket[0][2]
    for start, end, idx in bucket[1:]:
        prev_item, item = recs[latest_idx].item_id, recs[idx].item_id
        stop = min(end, latest_end)
        if start - latest_end > seg_tol:
            cause = CAUSES["between_segments"].format(previous=prev_item, item=item)
            found.append((latest_end, start, "between_segments", device, item, prev_item, None, cause))
        elif stop - start > seg_tol:
            cause = CAUSES["overlap"].format(item=item, previous=prev_item, seconds=f"{stop - start:.1f}")
            found.append((start, stop, "overlap", device, item, prev_item, None, cause))
        if end > latest_end:
            latest_end, latest_idx = end, idx


def _coverage(
    bucket: list[tuple[float, float, int]], recs: list[Recording]
) -> tuple[list[float], list[tuple[float, float]]]:
    """Merge a device's recordings, holes removed, into disjoint sorted intervals."""
    pieces: list[tuple[float, float]] = []
    holed = False
    for start, end, idx in bucket:
        holes = recs[idx].in_file_gaps
        if not holes:
            pieces.append((start, end))
            continue
        holed = True
        cursor = start
        for hole in sorted(holes, key=lambda h: h.start_offset):
            h_start, h_end = start + hole.start_offset, start + hole.end_offset
            if h_start > cursor:
                pieces.append((cursor, min(h_start, end)))
            cursor = max(cursor, h_end)
        if end > cursor:
            pieces.append((cursor, end))
    if holed:
        pieces.sort()
    merged: list[tuple[float, float]] = []
    cur_s = cur_e = None
    for s, e in pieces:
        if cur_e is None:
            cur_s, cur_e = s, e
        elif s <= cur_e:
            if e > cur_e:
                cur_e = e
        else:
            merged.append((cur_s, cur_e))  # type: ignore[arg-type]
            cur_s, cur_e = s, e
    if cur_e is not None:
        merged.append((cur_s, cur_e))  # type: ignore[arg-type]
    return [s for s, _ in merged], merged


def _action_gaps(
    act: Action,
    per_device: dict[str, list[tuple[float, float, int]]],
    recs: list[Recording],
    tol: float,
    cache: dict[str, tuple[list[float], list[tuple[float, float]]]],
    found: list,
) -> None:
    a_start, a_end = _seconds(act.start), _seconds(act.end)
    if a_end <= a_start:
        return
    devices = tuple(dict.fromkeys(act.devices))
    covered: list[tuple[float, float]] = []
    for device in devices:
        cov = cache.get(device)
        if cov is None:
            cov = cache[device] = _coverage(per_device.get(device, []), recs)
        starts, intervals = cov
        i = max(bisect_right(starts, a_start) - 1, 0)
        while i < len(intervals) and intervals[i][0] < a_end:
            if intervals[i][1] > a_start:
                covered.append(intervals[i])
            i += 1
    covered.sort()
    names = ", ".join(devices) if devices else NO_DEVICES
    what = f"{act.kind} ({act.description.strip()})" if act.description and act.description.strip() else act.kind
    cause = CAUSES["action_window"].format(action=what, devices=names)
    cursor = a_start
    for s, e in covered:
        if s - cursor > tol:
            found.append((cursor, min(s, a_end), "action_window", None, None, None, act.action_id, cause))
        if e > cursor:
            cursor = e
        if cursor >= a_end:
            break
    if a_end - cursor > tol:
        found.append((cursor, a_end, "action_window", None, None, None, act.action_id, cause))


def _gap(
    start: float,
    end: float,
    level: str,
    device: str | None,
    item: str | None,
    previous_item: str | None,
    action: str | None,
    cause: str,
) -> Gap:
    key = gap_key(level=level, device=device, item=item, action=action, start=start, end=end)
    # Kept to the millisecond here; what people read is shown at one precision, 0.1 s, for
    # start, end and duration alike (archive.timefmt.gap_span).
    return Gap(
        level=level,  # type: ignore[arg-type]
        device=device,
        item=item,
        previous_item=previous_item,
        action=action,
        start=_datetime(start),
        end=_datetime(end),
        duration_seconds=round(end - start, 2),
        cause=cause,
        key=key,
    )


def _offsets(clocks: Mapping[str, float] | Iterable[DeviceClock]) -> dict[str | None, float]:
    if isinstance(clocks, Mapping):
        return {k: float(v) for k, v in clocks.items()}
    return {c.device_id: float(c.offset_seconds) for c in clocks}


def _seconds(moment: datetime) -> float:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _datetime(seconds: float) -> datetime:
    # Rounded to the millisecond: float epoch seconds carry sub-microsecond noise.
    return _EPOCH + timedelta(milliseconds=round(seconds * 1000))


CAUSES = {
    "paused": "recording paused {seconds} s at {at} into the file",
    "video_stops": "video stops while audio continues {seconds} s at {at} into the file",
    "audio_stops": "audio stops while video continues {seconds} s at {at} into the file",
    "audio_counted_short": ("audio ends {seconds} s before the video, at {at} into the file; its times are counted"
                            " from its samples, so it may have stopped earlier and gone on out of step with the"
                            " picture"),
    "silence": "digital silence (inserted fill, no sound recorded) {seconds} s at {at} into the file",
    "stream_stops": "{stream} stops {seconds} s at {at} into the file",
    "cut_short": ("file ends at {at}, {seconds} s before the duration its container declares"
                  " (cut short: the rest of the recording is missing)"),
    "restart": ("timestamps start again at {at} into the file (the recorder's clock restarted, or"
                " recordings were joined): how much time passed there is unknown"),
    "between_segments": "no recording between clip {previous} and clip {item}",
    "overlap": ("clip {item} overlaps clip {previous} of the same device by {seconds} s"
                " (a wrong clock offset, or the same recording twice)"),
    "action_window": "window of {action} not covered by devices {devices}",
    "unreadable": "recording could not be read, so it is not on the timeline: {reason}",
    "empty": "recording is an empty file (0 bytes), so it is not on the timeline",
    "no_recording": ("file holds no recording (no audio or video with a duration, such as a still image;"
                     " read as {format}), so it is not on the timeline"),
}
"""Every cause a gap can have, by code: the English text stored with the gap (and sealed in
reports and exports), which :func:`cause_of` reads back so pages can say it in their language."""

_IN_FILE_CAUSES = {None: "paused", "video": "video_stops", "audio": "audio_stops", "silence": "silence",
                   "audio_counted": "audio_counted_short",
                   "cut_short": "cut_short", "restart": "restart"}
NO_DEVICES = "(none assigned)"
"""The ``devices`` of an action window cause when the action names none."""

UNPLACED_NOTE = ("; the recording's start time is unknown (none declared, none in the file), so these times"
                 " assume it ended when the archive received it")

# What each placeholder can hold when a cause is read back; anything else is free text.
_CAUSE_SENTENCES = Sentences(
    "gap_cause", CAUSES, fields={"seconds": r"\d+(?:\.\d+)?", "at": r"\d{2,}:\d{2}:\d{2}\.\d", "stream": r"\S+",
                              "format": r"\S+"})


def cause_of(text: str) -> tuple[str, dict[str, str], bool] | None:
    """Read a stored cause back: its code in :data:`CAUSES`, the values of its placeholders,
    and whether it carries the note of a recording placed by assumption (:data:`UNPLACED_NOTE`).

    None for a text this module does not write (an older wording): show it as it is.
    """
    unplaced = text.endswith(UNPLACED_NOTE)
    body = text[: -len(UNPLACED_NOTE)] if unplaced else text
    found = _CAUSE_SENTENCES.read(body)
    return None if found is None else (*found, unplaced)


def _in_file_cause(hole: InFileGap) -> str:
    code = _IN_FILE_CAUSES.get(hole.stream, "stream_stops")
    return CAUSES[code].format(stream=hole.stream, seconds=f"{hole.end_offset - hole.start_offset:.1f}",
                               at=_clock(hole.start_offset))


def _clock(offset: float) -> str:
    whole = int(offset)
    tenths = int(round((offset - whole) * 10))
    if tenths == 10:
        whole, tenths = whole + 1, 0
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}.{tenths}"
