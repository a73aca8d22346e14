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

**Controls** (the ``_control_*`` methods): a module's ``timeout`` becomes its job's;
``cache_ttl`` (a step's, or the flow's) reuses a recent successful result (table
``flow_cache``: the step's job, or the flow job, is completed at once with it); when the
``early_return`` step succeeds its result is stored and its waiters notified
(:mod:`gristmill.queue.waiting`).

**Actions**: a :class:`~gristmill.flows.state.RunStep` becomes a child job (``parent_job`` =
the flow, ``flow_step_id`` = the module id, run as the flow's user with the flow's token
scopes, scheduled ``delay_s`` from now); a step that cannot be queued (its script is gone,
a sub-flow) is recorded failed at once and fed back to the state machine. A
:class:`~gristmill.flows.state.FinishFlow` completes the flow job like any job (its waiters
are notified at commit).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import re
from collections import OrderedDict, deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast, overload
from uuid import UUID, uuid4

import orjson
import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from gristmill.db.queries import Q
from gristmill.errors import BadInput, Conflict, Forbidden, JobErrorName, NotFound, Unavailable
from gristmill.flows import state
from gristmill.flows.checks import check_flow
from gristmill.flows.expressions import (
    Evaluator,
    ExprContext,
    ExpressionError,
    find_references,
)
from gristmill.flows.model import (
    FlowModule,
    JavascriptTransform,
    OpenFlow,
    PathScript,
    StaticTransform,
    iter_modules,
    module_at,
    parse_flow,
)
from gristmill.flows.suspend import ResumeEvent, SuspendedStep, check_approver
from gristmill.queue import rows
from gristmill.queue.cancel import cancel_in_transaction
from gristmill.queue.idempotency import Submission, check_key, find_repeated
from gristmill.queue.states import JobKind, JobStatus
from gristmill.runtimes import RuntimeRegistry, ScriptError, UnknownRuntimeError, error_result
from gristmill.runtimes.schema import ArgumentError, signature_to_schema, validate_args
from gristmill.scripts.hashes import parse_hash
from gristmill.scripts.paths import check_path
from gristmill.validation import InputLimits, check_json
from gristmill.workspace.resources import job_access, resolve_references
from gristmill.workspace.secrets import Secrets

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


def _root_job_params(
    job_id: UUID,
    workspace_id: str,
    actor: Actor,
    raw_flow: Any,
    args: Mapping[str, Any],
    decision: state.Decision,
    *,
    kind: str,
    path: str | None,
    timeout_s: int | None,
    operation: str,
) -> dict[str, Any]:
    """The ``push_flow_job`` parameters of a flow job run by itself (no parent), as
    ``actor`` with the first decision's status."""
    return {
        "id": job_id,
        "workspace_id": workspace_id,
        "kind": kind,
        "runnable_path": path,
        "raw_flow": Jsonb(raw_flow),
        "args": Jsonb(dict(args)),
        "created_by": actor.username,
        "permissioned_as": actor.permissioned_as,
        "email": actor.email,
        "parent_job": None,
        "root_job": None,
        "flow_step_id": None,
        "timeout": timeout_s,
        "permissioned_scopes": list(actor.scopes) if actor.scopes is not None else None,
        "flow_status": Jsonb(decision.status.to_json()),
        "operation": operation,
        "trigger_kind": None,
        "trigger": None,
        "idempotency_key": None,
    }


def _flow_json(flow: OpenFlow) -> dict[str, Any]:
    return flow.model_dump(mode="json", by_alias=True, exclude_unset=True)


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
        secrets: Secrets | None = None,
        superadmin_secret_set: bool = False,
    ) -> None:
        self.pool = pool
        self.registry = registry
        # A flow job's flow never changes: parsed once per job, not at each step.
        self._flows: OrderedDict[UUID, OpenFlow] = OrderedDict()
        # A rawscript step's schema, by language and code (the same code in every iteration
        # of a loop, in every run of a flow).
        self._schemas: OrderedDict[tuple[str, str], dict[str, Any] | None] = OrderedDict()
        self.limits = limits or InputLimits()
        self.evaluator = evaluator or Evaluator()
        #: ``resource('p')`` and ``variable('p')`` in expressions are read with these (as a
        #: job's ``$res:``/``$var:`` arguments are); without them, they cannot be resolved.
        self.secrets = secrets
        self.superadmin_secret_set = superadmin_secret_set

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
        idempotency_key: str | None = None,
    ) -> UUID:
        """Check and start a flow sent with the request; return the flow job's id (that of
        the job it repeats, when its ``job_id`` or ``idempotency_key`` is taken by one it
        matches)."""
        if access is not None:
            access.require_not_operator()  # a preview runs arbitrary code
        # The model's own reading: a refusal names the module and the field at fault.
        flow = parse_flow({"summary": "", "value": value})
        if path is not None:
            check_path(path)
        check_json("args", args, max_depth=self.limits.max_args_depth)
        await self._check(workspace_id, flow)
        return await self._submit(
            workspace_id,
            actor,
            flow,
            args,
            kind=JobKind.FLOWPREVIEW,
            path=path,
            job_id=job_id,
            idempotency_key=check_key(idempotency_key),
        )

    async def run_flow(
        self,
        workspace_id: str,
        actor: Actor,
        path: str,
        args: Mapping[str, Any],
        *,
        job_id: UUID | None = None,
        access: Access | None = None,
        trigger_kind: str | None = None,
        trigger: str | None = None,
        idempotency_key: str | None = None,
    ) -> UUID:
        """Start the flow saved at ``path`` (its current version) with ``args``, checked
        against its input schema; return the flow job's id (that of the job it repeats, when
        its ``job_id`` or ``idempotency_key`` is taken by one it matches). With ``access``, the
        caller must be able to read the flow (404 otherwise, as for a missing one).
        ``trigger_kind`` and ``trigger`` record what started it (a trigger kind and the
        trigger's path)."""
        check_path(path)
        async with self.pool.connection() as conn:
            row = await self._saved_flow(conn, workspace_id, path)
        if row is None or (access is not None and not access.can_read(path, row["extra_perms"])):
            raise NotFound(f"flow not found at path {path}")
        if row["archived"]:
            raise BadInput(
                f"the flow at {path} is archived: unarchive it (flows/archive/{path} with "
                '{"archived": false}) to run it'
            )
        flow = parse_flow({"summary": row["summary"], "value": row["value"]})
        check_json("args", args, max_depth=self.limits.max_args_depth)
        try:
            checked = validate_args(row["schema"], dict(args))
        except ArgumentError as exc:
            raise BadInput(f"flow {path}: {exc}") from None
        return await self._submit(
            workspace_id,
            actor,
            flow,
            checked,
            kind=JobKind.FLOW,
            path=path,
            job_id=job_id,
            timeout_s=row["timeout"],
            trigger=(trigger_kind, trigger),
            idempotency_key=check_key(idempotency_key),
        )

    async def _saved_flow(
        self, conn: psycopg.AsyncConnection, workspace_id: str, path: str
    ) -> dict[str, Any] | None:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(Q["get_flow"], {"workspace_id": workspace_id, "path": path})
        return await cur.fetchone()

    async def _submit(
        self,
        workspace_id: str,
        actor: Actor,
        flow: OpenFlow,
        args: Mapping[str, Any],
        *,
        kind: JobKind,
        path: str | None,
        job_id: UUID | None,
        timeout_s: int | None = None,
        trigger: tuple[str | None, str | None] = (None, None),
        idempotency_key: str | None = None,
    ) -> UUID:
        """Insert the flow job and apply its first decision, in one transaction. A
        ``timeout_s`` (a saved flow's ``timeout``) bounds the whole run (see :meth:`sweep`)."""
        job_id = job_id or uuid4()
        async with self.pool.connection() as conn:
            refs = await self._references(
                conn,
                _flow_json(flow),
                workspace_id=workspace_id,
                email=actor.email,
                permissioned_as=actor.permissioned_as,
                flow_job_id=job_id,
            )
        decision = state.start(flow, args, evaluator=self.evaluator, flow_job_id=job_id, **refs)
        params = _root_job_params(
            job_id,
            workspace_id,
            actor,
            _flow_json(flow),
            args,
            decision,
            kind=kind,
            path=path,
            timeout_s=timeout_s,
            operation="jobs.run.flow" if kind == JobKind.FLOW else "jobs.run.preview_flow",
        )
        params["trigger_kind"], params["trigger"] = trigger
        params["idempotency_key"] = idempotency_key
        repeat = Submission(
            workspace_id=workspace_id,
            id=job_id,
            key=idempotency_key,
            permissioned_as=actor.permissioned_as,
            kind=kind,
            runnable_path=path,
            args=args,
            # A saved flow is named by its path (a retry after a new version is the same run).
            raw_flow=params["raw_flow"].obj if kind == JobKind.FLOWPREVIEW else None,
        )
        async with self.pool.connection() as conn, conn.transaction():
            row = await self._insert_root(conn, params, repeat)
            if row is None:
                # The request repeats a flow job submitted before: that job is the answer.
                return await self._repeated(conn, repeat)
            if await self._control_flow_cache(conn, row, flow, args):
                return job_id  # answered from the cache (cache_ttl): no step runs
            if not await self._concurrency_admit(conn, row, flow):
                return job_id  # waits for a slot: started by _concurrency_release
            await self._apply(conn, row, flow, decision, refs)
        return job_id

    @overload
    async def _insert_root(
        self, conn: psycopg.AsyncConnection, params: dict[str, Any]
    ) -> dict[str, Any]: ...

    @overload
    async def _insert_root(
        self, conn: psycopg.AsyncConnection, params: dict[str, Any], repeat: Submission
    ) -> dict[str, Any] | None: ...

    async def _insert_root(
        self,
        conn: psycopg.AsyncConnection,
        params: dict[str, Any],
        repeat: Submission | None = None,
    ) -> dict[str, Any] | None:
        """Insert a flow job run by itself (:func:`_root_job_params`); its row, locked.
        ``None`` when its id or Idempotency-Key is taken and ``repeat`` is given (the
        caller answers with the job it repeats); without ``repeat`` a taken id is refused."""
        inserted = await (await conn.execute(Q["push_flow_job"], params)).fetchone()
        if inserted is None:
            if repeat is not None:
                return None
            raise BadInput(f"a job with id {params['id']} already exists")
        row = await self._lock(conn, params["id"])
        assert row is not None  # inserted just above, in this transaction
        return row

    @staticmethod
    async def _repeated(conn: psycopg.AsyncConnection, repeat: Submission) -> UUID:
        """The flow job a request repeats (:class:`RepeatMismatch` when it does not match)."""
        existing = await find_repeated(conn, repeat)
        if existing is None:
            # The conflicting job was deleted between the insert and the read (retention).
            raise Unavailable(
                f"job {repeat.id} could not be queued while its id or key was freed; retry"
            )
        return existing

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
        flow = self._flow_of(row)
        status = state.FlowStatus.model_validate(row["flow_status"])
        await self._control_step_ended(conn, flow, status, job_id, success, result)
        refs = await self._references(
            conn,
            row["raw_flow"],
            workspace_id=row["workspace_id"],
            email=row["email"],
            permissioned_as=row["permissioned_as"],
            flow_job_id=row["id"],
        )
        decision = state.step_finished(
            flow,
            status,
            job_id=str(job_id),
            success=success,
            result=result,
            evaluator=self.evaluator,
            **refs,
        )
        if decision.ignored:
            return False
        await self._apply(conn, row, flow, decision, refs)
        return True

    async def _row_references(
        self, conn: psycopg.AsyncConnection, row: Mapping[str, Any]
    ) -> state.Resolvers:
        """:meth:`_references` of a flow job's row (as :meth:`_lock` reads it)."""
        return await self._references(
            conn,
            row["raw_flow"],
            workspace_id=row["workspace_id"],
            email=row["email"],
            permissioned_as=row["permissioned_as"],
            flow_job_id=row["id"],
        )

    async def _references(
        self,
        conn: psycopg.AsyncConnection,
        flow_json: Any,
        *,
        workspace_id: str,
        email: str,
        permissioned_as: str,
        flow_job_id: UUID,
    ) -> state.Resolvers:
        """The ``resource``/``variable`` resolvers of the flow's expressions: every literal
        path they name, read now as the flow's user (the evaluation cannot call out). A
        path that user may not read is left out: its expression fails naming it. A secret
        is audited and masked in the flow job's logs, as a job's ``$var:`` argument is.
        Nothing is read for a flow without such calls, or without ``secrets``."""
        resources, variables = _named_references(flow_json)
        if self.secrets is None or not (resources or variables):
            return {}
        values: dict[str, dict[str, Any]] = {"resource": {}, "variable": {}}
        with contextlib.suppress(NotFound, Forbidden):  # a user gone reads nothing
            access = await job_access(
                conn,
                workspace_id=workspace_id,
                email=email,
                username=permissioned_as.removeprefix("u/"),
                state_path=None,
                superadmin_secret_set=self.superadmin_secret_set,
            )
            for kind, paths in (("resource", resources), ("variable", variables)):
                for path in paths:
                    reference = f"${'res' if kind == 'resource' else 'var'}:{path}"
                    with contextlib.suppress(NotFound, Forbidden, BadInput):
                        values[kind][path] = await resolve_references(
                            conn, self.secrets, access, reference, job_id=flow_job_id
                        )
        # A missing key raises KeyError (a LookupError): "resource 'p' not found".
        return {
            "resource": values["resource"].__getitem__,
            "variable": values["variable"].__getitem__,
        }

    async def sweep(self) -> int:
        """Advance the flows whose awaited job completed without them advancing; return how
        many advanced. Flows over their timeout end first (:meth:`_time_out_flows`)."""
        await self._time_out_flows()
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

    async def _time_out_flows(self) -> None:
        """End the flows running longer than their timeout (a saved flow's ``timeout``):
        failed with an error saying so, their running steps and child flows canceled; a
        child flow's failure reaches its parent as any step's would."""
        async with self.pool.connection() as conn:
            late = await (await conn.execute(Q["timed_out_flows"])).fetchall()
        for flow_job_id, timeout in late:
            async with self.pool.connection() as conn, conn.transaction():
                row = await self._lock(conn, flow_job_id)
                if row is None:
                    continue  # ended meanwhile
                children = await (
                    await conn.execute(Q["flow_children_queued"], {"id": flow_job_id})
                ).fetchall()
                flow = self._flow_of(row)
                status = state.FlowStatus.model_validate(row["flow_status"])
                status.engine.finished = True
                status.engine.awaiting = None
                status.engine.frames = []
                message = (
                    f"flow timed out after {timeout} s (its timeout); its running steps were "
                    "canceled"
                )
                actions: list[state.Action] = [
                    state.CancelJobs(tuple(str(c[0]) for c in children)),
                    state.FinishFlow(False, _failure(JobErrorName.EXECUTION, message)),
                ]
                await self._apply(conn, row, flow, state.Decision(status=status, actions=actions))

    # -- applying ---------------------------------------------------------------------------

    def _flow_of(self, row: Mapping[str, Any]) -> OpenFlow:
        """The flow of a flow job's row (as :meth:`_lock` reads it), parsed once per job."""
        flow = self._flows.get(row["id"])
        if flow is None:
            flow = OpenFlow.model_validate(row["raw_flow"])
            self._flows[row["id"]] = flow
            if len(self._flows) > _CACHED:
                self._flows.popitem(last=False)
        else:
            self._flows.move_to_end(row["id"])
        return flow

    def _rawscript_schema(self, language: str, content: str) -> dict[str, Any] | None:
        """The schema of an inline step's code (``None`` when it does not parse: the worker
        reports the script's error when it runs), parsed once per code."""
        key = (language, content)
        if key in self._schemas:
            self._schemas.move_to_end(key)
            return self._schemas[key]
        try:
            schema = signature_to_schema(self.registry.get(language).parse_signature(content))
        except ScriptError:
            schema = None
        self._schemas[key] = schema
        if len(self._schemas) > _CACHED:
            self._schemas.popitem(last=False)
        return schema

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
        refs: state.Resolvers | None = None,
        *,
        nested: bool = False,
    ) -> state.FinishFlow | None:
        """Apply a decision's actions and store its status.

        A step settled at once (it cannot be queued: recorded failed; its result is cached
        (``cache_ttl``): recorded successful; a child flow that ended while starting) is fed
        back at once, which may give more actions. When
        the flow ends, its parent flow (if it is a child flow job) advances too, in this
        transaction, unless ``nested`` (the parent is the caller: it takes the returned
        :class:`~gristmill.flows.state.FinishFlow` itself). ``refs``: the flow's
        ``resource``/``variable`` resolvers (read when not given).
        """
        if refs is None:
            refs = await self._row_references(conn, row)
        status = decision.status
        # Before a finish: the early result is the first a waiter hears of.
        await self._control_early_return(conn, row, flow, status)
        pending = deque(decision.actions)
        finished: state.FinishFlow | None = None
        while pending:
            action = pending.popleft()
            if isinstance(action, state.RunStep):
                outcome = await self._push_step(conn, row, action, flow=flow, status=status)
                if outcome is None:
                    if flow.value.same_worker and action.kind in ("rawscript", "script"):
                        await self._same_worker_pin(conn, row["id"], action.job_id)
                    continue
                decision = state.step_finished(
                    flow,
                    status,
                    job_id=action.job_id,
                    success=outcome[0],
                    result=outcome[1],
                    evaluator=self.evaluator,
                    **refs,
                )
                status = decision.status
                await self._control_early_return(conn, row, flow, status)
                pending.extend(decision.actions)
            elif isinstance(action, state.CancelJobs):
                await self._cancel_children(conn, row, action.job_ids)
            else:
                await self._finish(conn, row["id"], action)
                await self._control_flow_ended(conn, row, flow, action)
                finished = action
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
        if finished is not None and not nested and row["parent_job"] is not None:
            await self.advance(
                conn,
                row["parent_job"],
                row["id"],
                success=finished.success,
                result=finished.result,
            )
        return finished

    async def _cancel_children(
        self, conn: psycopg.AsyncConnection, row: dict[str, Any], job_ids: tuple[str, ...]
    ) -> None:
        """Cancel child jobs the flow stopped waiting for (and their own children)."""
        for job_id in job_ids:
            await cancel_in_transaction(
                conn,
                workspace_id=row["workspace_id"],
                job_id=UUID(job_id),
                canceled_by=row["permissioned_as"],
                reason="another iteration or branch of the same parallel step failed",
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
        self,
        conn: psycopg.AsyncConnection,
        row: dict[str, Any],
        action: state.RunStep,
        *,
        flow: OpenFlow,
        status: state.FlowStatus,
    ) -> tuple[bool, Any] | None:
        """Queue the step's job, or start its child flow; ``(success, result)`` when it is
        settled at once: ``False`` and the error when it cannot run (recorded failed),
        ``True`` and the result when its result is cached (recorded successful), the child
        flow's outcome when it ended while starting."""
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
            if action.kind in ("flow", "flownode"):
                return await self._start_child(conn, row, action, common)
            fields = await self._step_fields(conn, row["workspace_id"], action)
            module = module_at(flow, action.path)
            fields["timeout"] = self._control_timeout(module, status, action, fields.get("timeout"))
        except _Unrunnable as exc:
            await conn.execute(
                Q["push_failed_flow_step"],
                {
                    **common,
                    "kind": _STEP_KINDS[action.kind],
                    "runnable_path": action.script_path,
                    "args": Jsonb(action.args),
                    "tag": action.tag or "flow",
                    "result": orjson.dumps(exc.result).decode(),
                },
            )
            return False, exc.result
        # A step delayed (a sleep before it, a retry) is not answered early from the cache.
        cached = await self._control_step_cache(
            conn, module, common, fields, lookup=action.delay_s <= 0
        )
        if cached is not None:
            return True, cached[0]
        await conn.execute(Q["push_flow_step"], {**common, **fields, "delay_s": action.delay_s})
        return None

    async def _start_child(
        self,
        conn: psycopg.AsyncConnection,
        row: dict[str, Any],
        action: state.RunStep,
        common: dict[str, Any],
    ) -> tuple[bool, Any] | None:
        """Insert and start a child flow job: a sub-flow (``flow``: the flow saved at the
        step's path) or a parallel iteration or branch (``flownode``: the modules it carries).
        Its outcome when it ended while starting (then it was not left waiting)."""
        if action.kind == "flow":
            saved = await self._saved_flow(conn, row["workspace_id"], action.script_path or "")
            if saved is None or saved["archived"]:
                raise _Unrunnable(
                    _failure(
                        JobErrorName.SCRIPT_NOT_FOUND,
                        f"step {action.module_id!r}: no flow at path {action.script_path}",
                    )
                )
            child = parse_flow({"summary": saved["summary"], "value": saved["value"]})
            try:
                args = validate_args(saved["schema"], dict(action.args))
            except ArgumentError as exc:
                raise _Unrunnable(
                    _failure("ArgumentError", f"sub-flow {action.script_path}: {exc}")
                ) from None
            kind = JobKind.FLOW
            timeout = saved["timeout"]
        else:
            assert action.flow_value is not None
            child = parse_flow({"summary": "", "value": action.flow_value})
            args = dict(action.args)
            kind = JobKind.FLOWNODE
            timeout = None
        child_id = UUID(action.job_id)
        refs = await self._references(
            conn,
            _flow_json(child),
            workspace_id=row["workspace_id"],
            email=row["email"],
            permissioned_as=row["permissioned_as"],
            flow_job_id=child_id,
        )
        decision = state.start(
            child,
            args,
            evaluator=self.evaluator,
            flow_job_id=child_id,
            inherit=action.inherit,
            **refs,
        )
        inserted = await (
            await conn.execute(
                Q["push_flow_job"],
                {
                    **common,
                    "kind": kind,
                    "runnable_path": action.script_path,
                    "raw_flow": Jsonb(_flow_json(child)),
                    "args": Jsonb(args),
                    "flow_status": Jsonb(decision.status.to_json()),
                    "operation": "jobs.run.flow",
                    "timeout": timeout,
                    "trigger_kind": None,
                    "trigger": None,
                    "idempotency_key": None,
                },
            )
        ).fetchone()
        if inserted is None:
            return None  # started before (a decision applied again): it advances by itself
        child_row = await self._lock(conn, child_id)
        assert child_row is not None  # inserted just above, in this transaction
        finished = await self._apply(conn, child_row, child, decision, refs, nested=True)
        return None if finished is None else (finished.success, finished.result)

    async def _step_fields(
        self, conn: psycopg.AsyncConnection, workspace_id: str, action: state.RunStep
    ) -> dict[str, Any]:
        if action.kind == "rawscript":
            try:
                language = self.registry.resolve(action.language or "")
            except UnknownRuntimeError as exc:
                raise _Unrunnable(_failure(JobErrorName.UNKNOWN_LANGUAGE, str(exc))) from None
            schema = self._rawscript_schema(language, action.content or "")
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
        raise AssertionError(f"not a script step: {action.kind}")  # child flows: _start_child

    # -- flow controls: timeout, cache_ttl, early_return ----------------------------------------

    def _control_timeout(
        self,
        module: FlowModule,
        status: state.FlowStatus,
        action: state.RunStep,
        default: int | None,
    ) -> int | None:
        """The step's job timeout: the module's ``timeout`` (seconds, or a transform evaluated
        with the flow's context) when set, else ``default`` (a script's own)."""
        timeout = module.timeout
        if timeout is None:
            return default
        where = f'step "{module.id}" timeout'
        if isinstance(timeout, JavascriptTransform):
            engine = status.engine
            context = ExprContext(
                flow_input=engine.args,
                results=engine.results,
                previous_result=engine.previous_result,
                iter=action.iterations[-1] if action.iterations else None,
            )
            try:
                value = self.evaluator.evaluate(timeout.expr, context, where=where)
            except ExpressionError as exc:
                raise _Unrunnable(_failure("ExpressionError", str(exc))) from None
        elif isinstance(timeout, StaticTransform):
            value = timeout.value
        else:
            value = timeout
        seconds = timeout_seconds(value)
        if seconds is None:
            raise _Unrunnable(
                _failure(
                    "ArgumentError",
                    f"{where}: must be a positive number of seconds, not "
                    f"{orjson.dumps(value).decode()}",
                )
            )
        return seconds

    async def _control_step_cache(
        self,
        conn: psycopg.AsyncConnection,
        module: FlowModule,
        common: dict[str, Any],
        fields: dict[str, Any],
        *,
        lookup: bool = True,
    ) -> tuple[Any] | None:
        """A step with ``cache_ttl``: when the same code ran with the same arguments and
        succeeded less than ``cache_ttl`` s ago, record its job completed with that result and
        return ``(result,)``; otherwise remember to cache the result of the job about to be
        queued (``None``)."""
        ttl = module.cache_ttl
        if ttl is None or ttl <= 0:
            return None
        workspace_id = common["workspace_id"]
        digest = step_digest(fields)
        hit = (
            await (
                await conn.execute(
                    Q["control_cache_get"],
                    {"workspace_id": workspace_id, "digest": digest, "ttl_s": ttl},
                )
            ).fetchone()
            if lookup
            else None
        )
        if hit is not None:
            result, source = hit
            log = f"result reused from the cache (cache_ttl {ttl:g} s): computed by job {source}\n"
            await conn.execute(
                Q["control_push_cached_step"],
                {
                    **common,
                    **fields,
                    "result": orjson.dumps(result).decode(),
                    "log": log,
                },
            )
            return (result,)
        await conn.execute(
            Q["control_cache_pending"],
            {"job_id": common["id"], "workspace_id": workspace_id, "digest": digest, "ttl_s": ttl},
        )
        return None

    async def _control_step_ended(
        self,
        conn: psycopg.AsyncConnection,
        flow: OpenFlow,
        status: state.FlowStatus,
        job_id: UUID,
        success: bool,
        result: Any,
    ) -> None:
        """A step's job ended: a successful result of a ``cache_ttl`` step goes to the cache."""
        awaiting = status.engine.awaiting
        if awaiting is None or awaiting.job_id != str(job_id):
            return
        module = module_at(flow, tuple(awaiting.path))
        if module.cache_ttl is None or module.cache_ttl <= 0:
            return
        await conn.execute(
            Q["control_cache_store"],
            {"job_id": job_id, "success": success, "result": orjson.dumps(result).decode()},
        )

    async def _control_flow_cache(
        self,
        conn: psycopg.AsyncConnection,
        row: dict[str, Any],
        flow: OpenFlow,
        args: Mapping[str, Any],
    ) -> bool:
        """A flow with ``cache_ttl`` just inserted: ``True`` when a run of the same flow with
        the same args succeeded less than ``cache_ttl`` s ago (the flow job is then completed
        with its result, no step runs); otherwise its result is to be cached (``False``)."""
        ttl = flow.value.cache_ttl
        if ttl is None or ttl <= 0:
            return False
        digest = flow_digest(row["raw_flow"], args, row["runnable_path"])
        hit = await (
            await conn.execute(
                Q["control_cache_get"],
                {"workspace_id": row["workspace_id"], "digest": digest, "ttl_s": ttl},
            )
        ).fetchone()
        if hit is None:
            await conn.execute(
                Q["control_cache_pending"],
                {
                    "job_id": row["id"],
                    "workspace_id": row["workspace_id"],
                    "digest": digest,
                    "ttl_s": ttl,
                },
            )
            return False
        result, source = hit
        finished = state.FlowStatus(
            modules=[state.FlowStatusModule(id=m.id) for m in flow.value.modules],
            engine=state.EngineState(finished=True),
        )
        await conn.execute(
            Q["save_flow_status"],
            {"id": row["id"], "flow_status": Jsonb(finished.to_json()), "awaiting": None},
        )
        await conn.execute(
            Q["control_flow_log"],
            {
                "id": row["id"],
                "log": f"result reused from the cache (cache_ttl {ttl:g} s): computed by "
                f"flow job {source}\n",
            },
        )
        await self._finish(conn, row["id"], state.FinishFlow(True, result))
        return True

    async def _control_flow_ended(
        self,
        conn: psycopg.AsyncConnection,
        row: dict[str, Any],
        flow: OpenFlow,
        action: state.FinishFlow,
    ) -> None:
        """The flow ended: with ``cache_ttl``, a success's result goes to the cache."""
        if flow.value.cache_ttl is None or flow.value.cache_ttl <= 0:
            return
        await conn.execute(
            Q["control_cache_store"],
            {
                "job_id": row["id"],
                "success": action.success,
                "result": orjson.dumps(action.result).decode(),
            },
        )

    async def _control_early_return(
        self,
        conn: psycopg.AsyncConnection,
        row: dict[str, Any],
        flow: OpenFlow,
        status: state.FlowStatus,
    ) -> None:
        """The flow's ``early_return`` step succeeded: store its result and wake the flow's
        synchronous callers with it (once; the flow goes on to its end)."""
        step_id = flow.value.early_return
        if step_id is None or step_id not in status.engine.results:
            return
        done = next((m for m in status.modules if m.id == step_id), None)
        if done is None or done.type != "Success":
            return
        await conn.execute(
            Q["control_early_result"],
            {
                "id": row["id"],
                "workspace_id": row["workspace_id"],
                "step_id": step_id,
                "result": orjson.dumps(status.engine.results[step_id]).decode(),
            },
        )

    # -- suspend and approval (gristmill.flows.suspend) ---------------------------------------

    async def resume_step(
        self,
        *,
        workspace_id: str,
        job_id: UUID,
        resume_id: int,
        approved: bool,
        payload: Any,
        approver: str | None,
        access: Access | None,
    ) -> None:
        """A resume event sent with a signed link for the suspended step ``job_id``: record
        it and advance its flow (in one transaction, under the flow's lock). ``access``: the
        logged-in caller, if any (the step's approval conditions may require one)."""
        async with self.pool.connection() as conn, conn.transaction():
            found = await (
                await conn.execute(
                    Q["suspend_step_parent"], {"id": job_id, "workspace_id": workspace_id}
                )
            ).fetchone()
            if found is None:
                raise NotFound(f"Job not found at name {job_id}")
            if found[0] is None:
                raise BadInput(f"job {job_id} is not a suspended flow step: it is not a flow step")
            row = await self._lock(conn, found[0])
            if row is None:
                raise BadInput(
                    f"job {job_id} is not a suspended flow step: its flow {found[0]} has ended"
                )
            await self._resume_locked(
                conn,
                row,
                job_id=str(job_id),
                resume_id=resume_id,
                approved=approved,
                payload=payload,
                approver=approver,
                access=access,
            )

    async def resume_as_owner(
        self, *, workspace_id: str, flow_job_id: UUID, payload: Any, access: Access
    ) -> None:
        """Approve the step flow ``flow_job_id`` is suspended at, as its owner (no link):
        Windmill's ``jobs/flow/resume``. Owners: the flow's creator, a workspace admin, or
        whoever may write the flow's path."""
        async with self.pool.connection() as conn, conn.transaction():
            row = await self._lock(conn, flow_job_id)
            if row is None or row["workspace_id"] != workspace_id:
                # Ended or not a flow: as Windmill, say the flow does not wait (when it exists).
                await rows.fetch_job(self.pool, workspace_id, flow_job_id, access)
                raise BadInput("the flow is not in a suspended state anymore")
            if not rows.can_see_job(access, row["permissioned_as"], row["runnable_path"]):
                raise NotFound(f"Job not found at name {flow_job_id}")
            path = row["runnable_path"]
            if not (
                access.is_admin
                or row["created_by"] == access.username
                or (path is not None and access.can_write(path))
            ):
                raise Forbidden(
                    f"only an owner of flow {flow_job_id} (who started it, a workspace admin, "
                    "or who may write its path) may resume it without a resume link"
                )
            wait = state.FlowStatus.model_validate(row["flow_status"]).engine.suspended
            if wait is None:
                raise BadInput("the flow is not in a suspended state anymore")
            await self._resume_locked(
                conn,
                row,
                job_id=wait.job_id or str(flow_job_id),
                resume_id=0,
                approved=True,
                payload=payload,
                approver=access.username,
                access=access,
            )

    async def _resume_locked(
        self,
        conn: psycopg.AsyncConnection,
        row: dict[str, Any],
        *,
        job_id: str,
        resume_id: int,
        approved: bool,
        payload: Any,
        approver: str | None,
        access: Access | None,
    ) -> None:
        flow = self._flow_of(row)
        status = state.FlowStatus.model_validate(row["flow_status"])
        wait = status.engine.suspended
        if wait is None or (wait.job_id or str(row["id"])) != job_id:
            raise BadInput(
                f"job {job_id} is not a suspended flow step: flow {row['id']} is not waiting "
                "for it (the step is still running, or its approvals are over)"
            )
        check_approver(
            wait,
            username=access.username if access is not None else None,
            email=access.actor.email if access is not None else None,
            is_admin=access is not None and access.is_admin,
            groups=access.groups if access is not None else frozenset(),
            creator=row["created_by"],
            creator_email=row["email"],
        )
        check_json("payload", payload, max_depth=self.limits.max_args_depth)
        earlier = await (await conn.execute(Q["suspend_resumes"], {"job": UUID(job_id)})).fetchall()
        if any(r[0] == resume_id for r in earlier):
            raise Conflict(f"resume request already sent (resume id {resume_id} of job {job_id})")
        for r in earlier:
            if approver is not None and r[1] == approver:
                done = "approved" if r[2] else "disapproved"
                raise Conflict(f"{approver} already {done} this step (job {job_id})")
        await conn.execute(
            Q["suspend_insert_resume"],
            {
                "workspace_id": row["workspace_id"],
                "job": UUID(job_id),
                "flow": row["id"],
                "resume_id": resume_id,
                "value": Jsonb(payload),
                "approver": approver,
                "approved": approved,
            },
        )
        refs = await self._row_references(conn, row)
        decision = state.resume(
            flow,
            status,
            approved=approved,
            payload=payload,
            approver=approver,
            evaluator=self.evaluator,
            **refs,
        )
        if not decision.ignored:
            await self._apply(conn, row, flow, decision, refs)

    async def suspended_step(self, workspace_id: str, job_id: UUID) -> SuspendedStep:
        """What the approval page of step ``job_id`` shows (no lock: a read)."""
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                Q["suspend_flow_of_step"], {"id": job_id, "workspace_id": workspace_id}
            )
            found = await cur.fetchone()
            if found is None:
                await rows.fetch_job(self.pool, workspace_id, job_id)  # 404 when no such job
                raise BadInput(f"job {job_id} is not a suspended flow step: it is not a flow step")
            approvals = await (await conn.execute(Q["suspend_resumes"], {"job": job_id})).fetchall()
        flow = OpenFlow.model_validate(found["raw_flow"])
        module = next((m for m, _ in iter_modules(flow) if m.id == found["flow_step_id"]), None)
        if module is None or module.suspend is None or found["flow_status"] is None:
            raise BadInput(f"job {job_id} is not a suspended flow step: its step does not suspend")
        wait = state.FlowStatus.model_validate(found["flow_status"]).engine.suspended
        if wait is not None and wait.job_id != str(job_id):
            wait = None
        return SuspendedStep(
            flow_job_id=found["parent_job"],
            module=module,
            wait=wait,
            suspend_until=found["suspend_until"] if wait is not None else None,
            approvals=[
                ResumeEvent(resume_id=r[0], approver=r[1], approved=r[2], created_at=r[4])
                for r in approvals
            ],
        )

    async def sweep_suspended(self) -> int:
        """Time out the suspended flows whose deadline passed (the monitor calls this);
        return how many."""
        async with self.pool.connection() as conn:
            due = await (await conn.execute(Q["suspend_due"])).fetchall()
        timed_out = 0
        for (flow_job_id,) in due:
            async with self.pool.connection() as conn, conn.transaction():
                row = await self._lock(conn, flow_job_id)
                if row is None:
                    continue
                deadline = await (
                    await conn.execute(Q["suspend_until"], {"id": flow_job_id})
                ).fetchone()
                if deadline is None or not deadline[1]:
                    continue  # resumed (or suspended again) since it was listed
                flow = self._flow_of(row)
                status = state.FlowStatus.model_validate(row["flow_status"])
                refs = await self._row_references(conn, row)
                decision = state.resume(
                    flow,
                    status,
                    approved=False,
                    payload=None,
                    approver=None,
                    timed_out=True,
                    evaluator=self.evaluator,
                    **refs,
                )
                if decision.ignored:
                    continue
                await self._apply(conn, row, flow, decision, refs)
                timed_out += 1
        return timed_out

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
                    flow = self._flow_of(row)
                    refs = await self._row_references(conn, row)
                    decision = state.start(
                        flow,
                        row["args"] or {},
                        evaluator=self.evaluator,
                        flow_job_id=waiter_id,
                        **refs,
                    )
                    # Ending at once (a skip_expr) comes back here for the same key: the
                    # advisory lock is held already, and the counts are read again each turn.
                    await self._apply(conn, row, flow, decision, refs)
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

    # -- restarting ------------------------------------------------------------------------------

    async def restart(
        self,
        workspace_id: str,
        actor: Actor,
        old_job_id: UUID,
        step_id: str,
        iteration: int | None,
        args: Mapping[str, Any] | None,
        *,
        job_id: UUID | None = None,
        access: Access | None = None,
    ) -> UUID:
        """Start a new flow job running the flow of the ended flow job ``old_job_id`` from
        ``step_id`` (at iteration or branch ``iteration`` of a loop or ``branchall``),
        reusing the earlier steps' results (the rule: :mod:`gristmill.flows.restart`).
        ``args`` replace the old run's when given. Returns the new job's id."""
        from gristmill.flows import restart as restarting
        from gristmill.queue.rows import can_see_job

        if access is not None:
            access.require_not_operator()  # the flow runs again, as a preview does
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                Q["restart_get_flow_job"], {"id": old_job_id, "workspace_id": workspace_id}
            )
            old = await cur.fetchone()
        if old is None or not can_see_job(access, old["permissioned_as"], old["runnable_path"]):
            raise NotFound(f"Flow job not found at name {old_job_id}")
        if old["parent_job"] is not None:
            raise BadInput(
                f"restart: job {old_job_id} is a step of flow job {old['parent_job']} (a "
                "sub-flow or a parallel iteration): restart that flow from its step instead"
            )
        if not old["ended"]:
            raise BadInput(
                f'restart from step "{step_id}": flow job {old_job_id} is still running; '
                "restart it once it has ended (or cancel it)"
            )
        new_args: dict[str, Any] = dict(args) if args is not None else dict(old["args"] or {})
        check_json("args", new_args, max_depth=self.limits.max_args_depth)
        flow = OpenFlow.model_validate(old["raw_flow"])
        old_status = state.FlowStatus.model_validate(old["flow_status"])
        # A flow canceled while running: its status says finished, its frames are stale.
        old_status.engine.finished = True
        await self._check(workspace_id, flow)
        job_id = job_id or uuid4()
        async with self.pool.connection() as conn:
            refs = await self._references(
                conn,
                old["raw_flow"],
                workspace_id=workspace_id,
                email=actor.email,
                permissioned_as=actor.permissioned_as,
                flow_job_id=job_id,
            )
        decision = restarting.restart(
            flow,
            old_status,
            step_id=step_id,
            iteration=iteration,
            args=new_args,
            flow_job_id=job_id,
            evaluator=self.evaluator,
            **refs,
        )
        params = _root_job_params(
            job_id,
            workspace_id,
            actor,
            old["raw_flow"],
            new_args,
            decision,
            kind=old["kind"],
            path=old["runnable_path"],
            # A saved flow's run keeps its flow-wide timeout (the new run's own clock).
            timeout_s=old["timeout"],
            operation="jobs.restart.flow",
        )
        async with self.pool.connection() as conn, conn.transaction():
            row = await self._insert_root(conn, params)
            await self._apply(conn, row, flow, decision, refs)
        return job_id


