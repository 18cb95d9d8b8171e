"""A small WACZ of one page, made at test time: a WARC written by warcio, packaged by
``wacz create`` (the same tool the capture uses), unsigned."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter


def make_wacz(directory: Path, *, url: str, html: str, title: str) -> Path:
    """``directory/capture.wacz`` holding ``html`` as the answer to ``url``, listed as its page."""
    body = html.encode("utf-8")
    warc = directory / "page.warc.gz"
    with warc.open("wb") as fh:
        writer = WARCWriter(fh, gzip=True)
        http = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                                           ("Content-Length", str(len(body)))], protocol="HTTP/1.1")
        record = writer.create_warc_record(url, "response", payload=io.BytesIO(body), length=len(body),
                                            http_headers=http)
        writer.write_record(record)
        when = record.rec_headers.get_header("WARC-Date")
    pages = directory / "pages.jsonl"
    lines = [{"format": "json-pages-1.0", "id": "pages", "title": "All Pages"},
             {"id": "page-1", "url": url, "title": title, "ts": when}]
    pages.write_text("".join(json.dumps(line) + "\n" for line in lines), "utf-8")
    output = directory / "capture.wacz"
    subprocess.run([sys.executable, "-m", "wacz", "create", f"--output={output}", f"--pages={pages}",
                    f"--url={url}", f"--title={title}", "--", str(warc)], check=True, capture_output=True, timeout=120)
    return output
