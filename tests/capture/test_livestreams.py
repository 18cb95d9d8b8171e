"""Remote inspection of livestreams: a live HLS stream produced by ffmpeg, one that stalled, and a live
HTTP-FLV stream (an answer that never ends)."""

from __future__ import annotations

import subprocess
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.capture.support import content, continuity, embedded_only, inspect, new_case, warc_records
from tests.conftest import Stack

pytestmark = pytest.mark.slow


def _stalled_hls(directory: Path, *, seconds: int, hole_at: float) -> None:
    """A recorded HLS stream by ffmpeg (testsrc 160x90 + sine, 1 s segments) whose source
    stalled at ``hole_at``: the timestamps jump 4 s (nothing was sent for that stretch)."""
    directory.mkdir(parents=True, exist_ok=True)
    src = ["-f", "lavfi", "-i", "testsrc=size=160x90:rate=25", "-f", "lavfi", "-i", "sine=frequency=440"]
    enc = ["-c:v", "libx264", "-g", "25", "-preset", "ultrafast", "-c:a", "aac", "-shortest"]
    a, b = directory / "a.ts", directory / "b.ts"
    subprocess.run(["ffmpeg", "-v", "error", *src, "-t", str(hole_at), *enc, "-f", "mpegts", str(a)], check=True)
    subprocess.run(["ffmpeg", "-v", "error", *src, "-t", str(seconds - hole_at), *enc, "-output_ts_offset",
                    str(hole_at + 4), "-f", "mpegts", str(b)], check=True)
    joined = directory / "joined.ts"
    joined.write_bytes(a.read_bytes() + b.read_bytes())
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(joined), "-c", "copy", "-copyts", "-f", "hls", "-hls_time",
                    "1", "-hls_list_size", "0", "-hls_segment_filename", str(directory / "s%03d.ts"),
                    str(directory / "live.m3u8")], check=True)


