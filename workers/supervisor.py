"""The embedded default's process supervisor: ``evidence serve`` runs the API itself and
starts a Celery worker and a beat scheduler as child processes.

Guarantees, both ways:

* **The supervisor stops what it started.** On SIGTERM/SIGINT (uvicorn's graceful exit)
  :meth:`Supervisor.stop` sends SIGTERM to every child, waits, and SIGKILLs any that
  remain. A child that dies on its own is restarted (at most ``max_restarts`` times in
  ``window`` seconds); past that the supervisor gives up and shuts *everything* down
  (it signals itself, so the API stops too) rather than run half a service.
* **A child never outlives the supervisor**, even one killed by SIGKILL, which runs no
  clean-up at all: each child, at start-up (:func:`die_with_parent`, called from
  ``workers.app``), asks Linux for ``PR_SET_PDEATHSIG`` = SIGTERM, so the kernel signals it
  the moment its parent dies, and then checks that the parent is still the supervisor
  (it may have died before the request). A watchdog thread in the child backs this up
  where prctl is missing, and bounds a graceful shutdown that hangs (a long task) by
  exiting the process :data:`ORPHAN_GRACE` seconds after the parent is gone; tasks are
  acknowledged late and idempotent, so an interrupted one is redone.

The worker runs beat as a *separate* child instead of ``worker -B``: ``-B`` makes beat a
grandchild that nothing here would see, and it survived a killed worker.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

SUPERVISOR_ENV = "EVIDENCE_SUPERVISOR_PID"
"""Set in each child's environment: the pid of the supervisor it must not outlive."""
ORPHAN_GRACE = 20.0
"""Seconds an orphaned child gets to shut down gracefully before it exits anyway."""
_PR_SET_PDEATHSIG = 1


@dataclass
class _Child:
    name: str
    args: list[str]
    process: subprocess.Popen | None = None
    starts: list[float] = field(default_factory=list)


class Supervisor:
    """Starts, watches, restarts and stops the child processes of ``evidence serve``."""

    def __init__(
        self,
        children: Mapping[str, Sequence[str]],
        *,
        env: Mapping[str, str],
        max_restarts: int = 5,
        window: float = 60.0,
        on_give_up: Callable[[], None] | None = None,
    ):
        """``children`` maps a name to its command line; ``on_give_up`` is called when a
        child keeps dying (default: SIGTERM to this process, so everything stops)."""
        self.children = [_Child(name, list(args)) for name, args in children.items()]
        self.env = {**env, SUPERVISOR_ENV: str(os.getpid())}
        self.max_restarts, self.window = max_restarts, window
        self.on_give_up = on_give_up or (lambda: os.kill(os.getpid(), signal.SIGTERM))
        self._stopping = threading.Event()
        self._monitor: threading.Thread | None = None

    def _spawn(self, child: _Child) -> None:
        child.starts = [t for t in child.starts if time.monotonic() - t < self.window] + [time.monotonic()]
        # A process group of its own: a terminal's Ctrl-C reaches the supervisor alone, which
        # then stops its children in order (instead of racing them into a restart).
        child.process = subprocess.Popen(child.args, env=self.env, process_group=0)
        log.info("started %s (pid %d)", child.name, child.process.pid)

    def start(self) -> None:
        """Start every child, then watch them from a thread that lives until :meth:`stop`.

        (PDEATHSIG fires when the *thread* that started a child ends, so restarts come from
        that long-lived thread and the first starts from the caller's, the main thread.)
        """
        for child in self.children:
            self._spawn(child)
        self._monitor = threading.Thread(target=self._watch, name="supervisor", daemon=True)
        self._monitor.start()

    def _watch(self) -> None:
        while not self._stopping.wait(0.5):
            for child in self.children:
                code = child.process.poll() if child.process else None
                if code is None or self._stopping.is_set():
                    continue
                if len(child.starts) > self.max_restarts:
                    log.error("%s died (exit %s) %d times in %.0f s; stopping everything",
                              child.name, code, len(child.starts), self.window)
                    self.on_give_up()
                    return
                log.warning("%s died unexpectedly (exit %s); restarting it", child.name, code)
                self._spawn(child)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM every child, wait up to ``timeout`` seconds in all, SIGKILL the rest."""
        self._stopping.set()
        if self._monitor is not None:
            self._monitor.join(5)  # no restart can race with the stop
        live = [c.process for c in self.children if c.process is not None and c.process.poll() is None]
        for process in live:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in live:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def die_with_parent() -> None:
    """In a child of :class:`Supervisor`: make sure this process ends when the supervisor does.

    Does nothing in a process the supervisor did not start.
    """
    # Popped: a process this one starts is not the supervisor's child.
    expected = os.environ.pop(SUPERVISOR_ENV, None)
    if not expected:
        return
    supervisor = int(expected)
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            log.warning("prctl(PR_SET_PDEATHSIG) failed (errno %d); relying on the watchdog", ctypes.get_errno())
    if os.getppid() != supervisor:
        sys.exit(f"the supervisor (pid {supervisor}) is gone; not starting")
    threading.Thread(target=_watchdog, args=(supervisor,), name="orphan-watchdog", daemon=True).start()


def _watchdog(supervisor: int) -> None:
    while os.getppid() == supervisor:
        time.sleep(1.0)
    log.error("the supervisor (pid %d) is gone; shutting down", supervisor)
    os.kill(os.getpid(), signal.SIGTERM)  # a graceful shutdown first (PDEATHSIG already sent one on Linux)
    time.sleep(ORPHAN_GRACE)
    os._exit(1)
