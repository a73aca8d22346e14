"""Firing schedules, and what happens when their runs end (docs/triggers.md "Schedules").

Every server process runs one :class:`Ticker`. Each pass:

1. **Fire.** The schedules whose ``next_tick`` has come are locked (``FOR UPDATE SKIP
   LOCKED``: another process skips them); for each, the tick is recorded in ``schedule_run``
   with a job id chosen now, ``next_tick`` moves on, and the transaction commits. Only then
   is the job queued, with that id. The row lock and the ledger's primary key make each
   tick fire once however many processes tick; a crash between the commit and the queueing
   leaves a ledger row without a job, which a later pass queues (the chosen id makes a
   second queueing of the same run impossible).
2. **Ended runs.** Runs whose job has ended are taken once each (locked, marked handled in
   the same transaction): a failed script run is retried (``retry``), and the handlers
   (``on_failure`` after N failures, ``on_recovery``, ``on_success``) are started.

Why a ticker rather than Windmill's "the next tick is queued when this one starts": the
ticker needs no hook in the workers' claim nor in the flow engine, it fires flows (which
start at once, they are never queued for later) on time like scripts, and it sees the ticks
that nothing fired (an outage), which Windmill skips silently.

Missed ticks, the policy: a tick fired more than :data:`GRACE_S` late (nothing was running,
the database was down) runs once, as soon as possible, with its original time
(``WM_SCHEDULED_FOR``); the ticks that passed since are skipped and counted on the schedule
(``skipped_ticks``, ``last_skip_at``, ``last_skip_reason``), and the schedule goes on from
the first tick after now. A tick whose previous run has not started yet (no worker free) is
skipped and counted likewise (so that a stopped worker pool never piles up runs to burst
through later), as is, with ``no_flow_overlap``, one whose previous run is still running.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

import psycopg
from psycopg.rows import dict_row

from gristmill.auth.permissions import Access
from gristmill.db.pool import DatabaseDown
from gristmill.db.queries import Q
from gristmill.errors import BadInput, Forbidden, NotFound
from gristmill.flows.state import retry_delay
from gristmill.queue.context import SCHEDULE_TRIGGER
from gristmill.queue.submit import RunOptions
from gristmill.triggers.cron import Cron
from gristmill.triggers.runs import acting_access, runnable_row
from gristmill.triggers.schedules import check_retry, check_timing, first_tick, parse_handler

if TYPE_CHECKING:
    from psycopg_pool import AsyncConnectionPool

    from gristmill.flows.engine import FlowEngine
    from gristmill.queue.submit import Submitter

__all__ = ["GRACE_S", "Ticker", "count_ticks"]

log = logging.getLogger(__name__)

#: A tick fired up to this late is on time (a busy process, a slow query); later, it is a
#: missed tick (see the module's policy).
GRACE_S = 2.0
#: The longest sleep between passes: how soon a schedule saved by another process, or a run
#: that ended, is seen.
MAX_SLEEP_S = 0.5
#: The shortest sleep between passes.
MIN_SLEEP_S = 0.02
#: A ledger row this old without a job: its process stopped before queueing it.
REPUSH_AFTER_S = 10.0
#: Skipped ticks are counted one by one up to this many (then "more than").
COUNT_LIMIT = 100_000


def count_ticks(
    cron: Cron, tz: Any, after: dt.datetime, until: dt.datetime
) -> tuple[int, dt.datetime | None, dt.datetime | None]:
    """The ticks in ``(after, until]``: how many (at most :data:`COUNT_LIMIT`), the first and
    the last counted."""
    count, first, last = 0, None, None
    t = cron.next_after(after, tz)
    while t <= until and count < COUNT_LIMIT:
        count += 1
        first = first or t
        last = t
        t = cron.next_after(t, tz)
    return count, first, last


def _fmt(t: dt.datetime | None) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if t else "?"


@dataclass
class _Fire:
    """A run to queue once the ledger is committed."""

    schedule: dict[str, Any]
    tick: dt.datetime
    job_id: UUID
    attempt: int = 0
    scheduled_for: dt.datetime | None = None


@dataclass
class _Handler:
    schedule: dict[str, Any]
    field: str
    target: str
    args: dict[str, Any]


class Ticker:
    """One per server process: fires schedules and handles their ended runs."""

    def __init__(self, pool: AsyncConnectionPool, submitter: Submitter, flows: FlowEngine) -> None:
        self.pool = pool
        self.submitter = submitter
        self.flows = flows

    async def run(self) -> None:
        """Pass after pass until canceled; a failing pass (database down) is retried."""
        while True:
            try:
                sleep = await self.tick()
            except asyncio.CancelledError:
                raise
            except DatabaseDown:
                # Failing at once now (no wait for a connection): no traceback a second, the
                # pool logged the outage once.
                sleep = 1.0
            except Exception:
                log.exception("schedules: a pass failed; trying again")
                sleep = 1.0
            await asyncio.sleep(sleep)

    async def tick(self) -> float:
        """One pass; returns how long to sleep before the next."""
        fires = await self._fire_due()
        for fire in fires:
            await self._push(fire)
        fires, handlers = await self._handle_ended()
        for fire in fires:
            await self._push(fire)
        for handler in handlers:
            await self._start_handler(handler)
        for fire in await self._lost_runs():
            await self._push(fire)
        async with self.pool.connection() as conn:
            row = await (await conn.execute(Q["sched_next_due"])).fetchone()
        assert row is not None
        nearest, now = row
        if nearest is None:
            return MAX_SLEEP_S
        # A due tick another process is firing right now: look again very soon.
        return min(MAX_SLEEP_S, max(MIN_SLEEP_S, (nearest - now).total_seconds()))

    # -- firing ---------------------------------------------------------------------------------

    async def _fire_due(self) -> list[_Fire]:
        fires: list[_Fire] = []
        async with self.pool.connection() as conn, conn.transaction():
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(Q["sched_due"])
            due = await cur.fetchall()
            if not due:
                return fires
            for schedule in due:
                try:
                    # A savepoint each: one schedule that cannot be planned stops alone.
                    async with conn.transaction():
                        fire = await self._plan(conn, schedule, schedule["db_now"])
                except psycopg.OperationalError:
                    raise
                except Exception as exc:
                    log.exception("schedule %s/%s", schedule["workspace_id"], schedule["path"])
                    await _disable(conn, schedule, f"the schedule could not fire: {exc!r}")
                    continue
                if fire is not None:
                    fires.append(fire)
        return fires

    async def _plan(
        self, conn: psycopg.AsyncConnection, schedule: dict[str, Any], now: dt.datetime
    ) -> _Fire | None:
        """Decide the schedule's due tick (fire or skip) and move it to its next tick."""
        ws, path = schedule["workspace_id"], schedule["path"]
        tick: dt.datetime = schedule["next_tick"]
        try:
            cron, tz = check_timing(
                schedule["schedule"], schedule["timezone"], schedule["cron_version"]
            )
        except BadInput as exc:
            await _disable(conn, schedule, f"cannot compute the next tick: {exc}")
            return None
        skipped, reasons = 0, []
        late = (now - tick).total_seconds() > GRACE_S
        if late:
            # Up to a second of work after a long outage: not on the event loop.
            n, first, last = await asyncio.to_thread(count_ticks, cron, tz, tick, now)
            if n:
                skipped += n
                more = "at least " if n >= COUNT_LIMIT else ""
                reasons.append(
                    f"{more}{n} tick(s) from {_fmt(first)} to {_fmt(last)} missed (nothing "
                    f"fired them: no server was running, or the database was unreachable); "
                    f"the tick of {_fmt(tick)} ran once, late"
                )
            after = now
        else:
            after = tick
        try:
            next_tick = first_tick(cron, tz, after, schedule["paused_until"])
        except BadInput as exc:
            await _disable(conn, schedule, f"cannot compute the next tick: {exc}")
            return None
        fire: _Fire | None = None
        paused = schedule["paused_until"] is not None and tick < schedule["paused_until"]
        if not paused:
            pending = await (
                await conn.execute(Q["sched_pending_run"], {"workspace_id": ws, "path": path})
            ).fetchone()
            if pending is not None and not pending[1]:
                skipped += 1
                reasons.append(
                    f"the tick of {_fmt(tick)} was skipped: the previous run (job {pending[0]}) "
                    "had not started yet (no worker free for it, or a retry waiting for its delay)"
                )
            elif pending is not None and schedule["no_flow_overlap"]:
                skipped += 1
                reasons.append(
                    f"the tick of {_fmt(tick)} was skipped: the previous run (job {pending[0]}) "
                    "was still running (no_flow_overlap)"
                )
            else:
                fire = _Fire(schedule, tick, uuid4(), scheduled_for=tick)
                inserted = await (
                    await conn.execute(
                        Q["sched_insert_run"],
                        {
                            "workspace_id": ws,
                            "path": path,
                            "tick": tick,
                            "attempt": 0,
                            "job_id": fire.job_id,
                            "runnable_path": schedule["script_path"],
                            "is_flow": schedule["is_flow"],
                        },
                    )
                ).fetchone()
                if inserted is None:
                    log.warning("schedule %s/%s: tick %s had fired already", ws, path, tick)
                    fire = None
        reason = "; ".join(reasons) or None
        if reason:
            log.info("schedule %s/%s: %s", ws, path, reason)
        await conn.execute(
            Q["sched_advance"],
            {
                "workspace_id": ws,
                "path": path,
                "next_tick": next_tick,
                "skipped": skipped,
                "reason": reason,
            },
        )
        return fire

    async def _push(self, fire: _Fire) -> None:
        """Queue the run's job (its id from the ledger). A run that cannot start (runnable
        gone, arguments no longer valid, permission lost) disables the schedule, with why."""
        schedule = fire.schedule
        ws, path = schedule["workspace_id"], schedule["path"]
        runnable = schedule["script_path"]
        try:
            async with self.pool.connection() as conn:
                access = await _access(conn, schedule, self.flows.superadmin_secret_set)
            args = schedule["args"] or {}
            if schedule["is_flow"]:
                await self.flows.run_flow(
                    ws,
                    access.actor,
                    runnable,
                    args,
                    job_id=fire.job_id,
                    access=access,
                    trigger_kind=SCHEDULE_TRIGGER,
                    trigger=path,
                )
            else:
                await self.submitter.run_script_by_path(
                    ws,
                    access.actor,
                    runnable,
                    args,
                    RunOptions(
                        scheduled_for=fire.scheduled_for,
                        tag=schedule["tag"],
                        job_id=fire.job_id,
                        trigger_kind=SCHEDULE_TRIGGER,
                        trigger=path,
                    ),
                    access=access,
                )
        except (BadInput, NotFound, Forbidden) as exc:
            if "already exists" in str(exc):
                # Queued by an earlier attempt: the run is there.
                await self._mark_pushed(fire.job_id)
                return
            kind = "flow" if schedule["is_flow"] else "script"
            error = (
                f"the run of {_fmt(fire.tick)} could not start: {kind} {runnable} as "
                f"{schedule['permissioned_as']}: {exc}; the schedule was disabled (fix it, "
                "then enable it again)"
            )
            log.warning("schedule %s/%s: %s", ws, path, error)
            async with self.pool.connection() as conn, conn.transaction():
                await _disable(conn, schedule, error)
                await conn.execute(
                    Q["sched_mark_handled"], {"job_id": fire.job_id, "retried": False}
                )
            return
        await self._mark_pushed(fire.job_id)

    async def _mark_pushed(self, job_id: UUID) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(Q["sched_mark_pushed"], {"job_id": job_id})

    async def _lost_runs(self) -> list[_Fire]:
        """Ledger rows whose process stopped before queueing their job."""
        async with self.pool.connection() as conn, conn.transaction():
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(Q["sched_unpushed_runs"], {"after_s": REPUSH_AFTER_S})
            rows = await cur.fetchall()
            fires = []
            for row in rows:
                schedule = await _get(conn, row["workspace_id"], row["schedule_path"])
                if schedule is None:
                    await conn.execute(
                        Q["sched_mark_handled"], {"job_id": row["job_id"], "retried": False}
                    )
                    continue
                # A tick's first run keeps its time (WM_SCHEDULED_FOR); a retry runs now.
                when = row["tick"] if row["attempt"] == 0 else None
                fires.append(_Fire(schedule, row["tick"], row["job_id"], row["attempt"], when))
        return fires

    # -- ended runs -----------------------------------------------------------------------------

    async def _handle_ended(self) -> tuple[list[_Fire], list[_Handler]]:
        retries: list[_Fire] = []
        handlers: list[_Handler] = []
        async with self.pool.connection() as conn, conn.transaction():
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(Q["sched_ended_runs"])
            for run in await cur.fetchall():
                try:
                    # A savepoint each: a run that cannot be handled is marked so alone.
                    async with conn.transaction():
                        retry, started = await self._ended(conn, run)
                except psycopg.OperationalError:
                    raise
                except Exception:
                    log.exception("schedule run %s could not be handled", run["job_id"])
                    await conn.execute(
                        Q["sched_mark_handled"], {"job_id": run["job_id"], "retried": False}
                    )
                    continue
                if retry is not None:
                    retries.append(retry)
                handlers.extend(started)
        return retries, handlers

    async def _ended(
        self, conn: psycopg.AsyncConnection, run: dict[str, Any]
    ) -> tuple[_Fire | None, list[_Handler]]:
        """A retry of the run, or the handlers it starts; the run is marked handled."""
        schedule = await _get(conn, run["workspace_id"], run["schedule_path"])
        retry = await self._retry(conn, schedule, run) if schedule is not None else None
        await conn.execute(
            Q["sched_mark_handled"], {"job_id": run["job_id"], "retried": retry is not None}
        )
        if retry is not None or schedule is None:
            return retry, []
        return None, await _handlers(conn, schedule, run)

    async def _retry(
        self, conn: psycopg.AsyncConnection, schedule: dict[str, Any], run: dict[str, Any]
    ) -> _Fire | None:
        """The next attempt of a failed script run, when the schedule's retry allows one."""
        if run["status"] == "success" or run["is_flow"] or schedule["retry"] is None:
            return None
        try:
            retry = check_retry(schedule["retry"])
        except BadInput:
            return None
        delay = retry_delay(retry, run["attempt"] + 1)
        if delay is None:
            return None
        fire = _Fire(
            schedule,
            run["tick"],
            uuid4(),
            attempt=run["attempt"] + 1,
            scheduled_for=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=delay),
        )
        await conn.execute(
            Q["sched_insert_run"],
            {
                "workspace_id": run["workspace_id"],
                "path": run["schedule_path"],
                "tick": run["tick"],
                "attempt": fire.attempt,
                "job_id": fire.job_id,
                "runnable_path": run["runnable_path"],
                "is_flow": run["is_flow"],
            },
        )
        return fire

    async def _start_handler(self, handler: _Handler) -> None:
        """Start a handler as the schedule's runs act; only the arguments its ``main`` (or
        the flow's inputs) takes are passed. A handler that cannot start is logged."""
        schedule = handler.schedule
        ws = schedule["workspace_id"]
        ref = parse_handler(handler.field, handler.target)
        try:
            async with self.pool.connection() as conn:
                access = await _access(conn, schedule, self.flows.superadmin_secret_set)
                schema = await _schema(conn, ws, ref.path, ref.is_flow)
            args = _accepted(schema, handler.args)
            if ref.is_flow:
                await self.flows.run_flow(ws, access.actor, ref.path, args, access=access)
            else:
                await self.submitter.run_script_by_path(
                    ws, access.actor, ref.path, args, RunOptions(), access=access
                )
        except (BadInput, NotFound, Forbidden) as exc:
            log.warning(
                "schedule %s/%s: its %s handler %s could not start: %s",
                ws,
                schedule["path"],
                handler.field,
                handler.target,
                exc,
            )


