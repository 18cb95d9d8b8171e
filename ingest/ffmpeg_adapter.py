"""The one module that runs ffmpeg and ffprobe.

Everything in ingest that needs the tools goes through here: :mod:`ingest.media`
(probing), :mod:`ingest.packets` (packet timestamps, silence), :mod:`ingest.derive`
(thumbnails, proxies, whose filter graphs are built with ffmpeg-python and run here) and
the capture code. A tool that is missing, fails or runs out of time raises the caller's
:class:`~ingest.errors.IngestError` subclass with the tool's own words; no ``OSError`` or
``ffmpeg.Error`` leaves this module.

Two defences hold for every run, because what the tools read is an uploader's file:

* **What a tool may open.** Evidence is opened with :func:`input_args` (or
  :func:`input_options` in a filter graph): as ``file:<path>``, with
  ``protocol_whitelist=file`` and ``format_whitelist`` set to :data:`READABLE_FORMATS`.
  ffmpeg's playlist and list demuxers (hls, dash, concat, tee, ...) open whatever files
  their text names, so an uploaded ``.m3u8`` naming ``/etc/...`` or another item's
  working copy would be read into evidence; off the list, they fail with "Format not on
  whitelist" before anything is followed, and the file is kept and flagged as unreadable.
* **How long a run may take.** Each run has a time limit (:func:`time_limit`): a floor plus
  seconds per GiB read, generous enough for a four-hour body-camera file. At the limit the
  tool is killed and the run fails with the ``time_limit`` reason
  (:data:`archive.work.STEP_REASONS`), so a file that makes a tool wait for ever (a live
  playlist reloading, a stalled read) cannot hold a worker thread and its lease.

The tools' own words are kept, without the worker's temporary directories and ffmpeg's
heap addresses (``[mov,mp4 @ 0x5631...]``): reasons are shown to users and sealed.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from archive.work import STEP_REASONS
from ingest.errors import IngestError, ProbeFailed

__all__ = [
    "DECODING", "FFMPEG", "FFPROBE", "READABLE_FORMATS", "READING", "Pace", "input_args", "input_options",
    "probe_json", "run", "run_graph", "stream", "time_limit", "tool_message",
]

FFPROBE = "ffprobe"
FFMPEG = "ffmpeg"

READABLE_FORMATS = (
    # Recordings: cameras, phones, interview rooms, DVRs, screen captures.
    "mov", "matroska", "mpegts", "mpeg", "avi", "flv", "asf", "h264", "hevc", "m4v", "dhav", "mxf", "dv",
    "mpegvideo", "cavsvideo", "avs2", "avs3", "vc1", "ivf", "rm", "nut", "yuv4mpegpipe",
    "mpjpeg", "mjpeg",  # IP cameras' multipart and raw MJPEG
    # Audio.
    "wav", "w64", "mp3", "aac", "ogg", "flac", "amr", "amrnb", "amrwb", "caf", "ac3", "eac3", "aiff", "au", "wv",
    # Stills (probed when named or sent as video; see ingest.pipeline). image2 reads a numbered
    # sequence only when the name holds a %d pattern; the working copy is always
    # "original.<letters and digits>", so here it reads that one file.
    "image2", "jpeg_pipe", "png_pipe", "tiff_pipe", "webp_pipe", "bmp_pipe", "gif",
)
"""The demuxers the tools may use on evidence: each reads the one file it is given. ffmpeg
matches any name of a demuxer's list (``mov`` admits ``mov,mp4,m4a,3gp,3g2,mj2``). Formats
that name other files or URLs (hls, dash, concat, tee, image sequences' lists...) and
guessing demuxers for arbitrary bytes (bin, bintext, tty) are deliberately absent."""


@dataclass(frozen=True, slots=True)
class Pace:
    """How long a tool may take over a file: a floor, plus time for every GiB it reads."""

    floor_seconds: float
    """Start-up and small files; also the whole limit when the file cannot be sized."""
    seconds_per_gib: float
    """Added for each GiB of the file read."""


READING = Pace(floor_seconds=60, seconds_per_gib=60)
"""Probes and packet scans, which read without decoding. Measured on a 2-core worker: a packet
scan of 73 MiB of 1080p H.264 at 10 Mb/s took 0.14 s (2 s per GiB; low bit rates have more
packets per byte, a cold disk reads at 100 MB/s or so): 30 times that, so a 4 GiB file has 300 s."""
DECODING = Pace(floor_seconds=120, seconds_per_gib=1200)
"""Proxies, thumbnail strips, silence detection and capture frames, which decode (the proxy
also encodes). Measured on a 2-core worker: the proxy of the same 73 MiB file took 9.8 s
(138 s per GiB at 10 Mb/s; about 700 s per GiB at 2 Mb/s, which packs five times the frames
in a GiB): a 4 GiB file has 82 minutes."""


def time_limit(path: Path, *, decoding: bool = False) -> float:
    """Seconds a run over ``path`` may take: :data:`DECODING` when it decodes, else :data:`READING`."""
    pace = DECODING if decoding else READING
    try:
        size = Path(path).stat().st_size
    except OSError:
        size = 0
    return pace.floor_seconds + pace.seconds_per_gib * size / (1 << 30)


def input_options() -> dict[str, str]:
    """The input options that confine a tool to one local file in a readable format (for
    ffmpeg-python's ``ffmpeg.input``; they go before the input's ``-i``)."""
    return {"format_whitelist": ",".join(READABLE_FORMATS), "protocol_whitelist": "file"}


def input_url(path: Path) -> str:
    """``path`` as the tools' ``file:`` URL: never read as another protocol (``concat:``,
    ``subfile,,...``) whatever the name."""
    return f"file:{Path(path).absolute()}"


def input_args(path: Path) -> list[str]:
    """``-i`` for ``path`` with :func:`input_options` before it (for a command line)."""
    args: list[str] = []
    for name, value in input_options().items():
        args += [f"-{name}", value]
    return [*args, "-i", input_url(path)]


# "/tmp/evidence-work-x1/original.mp4" and "file:/tmp/.../original.mp4" say "original.mp4";
# a URL's path ("https://host/a/b") is left alone.
_DIRECTORIES = re.compile(r"(?:\bfile:|(?<![\w:/.~-]))/(?:[^\s/:'\"]+/)+")
_ADDRESS = re.compile(r" @ 0x[0-9a-fA-F]+")
# Refusals repeat the whole of READABLE_FORMATS; "[hls] Format not on whitelist" says it.
_WHITELIST = re.compile(r"(not on whitelist) '[^']*'")


def tool_message(stderr: bytes | str | None, *, fallback: str) -> str:
    """Return the meaningful tail of a tool's stderr, or ``fallback`` when it said nothing.

    Directories and heap addresses are taken out: the message becomes a reason users see."""
    if isinstance(stderr, bytes):
        stderr = stderr.decode("utf-8", "replace")
    text = _WHITELIST.sub(r"\1", _ADDRESS.sub("", _DIRECTORIES.sub("", (stderr or "").strip())))
    if not text:
        return fallback
    # The last lines hold the fatal error; earlier ones are mostly per-packet noise.
    lines = text.splitlines()
    return "\n".join(lines[-5:])[-2000:]


def _cannot_start(cmd: list[str], exc: OSError, failure: type[IngestError]) -> IngestError:
    if isinstance(exc, FileNotFoundError):
        return failure(message=f"{cmd[0]} is not installed: {exc}")
    return failure(message=f"cannot run {cmd[0]}: {exc}")


def _stopped(cmd: list[str], limit: float, failure: type[IngestError]) -> IngestError:
    return failure(message=STEP_REASONS.say("time_limit", tool=Path(cmd[0]).name, limit=math.ceil(limit)))


def run(cmd: list[str], *, limit: float, fallback: str, failure: type[IngestError] = ProbeFailed,
        output: str = "stdout") -> bytes:
    """Run an ffmpeg/ffprobe command to its end, for at most ``limit`` seconds; its stdout (or
    stderr with ``output="stderr"``), or ``failure`` in the tool's words (``fallback`` if it
    said none), or the ``time_limit`` reason when it was killed at the limit."""
    try:
        proc = subprocess.run(cmd, capture_output=True, check=False, timeout=limit)
    except subprocess.TimeoutExpired as exc:  # subprocess.run has killed it and waited
        raise _stopped(cmd, limit, failure) from exc
    except OSError as exc:
        raise _cannot_start(cmd, exc, failure) from exc
    if proc.returncode != 0:
        failed = subprocess.CalledProcessError(proc.returncode, cmd, stderr=proc.stderr)
        raise failure(message=tool_message(proc.stderr, fallback=fallback)) from failed
    return proc.stdout if output == "stdout" else proc.stderr


def probe_json(path: Path) -> dict[str, Any]:
    """ffprobe's JSON description of ``path`` (format and streams); ProbeFailed otherwise."""
    stdout = run([FFPROBE, "-show_format", "-show_streams", "-of", "json", "-v", "error", *input_args(path)],
                 limit=time_limit(path), fallback=f"ffprobe could not read {path.name}")
    try:
        result: dict[str, Any] = json.loads(stdout.decode("utf-8"))
    except ValueError as exc:  # ffprobe printed something that is not JSON
        raise ProbeFailed(message=f"ffprobe output unreadable for {path.name}: {exc}") from exc
    return result


