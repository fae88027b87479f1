"""The feature marts as Parquet files, partitioned by day, for training outside ClickHouse.

ClickHouse writes the Parquet itself (``FORMAT Parquet``, streamed through the client), so the
export needs no extra library and works the same over HTTP and in the embedded engine. Layout,
one folder per mart, hive-style (pyarrow.dataset / pandas.read_parquet read it as one table):

    <out>/mart_ctr_features/date=2026-11-20/part.parquet
    <out>/mart_conversion_features/date=2026-11-20/part.parquet
    <out>/mart_user_features/date=2026-11-20/part.parquet

Each file keeps every column of its mart, event_date included; the ``date=`` folder is the
mart's event_date. A mart's folder is replaced as a whole (written beside it, then renamed), so
a reader never sees half an export and days that left the mart do not linger.

Entry points:
    export_marts(out_dir=...)   writes the marts (default: all three) and says what it wrote
    mart_columns(mart, role=)   the mart's columns with a role (feature, label, id, time,
                                outcome) from dbt/models/marts/schema.yml, for training code
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from django.conf import settings

from analytics.ml.dbt_runner import PROJECT_DIR, marts_database
from naboria import clickhouse

MARTS = ("mart_ctr_features", "mart_conversion_features", "mart_user_features")
# Rows in a stable order inside each file: the same marts export to the same files.
ORDER = {
    "mart_ctr_features": "impression_at, impression_id",
    "mart_conversion_features": "started_at, session_id",
    "mart_user_features": "site_id, visitor_id",
}
PARQUET_SETTINGS = {
    # Strings as UTF-8 strings, not raw bytes, so pandas and pyarrow read text.
    "output_format_parquet_string_as_string": 1,
    "output_format_parquet_compression_method": "zstd",
}


@dataclass(frozen=True)
class ExportedMart:
    name: str
    directory: Path
    rows: int
    days: tuple[date, ...]


def default_out_dir() -> Path:
    return Path(settings.VAR_DIR) / "marts"


def _export_one(client: Any, *, mart: str, out_dir: Path) -> ExportedMart:
    table = f"{marts_database()}.{mart}"
    # Names come from MARTS and the settings (checked by export_marts); values are parameters.
    days = client.query(
        f"SELECT event_date, count() FROM {table} GROUP BY event_date ORDER BY event_date"  # noqa: S608
    ).result_rows
    final = out_dir / mart
    partial = out_dir / f".{mart}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for day, _ in days:
        folder = partial / f"date={day.isoformat()}"
        folder.mkdir()
        stream = client.raw_stream(
            f"SELECT * FROM {table} WHERE event_date = {{day:Date}} ORDER BY {ORDER[mart]}",  # noqa: S608
            parameters={"day": day},
            settings=PARQUET_SETTINGS,
            fmt="Parquet",
        )
        with stream, (folder / "part.parquet").open("wb") as file:
            for chunk in stream:
                file.write(chunk)
    previous = out_dir / f".{mart}.previous"
    shutil.rmtree(previous, ignore_errors=True)
    if final.exists():
        final.rename(previous)
    partial.rename(final)
    shutil.rmtree(previous, ignore_errors=True)
    return ExportedMart(
        name=mart,
        directory=final,
        rows=sum(count for _, count in days),
        days=tuple(day for day, _ in days),
    )


def export_marts(
    *, out_dir: Path | None = None, marts: Sequence[str] = MARTS
) -> list[ExportedMart]:
    """Write each mart to ``<out_dir>/<mart>/date=YYYY-MM-DD/part.parquet`` (default out_dir:
    ``<NABORIA_VAR_DIR>/marts``). The marts must have been built (``dbt_build``)."""
    unknown = set(marts) - set(MARTS)
    if unknown:
        raise ValueError(f"not a mart: {', '.join(sorted(unknown))}")
    target = Path(out_dir) if out_dir is not None else default_out_dir()
    target.mkdir(parents=True, exist_ok=True)
    client = clickhouse.get_client()
    return [_export_one(client, mart=mart, out_dir=target) for mart in marts]


def mart_columns(mart: str, *, role: str | None = None) -> list[dict[str, Any]]:
    """The mart's documented columns in order (name, description, meta: role and kind), only
    those with ``role`` if given; e.g. ``mart_columns("mart_ctr_features", role="feature")``."""
    schema = yaml.safe_load((PROJECT_DIR / "models" / "marts" / "schema.yml").read_text())
    for model in schema["models"]:
        if model["name"] == mart:
            columns: list[dict[str, Any]] = model.get("columns", [])
            return [c for c in columns if role is None or c.get("meta", {}).get("role") == role]
    raise ValueError(f"not a mart: {mart}")
