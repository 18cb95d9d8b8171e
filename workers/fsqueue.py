"""The embedded default's queue: kombu's filesystem transport, with two faults removed.

kombu writes a message into the queue folder in place: a consumer listing the folder between
the file's creation and its write takes an empty message, and the worker stops with
``Unrecoverable error: JSONDecodeError`` (seen under load with the folder polled every
0.1 s). Here a message is written under a hidden temporary name, synced, and renamed into
place, so a consumer only ever sees whole messages. A message that cannot be decoded anyway
(a file cut short by a power loss) is logged and skipped instead of stopping the worker:
the work it announced is recorded in the database and the reconciler sends it again.
"""

from __future__ import annotations

import logging
import os
import tempfile
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

from archive.storage.files import disk_full

log = logging.getLogger(__name__)


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):  # type: ignore[no-untyped-def]
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        try:
            # ".<random>.writing": never matches "<stamp>_<uuid>.<queue>.msg", so no consumer takes it.
            fd, temporary = tempfile.mkstemp(prefix=".", suffix=".writing", dir=self.data_folder_out)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(str_to_bytes(dumps(payload)))
                    f.flush()
                    os.fsync(f.fileno())
                os.rename(temporary, os.path.join(self.data_folder_out, name))
            except BaseException:
                os.unlink(temporary)
                raise
        except OSError as exc:
            raise ChannelError(f"Cannot add message {name!r} to the queue folder") from exc

    def _queue_bind(self, exchange, routing_key, pattern, queue):  # type: ignore[no-untyped-def]
        try:
            return super()._queue_bind(exchange, routing_key, pattern, queue)
        except ChannelError as exc:
            cause = exc.__cause__
            if disk_full(cause):
                raise ChannelError(f"the queue folder {self.control_folder} cannot take a write "
                                   f"({getattr(cause, 'strerror', cause)}): free space on its disk; the worker "
                                   "tries again") from cause
            raise

    def _get(self, queue):  # type: ignore[no-untyped-def]
        while True:
            try:
                return super()._get(queue)
            except ValueError as exc:  # JSONDecodeError: a message cut short; already taken off the queue
                log.error("skipped an unreadable message of queue %s (%s); the reconciler sends its work again",
                          queue, exc)


class Transport(filesystem.Transport):
    Channel = Channel
