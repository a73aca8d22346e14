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

import contextlib
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID, uuid4

import orjson
import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from gristmill.db.queries import Q
from gristmill.errors import BadInput, Forbidden, JobErrorName, NotFound
from gristmill.flows import state
from gristmill.flows.checks import check_flow
from gristmill.flows.expressions import Evaluator, ExpressionError, find_references
from gristmill.flows.model import OpenFlow, PathScript, iter_modules, parse_flow
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
        async with self.pool.connection() as conn:
            refs = await self._references(
                conn,
                value,
                workspace_id=workspace_id,
                email=actor.email,
                permissioned_as=actor.permissioned_as,
                flow_job_id=job_id,
            )
        decision = state.start(flow, args, evaluator=self.evaluator, flow_job_id=job_id, **refs)
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
            await self._apply(conn, row, flow, decision, refs)
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

    async def _references(
        self,
        conn: psycopg.AsyncConnection,
        flow_json: Any,
        *,
        workspace_id: str,
        email: str,
        permissioned_as: str,
        flow_job_id: UUID,
    ) -> dict[str, state.Resolver]:
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
        refs: Mapping[str, state.Resolver] | None = None,
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
                **(refs or {}),
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
