"""The Celery application, configured from settings.

Embedded default: a filesystem queue under the data directory (no server). Production:
Redis. Tasks are sent by name, so the API never imports task code. The beat schedule
lives here, whole.
"""

from __future__ import annotations

from celery import Celery

from archive import work
from archive.settings import Settings


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
