"""Whether this process can do its work: the checks behind ``GET /api/health/ready``.

* ``database``: a pooled connection answers a query;
* ``migrations``: every migration this code ships is applied (a process that started
  before a newer one migrated is fine; one whose schema is behind is not);
* ``workers`` (only in a process that runs workers): every task of its worker pool still
  runs, and the process announced itself recently (``worker_ping``, what the API relies on
  to send it jobs).

The database part has a budget of :data:`DATABASE_BUDGET_S` in all, so a probe answers
within a second even when the database hangs; concurrent probes share one check, so a flood
of probes costs the pool one connection.
"""

from __future__ import annotations

import asyncio
import functools
import time
from dataclasses import dataclass
from typing import Literal

import psycopg
from psycopg_pool import PoolTimeout

from gristmill.db.migrations import list_migrations
from gristmill.db.queries import Q
from gristmill.server.platform import Platform
from gristmill.worker.capabilities import LIVE_WITHIN_S

__all__ = ["DATABASE_BUDGET_S", "CheckName", "CheckResult", "check_readiness"]

#: The longest the database part of a readiness check may take (probes time out at 1 s).
DATABASE_BUDGET_S = 0.8


CheckName = Literal["database", "migrations", "workers"]


@dataclass(frozen=True)
class CheckResult:
    name: CheckName
    ok: bool
    detail: str


@dataclass(frozen=True)
class _DatabaseFacts:
    latency_ms: float
    applied: set[int]
    #: Seconds since this process's workers announced themselves (``None``: no row).
    ping_age_s: float | None


@functools.cache
def _expected_migrations() -> frozenset[int]:
    return frozenset(m.version for m in list_migrations())


# One check in flight per platform (keyed by id: a Platform is not hashable); probes that
# arrive meanwhile await it.
_inflight: dict[int, asyncio.Task[list[CheckResult]]] = {}


async def check_readiness(platform: Platform) -> list[CheckResult]:
    """The results of the checks that apply to this process (see the module's doc)."""
    key = id(platform)
    task = _inflight.get(key)
    if task is None:
        task = asyncio.create_task(_check(platform))
        _inflight[key] = task
        task.add_done_callback(lambda _: _inflight.pop(key, None))
    # Shielded: a probe whose client hung up must not cancel the others' check.
    return await asyncio.shield(task)


async def _check(platform: Platform) -> list[CheckResult]:
    workers = platform.workers if platform.runs_workers else None
    facts: _DatabaseFacts | None = None
    try:
        facts = await _read_database(platform, workers.instance if workers else None)
        database = CheckResult("database", True, f"answered in {facts.latency_ms:.0f} ms")
    except TimeoutError:
        database = CheckResult(
            "database", False, f"no answer within {DATABASE_BUDGET_S:g} s (unreachable or busy)"
        )
    except (psycopg.Error, PoolTimeout) as exc:
        database = CheckResult("database", False, f"cannot query it: {_first_line(exc)}")
    results = [database, _migrations(facts)]
    if platform.runs_workers:
        results.append(_workers(platform, facts))
    return results


async def _read_database(platform: Platform, instance: str | None) -> _DatabaseFacts:
    if platform.pool is None:
        raise psycopg.OperationalError("the connection pool is not open")
    started = time.monotonic()
    async with asyncio.timeout(DATABASE_BUDGET_S):
        async with platform.pool.connection(timeout=DATABASE_BUDGET_S) as conn:
            await conn.execute(Q["ping"])
            latency_ms = (time.monotonic() - started) * 1000
            applied = {
                row[0] for row in await (await conn.execute(Q["applied_migrations"])).fetchall()
            }
            ping_age_s = None
            if instance is not None:
                cur = await conn.execute(Q["health_worker_ping_age"], {"worker_instance": instance})
                row = await cur.fetchone()
                ping_age_s = None if row is None else float(row[0])
    return _DatabaseFacts(latency_ms, applied, ping_age_s)


def _migrations(facts: _DatabaseFacts | None) -> CheckResult:
    if facts is None:
        return CheckResult("migrations", False, "not checked: the database did not answer")
    expected = _expected_migrations()
    missing = sorted(expected - facts.applied)
    latest = max(expected)
    if missing:
        return CheckResult(
            "migrations",
            False,
            f"the schema lacks migration(s) {', '.join(map(str, missing))} that this code "
            f"expects (up to {latest}); they are applied when a Gristmill process starts",
        )
    return CheckResult("migrations", True, f"schema at version {max(facts.applied)}")


def _workers(platform: Platform, facts: _DatabaseFacts | None) -> CheckResult:
    workers = platform.workers
    if workers is None:
        return CheckResult("workers", False, "the workers are not started")
    ended = workers.ended_tasks()
    if ended:
        what = ", ".join(
            f"{name} ({'ended' if exc is None else _first_line(exc)})"
            for name, exc in sorted(ended.items())
        )
        return CheckResult("workers", False, f"worker tasks no longer run: {what}")
    if facts is None:
        return CheckResult("workers", False, "not checked: the database did not answer")
    if facts.ping_age_s is None:
        return CheckResult("workers", False, f"{workers.instance} has not announced itself")
    if facts.ping_age_s > LIVE_WITHIN_S:
        return CheckResult(
            "workers",
            False,
            f"{workers.instance} last announced itself {facts.ping_age_s:.0f} s ago (more "
            f"than {LIVE_WITHIN_S:.0f} s): the API does not count on it",
        )
    return CheckResult(
        "workers",
        True,
        f"{len(workers.names)} worker(s) running; announced {facts.ping_age_s:.0f} s ago",
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
