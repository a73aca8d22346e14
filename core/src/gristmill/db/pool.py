"""Connecting to the database (with retries), the pool, JSON adaptation."""

from __future__ import annotations

import logging
import select
import time
from typing import Any

import orjson
import psycopg
from psycopg import conninfo as pg_conninfo
from psycopg.types.json import set_json_dumps, set_json_loads
from psycopg_pool import AsyncConnectionPool

from gristmill.db.queries import Q
from gristmill.errors import GristmillError

__all__ = ["DatabaseUnavailableError", "open_pool", "redact", "wait_for_database"]

log = logging.getLogger(__name__)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


# orjson is several times faster than json for the JSON columns (args, schemas, results).
set_json_dumps(_dumps)
set_json_loads(orjson.loads)


class DatabaseUnavailableError(GristmillError, RuntimeError):
    """The database could not be reached."""


def redact(conninfo: str) -> str:
    """A connection string safe to print (its password hidden)."""
    try:
        params = pg_conninfo.conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        return "<unparsable connection string>"
    if "password" in params:
        params["password"] = "***"
    return pg_conninfo.make_conninfo(**{k: str(v) for k, v in params.items() if v is not None})


def wait_for_database(conninfo: str, *, timeout_s: float = 60.0) -> None:
    """Block until the database answers, retrying with backoff; fail with a clear message."""
    deadline = time.monotonic() + timeout_s
    delay = 0.1
    attempt = 0
    while True:
        attempt += 1
        try:
            with psycopg.connect(conninfo, connect_timeout=5) as conn:
                conn.execute(Q["ping"])
                return
        except psycopg.OperationalError as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            if time.monotonic() + delay > deadline:
                raise DatabaseUnavailableError(
                    f"cannot reach the database at {redact(conninfo)} after {attempt} "
                    f"attempts over {timeout_s:.0f} s: {reason}. Check that the server is "
                    "running and that DATABASE_URL is right (or unset it to use the "
                    "embedded Postgres)."
                ) from exc
            log.warning("database not reachable yet (%s); retrying in %.1f s", reason, delay)
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


async def _drop_if_closed(conn: psycopg.AsyncConnection[Any]) -> None:
    """The pool's check when handing out a connection: costs one non-blocking poll.

    An idle connection has nothing to read; when the server closed it (a restart, an
    administrator, a network cut) its socket is readable. Such a connection is replaced
    before any query fails on it.
    """
    ready, _, _ = select.select([conn.pgconn.socket], [], [], 0)
    if ready:
        # Closed here, the pool discards it (a connection merely failing the check would
        # be put back as it is).
        await conn.close()
        raise psycopg.OperationalError("the server closed this idle connection")


async def open_pool(
    conninfo: str, *, max_size: int, name: str = "gristmill"
) -> AsyncConnectionPool[psycopg.AsyncConnection[Any]]:
    """An open pool of autocommit connections."""

    async def configure(conn: psycopg.AsyncConnection) -> None:
        await conn.set_autocommit(True)

    pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] = AsyncConnectionPool(
        conninfo,
        connection_class=psycopg.AsyncConnection,
        min_size=min(2, max_size),
        max_size=max_size,
        name=name,
        open=False,
        configure=configure,
        check=_drop_if_closed,
        reconnect_timeout=60,
    )
    await pool.open(wait=True, timeout=30)
    return pool
