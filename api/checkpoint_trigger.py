"""Sealing ledger checkpoints as the ledger grows: a throttled check after each API request.

A middleware beside :mod:`api.http` and :mod:`api.metrics`; requests only enqueue the work,
a worker seals.
"""

from __future__ import annotations

import logging
import threading
import time

from fastapi.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from api.deps import Services
from archive import work
from archive.custody.checkpoints import checkpoint_due

log = logging.getLogger(__name__)


class CheckpointTrigger:
    """Queues a checkpoint task when enough entries were appended (checked after requests).

    Requests never sign: they only look at two counters, at most once a second per
    process, and enqueue ``evidence.checkpoint`` when it is due.
    """

    def __init__(self, services: Services, *, min_interval: float = 1.0):
        self.services = services
        self.min_interval = min_interval
        self._last = 0.0
        self._lock = threading.Lock()

    def claim(self) -> bool:
        """Whether this request is the one to check now (at most one a ``min_interval``)."""
        now = time.monotonic()
        with self._lock:
            if now - self._last < self.min_interval:
                return False
            self._last = now
            return True

    def check(self) -> None:
        """Check now and enqueue when due; never raises into the request."""
        try:
            with self.services.db.read() as session:
                due = checkpoint_due(session, self.services.settings)
            if due:
                self.services.enqueue(work.CHECKPOINT)
        except Exception:  # noqa: BLE001 - the beat schedule catches up; a reply must not fail for this
            log.exception("could not check or enqueue a ledger checkpoint")


class CheckpointTriggerMiddleware:
    """Pure ASGI middleware running a :class:`CheckpointTrigger` after each API request.

    Pure ASGI (not ``BaseHTTPMiddleware``) so streamed uploads and downloads pass through
    untouched; the check runs after the response has been sent.
    """

    def __init__(self, app: ASGIApp, *, trigger: CheckpointTrigger):
        self.app = app
        self.trigger = trigger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)
        # Claimed here, in the event loop: only the one request a second that checks takes
        # a turn of the thread pool for it.
        if scope["type"] == "http" and scope["path"].startswith("/api/") and self.trigger.claim():
            await run_in_threadpool(self.trigger.check)
