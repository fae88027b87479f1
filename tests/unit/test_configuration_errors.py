"""Broken configuration fails at start with one line naming the variable, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.test_services import ROOT, embedded_environment, free_port


def _run(args: list[str], tmp_path: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    env = embedded_environment(tmp_path, **variables)
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def _assert_one_clear_line(result: subprocess.CompletedProcess[str], variable: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"naboria: configuration error: {variable}:")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DATABASE_URL", "mysql-ish://nowhere"),
        ("CLICKHOUSE_URL", "tcp://127.0.0.1:9000"),
        ("MONGODB_URL", "http://127.0.0.1:27017"),
        ("REDIS_URL", "memcached://127.0.0.1"),
        ("KAFKA_TOPIC_PARTITIONS", "many"),
        ("LOG_FORMAT", "xml"),
        ("DEBUG", "perhaps"),
        ("GEO_CITY_DATABASE", "/nonexistent/GeoLite2-City.mmdb"),
        ("GEO_CITY_DATABASE", "README.md"),  # a file, not an MMDB database
    ],
)
def test_malformed_variable_is_named_on_one_line(tmp_path, variable, value):
    result = _run([sys.executable, "manage.py", "check"], tmp_path, **{variable: value})
    _assert_one_clear_line(result, variable)


def test_unreachable_clickhouse_stops_migrations_with_one_line(tmp_path):
    result = _run(
        [sys.executable, "manage.py", "migrate_clickhouse"],
        tmp_path,
        CLICKHOUSE_URL=f"http://127.0.0.1:{free_port()}",
    )
    _assert_one_clear_line(result, "CLICKHOUSE_URL")


def test_unreachable_clickhouse_stops_the_web_role_at_start(tmp_path):
    daphne = Path(sys.executable).with_name("daphne")
    result = _run(
        [str(daphne), "-p", str(free_port()), "naboria.asgi:application"],
        tmp_path,
        CLICKHOUSE_URL=f"http://127.0.0.1:{free_port()}",
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "naboria: configuration error: CLICKHOUSE_URL:" in result.stderr


def test_json_log_format_writes_one_json_object_per_line(tmp_path):
    script = (
        "import django, logging; django.setup(); "
        "logging.getLogger('naboria.test').warning('hello', extra={'site': 'abc'})"
    )
    result = _run([sys.executable, "-c", script], tmp_path, LOG_FORMAT="json")
    record = json.loads(result.stderr.strip().splitlines()[-1])
    assert record["message"] == "hello"
    assert record["level"] == "WARNING"
    assert record["site"] == "abc"
