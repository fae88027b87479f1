"""Helpers for tests that start Naboria in a child process, as an operator would."""

from __future__ import annotations

import os
import socket
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BACKEND_VARIABLES = (
    "DATABASE_URL",
    "CLICKHOUSE_URL",
    "CLICKHOUSE_DATABASE",
    "KAFKA_BOOTSTRAP_SERVERS",
    "MONGODB_URL",
    "REDIS_URL",
)


def free_port() -> int:
    """A local TCP port nothing listens on (also usable as a surely-closed port)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def embedded_environment(var_dir: Path, **variables: str) -> dict[str, str]:
    """This process's environment without any backend variable: the embedded profile."""
    env = {key: value for key, value in os.environ.items() if key not in BACKEND_VARIABLES}
    env.update(NABORIA_VAR_DIR=str(var_dir), DJANGO_SETTINGS_MODULE="naboria.settings")
    env.update(variables)
    return env
