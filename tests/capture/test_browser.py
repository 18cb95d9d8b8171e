"""The capture's browser session (ingest.capture.browser.run_page) against a proxy of the test's
own: what Chromium asks for when it opens the officer's address. No stack, a few seconds."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ingest.capture import browser
from ingest.capture.browser import run_page
from ingest.capture.warc import WarcLog
from tests.browser.conftest import CHROMIUM


def _proxy(answer, asked: list[tuple[str, str]] | None = None) -> ThreadingHTTPServer:  # type: ignore[no-untyped-def]
    """A proxy of the test's own on 127.0.0.1, serving: each GET (its absolute address) is answered
    by ``answer(path)``, a (status, headers, body) or None to answer nothing; CONNECT gets 502.
    Every request line goes into ``asked``."""

    class Proxy(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_CONNECT(self) -> None:  # noqa: N802 - http.server naming
            if asked is not None:
                asked.append(("CONNECT", self.path))
            self.send_response(502)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:  # noqa: N802
            if asked is not None:
                asked.append(("GET", self.path))
            reply = answer(self.path)
            if reply is None:
                return
            status, headers, body = reply
            self.send_response(status)
            for name, value in {"Content-Type": "text/html", **headers, "Content-Length": str(len(body))}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _open(tmp_path: Path, server: ThreadingHTTPServer, url: str) -> browser.PageSession:
    """``url`` opened by run_page through the proxy ``server``, which is stopped after."""
    warc = WarcLog(tmp_path / "capture.warc.gz", info={"software": "test"})
    try:
        return run_page(url=url, seconds=0, cookies=[], workdir=tmp_path, proxy_port=server.server_address[1],
                        browser_path=str(CHROMIUM), tools_dir=tmp_path / "tools", warc=warc)
    finally:
        warc.close()
        server.shutdown()
        server.server_close()


def test_an_http_address_is_opened_as_given_never_upgraded_to_https(tmp_path: Path) -> None:
    """An officer who inspects http://shop.example.com/ gets that page: the browser asks the
    proxy for it over plain HTTP and tries no HTTPS first (Chromium's HTTPS upgrades were on,
    since the capture's --disable-features replaced Playwright's, which turns them off: a site
    serving both was captured as its https:// page, and the WACZ listed no page at all)."""
    asked: list[tuple[str, str]] = []
    server = _proxy(lambda path: (200, {}, b"<html><head><title>shop</title></head><body>SHOP</body></html>"), asked)
    session = _open(tmp_path, server, "http://shop.example.com/")
    assert session.error is None and session.final_url == "http://shop.example.com/", session
    assert session.title == "shop"
    assert ("CONNECT", "shop.example.com:443") not in asked, asked
    assert ("GET", "http://shop.example.com/") in asked, asked


def test_the_browsers_own_requests_are_not_part_of_the_inspection(tmp_path: Path) -> None:
    """A capture of a page through the recording proxy holds the page's requests only: Chromium's
    component updater still POSTs to update.googleapis.com at start (with the workstation's OS,
    CPU and memory), which was fetched and recorded in the WARC (refused, and listed in the
    record's 拒绝访问, where the name does not resolve). Now it is not sent on, and listed apart."""
    from archive.inspections.policy import CapturePolicy, parse_networks
    from ingest.capture.fetch import Budget, Fetcher
    from ingest.capture.proxy import RecordingProxy
    from tests.capture.support import Site
    from warcio.archiveiterator import ArchiveIterator

    site = ThreadingHTTPServer(("127.0.0.1", 0), Site)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{site.server_address[1]}/static"
    fetcher = Fetcher(CapturePolicy(allowed=parse_networks("127.0.0.0/8")), Budget(max_total=1 << 26, max_response=1 << 24))
    warc = WarcLog(tmp_path / "capture.warc.gz", info={"software": "test"})
    refused: list[str] = []
    failed: list[str] = []
    own: list[str] = []
    try:
        with RecordingProxy(fetcher, record=warc.exchange, refused=lambda u, r: refused.append(u),
                            failed=lambda u, r: failed.append(u), browser_own=own.append) as proxy:
            session = run_page(url=url, seconds=2, cookies=[], workdir=tmp_path, proxy_port=proxy.port,
                               browser_path=str(CHROMIUM), tools_dir=tmp_path / "tools", warc=warc)
    finally:
        fetcher.close()
        warc.close()
        site.shutdown()
        site.server_close()
    assert session.error is None, session.error
    assert (refused, failed) == ([], []), (refused, failed)
    with (tmp_path / "capture.warc.gz").open("rb") as fh:
        captured = {r.rec_headers.get_header("WARC-Target-URI") for r in ArchiveIterator(fh) if r.rec_type == "response"}
    assert captured and all(u.startswith(url.rsplit("/", 1)[0]) for u in captured), captured
    assert all("googleapis" in u for u in own), own


def test_an_address_that_is_a_download_is_captured_not_failed(tmp_path: Path) -> None:
    """An officer who inspects the address of a file (an app, a document sent as an attachment)
    has it captured: the proxy fetched it whole into the WARC, and the session names it among its
    downloads. Before, the inspection ended 'failed' with Playwright's 'Download is starting'."""
    apk = {"Content-Type": "application/vnd.android.package-archive",
           "Content-Disposition": "attachment; filename=game.apk"}
    server = _proxy(lambda path: (200, apk, b"PK\x03\x04" + bytes(5000)))
    session = _open(tmp_path, server, "http://shop.example.com/game.apk")
    assert session.error is None, session.error
    assert session.downloads == [{"url": "http://shop.example.com/game.apk", "filename": "game.apk"}]


BUSY = b"<html><body>BUSY<script>setTimeout(() => { while (true) {} }, 100)</script></body></html>"


@pytest.mark.slow  # two Chromium sessions held by hostile pages until their bounds: about 30 s
@pytest.mark.parametrize("hostile", ["script never yields", "answer never ends"])
def test_a_hostile_page_cannot_hold_the_session(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hostile: str) -> None:
    """A page whose script loops for ever, or an address whose answer never ends (the recording
    proxy answers the browser only once the whole response is in, so a server trickling a byte at
    a time never answers), ends its session within its bounds, saying what failed. Before, the
    DOM snapshot (page.content(), and page.title()) waited without end: the inspection stayed
    'capturing' until the task's hard time limit (25 min) killed the worker, and then read
    'interrupted (worker lost)'."""
    monkeypatch.setattr(browser, "SNAPSHOT_SECONDS", 2.0)
    released = threading.Event()

    def answer(path: str) -> tuple[int, dict[str, str], bytes] | None:
        if path != "http://shop.example.com/":
            return 404, {}, b""
        if hostile == "answer never ends":
            released.wait(120)
            return None
        return 200, {}, BUSY

    server = _proxy(answer)
    warc = WarcLog(tmp_path / "capture.warc.gz", info={"software": "test"})
    ended: list[browser.PageSession] = []
    session = threading.Thread(target=lambda: ended.append(run_page(
        url="http://shop.example.com/", seconds=1, cookies=[], workdir=tmp_path, proxy_port=server.server_address[1],
        browser_path=str(CHROMIUM), tools_dir=tmp_path / "tools", warc=warc, nav_timeout=3)), daemon=True)
    started = time.monotonic()
    try:
        session.start()
        session.join(90)
    finally:
        released.set()
        server.shutdown()
        server.server_close()
    assert ended, f"the session with a page whose {hostile} still ran after {time.monotonic() - started:.0f} s"
    warc.close()
    # The loop starts 100 ms after load: the screenshot at start may still be taken, never both.
    expected = "screenshot at " if hostile == "script never yields" else "navigation failed"
    assert ended[0].error and ended[0].error.startswith(expected), ended[0].error
