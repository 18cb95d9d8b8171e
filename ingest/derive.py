"""Derived objects made with ffmpeg: a thumbnail strip and a browser-playable proxy.

The filter graphs are built here with ffmpeg-python and run by
:mod:`ingest.ffmpeg_adapter`. Derived files are new objects that name their original (design invariant 1): the source
is only ever read, and output goes to a temporary name beside ``dest`` that is renamed
into place once ffmpeg has succeeded, so no half-written file is ever seen at ``dest``.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import ffmpeg

from ingest.errors import DeriveFailed, ProbeFailed
from ingest.ffmpeg_adapter import input_options, input_url, run_graph, time_limit
from ingest.media import MediaFacts, StreamFacts, probe

__all__ = ["DerivedFile", "make_proxy", "make_thumbnail_strip"]

# ffmpeg closes a jump of more than 10 s in the timestamps of formats that may carry
# discontinuities (MPEG-TS, MPEG-PS), shifting the whole input when one stream meets it: a
# recorder's pause vanished from the proxy, or its video and audio parted. Past this threshold
# (a year) a jump forward, a pause, is kept as in the original, as every other container's is;
# a jump back (a restarted clock) is still closed, which lays the runs one after another, as
# the packet scan does. A reviewer plays the proxy at a gap's time.
_KEEP_PAUSES = ("-dts_delta_threshold", str(366 * 86400))


@dataclass(frozen=True, slots=True)
class DerivedFile:
    """A file written by one of the derive functions."""

    path: Path
    """Where it was written (the ``dest`` argument)."""
    media_type: str
    """``image/jpeg`` or ``video/mp4``."""
    size: int
    """Bytes written."""
    width: int | None
    """Picture width in pixels, when known."""
    height: int | None
    """Picture height in pixels, when known."""


def make_thumbnail_strip(source: Path, dest: Path, *, count: int = 8, width: int = 160) -> DerivedFile:
    """Write one JPEG at ``dest`` tiling ``count`` frames spread evenly across ``source``.

    Each frame is fetched by seeking, so a long recording is not decoded end to end.

    Raises:
        DeriveFailed: the source has no video, cannot be read, or ffmpeg fails.
    """
    source, dest = Path(source), Path(dest)
    if count < 1 or width < 2:
        raise DeriveFailed(message=f"invalid strip geometry: count={count}, width={width}")
    facts = _probe_source(source, dest)
    video = _first_video(facts, source)
    duration = facts.duration_seconds or video.duration_seconds or 0.0
    # Identical seek points would make identical graph nodes, which ffmpeg-python
    # refuses to reuse; a source without a known duration gives a one-frame strip.
    points = sorted({round(duration * (i + 0.5) / count, 3) for i in range(count)}) if duration > 0 else [0.0]
    try:
        _write_strip(source, dest, points, width)
    except DeriveFailed:
        # What cannot be sought in (a raw H.264 stream, a still image, a transport stream
        # whose only key frame is its first) still shows its first picture, read from the start.
        _write_strip(source, dest, [None], width)
    return _derived(dest, "image/jpeg")


def _write_strip(source: Path, dest: Path, points: list[float | None], width: int) -> None:
    """The frames at ``points`` (seconds; None: the first, without seeking) tiled in a row."""
    frames = []
    for at in points:
        seek = {} if at is None else {"ss": f"{at:.3f}"}
        frames.append(
            ffmpeg.input(input_url(source), **seek, **input_options())
            .video.trim(end_frame=1)
            .setpts("PTS-STARTPTS")
            .filter("scale", width, -2)
            .filter("setsar", 1)
        )
    joined = frames[0] if len(frames) == 1 else ffmpeg.concat(*frames, v=1, a=0)
    tiled = joined.filter("tile", f"{len(frames)}x1")
    with _atomic(dest) as tmp:
        graph = tiled.output(str(tmp), vframes=1, **{"q:v": 4, "f": "image2", "update": 1})
        _run(graph, tmp, source, what="thumbnail strip")


def make_proxy(source: Path, dest: Path, *, max_height: int = 480) -> DerivedFile:
    """Write a browser-playable MP4 proxy of ``source`` at ``dest``.

    H.264 (libx264, yuv420p) no taller than ``max_height``, AAC audio when the source
    has any, and the index at the front (+faststart) so playback starts before the
    download ends. Its timeline is the original's, pauses included (see ``_KEEP_PAUSES``).

    Raises:
        DeriveFailed: the source has no video, cannot be read, or ffmpeg fails.
    """
    source, dest = Path(source), Path(dest)
    if max_height < 2:
        raise DeriveFailed(message=f"invalid max_height {max_height}")
    facts = _probe_source(source, dest)
    _first_video(facts, source)
    inp = ffmpeg.input(input_url(source), **input_options())
    # Even dimensions: yuv420p subsamples chroma by two in both directions.
    scaled = inp["v:0"].filter("scale", -2, f"trunc(min(ih,{max_height})/2)*2")
    streams = [scaled]
    audio_args: dict[str, object] = {}
    if facts.has_audio:
        streams.append(inp["a:0"])
        audio_args = {"acodec": "aac", "audio_bitrate": "96k", "ac": 2}
    with _atomic(dest) as tmp:
        graph = ffmpeg.output(
            *streams,
            str(tmp),
            vcodec="libx264",
            preset="veryfast",
            crf=26,
            pix_fmt="yuv420p",
            movflags="+faststart",
            f="mp4",
            **audio_args,
        ).global_args(*_KEEP_PAUSES)
        _run(graph, tmp, source, what="proxy")
    return _derived(dest, "video/mp4")


def _derived(dest: Path, media_type: str) -> DerivedFile:
    # Dimensions are read back rather than predicted: ffmpeg's rounding of "-2" sizes
    # is not worth re-deriving.
    width = height = None
    try:
        for stream in probe(dest).streams:
            if stream.codec_type == "video":
                width, height = stream.width, stream.height
                break
    except ProbeFailed as exc:
        raise DeriveFailed(message=f"derived {media_type} is unreadable: {exc.message}") from exc
    return DerivedFile(
        path=dest, media_type=media_type, size=dest.stat().st_size, width=width, height=height
    )


def _probe_source(source: Path, dest: Path) -> MediaFacts:
    if source.resolve() == dest.resolve():
        raise DeriveFailed(message="refusing to write a derived file over its source")
    try:
        return probe(source)
    except ProbeFailed as exc:
        raise DeriveFailed(message=f"cannot read {source.name}: {exc.message}") from exc


def _first_video(facts: MediaFacts, source: Path) -> StreamFacts:
    for stream in facts.streams:
        if stream.codec_type == "video":
            return stream
    raise DeriveFailed(message=f"{source.name} has no video stream")


def _run(graph, tmp: Path, source: Path, *, what: str) -> None:
    run_graph(graph, what=what, limit=time_limit(source, decoding=True), failure=DeriveFailed)
    if not tmp.exists() or tmp.stat().st_size == 0:
        raise DeriveFailed(message=f"ffmpeg produced no {what}")


@contextmanager
def _atomic(dest: Path) -> Iterator[Path]:
    # The temporary name keeps the extension, which ffmpeg uses to pick the muxer.
    tmp = dest.with_name(f".{dest.stem}.partial{dest.suffix}")
    try:
        yield tmp
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
