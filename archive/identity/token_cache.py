"""Bearer tokens recently checked, kept briefly per API process, and never trusted past a
change of any token, user or unit.

Every API request presents a token; checking it loads the token, its user and the user's
unit. This cache answers a token checked in the last :data:`TTL` seconds with one tiny
query instead: the number of ``auth_version``, which database triggers (revision 0018)
advance with every change of a row of ``api_tokens``, ``users`` or ``units`` (a token
revoked, a user disabled, a role, unit or second factor changed), however it was made (API,
CLI, SQL, another API process). An entry is used only at the number it was checked at, so a
change committed before a request asks is seen by that request. A token's expiry is checked
on every use, cached or not.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import inspect as sa_inspect
from sqlalchemy import select
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from archive.models import AuthVersion, Unit, User

TTL = 30.0
"""Seconds a checked token is answered from the cache (changes end it sooner)."""
SIZE = 10_000
"""Most tokens kept; the least recently used goes first."""


def _columns(row: Any) -> dict[str, Any]:
    return {a.key: getattr(row, a.key) for a in sa_inspect(type(row)).column_attrs}


@dataclass(frozen=True)
class _Entry:
    version: int
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


_VERSION = select(AuthVersion.n).where(AuthVersion.id == 1)
"""Built once: every authenticated request asks it (building it each time cost as much as
running it)."""


class TokenCache:
    """Checked tokens by their hash; see the module's text."""

    def __init__(self, *, ttl: float = TTL, size: int = SIZE) -> None:
        self.ttl, self.size = ttl, size
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self.hits = self.misses = 0

    @staticmethod
    def version(session: Session) -> int:
        """The current number of changes to tokens, users and units (take it before checking
        a token in the database; pass it to :meth:`get` and :meth:`keep`)."""
        return session.execute(_VERSION).scalar_one()

    def get(self, digest: str, version: int) -> tuple[User, datetime | None] | None:
        """The user holding the token with this hash, and the token's expiry, if it was checked
        lately and nothing changed since."""
        with self._lock:
            entry = self._entries.get(digest)
            if entry is None or entry.version != version or time.monotonic() - entry.kept_at > self.ttl:
                self.misses += 1
                return None
            self._entries.move_to_end(digest)
            self.hits += 1
        return entry.revive(), entry.expires_at

    def keep(self, digest: str, version: int, user: User, expires_at: datetime | None) -> None:
        """Remember a token just checked in the database at ``version``."""
        entry = _Entry(version=version, user=_columns(user), unit=_columns(user.unit), expires_at=expires_at,
                       kept_at=time.monotonic())
        with self._lock:
            self._entries[digest] = entry
            self._entries.move_to_end(digest)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
