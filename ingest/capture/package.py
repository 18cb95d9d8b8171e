"""Packaging a capture's WARC as a signed WACZ with the ``wacz`` tools.

``wacz create`` builds the package (CDXJ index, pages, datapackage) and asks a signing
server for ``signedData``, as the WACZ signing spec has it. The signing server is ours: a
one-request HTTP endpoint on 127.0.0.1, alive only while ``wacz`` runs, that signs with the
organisation's e-seal and time-stamps with the configured TSA (:mod:`signing.wacz`).
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import threading
import zipfile
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ingest.errors import IngestError

Sign = Callable[[str, str], dict[str, Any]]
"""(digest, created) -> signedData"""


class PackagingFailed(IngestError):
    """``wacz create`` failed or the package came out unsigned."""

    code = "packaging_failed"


def _signing_server(sign: Sign, token: str) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            scheme, _, given = self.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not secrets.compare_digest(given, token):
                self.send_error(403)
                return
            req = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            try:
                body = json.dumps(sign(req["hash"], req["created"])).encode()
            except Exception as exc:  # noqa: BLE001 - reported to wacz, which then leaves it unsigned
                self.send_error(400, str(exc)[:200])
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


def make_wacz(*, warc: Path, pages: Path, output: Path, url: str | None, title: str, sign: Sign,
              timeout: float = 600) -> dict[str, Any]:
    """Build ``output`` from ``warc`` and ``pages`` (pages.jsonl), signed; return its digest JSON."""
    token = secrets.token_hex(24)
    server = _signing_server(sign, token)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        # "--opt=value" throughout: a page title (chosen by the site) may begin with "-".
        main = [f"--url={url}"] if url else []  # the main page, when the target answered
        cmd = [sys.executable, "-m", "wacz", "create", f"--output={output}", f"--pages={pages}", *main,
               f"--title={title[:200] or url or 'inspection'}", "--hash-type=sha256",
               f"--signing-url=http://127.0.0.1:{server.server_address[1]}/sign", f"--signing-token={token}",
               "--", str(warc)]
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PackagingFailed(message=f"wacz create could not run: {exc}") from exc
    finally:
        server.shutdown()
        server.server_close()
    if proc.returncode != 0:
        raise PackagingFailed(message=f"wacz create failed: {proc.stderr.decode('utf-8', 'replace')[-1500:]}")
    try:
        with zipfile.ZipFile(output) as zf:
            digest = json.loads(zf.read("datapackage-digest.json"))
    except (OSError, KeyError, zipfile.BadZipFile, ValueError) as exc:
        raise PackagingFailed(message=f"wacz create made no readable package: {exc}") from exc
    if "signedData" not in digest:
        raise PackagingFailed(message="the WACZ came out unsigned: "
                              + proc.stderr.decode("utf-8", "replace")[-1500:])
    return digest
