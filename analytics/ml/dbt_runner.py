"""Runs dbt on the project in ``dbt/`` in this process, against the current ClickHouse setting.

dbt runs through ``dbtRunner`` (its documented programmatic entry point) with a profile generated
from ``settings.CLICKHOUSE_URL`` and ``settings.CLICKHOUSE_DATABASE`` into a private temporary
folder that is removed after the invocation, so a password never lands in a file that outlives
it. In the embedded profile (``chdb:///...``) dbt-clickhouse's connections are served by the
in-process engine (analytics.ml.dbt_chdb). dbt's compiled files and logs go to
``<NABORIA_VAR_DIR>/dbt/`` (never into the source tree).

Where models land: staging views in ``<CLICKHOUSE_DATABASE>_staging``, intermediate tables in
``<CLICKHOUSE_DATABASE>_intermediate`` and the marts in ``<CLICKHOUSE_DATABASE>_marts``; the raw
tables stay alone in ``<CLICKHOUSE_DATABASE>``.

Entry points:
    dbt_invoke(args)   any dbt command (``["build"]``, ``["test", "--select", "marts"]``, ...)
    dbt_build()        ``dbt build`` of every model and test; raises DbtFailed if any fails
    project_vars()     the dbt vars taken from Django: site time zones, ad creatives
    marts_database()   the ClickHouse database holding the marts
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml
from django.conf import settings

from ads.models import Ad
from analytics.ml.dbt_chdb import embedded_connections
from sites.models import Site

PROJECT_DIR = Path(settings.BASE_DIR) / "dbt"
PROFILE = "naboria"
# Flags given to the subcommands that take them, unless the caller gave them: where the project,
# the generated profile, the compiled files and the logs are.
_PATH_FLAGS = ("--project-dir", "--profiles-dir", "--target-path", "--log-path")

# dbt keeps global state per invocation: one at a time in a process (dbt's own advice).
_lock = threading.Lock()


class DbtFailed(Exception):
    """A dbt command failed: a model or a test failed, or dbt could not run."""


@dataclass(frozen=True)
class NodeResult:
    unique_id: str
    status: str
    message: str
    seconds: float


@dataclass(frozen=True)
class DbtOutcome:
    success: bool
    seconds: float
    results: tuple[NodeResult, ...]
    error: str = ""

    def failures(self) -> list[NodeResult]:
        return [r for r in self.results if r.status in {"error", "fail", "runtime error"}]

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for result in self.results:
            counts[result.status] = counts.get(result.status, 0) + 1
        parts = [f"{count} {status}" for status, count in sorted(counts.items())]
        state = "succeeded" if self.success else "FAILED"
        text = f"dbt {state} in {self.seconds:.1f} s" + (f": {', '.join(parts)}" if parts else "")
        return text + (f" ({self.error})" if self.error else "")


def marts_database() -> str:
    return f"{settings.CLICKHOUSE_DATABASE}_marts"


def is_embedded() -> bool:
    return urlsplit(settings.CLICKHOUSE_URL).scheme == "chdb"


def profile() -> dict[str, Any]:
    """The profiles.yml content for the current ClickHouse setting (may hold a password)."""
    output: dict[str, Any] = {
        "type": "clickhouse",
        "driver": "http",
        "schema": settings.CLICKHOUSE_DATABASE,
        "send_receive_timeout": 3600,
    }
    if is_embedded():
        # Never contacted: analytics.ml.dbt_chdb hands dbt in-process chdb clients. One thread,
        # as every query runs in this process's one engine anyway.
        output.update(host="embedded-chdb", port=8123, threads=1)
    else:
        url = urlsplit(settings.CLICKHOUSE_URL)
        secure = url.scheme == "https"
        output.update(
            host=url.hostname or "localhost",
            port=url.port or (8443 if secure else 8123),
            user=unquote(url.username or "default"),
            password=unquote(url.password or ""),
            secure=secure,
            threads=4,
        )
    target = "embedded" if is_embedded() else "server"
    return {PROFILE: {"target": target, "outputs": {target: output}}}


def project_vars() -> dict[str, Any]:
    """dbt vars that come from what people edit in Django: each site's time zone (the local hour
    and weekday of the marts) and each ad's creative kind and size."""
    timezones = dict(
        Site.objects.exclude(timezone="UTC").values_list("public_id", "timezone").order_by("pk")
    )
    creatives = {
        str(pk): [kind, f"{width}x{height}" if width and height else ""]
        for pk, kind, width, height in Ad.objects.values_list(
            "pk", "kind", "width", "height"
        ).order_by("pk")
    }
    return {"site_timezones": timezones, "ad_creatives": creatives}


