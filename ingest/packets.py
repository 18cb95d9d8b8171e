"""Gaps inside one file: pauses of the recorder, read from packet timestamps with ffprobe.

A pause is judged by the timestamps and the stream's nominal packet interval (its frame
interval, or its audio frame interval), never by a packet's stated duration: in MP4 and
MOV a packet's duration comes from the sample table, so the frame before a pause "lasts"
the whole pause and a duration-based test sees no jump at all. Packets are put in time
order first because B-frames store them out of presentation order.

An MPEG program stream (VOB, MPEG-1/2 files) times a packet only where a picture starts in
it, so two to a dozen pictures around a pause can carry no time at all, and nothing in the file
says on which side of the pause they were shown; ffprobe fills their times in with guesses that
run straight on through it. Such a file is read without the guesses, and a pause is placed
between the last picture it times before and the first it times after (see _Sparse): to the
frame where the file allows, and never shorter than the true one.

Where other containers give packets a decoding time but no presentation time of their own, the
decoding time cannot stand in for the missing one: an I or P picture is shown a frame or more
after it is decoded. In such a stream pauses are read from the jumps of the decoding times,
which are those of the presentation times: a decoder shows each picture when it decodes a
later one, so the decoding times run through the same times as the presentation times, a few
pictures later.

The first video and the first audio stream are both scanned. A stretch where both stop
is one pause; a stretch where only one stops is reported as that stream's gap (for
instance video frozen while the audio runs on), and so is one stream starting late or
stopping early while the other runs on.

Packets are read in file order, which alone shows two things:

* a decoding timestamp that goes back in a stream (they only ever go forward) means the
  recorder's clock restarted, or recordings were joined: the file's time is laid out run
  after run, in file order, and the join is reported with no duration, since how much time
  passed between is unknown. ffmpeg already unwraps MPEG-TS's 33-bit clock (about 26.5 h),
  so a wrap never looks like a restart;
* a file that ends before the duration its container declares (an MP4 whose index was
  written first, then cut short) lost its tail: that stretch is reported as cut short. MP4,
  MOV and Matroska declare their duration from time zero, others from their first timestamp.
  So does a stream that ends before the end its own index declares (MP4 and MOV index each
  stream's samples): a fragmented MP4 cut inside a fragment's media data keeps that
  fragment's index, and its streams stop up to a fragment apart. The tail is lost from the
  earliest such stop, and a stream stopping inside it was stopped by the cut, not paused.

Formats that carry no timestamps of their own (WAV, MP3, raw AAC) cannot show a pause in
their timing: a recorder that paused simply wrote on. There the only trace a pause can
leave in the file is inserted digital silence, which is what is looked for instead. PCM and ADPCM
in MOV or MP4 are the same: the sample table lists single audio samples (or ADPCM's fixed
blocks) at a fixed rate, so their times are counted and run on through a pause. Beside video
such audio cannot tell whether the video stopped alone: it is left out when the video shows a
pause (AVI's always). Nor can its times show the audio stopping while the picture runs on (a
microphone cut off); a recorder that fills that stretch with digital silence leaves the one
trace there is, so beside video such audio is searched for it too, and each stretch is the
audio's own gap at its place (moved past the video's pauses when the audio closed up over them).

ffprobe's packet listing is streamed from a pipe and parsed in chunks, because a
four-hour recording has hundreds of thousands of packets and this scan should cost
little more than ffprobe itself. Memory stays flat whatever the file's length (a 12-hour
recording has millions of packets): no packet's time is kept once it has been looked at.
Each stream's times go through a small window (a heap of the latest few hundred), which
gives them back in time order, since B-frames only move a packet a few places. Of each run
only its first and last time are kept, and the steps between neighbouring times that may be
a pause (in a recording, next to none); the nominal interval is the median step of the first
run's first few thousand times, kept until it is known. A packet stored further from its
time than the window allows is not lost: it can only split the step it falls into, and only
a kept step can hold a pause, so it splits that one as sorting would have. The runs and
their steps are laid out on the file's time and judged once the whole listing is read.
"""

from __future__ import annotations

import json
import math
import re
from array import array
from bisect import bisect_right, insort
from collections import deque
from dataclasses import dataclass, replace
from heapq import heappop, heappush, heappushpop
from statistics import median
from pathlib import Path
from typing import NamedTuple

from archive.continuity.analysis import InFileGap
from ingest.errors import NoPackets, ProbeFailed
from ingest.ffmpeg_adapter import FFMPEG, FFPROBE, input_args, run, stream, time_limit

__all__ = ["InFileGap", "PacketScan", "scan_packets"]

