"""Throttling of failed sign-ins and invalid credentials, per client address and per account.

Counters live in a ``limits`` storage: Redis when the broker is Redis (every API process
counts together), memory on the embedded default (one API process). A moving window:
after ``max`` failures within ``window`` seconds, further attempts from that client (or
for that account) are refused with 429 before any credential is checked, so guessing
stops there, and the lock-out itself is a custody ledger entry (written by the caller).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from limits import RateLimitItemPerSecond
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from archive.errors import TooManyAttempts
from archive.settings import Settings

log = logging.getLogger(__name__)

_NAMESPACE = "evidence-signin"


@dataclass(frozen=True)
class Lockout:
    """A client address or an account that has just used up its failures."""

    scope: str
    """``client`` or ``account``."""
    key: str
    retry_after: int


class Throttle:
    """Failure counters for sign-in attempts; see the module docstring."""

    def __init__(self, *, storage_url: str, per_client: int, per_account: int, window_seconds: int):
        self._limiter = MovingWindowRateLimiter(storage_from_string(storage_url))
        self._limits = {
            "client": RateLimitItemPerSecond(per_client, window_seconds),
            "account": RateLimitItemPerSecond(per_account, window_seconds),
        }

    @classmethod
    def from_settings(cls, settings: Settings) -> Throttle:
        """The throttle the settings describe."""
        return cls(
            storage_url=settings.resolved_throttle_storage_url,
            per_client=settings.signin_max_failures_per_client,
            per_account=settings.signin_max_failures_per_account,
            window_seconds=settings.signin_failure_window_seconds,
        )

    def _keys(self, client: str | None, account: str | None) -> list[tuple[str, str]]:
        return [(scope, key) for scope, key in (("client", client), ("account", account)) if key]

    def _retry_after(self, scope: str, key: str) -> int:
        stats = self._limiter.get_window_stats(self._limits[scope], _NAMESPACE, scope, key)
        return max(1, math.ceil(stats.reset_time - time.time()))

    def check(self, *, client: str | None, account: str | None = None) -> None:
        """Raise TooManyAttempts while the client or the account is locked out."""
        for scope, key in self._keys(client, account):
            try:
                allowed = self._limiter.test(self._limits[scope], _NAMESPACE, scope, key)
                retry_after = 0 if allowed else self._retry_after(scope, key)
            except Exception:  # noqa: BLE001 - see _unavailable
                self._unavailable()
                return
            if not allowed:
                raise TooManyAttempts(f"too many failed attempts from this {scope}; try again later",
                                      retry_after=retry_after)

    def failed(self, *, client: str | None, account: str | None = None) -> list[Lockout]:
        """Count one failure; the lock-outs it started (each is reported once)."""
        started = []
        for scope, key in self._keys(client, account):
            limit = self._limits[scope]
            try:
                if self._limiter.hit(limit, _NAMESPACE, scope, key) and not self._limiter.test(limit, _NAMESPACE, scope, key):
                    started.append(Lockout(scope=scope, key=key, retry_after=self._retry_after(scope, key)))
            except Exception:  # noqa: BLE001 - see _unavailable
                self._unavailable()
        return started

    @staticmethod
    def _unavailable() -> None:
        # The counters' store (Redis) is down. Credentials are still checked in full; only
        # the guessing brake is off until it is back, so an outage of Redis does not lock
        # every officer out of uploading evidence. Logged for operators.
        log.warning("sign-in throttle storage unavailable; failures are not being counted", exc_info=True)
