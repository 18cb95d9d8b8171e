"""WARC 1.1 records of a capture, written with warcio (gzip per record, as WACZ expects).

Responses are recorded as received: status line, headers and payload with its content
encoding. The one change: a ``Transfer-Encoding`` header is kept as
``X-Archive-Orig-Transfer-Encoding`` because the payload is stored de-chunked (the
convention of pywb and the webrecorder tools, so replay does not de-chunk it twice).
"""

from __future__ import annotations

import io
import threading
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from ingest.capture.fetch import Fetched


def _warc_date(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class WarcLog:
    """Appends records to one ``.warc.gz`` file; thread-safe (the proxy serves in threads)."""

    def __init__(self, path: Path, *, info: dict[str, str]):
        self.path = path
        self._fh = path.open("wb")
        self._writer = WARCWriter(self._fh, gzip=True, warc_version="WARC/1.1")
        self._lock = threading.Lock()
        self.count = 0
        self._write(self._writer.create_warcinfo_record(path.name, info))

    def _write(self, record) -> None:  # type: ignore[no-untyped-def]
        with self._lock:
            self._writer.write_record(record)
            self.count += 1

    def exchange(self, f: Fetched) -> None:
        """The request as sent and the response as received, linked by WARC-Concurrent-To."""
        date = _warc_date(f.started)
        headers = [(f"X-Archive-Orig-{k}" if k.lower() == "transfer-encoding" else k, v) for k, v in f.headers]
        http = StatusAndHeaders(f"{f.status} {f.reason}".strip(), headers, protocol=f.http_version)
        warc_headers = {"WARC-Date": date}
        if f.peer:
            warc_headers["WARC-IP-Address"] = f.peer
        if f.truncated:
            warc_headers["WARC-Truncated"] = "length"  # WARC 1.1: the payload's first bytes only
        response = self._writer.create_warc_record(f.url, "response", payload=io.BytesIO(f.body),
                                                   length=len(f.body), http_headers=http,
                                                   warc_headers_dict=warc_headers)
        parts = urlsplit(f.url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        req_http = StatusAndHeaders(f"{f.method} {target}", f.request_headers, protocol="HTTP/1.1",
                                    is_http_request=True)
        request = self._writer.create_warc_record(
            f.url, "request", payload=io.BytesIO(f.request_body), length=len(f.request_body), http_headers=req_http,
            warc_headers_dict={"WARC-Date": date,
                               "WARC-Concurrent-To": response.rec_headers.get_header("WARC-Record-ID")})
        with self._lock:
            self._writer.write_record(response)
            self._writer.write_record(request)
            self.count += 2

    def resource(self, uri: str, content_type: str, data: bytes, moment: datetime) -> None:
        """A resource record (a DOM snapshot, a screenshot) under ``uri``."""
        self._write(self._writer.create_warc_record(
            uri, "resource", payload=io.BytesIO(data), length=len(data), warc_content_type=content_type,
            warc_headers_dict={"WARC-Date": _warc_date(moment)}))

    def close(self) -> None:
        """Flush and close the file."""
        with self._lock:
            self._fh.close()
