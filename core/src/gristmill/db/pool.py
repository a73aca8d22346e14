"""Connecting to the database (with retries), the pool, JSON adaptation.

The pool knows when the database is down (see :class:`GristmillPool`): then a request for a
connection fails at once with :class:`DatabaseDown` instead of waiting for one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import time
from collections.abc import Callable
from typing import Any

import orjson
import psycopg
from psycopg import conninfo as pg_conninfo
from psycopg.types.json import set_json_dumps, set_json_loads
from psycopg_pool import AsyncConnectionPool

from gristmill.db.queries import Q
from gristmill.errors import GristmillError

__all__ = [
    "DatabaseDown",
    "DatabaseUnavailableError",
    "GristmillPool",
    "database_down",
    "open_pool",
    "outages",
    "redact",
    "wait_for_database",
    "wait_until_up",
]

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


class DatabaseDown(GristmillError, psycopg.OperationalError):
    """The pool knows the database is unreachable: no connection is waited for. An
    ``OperationalError``, so that whatever handles an unreachable database handles it (the
    API's 503, the workers' retries)."""


#: How often a pool that lost its database tries to reach it again.
PROBE_EVERY_S = 0.5
#: A connection attempt that neither succeeds nor fails by then counts as failed: an
#: unreachable host (a cut network drops packets, nothing refuses) is found in seconds, not
#: after the system's TCP time-out. Used when the connection string sets none.
CONNECT_TIMEOUT_S = 5
#: SQLSTATE too_many_connections: the server is up but full, a busy database (not an outage).
_TOO_MANY_CONNECTIONS = "53300"


class GristmillPool(AsyncConnectionPool[psycopg.AsyncConnection[Any]]):
    """A pool that tells an outage from a busy database, and fails fast in an outage.

    Busy: connections open fine, all are in use; a request waits (up to the pool's
    time-out) for one to be returned, as before. Down: an attempt to open a connection
    failed (refused, timed out, the server shutting down or starting up). From then on every
    request for a connection fails at once with :class:`DatabaseDown` (the API answers 503
    with ``Retry-After``, workers pause), requests already waiting are failed too, and a
    probe tries to connect every :data:`PROBE_EVERY_S`; the first connection that opens
    (the probe's or the pool's own) ends the outage.

    Requests already waiting are woken as ``asyncio.timeout`` wakes a task (cancelled, then
    uncancelled and given :class:`DatabaseDown`); psycopg_pool returns a connection handed
    to a cancelled waiter to the pool. Internals of psycopg_pool used, all kept to this
    class: ``_connect`` (every connection attempt of the pool goes through it) and
    ``_resolve_conninfo``/``_resolve_kwargs`` (the probe connects as the pool does).
    """

    def __init__(self, conninfo: str | Callable[[], str], **kwargs: Any) -> None:
        super().__init__(conninfo, **kwargs)
        #: Why the database is down (``None``: it is up) and since when (monotonic).
        self.down_reason: str | None = None
        self._down_since = 0.0
        #: How many outages this pool has seen: a reader that saw the count change knows
        #: the database was away meanwhile, however briefly (the zombie monitor).
        self.outages = 0
        self._up = asyncio.Event()
        self._up.set()
        self._probe: asyncio.Task[None] | None = None
        self._checking: asyncio.Task[None] | None = None
        #: The tasks waiting in getconn(), to wake when the database goes down.
        self._getters: dict[asyncio.Task[Any], int] = {}
        self._aborted: set[asyncio.Task[Any]] = set()

    @property
    def is_down(self) -> bool:
        return self.down_reason is not None

    async def wait_up(self, timeout_s: float | None = None) -> bool:
        """Wait until the database is up (at most ``timeout_s``); whether it is."""
        if not self.is_down:
            return True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._up.wait()
        return not self.is_down

    def _down_error(self) -> DatabaseDown:
        away = time.monotonic() - self._down_since
        return DatabaseDown(f"the database is unreachable (for {away:.0f} s: {self.down_reason})")

    # The overridden methods keep psycopg_pool's signatures (their `timeout` included).
    async def getconn(
        self,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> psycopg.AsyncConnection[Any]:
        if self.down_reason is not None:
            raise self._down_error()
        task = asyncio.current_task()
        if task is None:  # not in a task: nothing to wake, wait as psycopg_pool does
            return await super().getconn(timeout)
        # Registered while it waits: an outage found meanwhile cancels the wait (as
        # asyncio.timeout does: cancel, then uncancel), turned into DatabaseDown here.
        self._getters[task] = task.cancelling()
        try:
            return await super().getconn(timeout)
        except asyncio.CancelledError:
            if task in self._aborted and task.uncancel() <= self._getters[task]:
                raise self._down_error() from None
            raise
        finally:
            self._getters.pop(task, None)
            self._aborted.discard(task)

    async def _connect(
        self,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> psycopg.AsyncConnection[Any]:
        try:
            conn = await super()._connect(timeout)
        except psycopg.OperationalError as exc:
            if getattr(exc, "sqlstate", None) != _TOO_MANY_CONNECTIONS:
                self._mark_down(exc)
            raise
        self._mark_up()
        return conn

    def _mark_down(self, exc: BaseException) -> None:
        if self.down_reason is not None or self.closed:
            return
        text = str(exc).strip()
        self.down_reason = text.splitlines()[0] if text else type(exc).__name__
        self._down_since = time.monotonic()
        self.outages += 1
        self._up.clear()
        log.error(
            "the database is unreachable (%s): requests fail at once until it answers again",
            self.down_reason,
        )
        for task in list(self._getters):
            if task not in self._aborted:
                self._aborted.add(task)
                task.cancel()
        self._probe = asyncio.get_running_loop().create_task(self._probe_until_up())

    def _mark_up(self) -> None:
        if self.down_reason is None:
            return
        log.warning(
            "the database answers again after %.1f s unreachable",
            time.monotonic() - self._down_since,
        )
        self.down_reason = None
        self._up.set()

    async def _probe_until_up(self) -> None:
        # Idle connections to a server that went away are dropped now, not one request at a
        # time (each costs a request a second of psycopg_pool's backoff). In a task of its
        # own: a check on a connection cut by a partition may hang until the kernel gives
        # up on it, and the probe must go on.
        self._checking = asyncio.get_running_loop().create_task(self._drop_broken())
        kwargs = await self._resolve_kwargs()
        while self.down_reason is not None and not self.closed:
            await asyncio.sleep(PROBE_EVERY_S)
            try:
                conninfo = await self._resolve_conninfo()
                async with await psycopg.AsyncConnection.connect(conninfo, **kwargs) as conn:
                    await conn.execute(Q["database_answers"])
            except psycopg.OperationalError:
                continue
            self._mark_up()

    async def _drop_broken(self) -> None:
        with contextlib.suppress(Exception):
            await self.check()

    async def close(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        for task in (self._probe, self._checking):
            if task is not None:
                task.cancel()
        await super().close(timeout)


def database_down(pool: AsyncConnectionPool) -> bool:
    """Whether ``pool`` knows its database to be unreachable (only a :class:`GristmillPool`
    knows)."""
    return isinstance(pool, GristmillPool) and pool.is_down


async def wait_until_up(pool: AsyncConnectionPool, timeout_s: float) -> None:
    """Return when ``pool``'s database is up again, or after ``timeout_s`` at most (a pool
    that cannot tell: after ``timeout_s``)."""
    if isinstance(pool, GristmillPool):
        await pool.wait_up(timeout_s)
    else:
        await asyncio.sleep(timeout_s)


def outages(pool: AsyncConnectionPool) -> int:
    """How many outages ``pool`` has seen (0 for a pool that cannot tell)."""
    return pool.outages if isinstance(pool, GristmillPool) else 0


async def open_pool(conninfo: str, *, max_size: int, name: str = "gristmill") -> GristmillPool:
    """An open pool of autocommit connections that fails fast while the database is down."""

    async def configure(conn: psycopg.AsyncConnection) -> None:
        await conn.set_autocommit(True)

    params = pg_conninfo.conninfo_to_dict(conninfo)
    kwargs: dict[str, Any] = {}
    if not params.get("connect_timeout") and "PGCONNECT_TIMEOUT" not in os.environ:
        kwargs["connect_timeout"] = CONNECT_TIMEOUT_S
    pool = GristmillPool(
        conninfo,
        connection_class=psycopg.AsyncConnection,
        kwargs=kwargs,
        min_size=min(2, max_size),
        max_size=max_size,
        name=name,
        open=False,
        configure=configure,
        check=_drop_if_closed,
        # The pool's own reconnection attempts are given up soon: the probe watches for
        # the database's return, and a connection slot whose attempt was given up is
        # opened again on the next request (a slot still waiting out a long backoff
        # would delay the recovery instead).
        reconnect_timeout=5,
    )
    await pool.open(wait=True, timeout=30)
    return pool
