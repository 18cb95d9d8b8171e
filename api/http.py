"""The HTTP edge: limits on request heads, and an answer to a body that ends early.

Two pieces, both needed whatever runs behind them:

* :class:`RequestGuard`, the outermost ASGI middleware, refuses a request head with more
  than ``max_header_fields`` fields, a line longer than ``max_header_line_bytes`` or more
  than ``max_header_bytes`` in all with 431 ``headers_too_large`` before any route runs.
  It also turns "the client stopped sending before its body was complete" (see below) into
  the ASGI ``http.disconnect`` every route already treats as a broken body.
  Every other body is bounded as well: a request body that is not evidence streaming in
  (JSON, forms) may hold at most ``max_body_bytes``. A larger ``Content-Length`` is answered
  413 ``too_large`` at once; a body without one is read up to the bound before the app sees
  it, so a client without a token cannot make the server hold hundreds of megabytes before
  its 401. Evidence routes (:data:`STREAMED`) stream without this bound: their bodies go to
  storage as they arrive, never into memory.
* :func:`uvicorn_config` serves the app with uvicorn's own HTTP protocols (httptools, or
  h11 without it), subclassed for two things uvicorn does not do:

  - it bounds the bytes a connection may send before its head is complete (httptools
    has no limit of its own; h11's answers a plain-text 400), answering the same JSON 431;
  - on a half-close (the client's ``shutdown(SHUT_WR)``) it keeps the connection open to
    write the answer. uvicorn's ``eof_received`` returns None, so asyncio closes the
    transport and the app's reply is dropped: a client that sent 10 of its 1,000 declared
    bytes and half-closed got no answer at all. RFC 9112 section 9.6 says a half-close ends
    the request, not the client's interest in the response (uvicorn issue #1264).
    A socket the client closed whole looks the same from here (a FIN), so a request that
    has not started work yet offers the admission gate a way to drop it
    (:data:`HALF_CLOSED`): a burst of clients that gave up does not leave seconds of work
    for nobody behind it, as nginx drops a request whose client closed (its status 499).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from archive.settings import Settings

BODY_ENDED_EARLY = "evidence.body_ended_early"
"""Scope extension set by the protocol when the client half-closed mid-body."""

HALF_CLOSED = "evidence.half_closed"
"""Scope extension set by the protocol when the client sent its FIN after a whole request
that is not answered yet: ``{"drop": callable}`` ends the connection without an answer, for
a request that has not started work (the client may have closed its socket whole)."""

HEADERS_TOO_LARGE = "headers_too_large"
TOO_LARGE = "too_large"

STREAMED = (
    ("POST", re.compile(r"/api/v1/cases/[^/]+/evidence/?")),
    ("POST", re.compile(r"/api/v1/uploads/?")),
    ("PATCH", re.compile(r"/api/v1/uploads/[^/]+/?")),
)
"""Routes whose body is evidence, streamed to storage (tus and direct uploads): not bounded
by ``max_body_bytes``."""

# Bytes a client may send before its head is complete: the configured head size, plus one
# socket read (asyncio and uvloop read up to 256 KiB), since a read holding a whole head
# and the start of a body is counted before the parser splits it.
_READ_SLACK = 256 * 1024 + 4096
_LINGER_SECONDS = 2.0


@dataclass(frozen=True)
class HeadLimits:
    """How large a request head may be (from the ``max_header_*`` settings)."""

    fields: int
    line_bytes: int
    total_bytes: int
    body_bytes: int = 1024 * 1024
    """Most bytes of a body that is not streamed evidence."""

    @classmethod
    def of(cls, settings: Settings) -> HeadLimits:
        return cls(settings.max_header_fields, settings.max_header_line_bytes, settings.max_header_bytes,
                   settings.max_body_bytes)

    @property
    def unparsed_bytes(self) -> int:
        """Most bytes a connection may send before its head is parsed."""
        return self.total_bytes + _READ_SLACK

    def problem(self, scope: dict[str, Any]) -> str | None:
        """Why the head in ``scope`` is too large, or None when it is within the limits."""
        headers = scope.get("headers") or []
        if len(headers) > self.fields:
            return f"{len(headers)} header fields; at most {self.fields} are allowed"
        target = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"") + 1
        request_line = len(scope.get("method", "")) + target + len(" HTTP/1.1")
        if request_line > self.line_bytes:
            return f"the request line is {request_line} bytes; at most {self.line_bytes} are allowed"
        total = request_line + 2
        for name, value in headers:
            line = len(name) + 2 + len(value)
            if line > self.line_bytes:
                return (f"header field {name[:64].decode('latin-1')!r} is {line} bytes; "
                        f"at most {self.line_bytes} are allowed per field")
            total += line + 2
        if total > self.total_bytes:
            return f"the request head is {total} bytes; at most {self.total_bytes} are allowed"
        return None


def _error_body(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


def streamed(method: str, path: str) -> bool:
    """Whether ``method path`` takes evidence as its body (not bounded by ``max_body_bytes``)."""
    return any(method == m and pattern.fullmatch(path) for m, pattern in STREAMED)


async def _refuse(send: Any, status: int, code: str, message: str) -> None:
    body = _error_body(code, message)
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]})
    await send({"type": "http.response.body", "body": body})


class RequestGuard:
    """Outermost ASGI middleware: head limits (431), body limits (413) and bodies that ended early."""

    def __init__(self, app: Any, *, limits: HeadLimits):
        self.app = app
        self.limits = limits

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = self.limits.problem(scope)
        if problem is not None:
            await _refuse(send, 431, HEADERS_TOO_LARGE, f"request header fields too large: {problem}")
            return

        cut_short = False

        async def guarded_receive() -> dict[str, Any]:
            nonlocal cut_short
            if cut_short:
                return {"type": "http.disconnect"}
            message = await receive()
            if (message["type"] == "http.request" and not message.get("more_body", False)
                    and BODY_ENDED_EARLY in (scope.get("extensions") or {})):
                # The protocol ended the body at the client's half-close: not a complete body.
                # The bytes that did arrive are passed on first (a tus upload keeps them).
                cut_short = True
                if message.get("body"):
                    return {**message, "more_body": True}
                return {"type": "http.disconnect"}
            return message

        if streamed(scope["method"], scope["path"]):
            await self.app(scope, guarded_receive, send)
            return
        limit = self.limits.body_bytes
        too_large = (f"the request body is larger than {limit} bytes; evidence is uploaded with tus "
                     f"(/api/v1/uploads) or POST /api/v1/cases/{{id}}/evidence")
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(send, 413, TOO_LARGE, too_large)
            return
        # Read the (small) body before the app sees it, counting: a body without a length is
        # refused at the first byte past the bound, not after it was held in memory.
        messages: list[dict[str, Any]] = []
        size = 0
        while True:
            message = await guarded_receive()
            messages.append(message)
            if message["type"] != "http.request":
                break  # the client left: the app sees the disconnect as it would have
            size += len(message.get("body", b""))
            if size > limit:
                await _refuse(send, 413, TOO_LARGE, too_large)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> dict[str, Any]:
            return messages.pop(0) if messages else await guarded_receive()

        await self.app(scope, replay, send)


def _content_length(scope: dict[str, Any]) -> int | None:
    for name, value in scope.get("headers") or []:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the protocol refuses it before here
    return None


class _Edge:
    """What both protocol subclasses add to uvicorn's (see the module docstring)."""

    limits: HeadLimits
    _head_bytes = 0
    _refused = False

    def eof_received(self) -> bool | None:
        cycle = getattr(self, "cycle", None)
        if self._refused:
            return None
        if cycle is None or cycle.response_complete or cycle.disconnected:
            return None  # nothing awaits an answer: close, as uvicorn does
        extensions = cycle.scope.setdefault("extensions", {})
        if cycle.more_body:
            extensions[BODY_ENDED_EARLY] = {}
            cycle.more_body = False
        elif not cycle.response_started:
            extensions[HALF_CLOSED] = {"drop": lambda: self._drop_unanswered(cycle)}
        cycle.message_event.set()  # wakes a receive() waiting on the client (the admission gate's)
        cycle.keep_alive = False  # answer, then close
        return True  # keep the transport open for writing

    def _drop_unanswered(self, cycle: Any) -> None:
        cycle.disconnected = True  # uvicorn then writes nothing for the request
        self.transport.close()  # type: ignore[attr-defined]

    def _write_error(self, status: int, reason: str, code: str, message: str) -> None:
        body = _error_body(code, message)
        self.transport.write(  # type: ignore[attr-defined]
            f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode() + body
        )

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to an unparsable request, in the one error shape (not plain text)."""
        self._write_error(400, "Bad Request", "bad_request", msg)
        self.transport.close()  # type: ignore[attr-defined]

    def _count_head(self, data: bytes) -> bool:
        """Count ``data`` towards an unfinished head; False (after answering 431) when too much."""
        if self._refused:
            return False  # lingering: drop what the client still sends
        self._head_bytes += len(data)
        if self._head_bytes <= self.limits.unparsed_bytes:
            return True
        self._refused = True
        transport = self.transport  # type: ignore[attr-defined]
        cycle = getattr(self, "cycle", None)
        if cycle is not None and not cycle.response_complete:
            transport.close()  # a response is under way: no room for ours
            return False
        self._write_error(431, "Request Header Fields Too Large", HEADERS_TOO_LARGE,
                          f"request header fields too large: the request head exceeds {self.limits.total_bytes} bytes")
        # Lingering close: closing with unread bytes would reset the connection and the
        # client would lose the answer, so read and drop the rest for a moment first.
        self.loop.call_later(_LINGER_SECONDS, transport.close)  # type: ignore[attr-defined]
        return False


def _httptools_protocol(limits: HeadLimits) -> type:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class GuardedHttpTools(_Edge, HttpToolsProtocol):
        _in_body = False

        def data_received(self, data: bytes) -> None:
            if not self._in_body and not self._count_head(data):
                return
            super().data_received(data)

        def on_headers_complete(self) -> None:
            self._in_body, self._head_bytes = True, 0
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._in_body = False
            super().on_message_complete()

    GuardedHttpTools.limits = limits
    return GuardedHttpTools


def _h11_protocol(limits: HeadLimits) -> type:
    class GuardedH11(_Edge, H11Protocol):
        def data_received(self, data: bytes) -> None:
            if self.conn.their_state is h11.IDLE and not self._count_head(data):
                return
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:
                self._head_bytes = 0

    GuardedH11.limits = limits
    return GuardedH11


def http_protocol(settings: Settings, implementation: str = "auto") -> type:
    """uvicorn's HTTP protocol class (``auto``: httptools when installed, else h11) with our edge."""
    limits = HeadLimits.of(settings)
    if implementation == "h11":
        return _h11_protocol(limits)
    try:
        return _httptools_protocol(limits)
    except ImportError:
        if implementation == "httptools":
            raise
        return _h11_protocol(limits)


def uvicorn_config(app: Any, settings: Settings, *, http: str = "auto", **kwargs: Any) -> uvicorn.Config:
    """The uvicorn configuration every entry point (``evidence serve``, the tests) serves with.

    Several server processes (``workers`` > 1) need ``app`` as an import string; the protocol is
    then named by :data:`ENV_PROTOCOL`, which each process builds from its environment (a class
    made here cannot be sent to a spawned process)."""
    several = kwargs.get("workers", 1) > 1
    return uvicorn.Config(
        app, http=ENV_PROTOCOL if several else http_protocol(settings, http),
        # Above our own bound, so h11's plain-text refusal never comes first.
        h11_max_incomplete_event_size=HeadLimits.of(settings).unparsed_bytes + _READ_SLACK,
        **kwargs,
    )


ENV_PROTOCOL = "api.http:EnvProtocol"
"""Import string of the protocol class for the settings in the environment (``auto``)."""


def __getattr__(name: str) -> Any:
    if name == "EnvProtocol":
        from archive.settings import load_settings

        return http_protocol(load_settings())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
