"""The production topology on one machine: ``make stack``.

    python scripts/stack.py [--port 8000] [--ingest-port 8001] [--dir var/stack] [--fresh]
    python scripts/stack.py --stop [--dir var/stack]          # what ``make stack-stop`` runs

Starts every process role of docs/operations.md as a separate process, against real services:

- PostgreSQL and Redis: the machine's own (started if installed and stopped);
- Kafka: Tansu in memory (its topics and offsets live as long as it runs);
- MongoDB: secantusdb with its data under ``<dir>/mongo``;
- ClickHouse: **a stand-in** (scripts/clickhouse_http_standin.py): no ClickHouse server can
  be installed on these machines, so one process owns the chdb data under
  ``<dir>/clickhouse`` and serves ClickHouse's HTTP interface. Every role reaches it with
  ``CLICKHOUSE_URL=http://...``, the code path it takes against a real server;

then ``manage.py prepare --demo`` and the roles: web (daphne, ``--port``), ingest (uvicorn,
``--ingest-port``), drain (``manage.py drain``), Celery worker and beat. A role that exits is
started again after a pause, as an orchestrator would. Ctrl-C or SIGTERM (``--stop``) stops
the roles first (each delivers or persists what it accepted) and the services after them.

The ``Stack`` class is what the chaos tests drive (tests/chaos/test_stack_faults.py): it
starts the same processes on free ports, and kills, pauses and restarts them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.test_services import (  # noqa: E402
    BACKEND_VARIABLES,
    ensure_system_service,
    free_port,
    postgres_start,
    redis_start,
    secantus_command,
    tansu_command,
    wait_for_port,
)

PYTHON = sys.executable
# The roles in the order they start; they stop in the reverse order, so the servers that
# accept events finish before the drain that stores them.
ROLES = ("worker", "beat", "drain", "web", "ingest")
RESTART_PAUSE_SECONDS = 1.0


def log(message: str) -> None:
    print(f"stack: {message}", file=sys.stderr, flush=True)


@dataclass
class Service:
    """A process of the stack: a service it depends on or a role of the product."""

    name: str
    command: list[str]
    log_path: Path
    env: dict[str, str] | None = None
    port: int | None = None
    process: subprocess.Popen[bytes] | None = None
    # Set while the stack keeps the process running (a role that exits is started again).
    supervised: bool = False
    restarts: int = 0

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as output:
            # A session of its own: Ctrl-C in the terminal reaches the stack alone, which stops
            # the processes in order.
            self.process = subprocess.Popen(
                self.command,
                cwd=ROOT,
                env=self.env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if self.port is not None:
            wait_for_port(self.port, self.name, timeout=120)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, number: int) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, number)

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; the exit status."""
        self.supervised = False
        if self.process is None:
            return None
        self.signal(signal.SIGCONT)  # a paused process cannot act on SIGTERM
        self.signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log(f"{self.name} did not stop within {timeout:.0f} s; killing it")
            self.signal(signal.SIGKILL)
            return self.process.wait()


