"""A worker's scratch directories (copies of originals, capture work, proxy certificates),
and the removal of those a killed process left behind.

A process killed outright (``kill -9``, a power loss, the kernel's OOM killer) runs no
cleanup: its copy of a 4 GiB original would stay in the temporary directory for ever. Each
scratch directory therefore holds a lock its process keeps (``flock`` on a file inside) for
as long as it lives; the kernel lets go of it when the process dies, however it dies.
:func:`sweep` removes the directories whose lock anyone may take: no living process owns them.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

PREFIX = "evidence-scratch-"
OWNER = ".owner"
YOUNG = 60.0
"""Seconds a new scratch directory is left alone by :func:`sweep` whatever its lock says."""


@contextlib.contextmanager
def scratch_dir(purpose: str) -> Iterator[Path]:
    """A new private directory under the temporary directory, held by this process and
    removed when the block ends (or by :func:`sweep` once this process is gone)."""
    path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{purpose}-"))
    fd = os.open(path / OWNER, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        os.close(fd)


def sweep(root: Path | None = None) -> int:
    """Remove the scratch directories no living process holds; returns how many. Safe at
    any time, from any process: a directory in use is held, so it is left alone (and one made
    in the last minute too: its process may not have taken its lock yet)."""
    root = Path(root or tempfile.gettempdir())
    removed = 0
    for path in root.glob(f"{PREFIX}*"):
        if not path.is_dir() or path.is_symlink() or _age(path) < YOUNG:
            continue
        try:
            fd = os.open(path / OWNER, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:  # its process died between making it and holding it
            fd = None
        except OSError:
            continue
        try:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue  # held: a living process works in it
        log.warning("removing %s, left by a process that died before cleaning up", path)
        shutil.rmtree(path, ignore_errors=True)
        if fd is not None:
            os.close(fd)
        removed += 1
    return removed


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0
