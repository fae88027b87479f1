"""Periodic jobs for the embedded profile, where there is no broker and no ``celery beat``: a
daemon thread in the web process runs naboria.periodic_jobs on their schedules, each task in
this process (the embedded ClickHouse folder can only be opened here anyway).

Entry points: start() (naboria.asgi calls it when settings.EMBEDDED_BEAT: without REDIS_URL)
and run_due_jobs() (one pass over the schedule; the thread calls it every TICK_SECONDS).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

logger = logging.getLogger(__name__)
TICK_SECONDS = 5.0


def start() -> threading.Thread:
    thread = threading.Thread(target=_run, name="embedded-beat", daemon=True)
    thread.start()
    return thread


def _run() -> None:
    from naboria.celery import app
    from naboria.periodic_jobs import PERIODIC_JOBS

    app.loader.import_default_modules()
    last_run: dict[str, datetime] = {name: app.now() for name in PERIODIC_JOBS}
    while True:
        time.sleep(TICK_SECONDS)
        run_due_jobs(PERIODIC_JOBS, last_run)


def run_due_jobs(jobs: Mapping[str, Mapping[str, Any]], last_run: dict[str, datetime]) -> list[str]:
    """Run, in this thread, the jobs whose schedule is due since their last run (updated in
    ``last_run``); the names of those run."""
    from naboria.celery import app

    ran = []
    for name, job in jobs.items():
        due, _ = job["schedule"].is_due(last_run[name])
        if not due:
            continue
        last_run[name] = app.now()
        ran.append(name)
        try:
            app.tasks[job["task"]].apply(throw=True)
        except Exception:
            # A failing job must not stop the others; it runs again at its next time.
            logger.exception("periodic job %s failed", name)
    return ran