# Bytes of listing parsed at a time (some 5,000 packets): parsing holds about ten times this
# in Python objects, the largest part of the scan's memory, and the same for any file length.
_CHUNK = 1 << 17
# Steps sampled for the nominal interval: enough to outvote a VFR stretch, cheap to sort.
_NOMINAL_SAMPLE = 5000
# Packets held back per stream to give its times back in time order: B-frames move a packet
# a few places (x264's pyramid at most 16), so this is generous; a packet moved further
# costs a search among the kept steps (see _Stream._late), never a missed pause.
_WINDOW = 512
# Steps kept for judging after the layout: a step within this of the limit may cross it
# once shifted (float rounding on times up to 10^9 s is far below this).
_MARGIN = 1e-6
# Timed frames a sparse stream's level is taken over, before and after a step (see _Sparse):
# enough for a median to outvote the frames B-frames reorder, few enough to stay local.
_LEVELS = 9
# Video whose decoding times are presentation times (see _Sparse).
_MPEG_VIDEO = frozenset({"mpeg1video", "mpeg2video"})
# Containers whose audio packets carry no timestamps: the demuxer counts samples.
_UNTIMED_FORMATS = frozenset({"wav", "w64", "mp3", "aac", "flac", "ac3", "eac3", "amr", "au", "aiff", "avi"})
# Digital silence: below any real microphone's noise floor, so only inserted fill.
_SILENCE_DB = -90
# Containers whose declared duration runs from time zero, not from their first timestamp: the
# QuickTime movie header (mvhd) and Matroska's segment duration count any initial empty edit
# or offset too (a camera's second segment, whose timestamps go on from the first's).
_DURATION_FROM_ZERO = frozenset({"mov", "mp4", "matroska", "webm"})
# The QuickTime family (MOV, MP4): a sample table times each stream; PCM's samples are single
# audio samples at a fixed rate, so its times are counted, not recorded.
_SAMPLE_TABLE_FORMATS = frozenset({"mov", "mp4"})
# Audio codecs QuickTime stores that way: PCM, and ADPCM's fixed blocks (ima4, ms, ...).
_COUNTED_CODECS = ("pcm_", "adpcm_")


@dataclass(frozen=True, slots=True)
class PacketScan:
    """Result of scanning a file's packet timestamps."""

    stream: str
    """The primary stream scanned: ``"video"`` (first video stream) or ``"audio"``."""
    packet_count: int
    """Packets of the primary stream with a timestamp."""
    first_pts: float
    """The origin of gap offsets, seconds: the primary stream's first timestamp, or the other
    stream's when that one starts more than the tolerance earlier."""
    last_pts: float
    """Largest timestamp of the primary stream, seconds."""
    media_duration: float
    """Seconds from ``first_pts`` to the end of the last packet of any scanned stream, gaps
    included (and a tail cut short: then to the end its container declares)."""
    nominal_interval: float
    """The primary stream's nominal packet interval (median timestamp step), seconds."""
    tolerance_seconds: float
    """Pauses up to this many seconds beyond one nominal interval were not reported."""
    gaps: tuple[InFileGap, ...]
    """Every pause longer than the tolerance, in time order, offsets from ``first_pts``; also
    each restart of the timestamps (stream ``"restart"``, no duration) and a tail cut short
    (stream ``"cut_short"``)."""
    method: str = "timestamps"
    """``timestamps``, or ``digital_silence`` for formats without timestamps of their own."""