@pytest.fixture(scope="module")
def streams(tmp_path_factory):
    """Two HLS streams served over HTTP on 127.0.0.1: a live one (ffmpeg producing 1 s segments
    in real time, a sliding playlist) and a recorded one whose source stalled for 4 s; and at
    /live.flv a live HTTP-FLV stream, made in real time for each client as long as it reads."""
    import functools
    from http.server import SimpleHTTPRequestHandler

    root = tmp_path_factory.mktemp("hls")
    (root / "live").mkdir()
    producer = subprocess.Popen(
        ["ffmpeg", "-v", "error", "-re", "-f", "lavfi", "-i", "testsrc=size=160x90:rate=25", "-f", "lavfi", "-i",
         "sine=frequency=440", "-t", "900", "-c:v", "libx264", "-g", "25", "-preset", "ultrafast", "-c:a", "aac",
         "-f", "hls", "-hls_time", "1", "-hls_list_size", "6", "-hls_flags", "delete_segments",
         "-hls_segment_filename", str(root / "live" / "s%05d.ts"), str(root / "live" / "live.m3u8")],
        stdin=subprocess.DEVNULL)
    _stalled_hls(root / "stall", seconds=10, hole_at=4)

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):  # noqa: ANN002
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server naming
            if self.path != "/live.flv":
                return super().do_GET()
            self.send_response(200)
            self.send_header("Content-Type", "video/x-flv")
            self.send_header("Connection", "close")
            self.end_headers()
            flv = subprocess.Popen(
                ["ffmpeg", "-v", "error", "-re", "-f", "lavfi", "-i", "testsrc=size=160x90:rate=25", "-f", "lavfi",
                 "-i", "sine=frequency=440", "-t", "900", "-c:v", "libx264", "-g", "25", "-preset", "ultrafast",
                 "-c:a", "aac", "-f", "flv", "-"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
            try:
                while chunk := flv.stdout.read1(65536):
                    self.wfile.write(chunk)
            except OSError:
                pass  # the client went: the stream ends for it
            finally:
                flv.kill()
                flv.wait()
                flv.stdout.close()

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    deadline = time.monotonic() + 30
    while not (root / "live" / "live.m3u8").exists() or (root / "live" / "live.m3u8").read_text().count("#EXTINF") < 3:
        assert time.monotonic() < deadline, "the live HLS producer did not start"
        time.sleep(0.2)
    yield f"http://127.0.0.1:{server.server_address[1]}"
    producer.terminate()
    producer.wait(10)
    server.shutdown()
    server.server_close()


def media_seconds(data: bytes, tmp: Path) -> float:
    path = tmp / "stream.mkv"
    path.write_bytes(data)
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def test_livestream_recorded_for_its_time(capture_stack: Stack, streams: str, tmp_path: Path) -> None:
    stack = capture_stack
    token = stack.user(role="officer", unit="unit-a")
    case = new_case(stack, token)
    got = inspect(stack, token, case, f"{streams}/live/live.m3u8", seconds=20)
    assert got["status"] == "done" and got["mode"] == "stream", got
    with stack.client(token) as c:
        wacz = c.get(f"/api/v1/evidence/{got['item']}").json()
    videos = [m for m in wacz["members"] if m["media_type"].startswith("video/")]
    assert len(videos) == 1, wacz["members"]
    assert media_seconds(content(stack, token, videos[0]["id"]), tmp_path) >= 19
    records = warc_records(content(stack, token, got["item"]))
    assert any(t == "response" and u.endswith("live.m3u8") and b"#EXTM3U" in body for t, u, _s, body in records)
    report = continuity(stack, token, case)
    assert not [g for g in report["gaps"] if g["level"] == "in_file"], report["gaps"]


@embedded_only
def test_livestream_stall_is_a_gap(capture_stack: Stack, streams: str) -> None:
    stack = capture_stack
    token = stack.user(role="officer", unit="unit-a")
    case = new_case(stack, token)
    got = inspect(stack, token, case, f"{streams}/stall/live.m3u8", seconds=12)
    assert got["status"] == "done", got
    report = continuity(stack, token, case)
    stalls = [g for g in report["gaps"] if g["level"] == "in_file" and g["item"] == got["item"]]
    assert stalls and 3 <= stalls[0]["duration_seconds"] <= 5, report["gaps"]




@embedded_only
def test_http_flv_livestream_recorded_for_its_time(capture_stack: Stack, streams: str, tmp_path: Path) -> None:
    """An HTTP-FLV livestream (the answer never ends) is recorded for its seconds, and its first
    bytes are in the WARC marked truncated. Before, the capture fetched the stream's address whole
    into the WARC before recording: it read until the response limit (64 MiB) failed the inspection
    with nothing recorded, and a slow stream held it until the worker was killed."""
    stack = capture_stack
    token = stack.user(role="officer", unit="unit-a")
    case = new_case(stack, token)
    got = inspect(stack, token, case, f"{streams}/live.flv", seconds=5, timeout=150)
    assert got["status"] == "done" and got["mode"] == "stream", (got["error"], got["summary"])
    with stack.client(token) as c:
        wacz = c.get(f"/api/v1/evidence/{got['item']}").json()
    [video] = [m for m in wacz["members"] if m["media_type"].startswith("video/")]
    assert media_seconds(content(stack, token, video["id"]), tmp_path) >= 4
    import io
    import zipfile

    from warcio.archiveiterator import ArchiveIterator

    with zipfile.ZipFile(io.BytesIO(content(stack, token, got["item"]))) as zf:
        heads = [rec.rec_headers.get_header("WARC-Truncated") for name in zf.namelist() if name.startswith("archive/")
                 for rec in ArchiveIterator(io.BytesIO(zf.read(name)))
                 if rec.rec_type == "response" and rec.rec_headers.get_header("WARC-Target-URI").endswith("/live.flv")]
    assert heads == ["length", "length"], heads  # at the start and at the end
