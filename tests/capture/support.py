"""Shared by the inspection tests: a local website (HTTP and HTTPS), a stack whose captures may
reach 127.0.0.0/8, and helpers to ask for an inspection and read what it produced."""

from __future__ import annotations

import io
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from warcio.archiveiterator import ArchiveIterator

from tests.conftest import Stack, own_stack

PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e0e5d2b50000000049454e44ae426082")


class Site(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # noqa: ANN002
        pass

    def _send(self, status: int, body: bytes = b"", ctype: str = "text/html; charset=utf-8", **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers.items():
            self.send_header(k.replace("_", "-"), v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/static":
            self._send(200, "<html><head><title>静态页</title></head><body><p>店铺名称：测试书店</p>"
                       "<img src='/logo.png'></body></html>".encode())
        elif self.path.startswith("/long/"):
            self._send(200, "<html><head><title>长地址</title></head><body><p>LONG-ADDRESS</p></body></html>".encode())
        elif self.path == "/logo.png":
            self._send(200, PNG, "image/png")
        elif self.path == "/changing":
            self._send(200, b"<html><body><p id=s>ORIGINAL-TEXT</p><script>setTimeout(function(){"
                       b"fetch('/later').then(r=>r.text()).then(t=>{document.getElementById('s').textContent=t})},300)"
                       b"</script></body></html>")
        elif self.path == "/later":
            self._send(200, b"CHANGED-BY-SCRIPT", "text/plain")
        elif self.path == "/hop1":
            self._send(302, Location="/hop2")
        elif self.path == "/hop2":
            self._send(301, Location="/static")
        elif self.path == "/members":
            if "session=s3cret" in (self.headers.get("Cookie") or ""):
                self._send(200, b"<html><body>MEMBERS-ONLY-AREA</body></html>")
            else:
                self._send(403, b"<html><body>please sign in</body></html>")
        elif self.path == "/to-metadata":
            self._send(302, Location="http://169.254.169.254/latest/meta-data/")
        else:
            self._send(404, b"not here")


@pytest.fixture(scope="package")
def site():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Site)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="package")
def tls_site(tmp_path_factory):
    """The same site over HTTPS with a certificate of a test CA (trusted by the capture through
    EVIDENCE_CAPTURE_EXTRA_ROOTS); yields (url, CA file, leaf PEM)."""
    import datetime
    import ipaddress
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    tmp = tmp_path_factory.mktemp("tls")
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test Site CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(2).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = lambda c: c.public_bytes(serialization.Encoding.PEM)  # noqa: E731
    (tmp / "ca.pem").write_bytes(pem(ca))
    (tmp / "site.pem").write_bytes(pem(leaf) + pem(ca) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp / "site.pem")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Site)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}", tmp / "ca.pem", pem(leaf).decode()
    server.shutdown()
    server.server_close()


embedded_only = pytest.mark.parametrize("capture_stack", ["embedded"], indirect=True)
"""For a test of the capture itself (policy, timing, TLS, stalls), which the stack does not
change: the end-to-end tests run on both stacks, these on the embedded default only."""


@pytest.fixture(scope="package", params=["embedded", "services"])
def capture_stack(request, tmp_path_factory, tls_site):
    with own_stack(request, tmp_path_factory, "capture",
                   extra_env={"EVIDENCE_CAPTURE_ALLOW_NETWORKS": "127.0.0.0/8",
                              "EVIDENCE_CAPTURE_EXTRA_ROOTS": str(tls_site[1])}) as s:
        yield s


def new_case(stack: Stack, token: str) -> dict:
    with stack.client(token) as c:
        r = c.post("/api/v1/cases", json={"case_number": f"INS-{uuid.uuid4().hex[:10]}", "title": "网络巡查"})
        assert r.status_code == 201, r.text
        return r.json()


