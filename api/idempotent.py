"""The ``Idempotency-Key`` header on the routes that create things (see :mod:`archive.idempotency`).

A route computes its request's fingerprint, enters :func:`idempotent` (``async with``), answers a replay
with :func:`replayed` and otherwise records its answer with
:func:`archive.idempotency.record_reply` in the transaction that commits what it created.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import anyio
from fastapi import Depends, Header, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from archive import idempotency
from archive.db import Database
from api.deps import refuse_repeated_header

log = logging.getLogger(__name__)

REPLAYED = "Idempotent-Replayed"
"""Response header marking an answer given again for a retried request."""

REPLAY_DOC = {"headers": {REPLAYED: {
    "description": "`true` when this is the recorded answer to an earlier request with the same Idempotency-Key",
    "schema": {"type": "string", "enum": ["true"]},
}}}
"""OpenAPI description of a creating route's success answer (``responses={201: REPLAY_DOC}``)."""


async def _one_idempotency_key(request: Request, key: Annotated[str | None, Header(
    alias="Idempotency-Key",
    description=(
        "Makes a retry safe (IETF draft-ietf-httpapi-idempotency-key-header): the same key and "
        "request again get the first success again (marked `Idempotent-Replayed: true`) and create "
        "nothing new; 409 `idempotency_key_in_use` while the first request still runs; 422 "
        "`idempotency_key_reused` for a different request; 422 `invalid_idempotency_key` unless "
        "8-255 characters of letters, digits and . _ ~ : + / = - (quoted or not), sent once. Keys are per "
        "user and remembered for 24 hours after the answer; a failed request keeps nothing and "
        "frees its key."
    ),
)] = None) -> str | None:
    """The request's ``Idempotency-Key``. The draft makes the header one Structured Field item:
    a request carrying it more than once is refused (422 ``invalid_idempotency_key``), before
    the route reads its body, rather than being served with one of its keys picked silently."""
    refuse_repeated_header(request, "Idempotency-Key", code="invalid_idempotency_key")
    return key


IdempotencyKeyHeader = Annotated[str | None, Depends(_one_idempotency_key)]
"""A creating route's ``Idempotency-Key`` (None: not sent), given to :func:`idempotent`."""


@asynccontextmanager
async def idempotent(
    db: Database, *, user_id: str, header: str | None, fingerprint: str,
) -> AsyncIterator[idempotency.Claim | None]:
    """Claim the request's key for the ``async with`` block (None: no key was sent).

    A claim whose ``replay`` is set is an answer already given. When the block raises,
    the request kept nothing and its claim is released so a retry runs again. The database
    work runs in a thread: a claim may wait for a concurrent one, never on the event loop.
    """
    key = idempotency.parse_key(header)
    if key is None:
        yield None
        return
    held = await run_in_threadpool(lambda: idempotency.claim(db, user_id=user_id, key=key, fingerprint=fingerprint))
    try:
        yield held
    except BaseException:
        try:
            with anyio.CancelScope(shield=True):  # a cancelled request frees its key too
                await run_in_threadpool(idempotency.release, db, held)
        except Exception:  # noqa: BLE001 - the lease runs out instead; the original error matters
            log.exception("could not release idempotency key of user %s", user_id)
        raise


def replayed(reply: idempotency.StoredReply, headers: dict[str, str] | None = None) -> Response:
    """The recorded answer again, marked as a replay."""
    return Response(
        content=reply.body or b"", status_code=reply.status,
        media_type="application/json" if reply.body is not None else None,
        headers={**reply.headers, **(headers or {}), REPLAYED: "true"},
    )


def json_reply(status: int, body: str, headers: dict[str, str] | None = None) -> Response:
    """A first answer, byte for byte what a replay of it will send."""
    return Response(content=body, status_code=status, media_type="application/json", headers=headers)
