"""The one module that runs ffmpeg and ffprobe.

Everything in ingest that needs the tools goes through here: :mod:`ingest.media`
(probing), :mod:`ingest.packets` (packet timestamps, silence) and :mod:`ingest.derive`
(thumbnails, proxies, whose filter graphs are built with ffmpeg-python and run here).
A tool that is missing or fails raises the caller's :class:`~ingest.errors.IngestError`
subclass with the tool's own words; no ``OSError`` or ``ffmpeg.Error`` leaves this module.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from ingest.errors import IngestError, ProbeFailed

__all__ = ["FFMPEG", "FFPROBE", "probe_json", "run", "run_bounded", "run_graph", "stream", "tool_message"]

FFPROBE = "ffprobe"
FFMPEG = "ffmpeg"


def tool_message(stderr: bytes | str | None, *, fallback: str) -> str:
    """Return the meaningful tail of a tool's stderr, or ``fallback`` when it said nothing."""
    if isinstance(stderr, bytes):
        stderr = stderr.decode("utf-8", "replace")
    text = (stderr or "").strip()
    if not text:
        return fallback
    # The last lines hold the fatal error; earlier ones are mostly per-packet noise.
    lines = text.splitlines()
    return "\n".join(lines[-5:])[-2000:]


def _cannot_start(cmd: list[str], exc: OSError, failure: type[IngestError]) -> IngestError:
    if isinstance(exc, FileNotFoundError):
        return failure(message=f"{cmd[0]} is not installed: {exc}")
    return failure(message=f"cannot run {cmd[0]}: {exc}")


def run(cmd: list[str], *, fallback: str, failure: type[IngestError] = ProbeFailed, output: str = "stdout") -> bytes:
    """Run a short ffmpeg/ffprobe command to its end; its stdout (or stderr with
    ``output="stderr"``), or ``failure`` in the tool's words (``fallback`` if it said none)."""
    try:
        proc = subprocess.run(cmd, capture_output=True, check=False)
    except OSError as exc:
        raise _cannot_start(cmd, exc, failure) from exc
    if proc.returncode != 0:
        failed = subprocess.CalledProcessError(proc.returncode, cmd, stderr=proc.stderr)
        raise failure(message=tool_message(proc.stderr, fallback=fallback)) from failed
    return proc.stdout if output == "stdout" else proc.stderr


def probe_json(path: Path) -> dict[str, Any]:
    """ffprobe's JSON description of ``path`` (format and streams); ProbeFailed otherwise."""
    stdout = run([FFPROBE, "-show_format", "-show_streams", "-of", "json", "-v", "error", str(path)],
                 fallback=f"ffprobe could not read {path.name}")
    try:
        result: dict[str, Any] = json.loads(stdout.decode("utf-8"))
    except ValueError as exc:  # ffprobe printed something that is not JSON
        raise ProbeFailed(message=f"ffprobe output unreadable for {path.name}: {exc}") from exc
    return result


def run_graph(graph: Any, *, what: str, failure: type[IngestError]) -> None:
    """Run an ffmpeg-python output graph quietly, overwriting its output."""
    try:
        cmd = graph.global_args("-nostdin", "-v", "error").overwrite_output().compile(cmd=FFMPEG)
    except ValueError as exc:
        # ffmpeg-python validates the filter graph while compiling it.
        raise failure(message=f"cannot build the {what} filter graph: {exc}") from exc
    run(cmd, fallback=f"ffmpeg failed making the {what}", failure=failure)


@contextmanager
def stream(cmd: list[str], *, fallback: str) -> Iterator[IO[bytes]]:
    """Run a long ffprobe/ffmpeg command; the block reads its stdout as it is written.

    When the block ends the tool is waited for, and ProbeFailed raised in its words if it
    failed. Its stderr goes to a file, not a pipe: a damaged file can make the tool write
    more than a pipe buffer of warnings while the block is still reading stdout.
    """
    with tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err)
        except OSError as exc:
            raise _cannot_start(cmd, exc, ProbeFailed) from exc
        with proc:
            assert proc.stdout is not None
            yield proc.stdout
            code = proc.wait()
        if code != 0:
            err.seek(0)
            stderr = err.read()
            failed = subprocess.CalledProcessError(code, cmd, stderr=stderr)
            raise ProbeFailed(message=tool_message(stderr, fallback=f"{fallback} ({code})")) from failed


def run_bounded(cmd: list[str], *, timeout: float, fallback: str, failure: type[IngestError] = ProbeFailed) -> str:
    """Run a long ffmpeg command (a livestream recording) for at most ``timeout`` seconds.

    Returns its stderr (warnings: what it said about the stream); ``failure`` when it cannot
    start, is killed at the time limit, or fails."""
    try:
        proc = subprocess.run(cmd, capture_output=True, check=False, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise failure(message=f"{fallback}: still running after {timeout:.0f} s, stopped") from exc
    except OSError as exc:
        raise _cannot_start(cmd, exc, failure) from exc
    stderr = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0:
        raise failure(message=tool_message(stderr, fallback=fallback))
    return stderr
