"""No raw client IP address in any log line: the servers' own lines name clients by a masked
address (IPv4: the /24 network, 203.0.113.0; IPv6: the /48 one, 2001:db8:1::), without the port.

Three ways a server writes a client's address, three places it is masked:

- daphne's access log (the web role, ``python -m naboria.web``; on by default, to stdout) is
  not a Python logger: naboria.web writes it with MaskingAccessLog;
- uvicorn (the ingest role) logs requests on ``uvicorn.access`` (unless ``--no-access-log``)
  and WebSocket handshakes on ``uvicorn.error``; daphne logs clients on ``daphne.*`` at DEBUG,
  and ``manage.py runserver`` on ``django.channels.server``: the record factory installed by
  ``configure`` masks the addresses among the arguments of those loggers' records when they
  are made, before any handler or filter sees them;
- ``configure`` is Django's LOGGING_CONFIG (naboria.settings), so every process that sets
  Django up (web, ingest, worker, beat, drain, manage.py) installs it.

Naboria's own code never logs an address (the IP goes no further than the cookieless hash,
ingest.identity).
"""

from __future__ import annotations

import ipaddress
import logging
import logging.config
from collections.abc import Callable
from typing import Any

# Loggers of the servers that name clients (and their children).
SERVER_LOGGERS = ("uvicorn", "daphne", "django.channels.server", "django.server")


def mask_address(address: str) -> str:
    """The address with its host part masked and no port; unchanged if it is no IP address
    (a unix socket's path, a host name)."""
    text = address.strip()
    candidates = [text]
    if text.startswith("[") and "]" in text:  # [2001:db8::1]:5678
        candidates.insert(0, text[1 : text.index("]")])
    elif ":" in text:  # 203.0.113.9:5678, or daphne's "2001:db8::1:5678"
        candidates.append(text.rsplit(":", 1)[0])
    for candidate in candidates:
        try:
            ip = ipaddress.ip_address(candidate)
        except ValueError:
            continue
        prefix = 24 if ip.version == 4 else 48
        return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False).network_address)
    return address


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return mask_address(value)
    if isinstance(value, list | tuple) and len(value) == 2 and isinstance(value[0], str):
        masked = mask_address(value[0])  # a socket address: (host, port)
        return masked if masked != value[0] else value
    return value


def _mask_record_args(record: logging.LogRecord) -> None:
    args = record.args
    if isinstance(args, dict):
        record.args = {key: _masked(value) for key, value in args.items()}
    elif isinstance(args, tuple):
        record.args = tuple(_masked(value) for value in args)


def _is_server_logger(name: str) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in SERVER_LOGGERS)


def install_record_factory() -> None:
    """Mask client addresses in the records of the server loggers (once per process)."""
    factory = logging.getLogRecordFactory()
    if getattr(factory, "masks_client_addresses", False):
        return

    def masking_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        if record.args and _is_server_logger(record.name):
            _mask_record_args(record)
        return record

    masking: Callable[..., logging.LogRecord] = masking_factory
    masking.masks_client_addresses = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(masking)


def configure(config: dict[str, Any]) -> None:
    """Django's LOGGING_CONFIG: the LOGGING dict, and client addresses masked."""
    logging.config.dictConfig(config)
    install_record_factory()
