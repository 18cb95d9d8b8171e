"""The worker entry point: ``celery -A workers.app worker``.

Settings come from the environment, exactly as for the API.
"""

from __future__ import annotations

import logging

from archive.settings import load_settings
from workers.celery import make_celery

settings = load_settings()
logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
celery_app = make_celery(settings)
app = celery_app

import workers.tasks  # noqa: E402,F401  (registers the tasks on celery_app)