async def _access(
    conn: psycopg.AsyncConnection, schedule: dict[str, Any], superadmin_secret_set: bool
) -> Access:
    """What the schedule's runs may do: its ``permissioned_as`` today (a user removed from
    the workspace, or deleted, can no longer run it: :class:`Forbidden`/:class:`NotFound`)."""
    access = await acting_access(
        conn,
        email=schedule["email"],
        username=schedule["permissioned_as"].removeprefix("u/"),
        workspace_id=schedule["workspace_id"],
        superadmin_secret_set=superadmin_secret_set,
    )
    if access is None:
        raise NotFound(f"the user {schedule['email']} the schedule's runs act as no longer exists")
    return access


async def _get(conn: psycopg.AsyncConnection, ws: str, path: str) -> dict[str, Any] | None:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(Q["sched_get"], {"workspace_id": ws, "path": path})
    return await cur.fetchone()


async def _disable(conn: psycopg.AsyncConnection, schedule: dict[str, Any], error: str) -> None:
    await conn.execute(
        Q["sched_disable_with_error"],
        {"workspace_id": schedule["workspace_id"], "path": schedule["path"], "error": error},
    )


async def _schema(
    conn: psycopg.AsyncConnection, ws: str, path: str, is_flow: bool
) -> dict[str, Any] | None:
    row = await runnable_row(conn, ws, path, is_flow=is_flow)
    if row is None:
        raise NotFound(f"no {'flow' if is_flow else 'script'} at {path}")
    return row["schema"]