def _named_references(flow_json: Any) -> tuple[list[str], list[str]]:
    """The literal paths of ``resource('p')`` and ``variable('p')`` in a flow's expressions
    (every ``expr`` and ``skip_expr`` string of its JSON: transforms, conditions, branch
    expressions), each once. A call without a literal path is left for the evaluation to
    report, naming its step."""
    resources: dict[str, None] = {}
    variables: dict[str, None] = {}
    pending: list[Any] = [flow_json]
    while pending:
        node = pending.pop()
        if isinstance(node, list):
            pending.extend(cast("list[Any]", node))
        elif isinstance(node, dict):
            for key, item in cast("dict[str, Any]", node).items():
                if key in ("expr", "skip_expr") and isinstance(item, str):
                    if "resource" not in item and "variable" not in item:
                        continue
                    with contextlib.suppress(ExpressionError):
                        found = find_references(item, where="flow")
                        resources.update(dict.fromkeys(found.resources))
                        variables.update(dict.fromkeys(found.variables))
                else:
                    pending.append(item)
    return list(resources), list(variables)


#: How many parsed flows (and rawscript schemas) a process keeps.
_CACHED = 256

#: The job kind of each kind of step (a step that cannot run is recorded with it).
_STEP_KINDS = {
    "rawscript": JobKind.PREVIEW,
    "script": JobKind.SCRIPT,
    "flow": JobKind.FLOW,
    "flownode": JobKind.FLOWNODE,
}


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


