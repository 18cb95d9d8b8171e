"""Bridge an ASGI request body (async) to a synchronous consumer running in a thread.

The event loop gathers the body's chunks into batches of ~1 MiB (a list, not a joined
copy: every byte copied costs CPU the hashing thread needs) and hands them over a small
bounded channel, so memory stays flat whatever the upload size and hashing/storage run off the
event loop. If the client goes away mid-body the consumer sees ``UploadIncomplete``
rather than a silently short stream.
"""

from __future__ import annotations

import base64
import logging
import math
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import contextmanager
import time
from typing import Any, TypeVar

import anyio
import anyio.from_thread
import anyio.to_thread
from anyio.lowlevel import RunVar
from starlette.requests import ClientDisconnect
from starlette.responses import StreamingResponse

from archive import metrics
from archive.errors import UploadIncomplete, UploadsBusy, UploadStalled

T = TypeVar("T")
log = logging.getLogger(__name__)
BLOCK = 1024 * 1024


class _Aborted:
    def __init__(self, reason: str, error: type[UploadIncomplete] = UploadIncomplete):
        self.reason = reason
        self.error = error


class _Stalled(Exception):
    """No byte of the body arrived for the idle limit."""


async def _batches(body: AsyncIterator[bytes], idle: float) -> AsyncIterator[list[bytes]]:
    parts: list[bytes] = []
    size = 0
    chunks = body.__aiter__()
    try:
        while True:
            try:
                # Only the wait for the client's bytes is timed, not a wait for the consumer.
                with anyio.fail_after(idle):
                    chunk = await chunks.__anext__()
            except StopAsyncIteration:
                break
            except TimeoutError:
                raise _Stalled from None
            if not chunk:
                continue
            parts.append(chunk)
            size += len(chunk)
            if size >= BLOCK:
                yield parts
                parts = []
                size = 0
    except (ClientDisconnect, _Stalled):
        if parts:  # what arrived before the client went away or fell silent: a tus upload keeps it
            yield parts
        raise
    if parts:
        yield parts


UPLOAD_THREADS = 40
"""Uploads streamed at once per API process; further ones wait (their clients' sends with them)."""
UPLOAD_WAIT = 15.0
"""Seconds an upload waits for a slot before it is answered 503 ``uploads_busy``: slow links
holding every slot must not leave other uploads hanging with no answer."""

_upload_threads: RunVar[anyio.CapacityLimiter] = RunVar("upload_threads")
_upload_runners: RunVar[anyio.CapacityLimiter] = RunVar("upload_runners")


def _loop_limiter(var: RunVar[anyio.CapacityLimiter], tokens: float) -> anyio.CapacityLimiter:
    try:
        return var.get()
    except LookupError:  # made once per event loop, inside it
        limiter = anyio.CapacityLimiter(tokens)
        var.set(limiter)
        return limiter


_slot_limiters: list[anyio.CapacityLimiter] = []
"""Every event loop's upload slots in this process (one per loop: :func:`upload_threads`)."""


def upload_threads() -> anyio.CapacityLimiter:
    """The threads uploads stream in, apart from the request threads: an upload holds its
    thread for as long as its body takes to arrive (minutes for a large video), and slow
    uploads must not leave reads without a thread."""
    limiter = _loop_limiter(_upload_threads, UPLOAD_THREADS)
    if limiter not in _slot_limiters:
        _slot_limiters.append(limiter)
    return limiter


def uploads_streaming() -> int:
    """Upload slots of this process taken now, by uploads whose bodies are still arriving."""
    return sum(int(limiter.borrowed_tokens) for limiter in _slot_limiters)


def _unbounded() -> anyio.CapacityLimiter:
    return _loop_limiter(_upload_runners, math.inf)


