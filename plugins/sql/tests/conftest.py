"""A database for the PostgreSQL runtime's tests, on the session's Postgres (``pg_cluster``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from gristmill.testing.forward import UnixSocketForwarder
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


@pytest.fixture(scope="session")
def tcp_database(sql_database: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The session's database over TCP on 127.0.0.1, as a sandboxed job reaches a database
    (through the network). The session's Postgres listens on a unix socket only, which no
    sandbox sees: a small forwarder in this process carries each connection to it."""
    socket_path = f"{sql_database['host']}/.s.PGSQL.{sql_database['port']}"
    with UnixSocketForwarder(socket_path) as port:
        yield {**sql_database, "host": "127.0.0.1", "port": port}
