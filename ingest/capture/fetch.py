"""The capture's only way onto the network: an HTTP client that checks every address it
connects to against the :class:`~archive.inspections.policy.CapturePolicy`, records what it
sent and received byte for byte (content encodings kept), the peer address, the DNS answers
and each TLS host's certificate chain, and stops at the download budget."""

from __future__ import annotations

import ssl
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpcore
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from archive.inspections.policy import CapturePolicy, Refused
from archive.models import utcnow
from archive.wording import Sentences

__all__ = ["Budget", "FetchFailed", "Fetched", "Fetcher", "Refused"]

HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer",
              "host", "content-length"}
DECODABLE = "gzip, deflate"
"""What the fetcher asks servers for: the encodings it can decode for the browser."""


FETCH_PROBLEMS = Sentences("capture_fetch", {
    "scheme": "{scheme} scheme: only http and https are captured",
    "download_limit": "download limit of {limit} bytes reached",
    "response_limit": "response larger than {limit} bytes",
    "timed_out": "{host}: timed out ({detail})",
    "unreachable": "{host}: {detail}",
}, fields={"limit": r"\d+", "host": r"[^\s:]+"})
"""Why a capture's request was refused or failed (a :class:`Refused`'s or :class:`FetchFailed`'s
reason); said in Chinese in the inspection record, the network's own words (``detail``) as they are."""


class FetchFailed(Exception):
    """The server could not be reached or answered unreadably; ``reason`` says how."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class Budget:
    """The download budget of one inspection (shared by every request and the stream)."""

    max_total: int
    max_response: int
    used: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def take(self, n: int) -> None:
        """Count ``n`` more bytes; FetchFailed when the inspection's budget is spent."""
        with self.lock:
            self.used += n
            if self.used > self.max_total:
                raise FetchFailed(FETCH_PROBLEMS.say("download_limit", limit=self.max_total))


@dataclass
class Fetched:
    """One request as sent and its response as received."""

    method: str
    url: str
    request_headers: list[tuple[str, str]]
    request_body: bytes
    status: int
    reason: str
    http_version: str
    headers: list[tuple[str, str]]
    body: bytes
    """The payload as received (content encoding kept; transfer encoding removed)."""
    peer: str | None
    started: datetime
    tls_chain: list[str] = field(default_factory=list)
    truncated: bool = False
    """Only the payload's first bytes were read (``fetch``'s ``keep``): a stream that never ends."""


class _PolicyBackend(httpcore.SyncBackend):
    """Resolves, checks and connects in one place, so the address checked is the one used."""

    def __init__(self, policy: CapturePolicy, dns: dict[str, list[str]]):
        self.policy, self.dns = policy, dns

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Any = None) -> httpcore.NetworkStream:
        addresses = self.policy.resolve(host, port)  # Refused propagates to the caller
        self.dns.setdefault(host, addresses)
        error: Exception | None = None
        for address in addresses:
            try:
                return super().connect_tcp(address, port, timeout=timeout, local_address=local_address,
                                           socket_options=socket_options)
            except httpcore.ConnectError as exc:
                error = exc
        raise error or httpcore.ConnectError(f"cannot connect to {host}")


def _chain_pem(ssl_object: Any) -> list[str]:
    raw = getattr(ssl_object, "_sslobj", ssl_object)
    chain = getattr(raw, "get_unverified_chain", None)
    certs = []
    try:
        if chain is not None:
            certs = [c.public_bytes(ssl._ssl.ENCODING_PEM) for c in chain()]  # type: ignore[attr-defined]
        else:
            der = ssl_object.getpeercert(binary_form=True)
            certs = [x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM).decode()] if der else []
    except (AttributeError, ValueError):
        der = ssl_object.getpeercert(binary_form=True)
        certs = [x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM).decode()] if der else []
    return certs


class Fetcher:
    """The HTTP client of one inspection. Thread-safe enough for one browser's requests."""

    def __init__(self, policy: CapturePolicy, budget: Budget, *, timeout: float = 30.0,
                 extra_roots: str | None = None):
        self.policy, self.budget, self.timeout = policy, budget, timeout
        self.dns: dict[str, list[str]] = {}
        self.tls: dict[str, list[str]] = {}
        context = ssl.create_default_context()
        if extra_roots:
            context.load_verify_locations(cafile=extra_roots)
        self._pool = httpcore.ConnectionPool(ssl_context=context,
                                             network_backend=_PolicyBackend(policy, self.dns), retries=0)

    def close(self) -> None:
        """Close every connection."""
        self._pool.close()

    def fetch(self, method: str, url: str, headers: list[tuple[str, str]], body: bytes = b"", *,
              keep: int | None = None) -> Fetched:
        """Send one request (no redirect followed) and read its whole response, or with ``keep``
        its first ``keep`` bytes at most (a live stream's answer never ends; ``truncated`` says so).

        Raises :class:`Refused` when the destination is not allowed and
        :class:`FetchFailed` when it cannot be reached, is too large or the budget is spent.
        """
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise Refused(FETCH_PROBLEMS.say("scheme", scheme=parts.scheme or "no"))
        sent = [(k, v) for k, v in headers if not k.startswith(":") and k.lower() not in HOP_BY_HOP
                and k.lower() != "accept-encoding"]
        sent = [("Host", parts.netloc), *sent, ("Accept-Encoding", DECODABLE)]
        started = utcnow()
        try:
            with self._pool.stream(method, url, headers=sent, content=body or None,
                                   extensions={"timeout": {"connect": self.timeout, "read": self.timeout,
                                                           "write": self.timeout, "pool": self.timeout}}) as resp:
                # Asked before the body is read: a stream cut short (``keep``) closes its connection.
                stream = resp.extensions.get("network_stream")
                peer = None
                if stream is not None:
                    addr = stream.get_extra_info("server_addr")
                    peer = addr[0] if addr else None
                    ssl_object = stream.get_extra_info("ssl_object")
                    if ssl_object is not None and parts.hostname not in self.tls:
                        self.tls[parts.hostname] = _chain_pem(ssl_object)
                chunks, size, truncated = [], 0, False
                for chunk in resp.iter_stream():
                    if keep is not None and size + len(chunk) > keep:
                        chunk, truncated = chunk[:keep - size], True
                    size += len(chunk)
                    if size > self.budget.max_response:
                        raise FetchFailed(FETCH_PROBLEMS.say("response_limit", limit=self.budget.max_response))
                    self.budget.take(len(chunk))
                    chunks.append(chunk)
                    if truncated:
                        break
                reason = resp.extensions.get("reason_phrase", b"").decode("latin-1")
                version = resp.extensions.get("http_version", b"HTTP/1.1").decode("ascii")
                received = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in resp.headers]
        except Refused:
            raise
        except httpcore.TimeoutException as exc:
            raise FetchFailed(FETCH_PROBLEMS.say("timed_out", host=parts.hostname, detail=exc)) from exc
        except (httpcore.ConnectError, httpcore.NetworkError, httpcore.ProtocolError, OSError) as exc:
            raise FetchFailed(FETCH_PROBLEMS.say("unreachable", host=parts.hostname, detail=exc or type(exc).__name__)) from exc
        return Fetched(method=method, url=url, request_headers=sent, request_body=body, status=resp.status,
                       reason=reason, http_version=version, headers=received, body=b"".join(chunks), peer=peer,
                       started=started, tls_chain=self.tls.get(parts.hostname, []), truncated=truncated)