@dataclass
class Stack:
    """Services and roles of one installation, with their data under ``directory``."""

    directory: Path
    web_port: int = field(default_factory=free_port)
    ingest_port: int = field(default_factory=free_port)
    drain_metrics_port: int = field(default_factory=free_port)
    database: str = "naboria_stack"
    redis_db: int = 3
    extra_env: dict[str, str] = field(default_factory=dict)
    services: dict[str, Service] = field(default_factory=dict)
    roles: dict[str, Service] = field(default_factory=dict)
    _system_stops: list[list[str]] = field(default_factory=list)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _watcher: threading.Thread | None = None

    @property
    def logs(self) -> Path:
        return self.directory / "logs"

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def ingest_url(self) -> str:
        return f"http://127.0.0.1:{self.ingest_port}"

    def top_command(self) -> str:
        """``manage.py top`` reading every role of this stack (docs/operations.md)."""
        return (
            f"python manage.py top --url web={self.web_url}/metrics "
            f"--url ingest={self.ingest_url}/metrics "
            f"--url drain=http://127.0.0.1:{self.drain_metrics_port}/metrics"
        )

    # -- services --------------------------------------------------------------------------

    def start_services(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        for name, port, start in (
            ("PostgreSQL", 5432, postgres_start),
            ("Redis", 6379, redis_start),
        ):
            if not ensure_system_service(name, port, start, self._system_stops):
                raise RuntimeError(f"{name} is needed by the stack and is not installed")
        self._ensure_database()
        kafka_port = free_port()
        self.services["kafka"] = Service(
            "kafka",
            tansu_command(kafka_port),
            self.logs / "kafka.log",
            port=kafka_port,
        )
        mongo_port = free_port()
        (self.directory / "mongo").mkdir(exist_ok=True)
        self.services["mongodb"] = Service(
            "mongodb",
            secantus_command(mongo_port, self.directory / "mongo"),
            self.logs / "mongodb.log",
            port=mongo_port,
        )
        clickhouse_port = free_port()
        self.services["clickhouse"] = Service(
            "clickhouse",
            [
                PYTHON,
                str(ROOT / "scripts" / "clickhouse_http_standin.py"),
                "--data",
                str(self.directory / "clickhouse"),
                "--port",
                str(clickhouse_port),
            ],
            self.logs / "clickhouse.log",
            port=clickhouse_port,
        )
        for service in self.services.values():
            service.start()

    def _ensure_database(self) -> None:
        with psycopg.connect(
            "postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True
        ) as connection:
            exists = connection.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", [self.database]
            ).fetchone()
            if not exists:
                connection.execute(f'CREATE DATABASE "{self.database}"')

    def drop_database(self) -> None:
        with psycopg.connect(
            "postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True
        ) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')

    def environment(self) -> dict[str, str]:
        """What every role gets: the services above, one var folder (one secret key)."""
        env = {key: value for key, value in os.environ.items() if key not in BACKEND_VARIABLES}
        env.update(
            DJANGO_SETTINGS_MODULE="naboria.settings",
            NABORIA_VAR_DIR=str(self.directory / "var"),
            DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{self.database}",
            REDIS_URL=f"redis://127.0.0.1:6379/{self.redis_db}",
            KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{self.services['kafka'].port}",
            MONGODB_URL=f"mongodb://127.0.0.1:{self.services['mongodb'].port}/naboria",
            CLICKHOUSE_URL=f"http://127.0.0.1:{self.services['clickhouse'].port}",
            CLICKHOUSE_DATABASE="naboria",
            # The drain runs as a role of its own.
            DRAIN_IN_WORKER="false",
            PYTHONUNBUFFERED="1",
        )
        env.update(self.extra_env)
        return env

    # -- roles -----------------------------------------------------------------------------

    def prepare(self, *, demo: bool = True) -> str:
        """``manage.py prepare [--demo]``, as ``make run`` does; its output."""
        return subprocess.run(
            [PYTHON, "manage.py", "prepare", *(["--demo"] if demo else [])],
            cwd=ROOT,
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        ).stdout

    def role_commands(self) -> dict[str, tuple[list[str], int | None]]:
        return {
            "worker": (
                [PYTHON, "-m", "celery", "-A", "naboria", "worker", "--loglevel=INFO",
                 "--concurrency=1"],
                None,
            ),
            "beat": (
                [PYTHON, "-m", "celery", "-A", "naboria", "beat", "--loglevel=INFO",
                 "--schedule", str(self.directory / "var" / "celerybeat-schedule")],
                None,
            ),
            "drain": (
                [PYTHON, "manage.py", "drain", "--metrics-port", str(self.drain_metrics_port)],
                None,
            ),
            "web": (
                [PYTHON, "-m", "naboria.web", "-b", "127.0.0.1", "-p", str(self.web_port),
                 "naboria.asgi:application"],
                self.web_port,
            ),
            "ingest": (
                [PYTHON, "-m", "uvicorn", "naboria.asgi:application", "--host", "127.0.0.1",
                 "--port", str(self.ingest_port), "--http",
                 "naboria.ingest_http:HttpToolsProtocol", "--no-access-log", "--lifespan",
                 "on"],
                self.ingest_port,
            ),
        }  # fmt: skip

    def start_roles(self) -> None:
        env = self.environment()
        for name, (command, port) in self.role_commands().items():
            role = Service(name, command, self.logs / f"{name}.log", env=env, port=port)
            role.start()
            role.supervised = True
            self.roles[name] = role
        self._watcher = threading.Thread(target=self._keep_roles_running, daemon=True)
        self._watcher.start()

    def _keep_roles_running(self) -> None:
        while not self._stopping.wait(0.5):
            for role in list(self.roles.values()):
                if role.supervised and not role.running():
                    status = role.process.returncode if role.process else None
                    log(f"{role.name} exited ({status}); starting it again")
                    time.sleep(RESTART_PAUSE_SECONDS)
                    if self._stopping.is_set() or not role.supervised:
                        return
                    role.restarts += 1
                    try:
                        role.start()
                    except RuntimeError as error:  # its port did not open: try again
                        log(str(error))

    def wait_healthy(self, timeout: float = 120.0) -> dict[str, object]:
        """Wait until the web role's /health answers 200 (every dependency up)."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            try:
                health_url = f"{self.web_url}/health"  # http on loopback, made here
                with urllib.request.urlopen(health_url, timeout=10) as answer:  # noqa: S310
                    return dict(json.load(answer))
            except (urllib.error.URLError, OSError) as error:
                last = str(error)
            time.sleep(0.5)
        raise RuntimeError(f"the stack did not become healthy within {timeout:.0f} s: {last}")

    # -- faults (chaos tests) --------------------------------------------------------------

    def restart_service(self, name: str, *, pause: float = 0.0) -> None:
        """Kill a service (-9) and start it again on the same port; a Tansu in memory comes
        back empty, the ClickHouse stand-in with its data."""
        service = self.services[name]
        service.signal(signal.SIGKILL)
        if service.process is not None:
            service.process.wait()
        time.sleep(pause)
        service.start()

    # -- stopping --------------------------------------------------------------------------

    def stop(self) -> dict[str, int | None]:
        """Roles first, in reverse order of start (SIGTERM: each finishes what it accepted),
        then the services; the exit status of each role."""
        self._stopping.set()
        statuses = {}
        for name in reversed(ROLES):
            if name in self.roles:
                statuses[name] = self.roles[name].stop()
        for service in reversed(list(self.services.values())):
            service.stop(timeout=15)
        for stop in self._system_stops:
            subprocess.run(stop, check=False)
        return statuses


def _run(options: argparse.Namespace) -> int:
    directory = Path(options.dir).resolve()
    pid_file = directory / "stack.pid"
    if options.fresh and directory.exists():
        shutil.rmtree(directory)
    stack = Stack(directory, web_port=options.port, ingest_port=options.ingest_port)
    directory.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(str(os.getpid()))
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    try:
        log(f"starting services (data and logs under {directory})")
        stack.start_services()
        log("preparing: migrations and the demo")
        output = stack.prepare(demo=True)
        log("starting the roles: " + ", ".join(ROLES))
        stack.start_roles()
        health = stack.wait_healthy()
        print(output, flush=True)
        print(
            f"""