def scan_packets(path: Path, *, tolerance_seconds: float = 1.0) -> PacketScan:
    """Find the pauses inside a recording (first video and first audio stream).

    Raises:
        ProbeFailed: ffprobe cannot read the file; NoPackets (a ProbeFailed): it has no timed
            packets in its first video and audio streams.
    """
    path = Path(path)
    probe = _streams(path)
    if probe.video is None and probe.audio is None:
        raise NoPackets(message=f"{path.name}: no video or audio packets with timestamps")
    wanted = {i: kind for i, kind in ((probe.video, "video"), (probe.audio, "audio")) if i is not None}
    formats = set(probe.format_name.split(","))
    sparse = None
    if "mpeg" in formats:
        sparse = {i: (probe.frame_interval, probe.video_codec in _MPEG_VIDEO) if i == probe.video else (None, False)
                  for i in wanted}
    streams = _read_packets(path, wanted, tolerance_seconds, sparse)
    timed = {kind: s for kind, s in streams.items() if s.count}
    if not timed:
        raise NoPackets(message=f"{path.name}: no video or audio packets with timestamps")
    primary = "video" if "video" in timed else "audio"
    untimed = bool(formats & _UNTIMED_FORMATS)
    # PCM and ADPCM in QuickTime are stored as samples, not timed packets: their times too are counted.
    counted = untimed or (bool(formats & _SAMPLE_TABLE_FORMATS) and probe.audio_codec.startswith(_COUNTED_CODECS))
    # Beside video, inserted digital silence is the one trace such audio can keep of stopping alone.
    beside = primary == "video" and counted and "audio" in timed
    quiet = _silences(path, tolerance_seconds) if beside else []
    paused = beside and _paused(timed["video"], tolerance_seconds)
    left_out = None
    if beside and (untimed or paused):
        # Audio times counted from its samples run on through any pause, so they say nothing
        # about whether the video stopped alone, and put the audio's share of a pause at its end.
        # Where the video runs on unbroken, QuickTime's exact sample counts still show audio
        # that starts late or stops early; AVI's audio times, worked out from byte counts and
        # the rate its header states, are left out always, as they always were.
        left_out = timed.pop("audio")
    video = timed.get("video")
    if isinstance(video, _Stream) and not video.dated and probe.video_delay:
        # Decoding times only (AVI): a decoder that reorders shows its first picture that many
        # frames after decoding it, and its last as many after the last is decoded. Pauses are
        # where they were, since each picture is shown as a later one is decoded.
        held = probe.video_delay * video.nominal
        video.runs = [run._replace(first=run.first + held, last=run.last + held) for run in video.runs]
    laid, joins = _lay_out(timed, primary)
    nominal = timed[primary].nominal
    runs = laid[primary]
    start = min(r[0].first for r in laid.values())
    end = max(r[-1].last + timed[kind].nominal for kind, r in laid.items())
    # Offsets count from the primary stream's first packet, the file's time zero: AAC
    # priming can put the audio's first packet a few milliseconds before it. Only when the
    # other stream ran alone for longer than the tolerance does the file start there.
    origin = runs[0].first if runs[0].first - start <= nominal + tolerance_seconds else start
    method = "timestamps"
    if primary == "audio" and counted:
        method = "digital_silence"
        holes = [_hole(max(a, origin), b, origin, "silence") for a, b in _silences(path, tolerance_seconds)]
        # Only the stream's own index (a MOV's sample table) tells of a tail cut short, never the
        # declared duration: a WAV's or MP3's may be an estimate from the bit rate, not a promise
        # of content, and a PCM MOV's may count the pauses that its samples do not.
        own = None if probe.audio is None else probe.stream_ends.get(probe.audio)
        cut = _cut_short({"audio": (end, own)}, end, None, nominal, tolerance_seconds)
        if cut is not None:
            holes.append(_hole(*cut, origin, "cut_short"))
            end = cut[1]
    else:
        span = (start, end) if len(laid) == 2 else None
        stops = {kind: _stream_gaps(r, timed[kind].nominal, tolerance_seconds, span) for kind, r in laid.items()}
        own_ends = {kind: probe.stream_ends.get(i) for i, kind in wanted.items()}
        cut = _cut_short({kind: (r[-1].last + timed[kind].nominal, own_ends[kind]) for kind, r in laid.items()},
                         end, probe.declared_end, nominal, tolerance_seconds)
        if cut is not None:
            cut = _fold(cut, stops)
            end = max(end, cut[1])
        holes = _merge(stops, origin)
        if beside and not paused:
            holes = _counted_audio_short(holes, left_out, probe.audio_codec, end, origin, tolerance_seconds)
        holes += _silent_audio(quiet, stops.get("video", []), "audio" in laid, end, origin)
        if cut is not None:
            holes.append(_hole(*cut, origin, "cut_short"))
    holes += [_hole(at, at, origin, "restart") for at in joins]
    holes.sort(key=lambda g: g.start_offset)
    return PacketScan(
        stream=primary,
        packet_count=timed[primary].count,
        first_pts=origin,
        last_pts=runs[-1].last,
        media_duration=round(end - origin, 6),
        nominal_interval=nominal,
        tolerance_seconds=tolerance_seconds,
        gaps=tuple(holes),
        method=method,
    )


class _Run(NamedTuple):
    """A stretch of one stream between restarts of its clock, as much as the gaps need."""

    first: float
    """Its earliest time."""
    last: float
    """Its latest time."""
    steps: list[tuple[float, float]]
    """(time, next time in time order) wherever the two are further apart than the stream's
    nominal interval plus the tolerance, or within ``_MARGIN`` of it; in time order. In an
    undated stream, (decoding time, next decoding time) wherever further apart than the
    tolerance."""


