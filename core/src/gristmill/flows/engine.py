"""The flow engine: glue between the pure decisions of :mod:`gristmill.flows.state` and the
job queue. Nothing here decides what a flow does next; it loads, calls, stores and applies.

**A flow job** (kind ``flowpreview``) is inserted "running" and held by no worker: workers
claim only jobs that are not running, so a flow never takes a worker slot. Its flow (the
``value``) is stored on the job (``job.raw_flow``), its status in ``job_flow_status``.

**Submitting** checks the flow, inserts the flow job, calls :func:`state.start` and applies
its actions, all in one transaction: a flow either exists with its first step queued, or
not at all.

**Advancing** happens where a step's job is completed, in the worker's completing
transaction (:meth:`FlowEngine.step_completed`): the flow's status row is locked
(``FOR UPDATE``: two steps of a flow never decide at once), :func:`state.step_finished`
gives the next status and actions, which are applied and stored before the commit. A step
completed is therefore never left without its flow advancing, except when the advance
itself raises (a bug, an expression runtime failing): it runs in a savepoint, so the step's
completion still commits and the monitor's :meth:`FlowEngine.sweep` (flows still running
whose awaited job is completed) retries it later. The sweep also advances flows whose step
was completed outside a worker (canceled while queued, failed as a zombie). Applying twice
is harmless: the step jobs' ids are the state machine's deterministic ids, inserted with
``ON CONFLICT DO NOTHING``, and a completion the status no longer waits for is ignored.

**Actions**: a :class:`~gristmill.flows.state.RunStep` becomes a child job (``parent_job`` =
the flow, ``flow_step_id`` = the module id, run as the flow's user with the flow's token
scopes, scheduled ``delay_s`` from now); a step that cannot be queued (its script is gone,
a sub-flow) is recorded failed at once and fed back to the state machine. A
:class:`~gristmill.flows.state.FinishFlow` completes the flow job like any job (its waiters
are notified at commit).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

import orjson
import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from gristmill.db.queries import Q
from gristmill.errors import BadInput, JobErrorName
from gristmill.flows import state
from gristmill.flows.checks import check_flow
from gristmill.flows.expressions import Evaluator
from gristmill.flows.model import OpenFlow, PathScript, iter_modules, parse_flow
from gristmill.queue.states import JobKind, JobStatus
from gristmill.runtimes import RuntimeRegistry, ScriptError, UnknownRuntimeError, error_result
from gristmill.runtimes.schema import ArgumentError, signature_to_schema, validate_args
from gristmill.scripts.hashes import parse_hash
from gristmill.scripts.paths import check_path
from gristmill.validation import InputLimits, check_json

if TYPE_CHECKING:
    from gristmill.auth.actor import Actor
    from gristmill.auth.permissions import Access

__all__ = ["FlowEngine", "public_flow_status"]

log = logging.getLogger(__name__)


def public_flow_status(stored: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The ``flow_status`` of a job as Windmill's API shows it (``None`` for other jobs)."""
    if stored is None:
        return None
    return state.FlowStatus.model_validate(stored).windmill_json()


def _failure(name: str, message: str) -> Any:
    return orjson.loads(error_result(name, message))


