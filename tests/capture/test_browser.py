"""The capture's browser session (ingest.capture.browser.run_page) against a proxy of the test's
own: what Chromium asks for when it opens the officer's address. No stack, a few seconds."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from ingest.capture.browser import run_page
from ingest.capture.warc import WarcLog
from tests.browser.conftest import CHROMIUM


def test_an_http_address_is_opened_as_given_never_upgraded_to_https(tmp_path: Path) -> None:
    """An officer who inspects http://shop.example.com/ gets that page: the browser asks the
    proxy for it over plain HTTP and tries no HTTPS first (Chromium's HTTPS upgrades were on,
    since the capture's --disable-features replaced Playwright's, which turns them off: a site
    serving both was captured as its https:// page, and the WACZ listed no page at all)."""
    asked: list[tuple[str, str]] = []

    class Proxy(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_CONNECT(self) -> None:  # noqa: N802 - http.server naming
            asked.append(("CONNECT", self.path))
            self.send_response(502)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:  # noqa: N802
            asked.append(("GET", self.path))
            body = b"<html><head><title>shop</title></head><body>SHOP</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    warc = WarcLog(tmp_path / "capture.warc.gz", info={"software": "test"})
    try:
        session = run_page(url="http://shop.example.com/", seconds=0, cookies=[], workdir=tmp_path,
                           proxy_port=server.server_address[1], browser_path=str(CHROMIUM),
                           tools_dir=tmp_path / "tools", warc=warc)
    finally:
        warc.close()
        server.shutdown()
        server.server_close()
    assert session.error is None and session.final_url == "http://shop.example.com/", session
    assert session.title == "shop"
    assert ("CONNECT", "shop.example.com:443") not in asked, asked
    assert ("GET", "http://shop.example.com/") in asked, asked
