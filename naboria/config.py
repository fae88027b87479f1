"""Configuration errors and how entry points report them.

Settings raise :class:`ConfigurationError` for a variable they cannot understand; the startup
checks raise it for a backend that does not answer. Entry points (manage.py, naboria.asgi,
naboria.celery) wrap their start in :func:`exit_on_configuration_error`, so an operator sees one
line naming the variable instead of a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager


class ConfigurationError(Exception):
    """A setting that is malformed, or that names a backend that cannot be reached."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable
        self.problem = problem


@contextmanager
def exit_on_configuration_error() -> Iterator[None]:
    try:
        yield
    except ConfigurationError as error:
        print(f"naboria: configuration error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def redact_url(url: str) -> str:
    """The URL with any password replaced, safe to show in health reports and logs."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
