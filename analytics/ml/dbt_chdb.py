"""dbt-clickhouse on the embedded ClickHouse engine (chdb), in this process.

Why this exists: dbt-clickhouse only talks to ClickHouse servers. Its ``http`` driver builds
every connection with ``clickhouse_connect.get_client(host=..., port=...)``. In the embedded
profile there is no server, and a chdb data folder can be opened by one process only: the
process that already holds it (web, worker, a management command). So dbt has to run inside that
process and reach the same engine through clickhouse-connect's chdb backend, which offers the
same client API.

``embedded_connections()`` replaces the one method of dbt-clickhouse that builds a client
(``ChHttpClient._create_client``) for the duration of a dbt invocation with one that asks
``naboria.clickhouse.new_client`` for a client on ``settings.CLICKHOUSE_URL`` (``chdb:///...``),
carrying dbt's session settings. Everything else in dbt-clickhouse (its SQL, macros,
materializations, database checks) runs unchanged. The profile still names a host and port
(dbt requires them); they are never contacted.

Entry point:
    embedded_connections()  context manager, used by analytics.ml.dbt_runner.dbt_invoke
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from naboria import clickhouse


@contextmanager
def embedded_connections() -> Iterator[None]:
    from dbt.adapters.clickhouse.httpclient import ChHttpClient

    original = ChHttpClient._create_client

    def create_client(self: Any, credentials: Any) -> Any:
        # The database is applied afterwards by dbt-clickhouse itself (_set_client_database).
        return clickhouse.new_client(database=None, session_settings=dict(self._conn_settings))

    ChHttpClient._create_client = create_client  # type: ignore[method-assign]
    try:
        yield
    finally:
        ChHttpClient._create_client = original  # type: ignore[method-assign]