class _Stream:
    """One stream's packets, fed in file order, folded into its runs as they are read.

    A run ends where the decoding time goes back more than the tolerance (a restarted
    clock): presentation times may go back by a few frames (B-frames), decoding times never;
    a packet without one never cuts. Within a run the times come out of a heap of
    ``_WINDOW`` in time order, and only the steps that may be pauses are kept; so are the
    jumps of the decoding times beyond the tolerance, for a stream found ``undated``.

    The nominal interval is fixed once the first run has given back ``_NOMINAL_SAMPLE`` + 1
    times: a packet that then turns up among them, stored more than the window away from its
    place, splits its step as any other but is not counted in the median (which sorting the
    whole run would count; one time among thousands moves the median by a hair at most).
    """

    def __init__(self, tolerance: float) -> None:
        self.tolerance = tolerance
        self.count = 0
        """Packets fed (each has a time)."""
        self.nominal = 0.0
        """The median step of the first run's first times (known once that run has enough)."""
        self.runs: list[_Run] = []
        self.undated = False
        """Whether a packet had a decoding time but no presentation time (see :meth:`finish`)."""
        self.dated = False
        """Whether a packet had a presentation time (AVI gives none: its times are decoding times)."""
        self._run_jumps: list[list[tuple[float, float]]] = []  # each run's jumps in decoding time
        self._sample: list[float] | None = []  # the first run's first times, until the nominal is known
        self._threshold = math.inf  # a step beyond this is kept
        self._latest = -math.inf  # latest decoding time of the run
        self._heap: list[float] = []
        self._begin()

    def _begin(self) -> None:
        self._first = math.inf
        self._previous = -math.inf  # the latest time given back by the heap
        self._steps: list[tuple[float, float]] = []
        self._jumps: list[tuple[float, float]] = []  # decoding times further apart than the tolerance

    def feed(self, times: list[float], decoding: list[float]) -> None:
        """Take packets' times (PTS, else DTS) and decoding times (NaN when they have none)."""
        heap, tolerance, latest = self._heap, self.tolerance, self._latest
        self.count += len(times)
        for at, dts in zip(times, decoding):
            if dts < latest - tolerance:  # NaN compares false
                self._end()
                latest = dts
            elif dts > latest:
                if dts - latest > tolerance and latest > -math.inf:
                    self._jumps.append((latest, dts))
                latest = dts
            if at < self._previous:
                self._late(at)
            elif len(heap) < _WINDOW:
                heappush(heap, at)
            else:
                self._next(heappushpop(heap, at))
        self._latest = latest

    def finish(self) -> _Stream:
        """End the last run; returns this stream. In a stream with ``undated`` packets, each
        run's steps become its jumps in decoding time (see the module's note)."""
        if self._heap or self._first < math.inf:
            self._end()
        if self.undated:
            self.runs = [run._replace(steps=jumps) for run, jumps in zip(self.runs, self._run_jumps)]
        return self

    def _next(self, at: float) -> None:
        """The run's next time in time order."""
        if self._sample is not None:
            self._sample.append(at)
            if len(self._sample) > _NOMINAL_SAMPLE:
                self._settle()
        elif at - self._previous > self._threshold and self._previous > -math.inf:
            self._steps.append((self._previous, at))
        if self._first == math.inf:
            self._first = at
        self._previous = at

    def _late(self, at: float) -> None:
        """A time earlier than one already given back: it falls into a step, which it splits
        as a sort would have, into two steps each shorter than it; only a kept step (or the
        stretch before the run's first time) can hold a pause, so only those need looking at."""
        if self._sample is not None:
            insort(self._sample, at)
            self._first = min(self._first, at)
            if len(self._sample) > _NOMINAL_SAMPLE:
                self._settle()
            return
        steps, threshold = self._steps, self._threshold
        if at < self._first:
            if self._first - at > threshold:
                steps.insert(0, (at, self._first))
            self._first = at
            return
        i = bisect_right(steps, (at, math.inf)) - 1
        if i >= 0 and steps[i][0] < at < steps[i][1]:
            before, after = steps[i]
            steps[i : i + 1] = [(a, b) for a, b in ((before, at), (at, after)) if b - a > threshold]

    def _settle(self) -> None:
        """Fix the nominal interval from the sample, and keep the sample's steps beyond it."""
        sample = self._sample
        assert sample is not None
        self._sample = None
        self.nominal = _nominal(sample)
        self._threshold = self.nominal + self.tolerance - _MARGIN
        self._steps = [(a, b) for a, b in zip(sample, sample[1:]) if b - a > self._threshold]

    def _end(self) -> None:
        """End the run: give back what the heap holds, keep the run, begin the next."""
        heap = sorted(self._heap)
        self._heap.clear()
        for at in heap:
            self._next(at)
        if self._sample is not None:
            self._settle()
        self.runs.append(_Run(self._first, self._previous, self._steps))
        self._run_jumps.append(self._jumps)
        self._begin()


