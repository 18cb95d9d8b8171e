"""Case evidence lists recently written, kept per API process as the bytes sent, and never
served past a change of anything they show.

A page of a case's evidence list is the largest metadata read (a 200-item page is about half
a megabyte of JSON from four queries); reviewers, officers and their pages read the same
case's list over and over while little in it changes. A page is kept under the numbers of
``evidence_list_versions`` taken before it was read, which database triggers (revision 0024)
advance in the same transaction as every change of the case's items or their derived
objects (received, processed, sealed, flagged), and as content arriving that another case
holds (each item names its duplicates). A request asks those numbers first (one tiny query)
and is answered from here only at the numbers the page was kept at, so a change committed
before the request asks is seen by it, whichever process or worker made it.

What a page shows of other cases (duplicates) depends on who asks: admins see all cases,
others their unit's; a page is kept for that scope. The case itself is checked for the
caller (role, unit) on every request, cached or not.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

BUDGET = 64 * 1024 * 1024
"""Bytes of pages kept by one API process at most; the least recently used go first."""


@dataclass(frozen=True)
class Page:
    """A page as it was sent: its JSON and its ``Link`` to the next page, if any."""

    body: bytes
    link: str | None


class ListCache:
    """Pages by (case, cursor, page size, scope), each valid at the numbers it was kept at."""

    def __init__(self, *, budget: int = BUDGET) -> None:
        self.budget = budget
        self._lock = threading.Lock()
        self._pages: OrderedDict[tuple, tuple[tuple[int, int], Page]] = OrderedDict()
        self._bytes = 0
        self.hits = self.misses = 0

    def get(self, key: tuple, version: tuple[int, int]) -> Page | None:
        """The page kept under ``key`` if it was kept at ``version``."""
        with self._lock:
            kept = self._pages.get(key)
            if kept is None or kept[0] != version:
                self.misses += 1
                return None
            self._pages.move_to_end(key)
            self.hits += 1
            return kept[1]

    def keep(self, key: tuple, version: tuple[int, int], page: Page) -> None:
        """Remember a page read after its case's numbers were ``version``."""
        if len(page.body) > self.budget:
            return
        with self._lock:
            old = self._pages.pop(key, None)
            if old is not None:
                self._bytes -= len(old[1].body)
            self._pages[key] = (version, page)
            self._bytes += len(page.body)
            while self._bytes > self.budget:
                _, (_, dropped) = self._pages.popitem(last=False)
                self._bytes -= len(dropped.body)