async def consume_body(
    body: AsyncIterator[bytes], consumer: Callable[[Iterator[bytes]], T], *, protocol: str, idle: float
) -> T:
    """Run ``consumer(chunks)`` in a worker thread, feeding it the streamed body.

    A body that sends nothing for ``idle`` seconds is given up: the consumer sees
    :class:`UploadStalled` (408 ``upload_stalled``), and the upload's slot (and a tus upload's
    lock) is free again. The bytes read and the time taken are recorded as upload metrics
    under ``protocol``.
    """
    started = time.perf_counter()
    received = 0
    send, receive = anyio.create_memory_object_stream[list[bytes] | _Aborted](max_buffer_size=4)

    async def produce() -> None:
        async with send:
            try:
                async for batch in _batches(body, idle):
                    await send.send(batch)
            except ClientDisconnect:
                await send.send(_Aborted("the client disconnected before the whole body arrived"))
            except _Stalled:
                await send.send(_Aborted(f"no byte of the body arrived for {idle:g} s", UploadStalled))
            except anyio.get_cancelled_exc_class():
                raise
            except Exception as exc:  # noqa: BLE001 - any transport failure aborts the upload
                await send.send(_Aborted(f"the body could not be read: {exc}"))

    def chunks() -> Iterator[bytes]:
        nonlocal received
        while True:
            try:
                item = anyio.from_thread.run(receive.receive)
            except anyio.EndOfStream:
                return
            if isinstance(item, _Aborted):
                raise item.error(item.reason + "; nothing was kept")
            received += sum(len(chunk) for chunk in item)
            yield from item

    outcome: list[T] = []
    failure: list[BaseException] = []

    async def run_consumer() -> None:
        slots, acquired = upload_threads(), False
        try:
            with anyio.move_on_after(UPLOAD_WAIT):
                await slots.acquire()
                acquired = True
            if not acquired:
                raise UploadsBusy(f"all {slots.total_tokens:g} upload slots of this server are taken by uploads "
                                  "still arriving; nothing was kept, please retry in a moment")
            try:
                # The slot taken above is the bound; the thread itself needs no second one.
                outcome.append(await anyio.to_thread.run_sync(consumer, chunks(), limiter=_unbounded()))
            finally:
                slots.release()
        except Exception as exc:  # noqa: BLE001 - re-raised below, outside the task group
            failure.append(exc)
        finally:
            # The consumer may stop early (error); don't leave the producer blocked.
            tg.cancel_scope.cancel()
            receive.close()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(produce)
            tg.start_soon(run_consumer)
    finally:
        metrics.record_upload(protocol=protocol, size=received, seconds=time.perf_counter() - started,
                              ok=bool(outcome) and not failure)
    if failure:
        raise failure[0]
    return outcome[0]


def content_disposition(filename: str, *, inline: bool = False, fallback: str | None = None) -> str:
    """A ``Content-Disposition`` value naming ``filename`` (RFC 6266): ``filename*`` in UTF-8,
    which browsers and curl's ``-J`` read, and before it, when given, an ASCII ``fallback``
    as ``filename`` for a client that reads only that."""
    from urllib.parse import quote

    plain = f'; filename="{fallback}"' if fallback else ""
    return f"{'inline' if inline else 'attachment'}{plain}; filename*=UTF-8''{quote(filename, safe='')}"


def digest_headers(sha256_hex: str) -> dict[str, str]:
    """Integrity headers of a whole representation whose SHA-256 is ``sha256_hex``.

    Both carry the digest in base64, as their RFCs define it: ``Digest`` (RFC 3230, with
    the algorithm name of RFC 5843) and ``Repr-Digest`` (RFC 9530, a structured-field
    byte sequence between colons). A range reply carries the digest of the whole file.
    """
    b64 = base64.b64encode(bytes.fromhex(sha256_hex)).decode("ascii")
    return {"Digest": f"sha-256={b64}", "Repr-Digest": f"sha-256=:{b64}:"}


CLIENT_GONE = "the client went away"
"""How :func:`delivered` names a download the client stopped taking."""


def delivered(body: Iterable[bytes], *, on_end: Callable[[int, str | None], None]) -> Iterator[bytes]:
    """``body`` as a response sends it, telling ``on_end`` once how the sending ended:
    ``(size, None)`` when all of it is handed over (called before its last piece leaves, so
    what it records is written before the reader can hold everything), or ``(bytes handed
    over, why)`` when it stopped short: the store failing part-way (its error), or the client
    gone (:data:`CLIENT_GONE`). A failure of ``on_end`` is logged, never the sending's."""
    sent, told = 0, False

    def tell(why: str | None, extra: int = 0) -> None:
        nonlocal told
        told = True
        try:
            on_end(sent + extra, why)
        except Exception:  # noqa: BLE001 - what was recorded before the first byte stands
            log.exception("could not record how a download ended (%d bytes sent, %s)", sent + extra, why or "whole")

    pieces = iter(body)
    try:
        held = next(pieces, None)
        for piece in pieces:
            yield held  # type: ignore[misc]
            sent += len(held)  # type: ignore[arg-type]
            held = piece
        tell(None, len(held) if held is not None else 0)
        if held is not None:
            yield held
    except GeneratorExit:
        if not told:
            tell(CLIENT_GONE)
        raise
    except Exception as exc:
        if not told:
            tell(getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}")
        raise
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:
            close()


class DeliveredResponse(StreamingResponse):
    """A streamed response whose body (a :func:`delivered` one) is closed however the sending
    ends. Starlette stops taking a synchronous body when the client goes away and leaves it
    open, so a download the reader abandoned was never told it ended (nor its store
    connection let go) until the garbage collector came by, if ever."""

    def __init__(self, content: Iterable[bytes], *args: Any, **kwargs: Any):
        super().__init__(content, *args, **kwargs)
        self.content = content

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            close = getattr(self.content, "close", None)
            if close is not None:
                with anyio.CancelScope(shield=True):  # a cancelled request still records its end
                    await anyio.to_thread.run_sync(close)


@contextmanager
def closed_on_error(body: Iterator[bytes]) -> Iterator[None]:
    """Let go of an opened object (its file or connection) if its read or download cannot be
    recorded: a stored object is opened before its custody entry is written, so a store that
    cannot give it answers 503 and leaves no entry for bytes that were never sent."""
    try:
        yield
    except BaseException:
        close = getattr(body, "close", None)
        if close is not None:
            close()
        raise