class FlowEngine:
    """One per process: submits flows and advances them."""

    def __init__(
        self,
        *,
        pool: AsyncConnectionPool,
        registry: RuntimeRegistry,
        limits: InputLimits | None = None,
        evaluator: Evaluator | None = None,
    ) -> None:
        self.pool = pool
        self.registry = registry
        self.limits = limits or InputLimits()
        self.evaluator = evaluator or Evaluator()

    # -- submitting ----------------------------------------------------------------------------

    async def run_preview(
        self,
        workspace_id: str,
        actor: Actor,
        value: Mapping[str, Any],
        args: Mapping[str, Any],
        *,
        path: str | None = None,
        job_id: UUID | None = None,
        access: Access | None = None,
    ) -> UUID:
        """Check and start a flow sent with the request; return the flow job's id."""
        if access is not None:
            access.require_not_operator()  # a preview runs arbitrary code
        # The model's own reading: a refusal names the module and the field at fault.
        flow = parse_flow({"summary": "", "value": value})
        if path is not None:
            check_path(path)
        check_json("args", args, max_depth=self.limits.max_args_depth)
        await self._check(workspace_id, flow)
        job_id = job_id or uuid4()
        decision = state.start(flow, args, evaluator=self.evaluator, flow_job_id=job_id)
        params = {
            "id": job_id,
            "workspace_id": workspace_id,
            "kind": JobKind.FLOWPREVIEW,
            "runnable_path": path,
            "raw_flow": Jsonb(flow.model_dump(mode="json", by_alias=True, exclude_unset=True)),
            "args": Jsonb(dict(args)),
            "created_by": actor.username,
            "permissioned_as": actor.permissioned_as,
            "email": actor.email,
            "parent_job": None,
            "root_job": None,
            "permissioned_scopes": list(actor.scopes) if actor.scopes is not None else None,
            "flow_status": Jsonb(decision.status.to_json()),
        }
        async with self.pool.connection() as conn, conn.transaction():
            try:
                await conn.execute(Q["push_flow_job"], params)
            except psycopg.errors.UniqueViolation:
                raise BadInput(f"a job with id {job_id} already exists") from None
            row = await self._lock(conn, job_id)
            assert row is not None  # inserted just above, in this transaction
            if not await self._concurrency_admit(conn, row, flow):
                return job_id  # waits for a slot: started by _concurrency_release
            await self._apply(conn, row, flow, decision)
        return job_id

    async def _check(self, workspace_id: str, flow: OpenFlow) -> None:
        """``check_flow`` with the scripts of this workspace; :class:`BadInput` naming the
        modules at fault. Features the state machine does not run yet are refused too."""
        paths = {
            m.value.path
            for m, _ in iter_modules(flow)
            if isinstance(m.value, PathScript) and m.value.hash is None
        }
        existing: set[str] = set()
        async with self.pool.connection() as conn:
            for p in paths:
                found = await (
                    await conn.execute(
                        Q["get_live_script_by_path"], {"workspace_id": workspace_id, "path": p}
                    )
                ).fetchone()
                if found is not None:
                    existing.add(p)
        check_flow(
            flow,
            script_exists=lambda p: p in existing,
            known_languages=self._languages(),
        )
        unsupported = state.unsupported_features(flow)
        if unsupported:
            raise BadInput("not supported yet: " + "; ".join(unsupported))

    def _languages(self) -> set[str]:
        return set(self.registry.names())

    # -- advancing ------------------------------------------------------------------------------

    async def step_completed(
        self,
        conn: psycopg.AsyncConnection,
        *,
        flow_job_id: UUID,
        job_id: UUID,
        status: JobStatus,
        result_json: str,
    ) -> None:
        """A step's job was completed on ``conn``, in a transaction not yet committed:
        advance its flow in the same transaction. A failure of the advance is contained in
        a savepoint (the step's completion stands; :meth:`sweep` advances the flow later)."""
        try:
            async with conn.transaction():
                await self.advance(
                    conn,
                    flow_job_id,
                    job_id,
                    success=status == JobStatus.SUCCESS,
                    result=orjson.loads(result_json),
                )
        except (psycopg.OperationalError, psycopg.InterfaceError):
            raise  # the connection is gone: the whole completion is retried
        except Exception:
            log.exception(
                "flow %s could not advance after job %s; the monitor will retry",
                flow_job_id,
                job_id,
            )

    async def advance(
        self,
        conn: psycopg.AsyncConnection,
        flow_job_id: UUID,
        job_id: UUID,
        *,
        success: bool,
        result: Any,
    ) -> bool:
        """Feed the completion of ``job_id`` to its flow (locked); ``False`` when the flow
        has ended or was not waiting for that job."""
        row = await self._lock(conn, flow_job_id)
        if row is None:
            return False
        flow = OpenFlow.model_validate(row["raw_flow"])
        status = state.FlowStatus.model_validate(row["flow_status"])
        decision = state.step_finished(
            flow,
            status,
            job_id=str(job_id),
            success=success,
            result=result,
            evaluator=self.evaluator,
        )
        if decision.ignored:
            return False
        await self._apply(conn, row, flow, decision)
        return True

    async def sweep(self) -> int:
        """Advance the flows whose awaited job completed without them advancing; return how
        many advanced."""
        async with self.pool.connection() as conn:
            stalled = await (await conn.execute(Q["stalled_flows"])).fetchall()
        advanced = 0
        for flow_job_id, awaiting in stalled:
            async with self.pool.connection() as conn, conn.transaction():
                done = await (
                    await conn.execute(Q["get_completed_for_flow"], {"id": awaiting})
                ).fetchone()
                if done is None:
                    continue
                if await self.advance(
                    conn,
                    flow_job_id,
                    awaiting,
                    success=done[0] == JobStatus.SUCCESS,
                    result=done[1],
                ):
                    advanced += 1
        return advanced + await self._concurrency_sweep()

    # -- applying ---------------------------------------------------------------------------

    async def _lock(
        self, conn: psycopg.AsyncConnection, flow_job_id: UUID
    ) -> dict[str, Any] | None:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(Q["lock_flow_run"], {"id": flow_job_id})
        return await cur.fetchone()

    async def _apply(
        self,
        conn: psycopg.AsyncConnection,
        row: dict[str, Any],
        flow: OpenFlow,
        decision: state.Decision,
    ) -> None:
        """Apply a decision's actions and store its status. A step that cannot be queued is
        recorded failed and fed back at once (which may give more actions)."""
        while True:
            status = decision.status
            unrunnable: tuple[str, Any] | None = None
            for action in decision.actions:
                if isinstance(action, state.RunStep):
                    failure = await self._push_step(conn, row, action)
                    if failure is not None:
                        unrunnable = (action.job_id, failure)
                    elif flow.value.same_worker:
                        await self._same_worker_pin(conn, row["id"], action.job_id)
                else:
                    await self._finish(conn, row["id"], action)
            if unrunnable is None:
                break
            decision = state.step_finished(
                flow,
                status,
                job_id=unrunnable[0],
                success=False,
                result=unrunnable[1],
                evaluator=self.evaluator,
            )
        awaiting = status.engine.awaiting
        await conn.execute(
            Q["save_flow_status"],
            {
                "id": row["id"],
                "flow_status": Jsonb(status.to_json()),
                "awaiting": UUID(awaiting.job_id)
                if awaiting is not None and not status.engine.finished
                else None,
            },
        )

    async def _finish(
        self, conn: psycopg.AsyncConnection, flow_job_id: UUID, action: state.FinishFlow
    ) -> None:
        job_status = JobStatus.SUCCESS if action.success else JobStatus.FAILURE
        await conn.execute(
            Q["complete_flow_job"],
            {
                "id": flow_job_id,
                "status": job_status,
                "result": orjson.dumps(action.result).decode(),
            },
        )
        # Its concurrency slot frees (at once, or when its window passes): start waiters.
        await self._concurrency_finished(conn, flow_job_id)

    async def _push_step(
        self, conn: psycopg.AsyncConnection, row: dict[str, Any], action: state.RunStep
    ) -> Any | None:
        """Queue the step's job; the error result when it cannot run (recorded as failed)."""
        common: dict[str, Any] = {
            "id": UUID(action.job_id),
            "workspace_id": row["workspace_id"],
            "created_by": row["created_by"],
            "permissioned_as": row["permissioned_as"],
            "email": row["email"],
            "permissioned_scopes": row["permissioned_scopes"],
            "parent_job": row["id"],
            "root_job": row["root_job"] or row["id"],
            "flow_step_id": action.module_id,
        }
        try:
            fields = await self._step_fields(conn, row["workspace_id"], action)
        except _Unrunnable as exc:
            await conn.execute(
                Q["push_failed_flow_step"],
                {
                    **common,
                    "kind": JobKind.SCRIPT if action.kind == "script" else JobKind.PREVIEW,
                    "runnable_path": action.script_path,
                    "args": Jsonb(action.args),
                    "tag": action.tag or "flow",
                    "result": orjson.dumps(exc.result).decode(),
                },
            )
            return exc.result
        await conn.execute(Q["push_flow_step"], {**common, **fields, "delay_s": action.delay_s})
        return None

    async def _step_fields(
        self, conn: psycopg.AsyncConnection, workspace_id: str, action: state.RunStep
    ) -> dict[str, Any]:
        if action.kind == "rawscript":
            try:
                language = self.registry.resolve(action.language or "")
            except UnknownRuntimeError as exc:
                raise _Unrunnable(_failure(JobErrorName.UNKNOWN_LANGUAGE, str(exc))) from None
            schema: dict[str, Any] | None = None
            try:
                signature = self.registry.get(language).parse_signature(action.content or "")
                schema = signature_to_schema(signature)
            except ScriptError:
                schema = None  # the worker reports the script's error when it runs
            return {
                "kind": JobKind.PREVIEW,
                "runnable_path": action.script_path,
                "runnable_hash": None,
                "language": language,
                "raw_code": action.content or "",
                "raw_schema": Jsonb(schema) if schema is not None else None,
                "raw_lock": action.lock,
                "args": Jsonb(_checked(schema, action.args)),
                "tag": action.tag or language,
                "timeout": None,
            }
        if action.kind == "script":
            cur = conn.cursor(row_factory=dict_row)
            if action.script_hash:
                await cur.execute(
                    Q["get_script_by_hash"],
                    {"workspace_id": workspace_id, "hash": parse_hash(action.script_hash)},
                )
            else:
                await cur.execute(
                    Q["get_live_script_by_path"],
                    {"workspace_id": workspace_id, "path": action.script_path},
                )
            script = await cur.fetchone()
            if script is None:
                raise _Unrunnable(
                    _failure(
                        JobErrorName.SCRIPT_NOT_FOUND,
                        f"Script not found at name {action.script_path}",
                    )
                )
            return {
                "kind": JobKind.SCRIPT,
                "runnable_path": script["path"],
                "runnable_hash": script["hash"],
                "language": script["language"],
                "raw_code": None,
                "raw_schema": None,
                "raw_lock": None,
                "args": Jsonb(_checked(script["schema"], action.args)),
                "tag": action.tag or script["tag"] or script["language"],
                "timeout": script["timeout"],
            }
        raise _Unrunnable(
            _failure(
                JobErrorName.SCRIPT_NOT_FOUND,
                f"step {action.module_id!r}: sub-flows ({action.script_path}) are not "
                "supported yet",
            )
        )

    # -- concurrency limits (flow value `concurrent_limit`) -----------------------------------
    # A flow run over its key's limit is created queued and not running (Windmill's queued
    # flow: every module WaitingForPriorSteps); it holds no worker slot and no connection.
    # It starts, oldest first, when a run of its key ends (the hook in _finish, in the ending
    # transaction) or when a window passes or a running run is canceled (the monitor's sweep).
    # Every decision about a key is taken under that key's transaction-scoped advisory lock.
    # Lock order: a flow's status row, then its key, then a waiting run's status row; a
    # cancel locks only the waiting run's row (never the key), so none waits in a cycle.

    async def _concurrency_admit(
        self, conn: psycopg.AsyncConnection, row: dict[str, Any], flow: OpenFlow
    ) -> bool:
        """Whether the new run ``row`` starts now; otherwise it is left waiting (queued,
        not running, its status untouched by any step)."""
        limits = concurrency_settings(flow)
        if limits is None:
            return True
        limit, window_s = limits
        key = concurrency_key(
            flow,
            workspace_id=row["workspace_id"],
            path=row["runnable_path"],
            args=row["args"] or {},
        )
        await conn.execute(Q["flowctl_lock_key"], {"key": key})
        cur = await conn.execute(Q["flowctl_key_state"], {"key": key})
        taken = await cur.fetchone()
        active, waiting = (taken[0], taken[1]) if taken is not None else (0, 0)
        # In order: a newcomer never overtakes a run already waiting.
        start = waiting == 0 and active < limit
        await conn.execute(
            Q["flowctl_insert"],
            {
                "id": row["id"],
                "workspace_id": row["workspace_id"],
                "key": key,
                "concurrent_limit": limit,
                "window_s": window_s,
                "start": start,
            },
        )
        if start:
            return True
        await conn.execute(Q["flowctl_set_waiting"], {"id": row["id"]})
        await conn.execute(
            Q["save_flow_status"],
            {"id": row["id"], "flow_status": Jsonb(_waiting_status(flow)), "awaiting": None},
        )
        return False

    async def _concurrency_finished(self, conn: psycopg.AsyncConnection, flow_job_id: UUID) -> None:
        """A flow ended (in this transaction): start the runs of its key that now fit."""
        cur = await conn.execute(Q["flowctl_key_of"], {"id": flow_job_id})
        found = await cur.fetchone()
        if found is not None:
            await self._concurrency_release(conn, found[0])

    async def _concurrency_release(self, conn: psycopg.AsyncConnection, key: str) -> int:
        """Start the waiting runs of ``key`` that fit, oldest first; return how many."""
        await conn.execute(Q["flowctl_lock_key"], {"key": key})
        await conn.execute(Q["flowctl_prune"], {"key": key})
        started = 0
        while True:
            cur = await conn.execute(Q["flowctl_next_waiter"], {"key": key})
            waiter = await cur.fetchone()
            if waiter is None:
                return started
            waiter_id, limit, active = waiter
            if active >= limit:
                return started
            row = await self._lock(conn, waiter_id)
            if row is None:
                # Canceled while we waited for its lock: it takes no slot.
                await conn.execute(Q["flowctl_forget"], {"id": waiter_id})
                continue
            try:
                # A savepoint: a start that fails (a bug) must neither undo the ending flow's
                # transaction nor leave the run holding a slot without running: it fails.
                async with conn.transaction():
                    if not await (
                        await conn.execute(Q["flowctl_start_waiter"], {"id": waiter_id})
                    ).fetchone():
                        await conn.execute(Q["flowctl_forget"], {"id": waiter_id})
                        continue
                    flow = OpenFlow.model_validate(row["raw_flow"])
                    decision = state.start(
                        flow, row["args"] or {}, evaluator=self.evaluator, flow_job_id=waiter_id
                    )
                    # Ending at once (a skip_expr) comes back here for the same key: the
                    # advisory lock is held already, and the counts are read again each turn.
                    await self._apply(conn, row, flow, decision)
            except (psycopg.OperationalError, psycopg.InterfaceError):
                raise
            except Exception as exc:
                log.exception("flow %s could not start after waiting for its slot", waiter_id)
                await self._finish(
                    conn,
                    waiter_id,
                    state.FinishFlow(
                        success=False,
                        result=_failure("FlowStartError", f"the flow could not start: {exc}"),
                    ),
                )
                continue
            started += 1

    async def _concurrency_sweep(self) -> int:
        """The monitor's share: start waiting runs whose slot freed without a flow of their
        key ending (a window passed, a running flow was canceled)."""
        async with self.pool.connection() as conn:
            keys = [k for (k,) in await (await conn.execute(Q["flowctl_waiting_keys"])).fetchall()]
        started = 0
        for key in keys:
            async with self.pool.connection() as conn, conn.transaction():
                started += await self._concurrency_release(conn, key)
            # same_worker steps whose worker is gone are freed here too (not counted).
        async with self.pool.connection() as conn:
            await conn.execute(Q["flowctl_unpin_lost"], {"within_s": _LOST_WORKER_S})
        return started

    # -- same_worker (flow value `same_worker`) ---------------------------------------------
    # Every step after the first is pinned to the worker that ran the first (the claim query
    # lets only it take the row). The worker runs such steps in a directory of the flow run
    # and links its `./shared` (gristmill.worker.job); the directory goes when the flow ends.

    async def _same_worker_pin(
        self, conn: psycopg.AsyncConnection, flow_job_id: UUID, job_id: str
    ) -> None:
        await conn.execute(Q["flowctl_pin_step"], {"flow_id": flow_job_id, "id": UUID(job_id)})


