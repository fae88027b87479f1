"""No raw client IP in any log (issue 15, item 4): each server role is started as it is run
(the web role as ``make run`` starts it, the ingest role on uvicorn with its access log on, and
``manage.py runserver``), at DEBUG, and sent a request from a client address of its own
(127.0.0.77); the role's whole output must name that client by its masked /24 only."""

from __future__ import annotations

import contextlib
import logging
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from naboria.log_privacy import mask_address
from scripts.test_services import ROOT, embedded_environment, free_port

CLIENT = "127.0.0.77"
MASKED = "127.0.0.0"


def _commands(port: int) -> dict[str, list[str]]:
    uvicorn = str(Path(sys.executable).with_name("uvicorn"))
    return {
        # as `make run` starts it: daphne's access log is on (stdout) by default
        "web": [sys.executable, "-m", "naboria.web", "-b", "127.0.0.1", "-p", str(port),
                "naboria.asgi:application"],
        # the ingest role with its access log on (the documented command turns it off)
        "ingest": [uvicorn, "naboria.asgi:application", "--host", "127.0.0.1", "--port",
                   str(port), "--http", "naboria.ingest_http:HttpToolsProtocol",
                   "--lifespan", "off", "--log-level", "debug"],
        "runserver": [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}",
                      "--noreload", "--skip-checks"],
    }  # fmt: skip


@pytest.fixture(scope="module")
def environment(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    env = embedded_environment(
        tmp_path_factory.mktemp("var"), NABORIA_STARTUP_CHECKS="false", LOG_LEVEL="DEBUG"
    )
    # The SQL schema is all these requests need (an unknown site's 404).
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input"], cwd=ROOT, env=env, check=True,
        timeout=300, capture_output=True,
    )  # fmt: skip
    return env


def _request_from_client(port: int) -> bytes:
    """GET /init for an unknown site from CLIENT (a loopback address of its own); the answer."""
    with socket.socket() as connection:
        connection.bind((CLIENT, 0))
        connection.settimeout(10)
        connection.connect(("127.0.0.1", port))
        connection.sendall(b"GET /init?site=nosuchsite HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        return connection.recv(65536)


@pytest.fixture(params=["web", "ingest", "runserver"])
def role_log(
    request: pytest.FixtureRequest, environment: dict[str, str], tmp_path: Path
) -> tuple[str, Path]:
    port = free_port()
    log = tmp_path / f"{request.param}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            _commands(port)[request.param], cwd=ROOT, env=environment, stdout=output, stderr=output
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(ConnectionRefusedError):
                answer = _request_from_client(port)
                break
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"{request.param} did not start"
            time.sleep(0.2)
        assert b" 404 " in answer.split(b"\r\n", 1)[0]
        time.sleep(0.5)  # the access line is written once the response is sent
    finally:
        process.terminate()
        process.wait(timeout=20)
    return request.param, log


def test_no_server_role_logs_the_raw_client_ip(role_log):
    role, log = role_log
    text = log.read_text()
    lines = [line for line in text.splitlines() if MASKED in line]
    assert CLIENT not in text, f"{role} logged the raw client IP:\n{text}"
    # The request is logged all the same, with the masked address (runserver logs requests
    # at INFO on django.channels.server, set to WARNING: only daphne's DEBUG lines remain).
    assert lines, f"{role} logged no line about the request:\n{text}"


@pytest.mark.parametrize(
    ("address", "masked"),
    [
        ("203.0.113.9", "203.0.113.0"),
        ("203.0.113.9:51234", "203.0.113.0"),
        ("[2001:db8:1:2::9]:443", "2001:db8:1::"),
        ("2001:db8:1:2::9", "2001:db8:1::"),
        ("unix:/run/naboria.sock", "unix:/run/naboria.sock"),
        ("GET", "GET"),
    ],
)
def test_addresses_are_masked_to_their_network(address, masked):
    assert mask_address(address) == masked


class _Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_server_loggers_mask_client_addresses_in_this_process():
    """Django set logging up with naboria.log_privacy.configure (LOGGING_CONFIG): records of
    the server loggers are masked when made, whatever handlers they reach."""
    kept = _Kept()
    lines = [
        ("uvicorn.access", '%s - "%s %s HTTP/%s" %d',
         ("198.51.100.23:4711", "GET", "/", "1.1", 404)),
        ("uvicorn.error", '%s - "WebSocket %s" [accepted]', ("198.51.100.23:4711", "/ws")),
        ("daphne.http_protocol", "HTTP %s request for %s", ("GET", ["198.51.100.23", 4711])),
        ("django.channels.server", "HTTP %(method)s [%(client)s]",
         ({"method": "GET", "client": "198.51.100.23:4711"},)),
    ]  # fmt: skip
    for name, message, args in lines:
        logger = logging.getLogger(name)
        level = logger.level
        logger.addHandler(kept)
        logger.setLevel(logging.DEBUG)
        try:
            logger.warning(message, *args)
        finally:
            logger.removeHandler(kept)
            logger.setLevel(level)
    assert len(kept.messages) == 4
    assert all("198.51.100.0" in message for message in kept.messages), kept.messages
    assert not any("198.51.100.23" in message for message in kept.messages)