def _accepted(schema: dict[str, Any] | None, args: dict[str, Any]) -> dict[str, Any]:
    """The arguments a handler takes (a handler declares those it wants, as in Windmill's
    handler templates)."""
    if not schema or schema.get("additionalProperties") is True:
        return args
    props = schema.get("properties") or {}
    return {k: v for k, v in args.items() if k in props}


def _result(run: dict[str, Any]) -> Any:
    # A jsonb column: psycopg has parsed it already.
    return run["result"]


def _iso(t: dt.datetime | None) -> str | None:
    return t.isoformat() if t is not None else None


async def _handlers(
    conn: psycopg.AsyncConnection, schedule: dict[str, Any], run: dict[str, Any]
) -> list[_Handler]:
    """The handlers an ended run starts, with Windmill's arguments (``schedule.rs`` and the
    queue's ``apply_schedule_handlers``)."""
    success = run["status"] == "success"
    base = {
        "workspace_id": run["workspace_id"],
        "job_id": str(run["job_id"]),
        "path": run["runnable_path"],
        "is_flow": run["is_flow"],
        "schedule_path": schedule["path"],
        "email": schedule["email"],
    }
    out: list[_Handler] = []
    if not success and schedule["on_failure"]:
        times = max(1, schedule["on_failure_times"] or 1)
        exact = bool(schedule["on_failure_exact"])
        prev = await _previous(conn, schedule, run, times if exact else times - 1)
        failures = [p for p in prev[: times - 1] if not p["success"]]
        # `times` failures in a row (this one included); exact: and not one more than that.
        matched = len(failures) == times - 1 and (
            not exact or len(prev) < times or prev[times - 1]["success"]
        )
        if matched:
            result = _result(run)
            args = dict(result) if isinstance(result, dict) else {"error": result}
            args.update(base)
            args["started_at"] = _iso(run["started_at"])
            args["failed_times"] = times
            args.update(schedule["on_failure_extra_args"] or {})
            out.append(_Handler(schedule, "on_failure", schedule["on_failure"], args))
    if success and schedule["on_success"]:
        args = {
            "schedule_path": schedule["path"],
            "path": run["runnable_path"],
            "is_flow": run["is_flow"],
            "success_result": _result(run),
            "success_started_at": _iso(run["started_at"]),
            **(schedule["on_success_extra_args"] or {}),
        }
        out.append(_Handler(schedule, "on_success", schedule["on_success"], args))
    if success and schedule["on_recovery"]:
        times = max(1, schedule["on_recovery_times"] or 1)
        prev = await _previous(conn, schedule, run, times)
        if (
            len(prev) == times
            and all(p["success"] for p in prev[: times - 1])
            and not prev[times - 1]["success"]
        ):
            failed = prev[times - 1]
            error = failed["result"]
            args = dict(error) if isinstance(error, dict) else {"error": error}
            args.update(
                {
                    "error_started_at": _iso(failed["started_at"]),
                    "schedule_path": schedule["path"],
                    "path": run["runnable_path"],
                    "is_flow": run["is_flow"],
                    "success_result": _result(run),
                    "success_times": times,
                    "success_started_at": _iso(run["started_at"]),
                    **(schedule["on_recovery_extra_args"] or {}),
                }
            )
            out.append(_Handler(schedule, "on_recovery", schedule["on_recovery"], args))
    return out


async def _previous(
    conn: psycopg.AsyncConnection, schedule: dict[str, Any], run: dict[str, Any], limit: int
) -> list[dict[str, Any]]:
    if limit <= 0:
        return []
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        Q["sched_previous_outcomes"],
        {
            "workspace_id": schedule["workspace_id"],
            "path": schedule["path"],
            "job_id": run["job_id"],
            "limit": limit,
        },
    )
    return await cur.fetchall()
