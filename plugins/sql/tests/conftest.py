"""A database for the PostgreSQL runtime's tests, on the session's Postgres (``pg_cluster``)."""

from __future__ import annotations

import contextlib
import socket
import threading
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


@pytest.fixture(scope="session")
def tcp_database(sql_database: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The session's database over TCP on 127.0.0.1, as a sandboxed job reaches a database
    (through the network). The session's Postgres listens on a unix socket only, which no
    sandbox sees: a small forwarder in this process carries each connection to it."""
    socket_path = f"{sql_database['host']}/.s.PGSQL.{sql_database['port']}"
    with _Forwarder(socket_path) as port:
        yield {**sql_database, "host": "127.0.0.1", "port": port}


class _Forwarder:
    """Accepts TCP connections on 127.0.0.1 and pipes each to a unix socket."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.1)
        self.stop = threading.Event()
        self.sockets: list[socket.socket] = []

    def __enter__(self) -> int:
        threading.Thread(target=self._accept, daemon=True).start()
        return self.server.getsockname()[1]

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.server.close()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                client, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX)
            try:
                upstream.connect(self.target)
            except OSError:
                client.close()
                continue
            self.sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(source, sink), daemon=True).start()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)