class _Unrunnable(BadInput):
    """A step whose job cannot be queued; ``result`` is its error result."""

    def __init__(self, result: Any) -> None:
        super().__init__(str(result))
        self.result = result


def _checked(schema: Mapping[str, Any] | None, args: Mapping[str, Any]) -> dict[str, Any]:
    """A step's arguments converted by its schema (as a script run's are); an argument the
    schema refuses fails the step."""
    try:
        return validate_args(schema, dict(args))
    except ArgumentError as exc:
        raise _Unrunnable(_failure("ArgumentError", str(exc))) from None


#: A worker process not heard from for this long is gone: the same_worker steps pinned to
#: it are freed (live processes announce themselves every 10 s).
_LOST_WORKER_S = 60

#: The largest limit or window stored (Postgres ``integer``).
_INT4_MAX = 2**31 - 1

#: Longer concurrency keys are kept as a prefix and a digest of the whole.
_KEY_MAX = 512

_ARG_REFERENCE = re.compile(r"\$args\[([^\]]*)\]")


def concurrency_settings(flow: OpenFlow) -> tuple[int, int] | None:
    """``(concurrent_limit, concurrency_time_window_s)`` of a flow, ``None`` without a limit;
    :class:`BadInput` naming the field when a value cannot be used."""
    value = flow.value
    if value.concurrent_limit is None:
        return None
    limit = _whole(value.concurrent_limit)
    if limit is None or not 1 <= limit <= _INT4_MAX:
        raise BadInput(
            "flow value concurrent_limit: must be a whole number of runs from 1 to "
            f"{_INT4_MAX}; got {value.concurrent_limit!r}"
        )
    window = _whole(value.concurrency_time_window_s or 0)
    if window is None or not 0 <= window <= _INT4_MAX:
        raise BadInput(
            "flow value concurrency_time_window_s: must be a whole number of seconds from 0 "
            f"to {_INT4_MAX}; got {value.concurrency_time_window_s!r}"
        )
    return limit, window


