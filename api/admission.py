"""Admission: few requests at work at once in a server process, never more than it has
database connections (``EVIDENCE_API_REQUESTS_AT_WORK``, 3 by default).

Each request holds at most one pooled connection at a time, but it may hold it between two
turns of the thread pool: FastAPI resolves dependencies, runs a route and checks its answer in
separate turns. With more requests at work than connections, a burst once left every
connection held by requests waiting for a thread and every thread held by a request waiting
for a connection, until the pool's timeout answered 503 to the whole burst. Past this gate at
most ``slots`` requests are at work (no more than the pool's size, fewer than the thread
pool's 40); the others wait their turn, first come first served, which also keeps the
slowest answers of a burst close to the typical one. Few at once is faster too: a request's
work holds the interpreter's lock between its database round trips, and twenty threads
taking it in turns served a quarter fewer reads a second than three.

A request leaves the gate when its answer starts: its session has ended by then (the route's
session closes before the reply is sent), and a long download does not keep others waiting.
Evidence streaming in (:data:`api.http.STREAMED`) is not gated: it takes its connections in
short sessions between reads of the body, and has upload slots of its own. Nor is the
built-in time-stamping authority (``/tsa``): it uses no database, and a seal made while
answering a request may ask it for a time-stamp.
"""

from __future__ import annotations

import asyncio
from typing import Any

from api.http import HALF_CLOSED, streamed


CLIENT_GONE = "evidence.client_gone"
"""Scope key set when a request was dropped because its client left while it waited its turn
(counted as status 499, nginx's "client closed request", by :mod:`api.metrics`)."""


class AdmissionGate:
    """ASGI middleware: at most ``slots`` requests at work at once, the rest in arrival order.

    A request whose client leaves while it waits its turn is dropped unanswered: after a burst
    of clients that gave up, the next users do not wait behind work nobody will read. A client
    that only half-closed (sent its FIN, :data:`api.http.HALF_CLOSED`) counts as gone too when
    it is still waiting: from the server a half-close and a closed socket look the same."""

    def __init__(self, app: Any, *, slots: int):
        self.app = app
        self.slots = slots
        self._gate: asyncio.Semaphore | None = None  # made in the server's running loop

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or streamed(scope["method"], scope["path"]) or scope["path"] == "/tsa":
            await self.app(scope, receive, send)
            return
        if self._gate is None:
            self._gate = asyncio.Semaphore(self.slots)
        gate = self._gate
        received: list[dict[str, Any]] = []
        if gate.locked():
            if not await _admitted_unless_gone(gate, scope, receive, received):
                scope[CLIENT_GONE] = True
                half_closed = (scope.get("extensions") or {}).get(HALF_CLOSED)
                if half_closed is not None:
                    half_closed["drop"]()
                return
        else:
            await gate.acquire()
        held = True

        def leave() -> None:
            nonlocal held
            if held:
                held = False
                gate.release()

        async def send_leaving(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                leave()
            await send(message)

        async def receive_again() -> dict[str, Any]:
            return received.pop(0) if received else await receive()

        try:
            await self.app(scope, receive_again, send_leaving)
        finally:
            leave()


async def _admitted_unless_gone(gate: asyncio.Semaphore, scope: dict[str, Any], receive: Any,
                                received: list[dict[str, Any]]) -> bool:
    """Wait for a slot while watching the client: True once admitted (holding the slot), False
    if the client left (or half-closed) first. What the watch read of the request (its small
    body; routes whose body streams are not gated) is kept in ``received`` for the app, in order."""
    gone = asyncio.Event()

    async def watch() -> None:
        while True:
            message = await receive()
            received.append(message)
            if message["type"] == "http.disconnect" or HALF_CLOSED in (scope.get("extensions") or {}):
                gone.set()
                return

    watcher = asyncio.ensure_future(watch())
    admitted = asyncio.ensure_future(gate.acquire())
    left = asyncio.ensure_future(gone.wait())
    try:
        await asyncio.wait({admitted, left}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (watcher, left, admitted):
            if not task.done():
                task.cancel()
        await asyncio.gather(watcher, left, admitted, return_exceptions=True)
    got_slot = admitted.done() and not admitted.cancelled() and admitted.exception() is None
    if gone.is_set():
        if got_slot:
            gate.release()
        return False
    return got_slot
