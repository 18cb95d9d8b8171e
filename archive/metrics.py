"""Prometheus metrics of every process of the service, defined in one place.

The API, the Celery workers and beat are separate processes, and ``GET /metrics`` (served
by the API) must show what the workers did too. prometheus-client's *multiprocess mode*
does exactly that: every process writes its counters and histograms into small
memory-mapped files in one directory (``PROMETHEUS_MULTIPROC_DIR``; by default
``EVIDENCE_METRICS_DIR`` = ``DATA_DIR/metrics``), and the API merges every file there on
each scrape. On the embedded default ``evidence serve`` starts all the processes and
first removes the files of processes that have ended. Files are named by process id, so
only processes of one pid namespace (one host, or containers sharing one) may share the
directory; a production worker in a container of its own keeps its metrics in its own.

Each entry point calls :func:`configure` before anything records a metric (the directory
is read by prometheus-client when a metric's first value is created). Metrics are built
lazily, so importing this module costs nothing and never fixes the mode too early.
Recording never raises: a metric is never worth failing an upload or a task for.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

log = logging.getLogger(__name__)

DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"

_lock = threading.Lock()
_metrics: SimpleNamespace | None = None

# Uploads run from a fraction of a second to hours.
_UPLOAD_BUCKETS = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, float("inf"))
_TASK_BUCKETS = (0.05, 0.25, 1, 5, 15, 60, 300, 1800, 3600, float("inf"))


def configure(directory: Path, *, fresh: bool = False) -> Path:
    """Make this process (and the processes it starts) write metrics into ``directory``.

    ``PROMETHEUS_MULTIPROC_DIR``, when already set (by the operator, or by the
    supervisor that started this process), wins. ``fresh`` removes the files of
    processes that are no longer running (prometheus-client asks for a clean directory
    at start-up; files of live processes sharing it are kept): for the process that
    starts the others (``evidence serve``), before it starts them. Returns the directory.
    """
    path = Path(os.environ.get(DIR_ENV) or directory).resolve()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        # A worker started on a full disk died here, before it served anything. Each metric
        # made later makes the directory again (see _allocating) and counts once it can.
        log.error("cannot make the metrics directory %s (%s): this process runs on, its metrics are not "
                  "recorded until the directory can be made", path, exc.strerror or exc)
        fresh = False
    if fresh:
        for file in path.glob("*.db"):
            pid = file.stem.rpartition("_")[2]
            if pid.isdigit() and not _running(int(pid)):
                file.unlink(missing_ok=True)
    os.environ[DIR_ENV] = str(path)
    _allocate_before_mapping()
    if _metrics is not None and not _multiprocess_values():
        log.warning("metrics were recorded before configure(); this process's metrics stay in memory only")
    return path


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _allocate_before_mapping() -> None:
    """Make prometheus-client's per-process files take their disk blocks before they are
    written through a memory map.

    prometheus-client sizes a file by ``truncate`` (a sparse file) and writes through an
    ``mmap``: on a full disk (or a full tmpfs) the first write to a page without a block
    is SIGBUS, which kills the process (an API process with every upload it was receiving)
    instead of raising. Allocating the blocks first (``posix_fallocate``) turns that into
    ``OSError`` (ENOSPC), which :func:`_safely` logs like any failure to record a metric.
    """
    from prometheus_client import values

    if not getattr(values.MmapedDict, "allocates_blocks", False):
        values.MmapedDict = _allocating(values.MmapedDict)


def _allocating(base: type) -> type:
    """``base`` (prometheus-client's ``MmapedDict``) with every block it maps allocated first."""
    from prometheus_client.mmap_dict import _INITIAL_MMAP_SIZE

    class AllocatedMmapedDict(base):  # type: ignore[misc, valid-type]
        allocates_blocks = True

        def __init__(self, filename: str, read_mode: bool = False):
            if not read_mode:
                os.makedirs(os.path.dirname(filename), exist_ok=True)  # not made at configure() (full disk)
                with open(filename, "ab") as f:
                    size = os.fstat(f.fileno()).st_size
                    try:
                        os.posix_fallocate(f.fileno(), 0, size or _INITIAL_MMAP_SIZE)
                    except OSError:
                        if not size:  # an empty file would break the API's merge of every file
                            os.unlink(filename)
                        raise
            super().__init__(filename, read_mode)

        def _init_value(self, key: str) -> None:
            encoded = key.encode("utf-8")
            # The entry's size as the base class lays it out (see its _init_value).
            size = 4 + len(encoded) + (8 - (len(encoded) + 4) % 8) + 16
            capacity = self._capacity
            while self._used + size > capacity:
                capacity *= 2
            if capacity != self._capacity:
                os.posix_fallocate(self._f.fileno(), 0, capacity)
            super()._init_value(key)

    return AllocatedMmapedDict


def _multiprocess_values() -> bool:
    from prometheus_client import values

    return values.ValueClass is not values.MutexValue


def _build() -> SimpleNamespace:
    """Every metric, built unregistered, then registered: an unlabelled metric's first value
    needs disk space (see :func:`_allocate_before_mapping`), and a build that fails half-way
    must leave none registered, or every later attempt would meet them as duplicates."""
    from prometheus_client import REGISTRY

    built = _metrics_of()
    for metric in vars(built).values():
        REGISTRY.register(metric)
    return built


def _metrics_of() -> SimpleNamespace:
    from functools import partial

    import prometheus_client

    Counter = partial(prometheus_client.Counter, registry=None)  # noqa: N806 - read as the classes
    Histogram = partial(prometheus_client.Histogram, registry=None)  # noqa: N806

    return SimpleNamespace(
        http_requests=Counter(
            "evidence_http_requests", "HTTP requests answered, by route template and status.",
            ["method", "route", "status"],
        ),
        http_duration=Histogram(
            "evidence_http_request_duration_seconds", "Time to answer an HTTP request, by route template.",
            ["method", "route"],
        ),
        upload_bytes=Counter(
            "evidence_upload_bytes", "Bytes received in upload bodies (direct or tus PATCH).", ["protocol"],
        ),
        upload_duration=Histogram(
            "evidence_upload_duration_seconds", "Time to receive one upload body, by protocol and outcome.",
            ["protocol", "outcome"], buckets=_UPLOAD_BUCKETS,
        ),
        task_duration=Histogram(
            "evidence_task_duration_seconds", "Run time of Celery tasks, by task name.", ["task"],
            buckets=_TASK_BUCKETS,
        ),
        task_failures=Counter("evidence_task_failures", "Celery tasks that raised, by task name.", ["task"]),
        step_duration=Histogram(
            "evidence_step_duration_seconds", "Run time of an item's processing steps, by step.", ["step"],
            buckets=_TASK_BUCKETS,
        ),
        step_failures=Counter(
            "evidence_step_failures", "Processing steps that ended failed (or crashed), by step.", ["step"],
        ),
        reconciler_actions=Counter(
            "evidence_reconciler_actions", "Actions the reconciler took on pending work, by action.", ["action"],
        ),
        debris_removed=Counter(
            "evidence_debris_removed",
            "Leftovers of abandoned uploads removed by the expiry sweep: partial_file (local temporary file of "
            "a direct upload), staged_file (local tus staging file), spool (S3 spool directory), "
            "multipart_upload (aborted S3 multipart upload).",
            ["kind"],
        ),
        uploads_expired=Counter("evidence_uploads_expired", "Resumable uploads expired by the sweep."),
    )


def _m() -> SimpleNamespace:
    global _metrics
    if _metrics is None:
        with _lock:
            if _metrics is None:
                _metrics = _build()
    return _metrics


FAILURE_LOGGED_EVERY = 60.0
"""Seconds between two logs of failing to record metrics: on a full disk every request and
task fails to, and a traceback each time buried what the log had to say."""
_failure_logged = -math.inf


def _safely(record: Callable[[SimpleNamespace], Any]) -> None:
    global _failure_logged
    try:
        record(_m())
    except Exception:  # noqa: BLE001 - a metric never fails the work it measures
        if time.monotonic() - _failure_logged >= FAILURE_LOGGED_EVERY:
            _failure_logged = time.monotonic()
            log.exception("could not record a metric (logged at most once a minute while it lasts)")


def record_http(*, method: str, route: str, status: int, seconds: float) -> None:
    """One HTTP request answered (``route`` is the route template, never the raw path)."""
    _safely(lambda m: (m.http_requests.labels(method, route, str(status)).inc(),
                       m.http_duration.labels(method, route).observe(seconds)))


def record_upload(*, protocol: str, size: int, seconds: float, ok: bool) -> None:
    """One upload body received (``protocol``: direct or tus); ``size`` bytes read from it."""
    _safely(lambda m: (m.upload_bytes.labels(protocol).inc(size),
                       m.upload_duration.labels(protocol, "ok" if ok else "failed").observe(seconds)))


def record_reconciler_action(action: str) -> None:
    """Count one action of the reconciler (e.g. ``requeued``, ``lease_expired``)."""
    _safely(lambda m: m.reconciler_actions.labels(action).inc())


def record_debris(kind: str, count: int = 1) -> None:
    """Count leftovers removed by the sweep (see ``evidence_debris_removed``)."""
    if count:
        _safely(lambda m: m.debris_removed.labels(kind).inc(count))


def record_expired_uploads(count: int) -> None:
    """Count resumable uploads the sweep expired."""
    if count:
        _safely(lambda m: m.uploads_expired.inc(count))


def _record_run(duration: str, failures: str, label: str, seconds: float, failed: bool) -> None:
    def record(m: SimpleNamespace) -> None:
        getattr(m, duration).labels(label).observe(seconds)
        if failed:
            getattr(m, failures).labels(label).inc()

    _safely(record)


def record_task(task: str, *, seconds: float, failed: bool) -> None:
    """A Celery task ran for ``seconds``; ``failed`` when it raised."""
    _record_run("task_duration", "task_failures", task, seconds, failed)


def record_step(step: str, *, seconds: float, failed: bool) -> None:
    """One processing step of an item ran for ``seconds``; ``failed`` when it ended failed or crashed."""
    _record_run("step_duration", "step_failures", step, seconds, failed)


def exposition(extra: Iterable[Any] = ()) -> tuple[bytes, str]:
    """The text exposition of every process's metrics, plus ``extra`` collectors; (body, content type).

    Merges the files of the multiprocess directory when this process has one, else this
    process's own registry.
    """
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    _m()  # every metric appears, at zero, from the first scrape
    directory = os.environ.get(DIR_ENV)
    registry = CollectorRegistry()
    if directory and _multiprocess_values():
        MultiProcessCollector(registry, path=directory)
    else:
        registry.register(_Delegate(REGISTRY))
    for collector in extra:
        registry.register(collector)
    return generate_latest(registry), CONTENT_TYPE_LATEST


class _Delegate:
    """A collector yielding what another registry collects (this process's own metrics)."""

    def __init__(self, registry: Any):
        self.registry = registry

    def collect(self) -> Iterator[Any]:
        yield from self.registry.collect()
