"""The recording proxy the capture browser must use for every request.

Chromium is started with ``--proxy-server`` pointing here (and ``<-loopback>`` so not even
loopback bypasses it). Each request is sent on by :class:`~ingest.capture.fetch.Fetcher`
(which checks the policy on the address it connects to), recorded by the ``record``
callback exactly as received, and answered to the browser. Redirects are answered as
received, so the browser follows them through here and every hop is recorded. HTTPS is
intercepted (CONNECT, then TLS with a certificate of a per-capture authority the browser
context accepts); the real server's certificate is verified by the fetcher against the
system's roots and its chain recorded.
"""

from __future__ import annotations

import gzip
import ssl
import threading
import zlib
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from archive.scratch import scratch_dir
from archive.wording import Sentences
from ingest.capture.fetch import FetchFailed, Fetched, Fetcher, Refused

PROXY_ANSWERS = Sentences("capture_proxy", {
    "refused": "refused by the archive's capture policy: {reason}",
    "failed": "capture could not fetch this: {reason}",
})
"""What the recording proxy answers the browser for a request it refused or could not make (the
page the browser shows, in its screenshot too); the browser reads the reason back from it."""

Record = Callable[[Fetched], None]
Refusal = Callable[[str, str], None]
BROWSER_OWN = "x-goog-update-"
"""Headers that mark a request as the browser's own, not the page's: Chromium's component updater
(X-Goog-Update-AppId, -Interactivity, -Updater) still asks update.googleapis.com for components
it installs on demand, whatever its command line says. Such a request is not sent on and not
recorded: the inspection's WARC holds what the page asked for, and the workstation tells Google
nothing about itself."""
_HIDDEN = {"transfer-encoding", "content-encoding", "content-length", "connection", "keep-alive"}


def decoded(fetched: Fetched) -> bytes:
    """The payload as the browser should get it (content encoding undone)."""
    encoding = next((v.strip().lower() for k, v in fetched.headers if k.lower() == "content-encoding"), "")
    try:
        if encoding == "gzip":
            return gzip.decompress(fetched.body)
        if encoding == "deflate":
            try:
                return zlib.decompress(fetched.body)
            except zlib.error:
                return zlib.decompress(fetched.body, -zlib.MAX_WBITS)
    except (OSError, zlib.error, EOFError):
        return fetched.body
    return fetched.body


class _Certificates:
    """Per-host certificates for intercepted HTTPS, made on demand (this capture only)."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.lock = threading.Lock()
        self.contexts: dict[str, ssl.SSLContext] = {}

    def context(self, host: str) -> ssl.SSLContext:
        with self.lock:
            if host not in self.contexts:
                now = datetime.now(timezone.utc)
                name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host[:64])])
                try:
                    import ipaddress
                    san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
                except ValueError:
                    san = x509.DNSName(host)
                cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                        .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                        .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=1))
                        .add_extension(x509.SubjectAlternativeName([san]), critical=False)
                        .sign(self.key, hashes.SHA256()))
                path = self.directory / f"host-{len(self.contexts)}.pem"
                path.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + self.key.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                ctx.load_cert_chain(path)
                self.contexts[host] = ctx
            return self.contexts[host]


class RecordingProxy:
    """An HTTP(S) proxy on 127.0.0.1 that records every exchange; use as a context manager."""

    def __init__(self, fetcher: Fetcher, *, record: Record, refused: Refusal, failed: Refusal,
                 browser_own: Callable[[str], None] = lambda url: None):
        self.fetcher, self.record, self.refused, self.failed = fetcher, record, refused, failed
        self.browser_own = browser_own
        self._scratch = scratch_dir("capture-tls")  # its keys, too, must not outlive a killed worker
        self.certificates = _Certificates(self._scratch.__enter__())
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            scheme_host: str | None = None

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

            def do_CONNECT(self) -> None:  # noqa: N802 - http.server naming
                host = self.path.rsplit(":", 1)[0].strip("[]")
                self.send_response(200, "Connection Established")
                self.end_headers()
                try:
                    tls = proxy.certificates.context(host).wrap_socket(self.connection, server_side=True)
                except (ssl.SSLError, OSError):
                    self.close_connection = True
                    return
                self.connection = tls
                self.rfile = tls.makefile("rb", self.rbufsize)
                self.wfile = tls.makefile("wb")
                self.scheme_host = f"https://{self.path}" if not self.path.endswith(":443") else f"https://{host}"
                self.close_connection = False

            def _relay(self) -> None:
                url = self.path if self.scheme_host is None else f"{self.scheme_host}{self.path}"
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if any(k.lower().startswith(BROWSER_OWN) for k in self.headers.keys()):
                    proxy.browser_own(url)
                    self._answer(403, b"")
                    return
                try:
                    fetched = proxy.fetcher.fetch(self.command, url, list(self.headers.items()), body)
                except Refused as exc:
                    proxy.refused(url, exc.reason)
                    self._answer(403, PROXY_ANSWERS.say("refused", reason=exc.reason).encode())
                    return
                except FetchFailed as exc:
                    proxy.failed(url, exc.reason)
                    self._answer(502, PROXY_ANSWERS.say("failed", reason=exc.reason).encode())
                    return
                proxy.record(fetched)
                payload = decoded(fetched)
                self.send_response_only(fetched.status, fetched.reason or None)
                for k, v in fetched.headers:
                    if k.lower() not in _HIDDEN:
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            def _answer(self, status: int, text: bytes) -> None:
                self.send_response_only(status)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(text)))
                self.send_header("X-Evidence-Capture", "refused" if status == 403 else "failed")
                self.end_headers()
                self.wfile.write(text)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = do_PATCH = _relay

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, name="capture-proxy", daemon=True)

    def __enter__(self) -> RecordingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._scratch.__exit__(None, None, None)


__all__ = ["RecordingProxy", "decoded"]
