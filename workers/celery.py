"""The Celery application, configured from settings.

Embedded default: a filesystem queue under the data directory (no server). Production:
Redis. Tasks are sent by name, so the API never imports task code. The beat schedule
lives here, whole.
"""

from __future__ import annotations

import logging
import shelve
from collections.abc import Iterator
from contextlib import contextmanager

from celery import Celery
from celery.beat import PersistentScheduler

from archive import work
from archive.settings import Settings
from archive.storage.files import disk_full

log = logging.getLogger(__name__)


class Scheduler(PersistentScheduler):
    """Beat's scheduler: the schedule kept in its file (``--schedule``) while the disk takes
    writes, in memory while it does not.

    Celery's own took a schedule file it could not write on a full disk for a corrupted one,
    removed it, failed again and stopped beat; under ``evidence serve`` the supervisor
    restarted it until it gave up and stopped the whole service, API included. Every timed task
    here is safe to run at any time, so a schedule held in memory (due times start again from
    now) loses nothing; beat uses its file again when it next starts with room on the disk.
    """

    def setup_schedule(self) -> None:
        try:
            super().setup_schedule()
        except OSError as exc:
            if not disk_full(exc):
                raise
            log.error("beat cannot write its schedule file %s (%s): the schedule is kept in memory; timed "
                      "checkpoints, fixity audits and sweeps still run. Free space on that disk.",
                      self.schedule_filename, exc.strerror)
            if self._store is not None:
                try:
                    self._store.close()
                except OSError:
                    pass  # nothing it holds is worth more than beat running
            self._store = shelve.Shelf({}, writeback=True)
            self._store["entries"] = {}
            self.merge_inplace(self.app.conf.beat_schedule)
            self.install_default_entries(self.schedule)

    def _destroy_open_corrupted_schedule(self, exc: BaseException):  # type: ignore[no-untyped-def]
        if disk_full(exc):  # a full disk is no corruption: the file is kept
            raise exc
        return super()._destroy_open_corrupted_schedule(exc)

    def sync(self) -> None:
        with self._unless_full("could not save its schedule in {} ({}); it runs on from memory"):
            super().sync()

    def close(self) -> None:
        with self._unless_full("stopped without saving its schedule in {} ({})"):
            super().close()

    @contextmanager
    def _unless_full(self, said: str) -> Iterator[None]:
        """Log (``said``, filled with the file and the system's reason) a write of the
        schedule file that found the disk full, and carry on; raise any other failure."""
        try:
            yield
        except OSError as exc:
            if not disk_full(exc):
                raise
            log.warning("beat " + said.format(self.schedule_filename, exc.strerror))


def make_celery(settings: Settings) -> Celery:
    """A Celery app talking to the broker the settings name."""
    app = Celery("evidence", set_as_current=False)
    conf: dict[str, object] = {
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_ignore_result": True,
        "worker_prefetch_multiplier": 1,
        "task_always_eager": settings.task_always_eager,
        "task_eager_propagates": True,
        "worker_hijack_root_logger": False,
        "beat_scheduler": f"{__name__}:Scheduler",  # runs on a full disk
        "broker_connection_retry_on_startup": True,
        "task_default_queue": settings.queue_name,
        "beat_schedule": {
            # Seal a checkpoint at least this often while the ledger grows (no-op otherwise).
            "evidence-checkpoint": {"task": work.CHECKPOINT, "schedule": settings.checkpoint_interval_seconds},
            # Re-hash stored objects, oldest-checked first, paced by fixity_bytes_per_second.
            "evidence-fixity-audit": {"task": work.FIXITY_AUDIT, "schedule": settings.fixity_interval_seconds},
            # Hourly sweep; an upload is only removed once it has been idle for upload_expiry_hours.
            "evidence-expire-uploads": {"task": work.EXPIRE_UPLOADS, "schedule": 3600.0},
            # Hourly: a key is only forgotten KEY_TTL (24 h) after its answer.
            "evidence-purge-idempotency-keys": {"task": work.PURGE_IDEMPOTENCY_KEYS, "schedule": 3600.0},
        },
    }
    if settings.broker_url:
        conf["broker_url"] = settings.broker_url
        # A task unacked for longer than this is redelivered; our tasks are idempotent.
        conf["broker_transport_options"] = {"visibility_timeout": settings.broker_visibility_timeout}
    else:
        queue = settings.queue_dir
        (queue / "messages").mkdir(parents=True, exist_ok=True)
        (queue / "processed").mkdir(parents=True, exist_ok=True)
        (queue / "control").mkdir(parents=True, exist_ok=True)
        conf["broker_url"] = "filesystem://"
        conf["broker_transport"] = "workers.fsqueue:Transport"  # kombu's, with whole messages only
        # A queue folder that refuses a write (a full disk) is a channel error: the worker
        # tries again, saying why, instead of stopping with "Unrecoverable error".
        conf["broker_channel_error_retry"] = True
        conf["broker_transport_options"] = {
            "data_folder_in": str(queue / "messages"),
            "data_folder_out": str(queue / "messages"),
            "data_folder_processed": str(queue / "processed"),
            "store_processed": False,
            "control_folder": str(queue / "control"),
            # The folder is listed this often (kombu's default is 1 s, which each pipeline
            # step would wait on average half of); a listing of a near-empty folder is cheap.
            "polling_interval": 0.1,
        }
    app.conf.update(conf)
    return app
