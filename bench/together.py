"""Run bench workers together and time them from the moment all are ready."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any


def run_together(workers: Sequence[Any], ready: Any) -> float:
    """Start ``workers`` (threads or processes, each waiting at the barrier ``ready`` before it
    works), pass the barrier with them and wait for all; the seconds from the barrier on."""
    for w in workers:
        w.start()
    ready.wait()
    t0 = time.perf_counter()
    for w in workers:
        w.join()
    return time.perf_counter() - t0
