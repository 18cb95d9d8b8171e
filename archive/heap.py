"""Give freed buffers back to the system in long-running processes (glibc's malloc).

An upload passes through buffers of a megabyte and more: the batches of its body and the
parts in flight to the object store (8 MiB each). glibc serves a buffer that large from its
own mapping (given back when freed) only up to a threshold that it raises, by default, to
the largest buffer freed so far; after the first part, parts come from the heap's arenas,
which keep their peak size, one arena per thread up to eight per core. The process then
holds its busiest moment's memory for good (the API measured 217 MB after an upload, 203
with these settings; ``bench/bench_ingest.py``).

:func:`keep_heap_flat` fixes the threshold at 1 MiB, so every large buffer is mapped on its
own and returned as soon as it is freed, and lets threads share two arenas. The same as
``MALLOC_MMAP_THRESHOLD_=1048576 MALLOC_ARENA_MAX=2`` in the environment, without having to
be set before the process starts. Elsewhere than glibc (musl, macOS) it does nothing.

:func:`freeze_startup_objects` keeps what a server process built before serving out of the
collector's full passes; :func:`freeze_at_exit` spares a short command the collector's passes
over everything it imported while the interpreter shuts down.
"""

from __future__ import annotations

import atexit
import ctypes
import gc
import logging
import sys

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
"""``mallopt`` parameters (glibc's malloc.h)."""
MMAP_THRESHOLD = 1024 * 1024
ARENAS = 2


def keep_heap_flat() -> bool:
    """Set the threshold and arenas above for this process; whether it could."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_ARENA_MAX, ARENAS))
    if not done:
        log.info("malloc settings not applied; memory after large uploads may stay at its peak")
    return done


def freeze_startup_objects() -> None:
    """Leave the objects a server process has built so far (its modules, the app, its routes
    and schemas, the database's mappers: about 175,000) out of the cyclic collector's passes,
    as ``gc.freeze`` does (Instagram's servers): call it once, when start-up is over and before
    serving. Each full pass otherwise walked them all while every request of the process
    waited: in 10 s of case reads by 50 clients, 2-3 passes of 134-141 ms each; 19-24 ms with
    the freeze (measured with ``gc.callbacks`` on one API process). Objects are still freed
    when nothing refers to them; only what start-up made and a cycle later leaves
    unreferenced stays."""
    gc.collect()
    gc.freeze()


def freeze_at_exit() -> None:
    """Freeze (after one last collection) what the process holds when it exits, before the
    interpreter shuts down: tearing down the modules otherwise leaves their classes and
    functions as cyclic garbage that the collector's final passes free one by one, a fixed
    cost of every command (0.17-0.18 s of a command that imports the seal verification,
    SQLAlchemy and pyHanko: 0.83-0.85 s from start to exit, 0.66-0.73 s with the freeze).
    What the last collection finds unreachable is still finalised; the rest is left to the
    operating system, as at any exit. Registered once per process, however often it is called
    (a process may run several commands)."""
    atexit.unregister(freeze_startup_objects)
    atexit.register(freeze_startup_objects)
