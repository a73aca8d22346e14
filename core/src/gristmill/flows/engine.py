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

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

import orjson
import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from gristmill.db.queries import Q
from gristmill.errors import BadInput, Conflict, Forbidden, JobErrorName, NotFound
from gristmill.flows import state
from gristmill.flows.checks import check_flow
from gristmill.flows.expressions import Evaluator
from gristmill.flows.model import OpenFlow, PathScript, iter_modules, parse_flow
from gristmill.flows.suspend import ResumeEvent, SuspendedStep, check_approver
from gristmill.queue import rows
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
        return advanced

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
        flow = OpenFlow.model_validate(row["raw_flow"])
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
        decision = state.resume(
            flow,
            status,
            approved=approved,
            payload=payload,
            approver=approver,
            evaluator=self.evaluator,
        )
        if not decision.ignored:
            await self._apply(conn, row, flow, decision)

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
                flow = OpenFlow.model_validate(row["raw_flow"])
                status = state.FlowStatus.model_validate(row["flow_status"])
                decision = state.resume(
                    flow,
                    status,
                    approved=False,
                    payload=None,
                    approver=None,
                    timed_out=True,
                    evaluator=self.evaluator,
                )
                if decision.ignored:
                    continue
                await self._apply(conn, row, flow, decision)
                timed_out += 1
        return timed_out


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