class _Sparse:
    """One stream of a container that times only some of its frames, fed in file order.

    An MPEG program stream times a packet (a PES packet, 2 KiB in a VOB) only where a frame starts
    in it: of small pictures only the first in each packet has a time, and two to a dozen frames
    on end can have none; a pause can lie among them. What is known is each timed frame's time
    and how many frames (timed or not) came before it in decoding order. Within a run of the
    recording, time minus that count of frame intervals stays level (give or take the few frames
    B-frames reorder); across a pause it rises by the pause's length. So a step between two timed
    frames next in time order is a pause when the level of the timed frames after it stands more
    than the tolerance above the level of those before: medians of the levels between it and the
    steps next to it (up to :data:`_LEVELS` each), which the reordering cannot move, and which a
    pause a few steps away cannot lift (an H.264 stream may time one picture in twelve). Where the pause lies among the untimed frames between the two,
    nothing in the file says: the step is kept whole, from the last frame known to be before the
    pause to the first known to be after it, so the pause reported holds the true one.

    A run's last frame is placed by counting: its first time, plus a frame interval for every
    frame after the first, plus the pauses' lengths (the last frames of a stream with B-frames
    often carry no time). Runs and restarts are as in :class:`_Stream`, by the decoding times
    the container carries.

    In MPEG-1 and MPEG-2 video a decoding time is a presentation time too: a B-picture is shown as
    it is decoded, and an I- or P-picture when the next of them is decoded (ISO/IEC 13818-1's
    decoder model), so a timed I- or P-picture's decoding time is when the one before it is shown.
    Those times are taken as well: they often time the first picture after a pause. (H.264's
    decoding times follow no such rule; a recorder may set them inside a pause.)
    """

    def __init__(self, tolerance: float, interval: float | None, decoded_shown: bool) -> None:
        self.tolerance = tolerance
        self.decoded_shown = decoded_shown
        """Whether each decoding time is the presentation time of a picture (see the class note)."""
        self.nominal = interval or 0.0
        """The frame interval: the stated frame rate's, else the first packet duration given."""
        self.count = 0
        """Timed packets fed."""
        self.runs: list[_Run] = []
        self._latest = -math.inf
        self._begin()

    def _begin(self) -> None:
        self._frames = 0  # frames of the run so far, timed or not
        self._heap: list[tuple[float, int]] = []
        self._first = math.inf
        self._previous: float | None = None
        self._levels: deque[float] = deque(maxlen=_LEVELS)  # the latest levels since the last step
        self._level = math.nan  # the level before the last step
        self._step: tuple[float, float, float, list[float]] | None = None  # a step awaiting the level after it
        self._steps: list[tuple[float, float]] = []
        self._paused = 0.0  # the run's pauses, added up
        self._last = -math.inf

    def feed_one(self, pts: float, dts: float, duration: float) -> None:
        """Take one packet's times (NaN where it has none)."""
        if not self.nominal and duration > 0:
            self.nominal = duration
        if dts < self._latest - self.tolerance:  # NaN compares false
            self._end()
            self._latest = dts
        elif dts > self._latest:
            self._latest = dts
        if not math.isnan(pts):
            self.count += 1
            self._last = max(self._last, pts)
            # The run's first picture is decoded before anything is shown.
            if self.decoded_shown and dts < pts and self._heap:
                self._push(dts, -1)
            self._push(pts, self._frames)
        self._frames += 1

    def _push(self, at: float, frame: int) -> None:
        heappush(self._heap, (at, frame))
        if len(self._heap) > _WINDOW:
            self._next(*heappop(self._heap))

    def _next(self, at: float, frame: int) -> None:
        """The run's next time in time order, and how many frames were decoded before the picture
        it times (-1 for a picture shown when a later one is decoded: how many is not known).

        A step that may be a pause is judged by the levels between it and the next such step (at
        most :data:`_LEVELS` of them) against those between it and the one before; a step with no
        level after it before the next is one with that next.
        """
        if self._previous is None:
            self._first = at
        elif at - self._previous - self.nominal > self.tolerance:
            if self._step is not None and not self._step[3]:
                self._step = (self._step[0], at, self._step[2], [])
            else:
                if self._step is not None:
                    self._judge()
                if self._levels:
                    self._level = median(self._levels)
                    self._levels.clear()
                self._step = (self._previous, at, self._level, [])
        self._previous = at
        if frame < 0:
            return
        level = at - frame * self.nominal
        self._levels.append(level)
        if self._step is not None:
            self._step[3].append(level)
            if len(self._step[3]) == _LEVELS:
                self._judge()

    def _judge(self) -> None:
        assert self._step is not None
        before, after, level, later = self._step
        self._step = None
        # No timed picture after it to level with (the stream's last pictures): the step, less a frame.
        rise = median(later) - level if later else after - before - self.nominal
        if rise > self.tolerance or (math.isnan(rise) and after - before - self.nominal > self.tolerance):
            self._steps.append((before, after))
            self._paused += rise if rise == rise else after - before - self.nominal

    def _end(self) -> None:
        for item in sorted(self._heap):
            self._next(*item)
        if self._step is not None:
            self._judge()
        if self._previous is not None:
            last = max(self._last, self._first + (self._frames - 1) * self.nominal + self._paused)
            self.runs.append(_Run(self._first, last, self._steps))
        self._begin()

    def finish(self) -> _Sparse:
        """End the last run; returns this stream."""
        self._end()
        return self


class _Probe(NamedTuple):
    """What the container says of the file, before its packets are read."""

    video: int | None
    """Index of the first video stream (not a cover picture)."""
    audio: int | None
    """Index of the first audio stream."""
    format_name: str
    """ffprobe's format name (a comma-separated list for the QuickTime family)."""
    declared_end: float | None
    """The end of the media by the container's declared start and duration, if it states them."""
    stream_ends: dict[int, float]
    """Where each stream's own index says it ends (start + duration), by stream index: only for
    containers that index their streams' samples (:data:`_DURATION_FROM_ZERO`); others' stream
    durations are estimates."""
    audio_codec: str
    """The first audio stream's codec (``""`` without one)."""
    video_delay: int = 0
    """How many frames the first video stream's decoder holds back to reorder (``has_b_frames``)."""
    frame_interval: float | None = None
    """Seconds between the first video stream's frames by its stated frame rate, if it states one."""
    video_codec: str = ""
    """The first video stream's codec (``""`` without one)."""


