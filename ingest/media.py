"""Media facts from ffprobe: container, duration, streams, device tags, creation time.

ffprobe runs through :mod:`ingest.ffmpeg_adapter`, the one module that runs the tools.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ingest.errors import ProbeFailed
from ingest.ffmpeg_adapter import probe_json

__all__ = ["MediaFacts", "StreamFacts", "probe"]

# Tags in which cameras and phones record when the recording started, best first.
# QuickTime's creationdate carries the local zone, creation_time is usually UTC.
_CREATION_TAGS = ("creation_time", "com.apple.quicktime.creationdate", "date")


@dataclass(frozen=True, slots=True)
class StreamFacts:
    """One elementary stream as ffprobe sees it."""

    index: int
    """Stream index within the container."""
    codec_type: str
    """``video``, ``audio``, ``subtitle``, ``data`` or ``attachment``."""
    codec_name: str | None
    """Codec short name, e.g. ``h264``, ``aac``; None when ffprobe cannot tell."""
    width: int | None = None
    """Coded picture width in pixels (video only)."""
    height: int | None = None
    """Coded picture height in pixels (video only)."""
    frame_rate: float | None = None
    """Average frame rate in frames per second (video only)."""
    sample_rate: int | None = None
    """Samples per second (audio only)."""
    channels: int | None = None
    """Number of audio channels (audio only)."""
    duration_seconds: float | None = None
    """Stream duration in seconds when the container states one."""
    tags: dict[str, str] = field(default_factory=dict, hash=False)
    """Stream-level metadata tags (handler_name, language, vendor_id...)."""

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict of these facts."""
        return {
            "index": self.index,
            "codec_type": self.codec_type,
            "codec_name": self.codec_name,
            "width": self.width,
            "height": self.height,
            "frame_rate": self.frame_rate,
            "sample_rate": self.sample_rate,
            "channels": self.channels,
            "duration_seconds": self.duration_seconds,
            "tags": dict(self.tags),
        }


@dataclass(frozen=True, slots=True)
class MediaFacts:
    """What ffprobe says about one media file."""

    container: str
    """ffprobe's ``format_name``, e.g. ``mov,mp4,m4a,3gp,3g2,mj2`` or ``matroska,webm``."""
    duration_seconds: float | None
    """Container duration in seconds; None when the container does not state one."""
    bit_rate: int | None
    """Overall bit rate in bits per second, if known."""
    size: int
    """File size in bytes."""
    creation_time: datetime | None
    """Recording start from container or stream tags, in UTC; None if absent or unparseable."""
    device_tags: dict[str, str] = field(default_factory=dict, hash=False)
    """Container-level tags as found (make, model, encoder, com.apple.quicktime.*...)."""
    streams: tuple[StreamFacts, ...] = ()
    """Every stream in container order."""

    @property
    def has_video(self) -> bool:
        """True when at least one stream is video."""
        return any(s.codec_type == "video" for s in self.streams)

    @property
    def has_audio(self) -> bool:
        """True when at least one stream is audio."""
        return any(s.codec_type == "audio" for s in self.streams)

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict; ``creation_time`` is ISO 8601 UTC or None."""
        return {
            "container": self.container,
            "duration_seconds": self.duration_seconds,
            "bit_rate": self.bit_rate,
            "size": self.size,
            "creation_time": self.creation_time.isoformat() if self.creation_time else None,
            "device_tags": dict(self.device_tags),
            "streams": [s.as_dict() for s in self.streams],
        }


def probe(path: Path) -> MediaFacts:
    """Probe ``path`` with ffprobe and return its container and stream facts.

    Raises:
        ProbeFailed: the file is missing, empty, truncated, not media, or has no
            streams; the message is ffprobe's own explanation.
    """
    path = Path(path)
    raw = probe_json(path)

    fmt = raw.get("format") or {}
    raw_streams = raw.get("streams") or []
    if not fmt or not raw_streams:
        raise ProbeFailed(message=f"{path.name}: no media streams found")

    streams = tuple(_stream_facts(s) for s in raw_streams)
    device_tags = _str_tags(fmt.get("tags"))
    size = _int(fmt.get("size"))
    if size is None:
        size = path.stat().st_size
    return MediaFacts(
        container=str(fmt.get("format_name", "")),
        duration_seconds=_float(fmt.get("duration")),
        bit_rate=_int(fmt.get("bit_rate")),
        size=size,
        creation_time=_creation_time(device_tags, streams),
        device_tags=device_tags,
        streams=streams,
    )


def _stream_facts(s: dict[str, Any]) -> StreamFacts:
    kind = str(s.get("codec_type", "unknown"))
    # r_frame_rate is the nominal rate; avg_frame_rate is diluted by any timestamp gap.
    # Variable-rate streams report an absurd r_frame_rate (the time base), so cap it.
    rate = _rate(s.get("r_frame_rate"))
    if rate is None or rate > 240:
        rate = _rate(s.get("avg_frame_rate"))
    return StreamFacts(
        index=int(s.get("index", 0)),
        codec_type=kind,
        codec_name=s.get("codec_name"),
        width=_int(s.get("width")),
        height=_int(s.get("height")),
        frame_rate=rate if kind == "video" else None,
        sample_rate=_int(s.get("sample_rate")),
        channels=_int(s.get("channels")),
        duration_seconds=_float(s.get("duration")),
        tags=_str_tags(s.get("tags")),
    )


def _creation_time(
    device_tags: dict[str, str], streams: tuple[StreamFacts, ...]
) -> datetime | None:
    for tags in (device_tags, *(s.tags for s in streams)):
        for name in _CREATION_TAGS:
            parsed = _parse_time(tags.get(name))
            if parsed is not None:
                return parsed
    return None


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        # Containers write creation_time in UTC without saying so (ISO BMFF mvhd is UTC).
        return parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def _str_tags(tags: Any) -> dict[str, str]:
    if not isinstance(tags, dict):
        return {}
    return {str(k): str(v) for k, v in tags.items()}


def _rate(value: Any) -> float | None:
    if not value or not isinstance(value, str):
        return None
    num, _, den = value.partition("/")
    try:
        n = float(num)
        d = float(den) if den else 1.0
    except ValueError:
        return None
    if n <= 0 or d <= 0:
        return None
    return n / d


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
