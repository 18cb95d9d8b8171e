"""Bearer tokens recently checked, kept briefly per API process, and forgotten at once when
any token or user changes.

Every API request presents a token; checking it is a query (token, user and unit joined).
This cache answers a token seen in the last :data:`TTL` seconds without it. Revocation
stays immediate: PostgreSQL triggers (revision 0018) send a notification on the channel
:data:`CHANNEL` when a row of ``api_tokens`` or ``users`` changes (a token revoked, a user
disabled, a role, unit or second factor changed), however it changed (API, CLI, SQL), and
each process's listener empties its cache when it arrives (within milliseconds of the
commit). A token's expiry is checked on every use, cached or not.

The cache is used only while its listener is proven to hear: a round trip every
:data:`HEARTBEAT` seconds shows that every change committed before it was heard, and the cache
answers only within :data:`FRESH` seconds of the last one. A listener that lost its connection
empties the cache, and one whose connection went silent (a partition, a stalled server) stops
its answers within a second; every token is then checked in the database until it hears again. A check that began before a change and ends after its notification is not
kept (the generation counter), so a revoked token is never put back. On SQLite (the
embedded default: one process, a local file) nothing is cached.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import make_url
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from archive.models import Unit, User

log = logging.getLogger(__name__)

CHANNEL = "evidence_auth"
APPLICATION = "evidence-token-cache"
"""The listener connection's ``application_name`` (as ``pg_stat_activity`` shows it)."""
TTL = 30.0
"""Seconds a checked token is answered from the cache (changes empty it sooner)."""
SIZE = 10_000
"""Most tokens kept; the least recently used goes first."""
HEARTBEAT = 0.25
"""Seconds between the listener's round trips to the server."""
FRESH = 1.0
"""Seconds the cache answers after a round trip proved the listener hears every change."""


def _columns(row: Any) -> dict[str, Any]:
    return {a.key: getattr(row, a.key) for a in sa_inspect(type(row)).column_attrs}


@dataclass(frozen=True)
class _Entry:
    user: dict[str, Any]
    unit: dict[str, Any]
    expires_at: datetime | None
    kept_at: float

    def revive(self) -> User:
        """A detached user (with its unit) as the database gave it, for ``Session.merge(load=False)``."""
        unit = Unit(**self.unit)
        make_transient_to_detached(unit)
        user = User(**self.user)
        set_committed_value(user, "unit", unit)
        make_transient_to_detached(user)
        return user


class TokenCache:
    """Checked tokens by their hash; see the module's text."""

    def __init__(self, database_url: str, *, ttl: float = TTL, size: int = SIZE) -> None:
        url = make_url(database_url)
        self.enabled = url.get_backend_name() == "postgresql"
        self._dsn = url.set(drivername="postgresql").render_as_string(hide_password=False) if self.enabled else ""
        self.ttl, self.size = ttl, size
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._generation = 0
        self._heard_until = 0.0
        """Until when (monotonic) every change is known to have been heard."""
        self._pid: int | None = None
        self._closed = False
        self.hits = self.misses = 0

    # -- use ---------------------------------------------------------------------------

    def generation(self) -> int:
        """Take before checking a token in the database; pass to :meth:`keep`."""
        self._ensure_listener()
        return self._generation

    def get(self, digest: str) -> tuple[User, datetime | None] | None:
        """The user holding the token with this hash, and the token's expiry, if checked lately."""
        if not self.listening:
            return None
        with self._lock:
            entry = self._entries.get(digest)
            if entry is None or time.monotonic() - entry.kept_at > self.ttl:
                self.misses += 1
                return None
            self._entries.move_to_end(digest)
            self.hits += 1
        return entry.revive(), entry.expires_at

    def keep(self, digest: str, generation: int, user: User, expires_at: datetime | None) -> None:
        """Remember a token just checked in the database, unless something changed since
        ``generation`` was taken or nobody listens for changes."""
        entry = _Entry(user=_columns(user), unit=_columns(user.unit), expires_at=expires_at, kept_at=time.monotonic())
        with self._lock:
            if not self.listening or generation != self._generation:
                return
            self._entries[digest] = entry
            self._entries.move_to_end(digest)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def forget(self) -> None:
        """Empty the cache (a change was notified, or may have been missed)."""
        with self._lock:
            self._generation += 1
            self._entries.clear()

    # -- the listener --------------------------------------------------------------------

    def _ensure_listener(self) -> None:
        if not self.enabled or self._closed or self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()  # a forked child starts its own
            self._heard_until = 0.0
            self._entries.clear()
        threading.Thread(target=self._listen, name="token-cache-listener", daemon=True).start()

    def _listen(self) -> None:
        pause = 0.5
        while not self._closed:
            try:
                with psycopg.connect(self._dsn, autocommit=True, application_name=APPLICATION, connect_timeout=5,
                                     keepalives=1, keepalives_idle=10, keepalives_interval=5,
                                     keepalives_count=3) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.forget()  # what was kept before listening may be stale
                    pause = 0.5
                    while not self._closed:
                        # A round trip proves that every change committed before it began has
                        # been heard (the server sends notifications before it answers); a
                        # connection gone silent (a partition, a stalled server) proves
                        # nothing, and the cache stops answering within FRESH seconds.
                        began = time.monotonic()
                        conn.execute("SELECT 1")
                        for _ in conn.notifies(timeout=0):
                            self.forget()
                        self._heard_until = began + FRESH
                        for _ in conn.notifies(timeout=HEARTBEAT):
                            self.forget()
            except Exception as exc:  # noqa: BLE001 - any loss: stop caching, then listen again
                log.warning("token cache: not listening for changes (%s); tokens are checked in the database",
                            type(exc).__name__)
            self._heard_until = 0.0
            self.forget()
            if self._closed:
                return
            time.sleep(pause)
            pause = min(pause * 2, 10.0)

    @property
    def listening(self) -> bool:
        """True while the listener has lately proven that it hears every change."""
        return time.monotonic() < self._heard_until

    def close(self) -> None:
        """Stop caching and listening (the app shuts down): the listener's connection is closed
        at its next heartbeat."""
        self._closed = True
        self._heard_until = 0.0
        self.forget()
