"""Numbered, code-defined ClickHouse DDL and the runner that applies it.

Each module ``NNNN_description.py`` in this package defines ``OPERATIONS``, a list of DDL
statements written against the configured database (names unqualified). The runner applies
pending migrations in number order and records each in the ``schema_migrations`` table once
all its statements succeeded. Statements are written to be re-runnable (``IF NOT EXISTS``),
so a migration interrupted halfway is simply applied again.

Entry points (used by ``python manage.py migrate_clickhouse`` and the test suite):
    discover()        -> list[Migration] in order
    applied()         -> set of applied migration names
    apply_pending()   -> names applied now
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from naboria import clickhouse

_NAME = re.compile(r"^(\d{4})_\w+$")

TRACKING_TABLE_DDL = """
CREATE TABLE IF NOT EXISTS schema_migrations
(
    name String,
    applied_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY name
"""


@dataclass(frozen=True)
class Migration:
    name: str
    operations: tuple[str, ...]


def discover(package: str = __name__) -> list[Migration]:
    module = importlib.import_module(package)
    migrations = []
    for info in pkgutil.iter_modules(module.__path__):
        if not _NAME.match(info.name):
            continue
        loaded = importlib.import_module(f"{package}.{info.name}")
        migrations.append(Migration(name=info.name, operations=tuple(loaded.OPERATIONS)))
    numbers = [migration.name[:4] for migration in migrations]
    duplicates = {number for number in numbers if numbers.count(number) > 1}
    if duplicates:
        raise RuntimeError(f"two ClickHouse migrations share a number: {sorted(duplicates)}")
    return sorted(migrations, key=lambda migration: migration.name)


def applied() -> set[str]:
    client = clickhouse.get_client()
    client.command(TRACKING_TABLE_DDL)
    return {
        row[0] for row in client.query("SELECT DISTINCT name FROM schema_migrations").result_rows
    }


def apply_pending(package: str = __name__) -> list[str]:
    clickhouse.ensure_database()
    done = applied()
    client = clickhouse.get_client()
    applied_now = []
    for migration in discover(package):
        if migration.name in done:
            continue
        for statement in migration.operations:
            client.command(statement)
        client.insert(
            "schema_migrations",
            [[migration.name, datetime.now(UTC)]],
            column_names=["name", "applied_at"],
        )
        applied_now.append(migration.name)
    return applied_now
