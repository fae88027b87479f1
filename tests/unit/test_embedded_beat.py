"""The embedded profile's in-process beat runs due jobs, skips the others, survives failures."""

from datetime import timedelta

from celery.schedules import crontab, schedule

from naboria.celery import app
from naboria.embedded_beat import run_due_jobs

calls: list[str] = []


@app.task(name="tests.embedded_beat.record")
def record() -> None:
    calls.append("ran")


@app.task(name="tests.embedded_beat.fail")
def fail() -> None:
    raise RuntimeError("boom")


def test_due_jobs_run_and_the_others_wait():
    calls.clear()
    jobs = {
        "failing": {"task": "tests.embedded_beat.fail", "schedule": schedule(timedelta(0))},
        "due": {"task": "tests.embedded_beat.record", "schedule": schedule(timedelta(0))},
        "hourly": {"task": "tests.embedded_beat.record", "schedule": crontab(minute=0)},
    }
    now = app.now()
    last_run = {"failing": now - timedelta(minutes=1), "due": now - timedelta(minutes=1)}
    last_run["hourly"] = now
    assert run_due_jobs(jobs, last_run) == ["failing", "due"]
    assert calls == ["ran"]  # after the failing job
    assert last_run["due"] >= now
    assert last_run["hourly"] == now
