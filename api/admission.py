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

from api.http import streamed


class AdmissionGate:
    """ASGI middleware: at most ``slots`` requests at work at once, the rest in arrival order."""

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

        try:
            await self.app(scope, receive, send_leaving)
        finally:
            leave()
