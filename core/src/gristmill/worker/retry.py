"""Retrying what the database refused for a moment: the one policy of every worker write.

A worker never gives up a result because the database was unreachable (a restart, a failover,
a full pool): it retries with exponential backoff, logging each failure, and only errors that
mean "unreachable for now" are retried.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import psycopg
from psycopg_pool import PoolTimeout

__all__ = ["TRANSIENT", "retry_transient"]

log = logging.getLogger(__name__)

#: Errors that mean "the database is unreachable for now": retried, never fatal to a worker.
TRANSIENT = (psycopg.OperationalError, PoolTimeout)

T = TypeVar("T")


async def retry_transient(
    operation: Callable[[], Awaitable[T]],
    *,
    what: str,
    attempts: int | None = None,
    first_delay_s: float = 0.1,
    max_delay_s: float = 10.0,
) -> T:
    """Run ``operation`` until it does not fail with a :data:`TRANSIENT` error; after
    ``attempts`` failures (``None``: never) the last error is raised."""
    delay = first_delay_s
    failures = 0
    while True:
        try:
            return await operation()
        except TRANSIENT as exc:
            failures += 1
            if attempts is not None and failures >= attempts:
                raise
            log.warning("%s failed (%s); retrying in %.1f s", what, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay_s)