Naboria's production topology is running (stop with Ctrl-C or `make stack-stop`):
  home:    {stack.web_url}/
  demo:    {stack.web_url}/demo/
  admin:   {stack.web_url}/admin/   (credentials above)
  health:  {stack.web_url}/health   ({health.get("status")})
  metrics: {stack.web_url}/metrics
  ingest:  {stack.ingest_url}/collect (uvicorn; the web role answers tracking paths too)
  drain metrics: http://127.0.0.1:{stack.drain_metrics_port}/metrics
  top:     {stack.top_command()}
  roles:   {
                ", ".join(
                    f"{name} pid {role.process.pid if role.process else '-'}"
                    for name, role in stack.roles.items()
                )
            }
  logs:    {stack.logs}/
  ClickHouse: {stack.environment()["CLICKHOUSE_URL"]} (the chdb stand-in for a server)""",
            flush=True,
        )
        while not stopping.wait(1.0):
            pass
        log("stopping")
        return 0
    finally:
        for name, status in stack.stop().items():
            log(f"{name} stopped ({status})")
        pid_file.unlink(missing_ok=True)


def _stop(options: argparse.Namespace) -> int:
    pid_file = Path(options.dir).resolve() / "stack.pid"
    if not pid_file.exists():
        log("no stack is running")
        return 0
    pid = int(pid_file.read_text())
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pid_file.unlink(missing_ok=True)
        return 0
    while pid_file.exists():
        time.sleep(0.2)
    log("stopped")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8000, help="the web role's port")
    parser.add_argument("--ingest-port", type=int, default=8001, help="the ingest role's port")
    parser.add_argument("--dir", default=str(ROOT / "var" / "stack"), help="data and logs")
    parser.add_argument("--fresh", action="store_true", help="start with empty data")
    parser.add_argument("--stop", action="store_true", help="stop the running stack")
    options = parser.parse_args()
    return _stop(options) if options.stop else _run(options)


if __name__ == "__main__":
    sys.exit(main())