def _streams(path: Path) -> _Probe:
    """The streams to scan and what the container declares of them."""
    stdout = run([FFPROBE, "-v", "error",
                  "-show_entries", "stream=index,codec_type,codec_name,start_time,duration,disposition,r_frame_rate,has_b_frames"
                                   ":format=format_name,start_time,duration",
                  "-of", "json", *input_args(path)], limit=time_limit(path), fallback=f"ffprobe failed on {path.name}")
    info = json.loads(stdout or b"{}")
    fmt = info.get("format") or {}
    format_name = fmt.get("format_name", "")
    indexed = bool(set(format_name.split(",")) & _DURATION_FROM_ZERO)
    video = audio = None
    audio_codec = ""
    stream_ends: dict[int, float] = {}
    frame_interval, video_codec, video_delay = None, "", 0
    for s in info.get("streams") or ():
        if s.get("codec_type") == "video" and video is None:
            # A cover picture is a video stream of one still frame, not a recording.
            if not (s.get("disposition") or {}).get("attached_pic"):
                video = s["index"]
                frame_interval, video_codec = _interval(s.get("r_frame_rate")), s.get("codec_name") or ""
                video_delay = int(s.get("has_b_frames") or 0)
        elif s.get("codec_type") == "audio" and audio is None:
            audio = s["index"]
            audio_codec = s.get("codec_name") or ""
        end = _number_of(s, "start_time", "duration")
        if indexed and end is not None:
            stream_ends[s["index"]] = end
    declared_end = _number_of(fmt, "duration") if indexed else _number_of(fmt, "start_time", "duration")
    return _Probe(video, audio, format_name, declared_end, stream_ends, audio_codec, video_delay, frame_interval,
                  video_codec)


def _interval(rate: object) -> float | None:
    """Seconds per frame of ffprobe's ``num/den`` frame rate; None for none (``0/0``)."""
    try:
        num, den = (int(x) for x in str(rate).split("/"))
    except ValueError:
        return None
    return den / num if num > 0 and den > 0 else None


def _number_of(entries: dict[str, object], *names: str) -> float | None:
    """The sum of ffprobe's fields ``names`` (numbers in strings); None when one is missing."""
    try:
        return sum(float(entries[name]) for name in names)  # type: ignore[arg-type]
    except (KeyError, TypeError, ValueError):
        return None


def _read_packets(path: Path, wanted: dict[int, str], tolerance: float,
                  sparse: dict[int, tuple[float | None, bool]] | None = None) -> dict[str, _Stream | _Sparse]:
    """Each wanted stream's packets, folded; with ``sparse`` (an MPEG program stream: each wanted
    stream's frame interval, if known, and whether its decoding times are presentation times) only
    the times the container itself carries are read, each stream as a :class:`_Sparse`."""
    try:
        return _run_ffprobe(path, wanted, tolerance, sparse, buffered=True)
    except ProbeFailed as exc:
        if "Unrecognized option 'o'" not in exc.message:
            raise
        # ffprobe predates the -o option (FFmpeg < 5.0).
        return _run_ffprobe(path, wanted, tolerance, sparse, buffered=False)


def _run_ffprobe(path: Path, wanted: dict[int, str], tolerance: float,
                 sparse: dict[int, tuple[float | None, bool]] | None,
                 *, buffered: bool) -> dict[str, _Stream | _Sparse]:
    by_index: dict[int, _Stream] | dict[int, _Sparse]
    if sparse is None:
        entries, by_index, parse = [], {i: _Stream(tolerance) for i in wanted}, _parse_block
    else:
        # Without nofillin ffprobe fills in the times the container leaves out with guesses (the
        # previous time plus a frame) that run straight on through a pause.
        entries, by_index, parse = ["-fflags", "+nofillin"], {i: _Sparse(tolerance, *sparse[i]) for i in wanted}, _parse_sparse
    fields = "stream_index,pts_time,dts_time" + ("" if sparse is None else ",duration_time")
    cmd = [FFPROBE, "-v", "error", *entries, "-show_entries", f"packet={fields}", "-of", "csv=p=0"]
    if buffered:
        # Plain stdout is flushed after every packet: one write, and one wake-up of
        # this reader, per line. Through -o ffprobe buffers its output (32 KiB), which
        # makes the pipe as cheap as writing to /dev/null.
        cmd += ["-o", "pipe:1"]
    cmd += input_args(path)
    with stream(cmd, limit=time_limit(path), fallback=f"ffprobe failed on {path.name}") as stdout:
        rest = b""
        while chunk := stdout.read(_CHUNK):
            cut = chunk.rfind(b"\n")
            if cut < 0:
                rest += chunk
                continue
            parse(rest + chunk[:cut], by_index)  # type: ignore[arg-type]
            rest = chunk[cut + 1 :]
        if rest:
            parse(rest, by_index)  # type: ignore[arg-type]
    return {wanted[i]: s.finish() for i, s in by_index.items()}


