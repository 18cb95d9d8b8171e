"""Recording a livestream (HLS or HTTP-FLV) for the set time with ffmpeg.

The playlist (or the stream's first bytes) is fetched through the policy-checking fetcher
into the WARC at the start and the end; ffmpeg records the stream itself (stream copy,
Matroska) after the stream's host was checked against the policy. Frames at the start and
the end stand in for screenshots. The recording's own continuity (a stall in the stream is
a jump in its timestamps) is scanned by the ordinary pipeline once it is evidence.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from archive.inspections.policy import CapturePolicy, Refused
from archive.models import utcnow
from archive.settings import Settings
from ingest.capture.browser import CAPTURE_PROBLEMS, PageSession
from ingest.capture.fetch import Budget, FetchFailed, Fetched, Fetcher
from ingest.errors import IngestError
from ingest.ffmpeg_adapter import FFMPEG, input_args, run, time_limit


HEAD_BYTES = 256 * 1024
"""How much of the stream's address is fetched into the WARC at the start and the end: a whole
HLS playlist; of an HTTP-FLV stream, whose answer never ends, its first bytes (the WARC record
says it was truncated). Reading it whole held the capture until the response limit failed it,
before anything was recorded."""


def _head(fetcher: Fetcher, url: str, record: Any) -> Fetched:
    fetched = fetcher.fetch("GET", url, [("User-Agent", "evidence-archive inspection")], keep=HEAD_BYTES)
    record(fetched)
    return fetched


def run_stream(*, url: str, seconds: int, workdir: Path, fetcher: Fetcher, record: Any, policy: CapturePolicy,
               budget: Budget, settings: Settings) -> PageSession:
    """Record ``url`` for ``seconds`` of media; errors end up in the session, never raised."""
    session = PageSession(started=utcnow(), browser_version="ffmpeg (stream copy)")
    parts = urlsplit(url)
    try:
        _head(fetcher, url, record)
        policy.resolve(parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80))
    except Refused as exc:
        session.error, session.ended = CAPTURE_PROBLEMS.say("refused", reason=exc.reason), utcnow()
        return session
    except FetchFailed as exc:
        session.error, session.ended = CAPTURE_PROBLEMS.say("failed", reason=exc.reason), utcnow()
        return session
    out = workdir / "stream.mkv"
    remaining = max(budget.max_total - budget.used, 1 << 20)
    cmd = [FFMPEG, "-nostdin", "-v", "warning", "-rw_timeout", "15000000",
           "-protocol_whitelist", "http,https,tcp,tls,crypto", "-i", url, "-map", "0", "-c", "copy",
           "-t", str(seconds), "-fs", str(remaining), "-f", "matroska", "-y", str(out)]
    try:
        # The network stream is this recording's point (its own protocols above); -t ends it.
        run(cmd, limit=seconds * 2 + 60, fallback="ffmpeg could not record the stream", output="stderr")
    except IngestError as exc:
        session.error = CAPTURE_PROBLEMS.say("stream_failed", detail=exc.message)
    session.ended = utcnow()
    if out.exists() and out.stat().st_size:
        budget.used += out.stat().st_size
        session.video = out
        for moment, args in (("start", ["-ss", "0"]), ("end", ["-sseof", "-1"])):
            png = workdir / f"screenshot-{moment}.png"
            try:
                run([FFMPEG, "-nostdin", "-v", "error", *args, *input_args(out), "-frames:v", "1", "-y", str(png)],
                    limit=time_limit(out, decoding=True), fallback="no frame")
                session.screenshots.append(png)
            except IngestError:
                pass
    try:
        _head(fetcher, url, record)
    except (Refused, FetchFailed):
        pass
    session.final_url = url
    return session
