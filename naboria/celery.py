"""Celery application of the worker and beat roles (``celery -A naboria worker|beat``).

Configuration comes from Django settings (``CELERY_*``); the periodic jobs are declared in
naboria.periodic_jobs. In the embedded profile (no REDIS_URL) tasks run eagerly in the caller.
"""

import os

from celery import Celery
from celery.signals import worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "naboria.settings")

app = Celery("naboria")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_configure.connect
def _install_periodic_jobs(sender: Celery, **kwargs: object) -> None:
    from naboria.periodic_jobs import PERIODIC_JOBS

    sender.conf.beat_schedule = PERIODIC_JOBS


@worker_init.connect
def _check_backends_before_work(**kwargs: object) -> None:
    from django.conf import settings

    from naboria.config import exit_on_configuration_error
    from naboria.health import assert_dependencies_reachable

    with exit_on_configuration_error():
        if settings.STARTUP_CHECKS:
            assert_dependencies_reachable()
