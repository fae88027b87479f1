"""Celery application of the worker and beat roles (``celery -A naboria worker|beat``).

Configuration comes from Django settings (``CELERY_*``); the periodic jobs are declared in
naboria.periodic_jobs. In the embedded profile (no REDIS_URL) tasks run eagerly in the caller.
"""

import os
from typing import Any

from celery import Celery, bootsteps
from celery.signals import worker_init

from naboria.config import exit_on_configuration_error
from naboria.periodic_jobs import PERIODIC_JOBS

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "naboria.settings")

app = Celery("naboria")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_configure.connect
def _install_periodic_jobs(sender: Celery, **kwargs: object) -> None:
    sender.conf.beat_schedule = PERIODIC_JOBS


class DrainStep(bootsteps.StartStopStep):
    """Hosts the drain's Kafka consumers (ingest.drain) inside the worker process, started
    with it and stopped (batches finished and committed) on warm shutdown."""

    requires = {"celery.worker.components:Pool"}

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.runner: Any = None

    def start(self, worker: Any) -> None:
        from django.conf import settings

        if settings.KAFKA_BOOTSTRAP_SERVERS and settings.DRAIN_IN_WORKER:
            # After django.setup(), and only in the workers that host the drain.
            from ingest.drain import DrainRunner

            self.runner = DrainRunner()
            self.runner.start()

    def stop(self, worker: Any) -> None:
        if self.runner is not None:
            self.runner.stop()
            self.runner = None


app.steps["worker"].add(DrainStep)


@worker_init.connect
def _check_backends_before_work(**kwargs: object) -> None:
    from django.conf import settings

    # Imported when a worker starts, after django.setup(): this module is imported while the
    # settings module itself loads (naboria/__init__), too early for the backends' clients.
    from naboria.health import assert_dependencies_reachable

    with exit_on_configuration_error():
        if settings.STARTUP_CHECKS:
            assert_dependencies_reachable()
