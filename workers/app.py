"""The worker entry point: ``celery -A workers.app worker`` (and ``... beat``).

Settings come from the environment, exactly as for the API. In production the worker
and beat refuse to start on bad key material, a silent TSA or a bucket without object
lock (:mod:`archive.preflight`), naming every problem.
"""

from __future__ import annotations

import logging
import sys

from celery import signals

from archive import heap, metrics, preflight
from archive.errors import ConfigurationError
from archive.settings import load_settings
from workers.celery import make_celery
from workers.supervisor import die_with_parent

die_with_parent()  # a child of `evidence serve` never outlives it
settings = load_settings()
logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
# Before any task records a metric: the API's /metrics merges what every process writes there.
metrics.configure(settings.resolved_metrics_dir)
celery_app = make_celery(settings)
# The worker imports the task module at start-up; it imports this one (no cycle).
celery_app.conf.include = ["workers.tasks"]
app = celery_app


@signals.worker_init.connect
@signals.beat_init.connect
def _preflight(**_kwargs: object) -> None:
    # At start-up of a worker or beat only: `celery inspect` (health checks) imports this
    # module too and must not send a test time-stamp every time. SystemExit, not an
    # exception: Celery logs and ignores exceptions raised by signal receivers.
    heap.keep_heap_flat()  # seals, SM3 and exports stream large files through its threads
    try:
        preflight.check(settings)
    except ConfigurationError as exc:
        sys.exit(exc.message)