def inspect(stack: Stack, token: str, case: dict, url: str, *, seconds: int = 2, timeout: float = 240, **extra) -> dict:
    with stack.client(token) as c:
        r = c.post(f"/api/v1/cases/{case['id']}/inspections",
                   json={"url": url, "device_id": "ws-01", "seconds": seconds, "note": "巡查", **extra})
        assert r.status_code == 202, r.text
        assert r.json()["status"] == "queued"
        deadline = time.monotonic() + timeout
        while True:
            got = c.get(f"/api/v1/inspections/{r.json()['id']}").json()
            if got["status"] in ("done", "failed"):
                return got
            assert time.monotonic() < deadline, got
            time.sleep(0.5)


def content(stack: Stack, token: str, item_id: str) -> bytes:
    with stack.client(token) as c:
        r = c.get(f"/api/v1/evidence/{item_id}/content")
        assert r.status_code == 200, r.text
        return r.content


def record_text(stack: Stack, token: str, record_id: str) -> str:
    """The text of an inspection record PDF (远程勘验笔录), its lines joined."""
    from pypdf import PdfReader

    pdf = PdfReader(io.BytesIO(content(stack, token, record_id)))
    return "".join(p.extract_text() for p in pdf.pages).replace("\n", "")


def warc_records(wacz: bytes) -> list[tuple[str, str, int | None, bytes]]:
    out = []
    with zipfile.ZipFile(io.BytesIO(wacz)) as zf:
        for name in zf.namelist():
            if name.startswith("archive/"):
                for rec in ArchiveIterator(io.BytesIO(zf.read(name))):
                    status = rec.http_headers.get_statuscode() if rec.http_headers and rec.rec_type == "response" else None
                    out.append((rec.rec_type, rec.rec_headers.get_header("WARC-Target-URI"),
                                int(status) if status else None, rec.content_stream().read()))
    return out


def validate_wacz(path: Path, roots_pem: bytes, tmp: Path) -> subprocess.CompletedProcess:
    """`wacz validate --verify-auth` against a verify server (authsign's Verifier) trusting our roots."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    certs = x509.load_pem_x509_certificates(roots_pem)
    fps = [c.fingerprint(hashes.SHA256()).hex() for c in certs]
    roots = tmp / "roots.yaml"
    roots.write_text("domain_cert_roots:\n" + "".join(f"  - {f}\n" for f in fps)
                     + "timestamp_cert_roots:\n" + "".join(f"  - {f}\n" for f in fps))
    verifier = tmp / "verify_server.py"
    verifier.write_text(
        "import datetime, sys, json\nfrom http.server import *\nfrom authsign.verifier import Verifier\n"
        "v = Verifier(sys.argv[1], cert_duration=datetime.timedelta(days=3650))\n"
        "class H(BaseHTTPRequestHandler):\n"
        "    def do_POST(self):\n"
        "        body = json.loads(self.rfile.read(int(self.headers['Content-Length'])))\n"
        "        try:\n            ok = v(body)\n        except Exception:\n            ok = None\n"
        "        self.send_response(200 if ok else 400); self.send_header('Content-Length','0'); self.end_headers()\n"
        "s = HTTPServer(('127.0.0.1', 0), H)\nprint(s.server_address[1], flush=True)\ns.serve_forever()\n")
    proc = subprocess.Popen([sys.executable, str(verifier), str(roots)], stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())
        return subprocess.run([sys.executable, "-m", "wacz", "validate", "-f", str(path), "--verify-auth",
                               "--verifier-url", f"http://127.0.0.1:{port}/verify"],
                              capture_output=True, text=True, timeout=120)
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def continuity(stack: Stack, token: str, case: dict) -> dict:
    with stack.client(token) as c:
        deadline = time.monotonic() + 120
        while True:
            report = c.get(f"/api/v1/cases/{case['id']}/continuity").json()
            if not report["pending"]:
                return report
            assert time.monotonic() < deadline, report
            time.sleep(0.5)