#: A job's timeout is a Postgres ``integer``; the worker caps it with its own ``TIMEOUT``.
_MAX_TIMEOUT_S = 2**31 - 1


def timeout_seconds(value: Any) -> int | None:
    """A step's ``timeout`` value as whole seconds (rounded up, at least 1); ``None`` when it
    is not a positive number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or value <= 0:
        return None
    return min(_MAX_TIMEOUT_S, max(1, math.ceil(value)))


def _digest(data: Any) -> str:
    return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()


def step_digest(fields: Mapping[str, Any]) -> str:
    """The cache key of a step's job: what runs (language, code and lock of inline code, a
    saved script's hash, a sub-flow's path) and its arguments as checked by its schema."""
    args = fields.get("args")
    return _digest(
        {
            "step": 1,
            "kind": str(fields.get("kind")),
            "path": fields.get("runnable_path") if fields.get("kind") == JobKind.FLOW else None,
            "language": fields.get("language"),
            "code": fields.get("raw_code"),
            "lock": fields.get("raw_lock"),
            "hash": fields.get("runnable_hash"),
            "args": args.obj if isinstance(args, Jsonb) else args,
        }
    )


def flow_digest(value: Any, args: Mapping[str, Any], path: str | None) -> str:
    """The cache key of a flow run: the flow (its value as stored), its path and its args."""
    return _digest({"flow": 1, "value": value, "path": path, "args": dict(args)})


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