def _subcommand_options(args: Sequence[str]) -> set[str]:
    """The option strings the dbt subcommand in ``args`` accepts (``docs generate`` too)."""
    import click
    from dbt.cli.main import cli

    command: click.Command = cli
    for word in args:
        if word.startswith("-") or not isinstance(command, click.Group):
            break
        found = command.commands.get(word)
        if found is None:
            break
        command = found
    if command is cli:
        return set()
    return {
        option
        for param in command.params
        for option in [*getattr(param, "opts", []), *getattr(param, "secondary_opts", [])]
    }


def _with_vars(args: list[str], extra: Mapping[str, Any]) -> list[str]:
    """``args`` with one ``--vars``: the project's vars, overridden by any the caller gave."""
    merged = dict(extra)
    rest: list[str] = []
    index = 0
    while index < len(args):
        word = args[index]
        if word == "--vars" and index + 1 < len(args):
            merged.update(yaml.safe_load(args[index + 1]) or {})
            index += 2
            continue
        if word.startswith("--vars="):
            merged.update(yaml.safe_load(word.removeprefix("--vars=")) or {})
        else:
            rest.append(word)
        index += 1
    return [*rest, "--vars", json.dumps(merged)]


def _node_results(result: Any) -> tuple[NodeResult, ...]:
    rows = getattr(result, "results", None)
    if not isinstance(rows, list):
        return ()
    return tuple(
        NodeResult(
            unique_id=str(getattr(getattr(row, "node", None), "unique_id", "")),
            status=str(getattr(row, "status", "")),
            message=str(getattr(row, "message", "") or ""),
            seconds=float(getattr(row, "execution_time", 0.0) or 0.0),
        )
        for row in rows
    )


def dbt_invoke(
    args: Sequence[str], *, extra_vars: Mapping[str, Any] | None = None, quiet: bool = False
) -> DbtOutcome:
    """Run ``dbt <args>`` on the project with the generated profile; never raises for a failed
    model or test (see ``DbtOutcome.success``)."""
    from dbt.cli.main import dbtRunner

    words = list(args) or ["build"]
    accepted = _subcommand_options(words)
    var_dir = Path(settings.VAR_DIR) / "dbt"
    with _lock, tempfile.TemporaryDirectory(prefix="naboria-dbt-") as profiles_dir:
        profile_file = Path(profiles_dir) / "profiles.yml"
        profile_file.write_text(yaml.safe_dump(profile()))
        profile_file.chmod(0o600)
        paths = dict(
            zip(
                _PATH_FLAGS,
                (PROJECT_DIR, profiles_dir, var_dir / "target", var_dir / "logs"),
                strict=True,
            )
        )
        for flag, value in paths.items():
            if flag in accepted and flag not in words:
                words += [flag, str(value)]
        if "--vars" in accepted:
            words = _with_vars(words, {**project_vars(), **(extra_vars or {})})
        for flag in ("--no-send-anonymous-usage-stats", "--no-version-check"):
            if flag in accepted:
                words.append(flag)
        if quiet and "--quiet" in accepted:
            words.append("--quiet")
        started = time.monotonic()
        if is_embedded():
            with embedded_connections():
                result = dbtRunner().invoke(words)
        else:
            result = dbtRunner().invoke(words)
    return DbtOutcome(
        success=bool(result.success),
        seconds=time.monotonic() - started,
        results=_node_results(result.result),
        error=str(result.exception) if result.exception else "",
    )


def dbt_build(
    *,
    select: str | None = None,
    extra_vars: Mapping[str, Any] | None = None,
    quiet: bool = False,
) -> DbtOutcome:
    """``dbt build`` (models, then their tests, in dependency order); ``extra_vars`` override the
    project's (e.g. ``{"conversion_goal": "Booking"}``)."""
    outcome = dbt_invoke(
        ["build", *(["--select", select] if select else [])], extra_vars=extra_vars, quiet=quiet
    )
    if not outcome.success:
        failed = "; ".join(f"{r.unique_id}: {r.message}" for r in outcome.failures())
        raise DbtFailed(f"{outcome.summary()}{': ' + failed if failed else ''}")
    return outcome