def run_graph(graph: Any, *, what: str, limit: float, failure: type[IngestError]) -> None:
    """Run an ffmpeg-python output graph quietly, overwriting its output, for at most ``limit`` seconds."""
    try:
        cmd = graph.global_args("-nostdin", "-v", "error").overwrite_output().compile(cmd=FFMPEG)
    except ValueError as exc:
        # ffmpeg-python validates the filter graph while compiling it.
        raise failure(message=f"cannot build the {what} filter graph: {exc}") from exc
    run(cmd, limit=limit, fallback=f"ffmpeg failed making the {what}", failure=failure)


@contextmanager
def stream(cmd: list[str], *, limit: float, fallback: str) -> Iterator[IO[bytes]]:
    """Run a long ffprobe/ffmpeg command; the block reads its stdout as it is written.

    When the block ends the tool is waited for, and ProbeFailed raised in its words if it
    failed, or with the ``time_limit`` reason if it was killed after ``limit`` seconds (its
    stdout then ends, so the block ends too). Its stderr goes to a file, not a pipe: a damaged
    file can make the tool write more than a pipe buffer of warnings while the block is still
    reading stdout.
    """
    with tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err)
        except OSError as exc:
            raise _cannot_start(cmd, exc, ProbeFailed) from exc
        stopped = threading.Event()

        def stop() -> None:
            stopped.set()
            proc.kill()

        timer = threading.Timer(limit, stop)
        timer.daemon = True
        timer.start()
        try:
            with proc:
                assert proc.stdout is not None
                yield proc.stdout
                code = proc.wait()
        finally:
            timer.cancel()
        if code != 0 and stopped.is_set():
            raise _stopped(cmd, limit, ProbeFailed)
        if code != 0:
            err.seek(0)
            stderr = err.read()
            failed = subprocess.CalledProcessError(code, cmd, stderr=stderr)
            raise ProbeFailed(message=tool_message(stderr, fallback=f"{fallback} ({code})")) from failed