def _parse_block(block: bytes, by_index: dict[int, _Stream]) -> None:
    """Feed each line's time (PTS, else DTS: AVI gives only DTS) and DTS to its stream."""
    fields = block.replace(b",", b"\n").split(b"\n")
    # The fast path needs every line to be exactly "index,pts,dts" with numbers.
    if b"N/A" not in block and len(fields) % 3 == 0:
        try:
            values = array("d", map(float, fields))
        except ValueError:
            pass
        else:
            del fields
            index = values[0::3]
            for i, packets in by_index.items():
                times = [p for s, p in zip(index, values[1::3]) if s == i]
                packets.feed(times, [d for s, d in zip(index, values[2::3]) if s == i])
                packets.dated |= bool(times)
            return
    lines: dict[int, tuple[list[float], list[float]]] = {i: ([], []) for i in by_index}
    undated: set[int] = set()
    dated: set[int] = set()
    for line in block.split(b"\n"):
        parts = line.split(b",")
        if len(parts) < 3:
            continue
        try:
            times, decoding = lines.get(int(parts[0]), (None, None))
        except ValueError:
            continue
        if times is None or decoding is None:
            continue
        pts, dts = _number(parts[1]), _number(parts[2])
        if math.isnan(pts):
            if math.isnan(dts):
                continue  # a packet with neither cannot be placed in time
            undated.add(int(parts[0]))
        else:
            dated.add(int(parts[0]))
        times.append(dts if math.isnan(pts) else pts)
        decoding.append(dts)
    for i, (times, decoding) in lines.items():
        by_index[i].feed(times, decoding)
        by_index[i].undated |= i in undated
        by_index[i].dated |= i in dated


def _parse_sparse(block: bytes, by_index: dict[int, _Sparse]) -> None:
    """Feed each line's presentation time, decoding time and duration (NaN for none) to its stream."""
    for line in block.split(b"\n"):
        parts = line.split(b",")
        if len(parts) < 4:
            continue
        try:
            packets = by_index.get(int(parts[0]))
        except ValueError:
            continue
        if packets is not None:
            packets.feed_one(_number(parts[1]), _number(parts[2]), _number(parts[3]))


def _number(field: bytes) -> float:
    """A timestamp field as a number; NaN for N/A."""
    try:
        return float(field)
    except ValueError:
        return math.nan


def _lay_out(streams: dict[str, _Stream], primary: str) -> tuple[dict[str, list[_Run]], list[float]]:
    """({stream: its runs, placed one after the other on the file's time}, [where each run
    after the first begins]).

    Each run of timestamps starts where the file's previous run ended, in file order: the
    time that passed between them is unknown. When every stream restarted together, their
    runs move together, so a stream that starts late in a run still does.
    """
    runs = {kind: s.runs for kind, s in streams.items()}
    nominal = {kind: s.nominal for kind, s in streams.items()}
    laid = {kind: [parts[0]] for kind, parts in runs.items()}
    joins: list[float] = []
    count = len(runs[primary])
    if all(len(parts) == count for parts in runs.values()):
        for k in range(1, count):
            resume = max(laid[kind][-1].last + nominal[kind] for kind in runs)
            shift = resume - min(parts[k].first for parts in runs.values())
            for kind, parts in runs.items():
                laid[kind].append(_moved(parts[k], shift, 0.0))
            joins.append(resume)
    else:
        # One stream restarted where the other did not: each is laid out on its own.
        for kind, parts in runs.items():
            for part in parts[1:]:
                resume = laid[kind][-1].last + nominal[kind]
                laid[kind].append(_moved(part, resume, part.first))
                if kind == primary:
                    joins.append(resume)
    return laid, joins


def _moved(part: _Run, plus: float, minus: float) -> _Run:
    """``part`` with each time t at t + plus - minus (in that order: the float sums are those
    of moving every packet's time)."""
    return _Run(part.first + plus - minus, part.last + plus - minus,
                [(a + plus - minus, b + plus - minus) for a, b in part.steps])


