"""The byte format of custody-ledger entries: pure functions, standard library only.

Written once, here in the verifier, and used by both sides: the server's ledger
(``archive.custody.ledger``) writes entries with it, and the offline verifier recomputes
entry hashes and Merkle leaves with it on a court's machine, with no database library.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

GENESIS = "0" * 64
"""The ``prev_hash`` of the first entry."""

ENTRY_FIELDS = ("seq", "time", "actor", "case", "item", "action", "details", "prev")
"""The fields of a published entry, in the order they are documented."""


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
# json.dumps with these options builds a new encoder per call; ledger verification calls
# this once per entry, so one encoder is kept (same output as json.dumps, same options).


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no insignificant whitespace: one text per value."""
    return _CANONICAL.encode(value)


def entry_bytes(fields: dict[str, Any]) -> bytes:
    """The canonical bytes of an entry (without its own hash): chained and Merkle leaf."""
    return canonical_json({k: fields[k] for k in ENTRY_FIELDS}).encode()


def compute_entry_hash(fields: dict[str, Any]) -> str:
    """SHA-256 hex of an entry's canonical bytes."""
    return hashlib.sha256(entry_bytes(fields)).hexdigest()