def _whole(number: float) -> int | None:
    if isinstance(number, bool):
        return None
    if isinstance(number, float) and not number.is_integer():
        return None  # also NaN and the infinities
    return int(number)


def concurrency_key(
    flow: OpenFlow, *, workspace_id: str, path: str | None, args: Mapping[str, Any]
) -> str:
    """The key a run counts under: the flow's ``concurrency_key`` with ``$workspace`` and
    ``$args[name]`` filled in (a string argument as it is, another as JSON, a missing one as
    nothing), as Windmill's; else ``<workspace>/flow/<path>``. A preview without a path
    counts with the runs of the same flow value."""
    template = flow.value.concurrency_key
    if template:

        def arg(match: re.Match[str]) -> str:
            found = args.get(match.group(1).strip())
            if found is None:
                return ""
            return found if isinstance(found, str) else orjson.dumps(found).decode()

        key = _ARG_REFERENCE.sub(arg, template.replace("$workspace", workspace_id))
        if len(key) > _KEY_MAX:
            # An argument can be any size; an index entry cannot. Same key, same digest.
            digest = hashlib.sha256(key.encode()).hexdigest()
            key = f"{key[: _KEY_MAX - 65]}#{digest}"
        return key
    if path:
        return f"{workspace_id}/flow/{path}"
    digest = hashlib.sha256(
        orjson.dumps(flow.value.model_dump(mode="json", by_alias=True), option=orjson.OPT_SORT_KEYS)
    ).hexdigest()[:16]
    return f"{workspace_id}/flow/preview-{digest}"


def _waiting_status(flow: OpenFlow) -> dict[str, Any]:
    """The status of a run waiting for its concurrency slot: no module started."""
    value = flow.value
    return state.FlowStatus(
        modules=[state.FlowStatusModule(id=m.id) for m in value.modules],
        failure_module=(
            state.FlowStatusModule(id=value.failure_module.id)
            if value.failure_module is not None
            else None
        ),
    ).to_json()