def _nominal(ordered: list[float]) -> float:
    """The median step between the first timestamps (in time order) of a run."""
    steps = sorted(b - a for a, b in zip(ordered[:_NOMINAL_SAMPLE], ordered[1 : _NOMINAL_SAMPLE + 1]) if b > a)
    return steps[len(steps) // 2] if steps else 0.0


def _stream_gaps(runs: list[_Run], nominal: float, tolerance: float,
                 span: tuple[float, float] | None) -> list[tuple[float, float]]:
    """[(stop, resume)] of every pause of one stream beyond the tolerance.

    The media stops one nominal interval after the last packet before a jump and resumes
    at the first packet after it. With ``span`` (where the file's media starts and ends,
    when another stream is scanned too), a stream that starts after it, or stops before
    it, by more than the tolerance is missing there too.
    """
    limit = nominal + tolerance
    holes: list[tuple[float, float]] = []
    for k, part in enumerate(runs):
        if k and part.first - runs[k - 1].last > limit:
            holes.append((runs[k - 1].last + nominal, part.first))
        holes += [(a + nominal, b) for a, b in part.steps if b - a > limit]
    if span is not None:
        first, end = runs[0].first, runs[-1].last + nominal
        if first - span[0] > limit:
            holes.insert(0, (span[0], first))
        if span[1] - end > limit:
            holes.append((end, span[1]))
    return holes


def _paused(stream: _Stream, tolerance: float) -> bool:
    """Whether ``stream``'s own times show a pause or a restart beyond the tolerance."""
    limit = stream.nominal + tolerance
    return len(stream.runs) > 1 or any(b - a > limit for run in stream.runs for a, b in run.steps)


def _cut_short(ends: dict[str, tuple[float, float | None]], end: float, declared_end: float | None,
               nominal: float, tolerance: float) -> tuple[float, float] | None:
    """(where the file's lost tail begins, where its container says it ends), or None when
    nothing is missing from its end.

    ``ends`` gives each stream's (end of its last packet, end its own index declares, if it
    does). A stream whose packets stop short of its own declared end by more than the
    tolerance was cut; so was the file, when all its packets stop short of the end it declares.
    Streams of a cut file stop a little apart (the demuxer gives packets in time order and
    stops at the first missing one; a fragment holds each stream's media in one block): the
    tail is lost from the earliest end of a cut stream.
    """
    cut = [stop for stop, own in ends.values() if own is not None and own - stop > nominal + tolerance]
    if declared_end is not None and declared_end - end > nominal + tolerance:
        cut.append(end)
    if not cut:
        return None
    declared = [own for _, own in ends.values() if own is not None]
    return min(cut), max([end, *declared, *([] if declared_end is None else [declared_end])])


def _fold(cut: tuple[float, float], stops: dict[str, list[tuple[float, float]]]) -> tuple[float, float]:
    """The lost tail ``cut`` grown over every stream's stop that overlaps it, which are taken out
    of ``stops``: a stream stopping there is a stream the cut took, not a pause."""
    first, last = cut
    grown = True
    while grown:
        grown = False
        for kind, holes in stops.items():
            inside = [(a, b) for a, b in holes if a < last and b > first]
            if inside:
                stops[kind] = [hole for hole in holes if hole not in inside]
                first = min(first, *(a for a, _ in inside))
                last = max(last, *(b for _, b in inside))
                grown = True
    return first, last


def _merge(holes: dict[str, list[tuple[float, float]]], origin: float) -> list[InFileGap]:
    """One gap where all scanned streams stop; a stream's own gap where only it stops."""
    video = holes.get("video", [])
    audio = holes.get("audio", [])
    both = len(holes) == 2
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
    return gaps


def _hole(start: float, end: float, origin: float, stream: str | None) -> InFileGap:
    return InFileGap(
        start_offset=round(start - origin, 6), end_offset=round(end - origin, 6),
        duration=round(end - start, 6), stream=stream,
    )


_SILENCE_LINE = re.compile(rb"silence_(start|end): (-?[0-9.]+)")


def _counted_audio_short(holes: list[InFileGap], left_out: _Stream | _Sparse | None, codec: str, end: float,
                         origin: float, tolerance: float) -> list[InFileGap]:
    """``holes`` with counted audio that ends before unbroken video named as such (``"audio_counted"``).

    Audio whose times are counted from its samples and that ends short of the video may have
    stopped there, or stopped earlier and gone on, its samples closing up over the stretch it
    missed: nothing in the file tells which, so the gap is where the audio runs out, named as
    one whose place the file cannot give. QuickTime's audio was scanned (its stop at the end is
    among ``holes``); AVI's was ``left_out``, and its length counts only for PCM and ADPCM, whose
    byte counts give exact times.
    """
    tail = round(end - origin, 6)
    if left_out is None:
        return [replace(h, stream="audio_counted") if h.stream == "audio" and h.end_offset == tail else h
                for h in holes]
    if codec.startswith(_COUNTED_CODECS) and left_out.runs:
        stop = left_out.runs[-1].last + left_out.nominal
        if end - stop > left_out.nominal + tolerance:
            return [*holes, _hole(stop, end, origin, "audio_counted")]
    return holes


def _silent_audio(quiet: list[tuple[float, float]], paused: list[tuple[float, float]], kept: bool, end: float,
                  origin: float) -> list[InFileGap]:
    """The audio gaps that digital silence in counted audio beside video shows, at their place.

    ``quiet`` is in the audio's own counted time, ``paused`` the video's pauses. Audio left out
    (``kept`` false) beside paused video either ran on through each pause, its samples closing
    up, or was filled for it; when it ends short of the file's ``end`` it closed up, and each
    silent stretch is moved past the pauses before it. A silence within a video pause is part of
    that pause, already reported.
    """
    holes: list[InFileGap] = []
    closed_up = not kept and quiet and max(b for _, b in quiet) < end and paused
    for a, b in quiet:
        if closed_up:
            for stop, resume in paused:
                if a >= stop:
                    a, b = a + resume - stop, b + resume - stop
        if not any(a < resume and stop < b for stop, resume in paused):
            holes.append(_hole(max(a, origin), b, origin, "audio"))
    return holes


def _silences(path: Path, tolerance: float) -> list[tuple[float, float]]:
    """(start, end) of each stretch of digital silence longer than the tolerance in the first
    audio stream, on the audio's own time."""
    cmd = [
        FFMPEG, "-nostdin", "-hide_banner", "-nostats", "-v", "info", *input_args(path), "-map", "0:a:0",
        "-af", f"silencedetect=noise={_SILENCE_DB}dB:duration={tolerance}", "-f", "null", "-",
    ]  # fmt: skip
    stderr = run(cmd, limit=time_limit(path, decoding=True), fallback=f"ffmpeg failed on {path.name}", output="stderr")
    stretches: list[tuple[float, float]] = []
    start: float | None = None
    for kind, value in _SILENCE_LINE.findall(stderr):
        if kind == b"start":
            start = float(value)
        elif start is not None:
            stretches.append((start, float(value)))
            start = None
    return stretches

