"""A database for the PostgreSQL runtime's tests, on the session's Postgres (``pg_cluster``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from gristmill.testing.pytest_plugin import PgCluster
from psycopg.conninfo import conninfo_to_dict


def connection_object(conninfo: str) -> dict[str, Any]:
    """The inline `database` argument of a job: the resource object Windmill passes."""
    params = conninfo_to_dict(conninfo)
    return {
        "host": params["host"],
        "port": int(params.get("port") or 5432),
        "user": params.get("user") or "postgres",
        "password": "",
        "dbname": params["dbname"],
        "sslmode": "disable",
    }


@pytest.fixture(scope="session")
def sql_database(pg_cluster: PgCluster) -> Iterator[dict[str, Any]]:
    """One database for the session's SQL jobs; tests use temporary or uniquely named tables."""
    name = pg_cluster.create_database()
    try:
        yield connection_object(pg_cluster.conninfo(name))
    finally:
        pg_cluster.drop_database(name)
