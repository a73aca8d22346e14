"""Starting a trigger's script or flow as the trigger's owner."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

import psycopg
from psycopg.rows import dict_row

from gristmill.auth.actor import Actor
from gristmill.auth.permissions import Access, load_access
from gristmill.auth.tokens import job_user_super_admin
from gristmill.db.queries import Q
from gristmill.errors import Forbidden
from gristmill.queue.submit import RunOptions

if TYPE_CHECKING:
    from gristmill.triggers.kinds import StartedRun, TriggerRow, TriggerServices

__all__ = ["acting_access", "owner_access", "runnable_row", "start_run"]


async def acting_access(
    conn: psycopg.AsyncConnection,
    *,
    email: str,
    username: str,
    workspace_id: str,
    superadmin_secret_set: bool,
) -> Access | None:
    """The access, read now, of the user a trigger's runs act as; ``None`` when that user no
    longer exists. An owner removed from the workspace gets :class:`Forbidden` from
    :func:`load_access`. The ``SUPERADMIN_SECRET`` identity has no user row: it acts while
    the secret is set, as jobs it started do (:func:`job_user_super_admin`)."""
    super_admin = await job_user_super_admin(
        conn, email, superadmin_secret_set=superadmin_secret_set
    )
    if super_admin is None:
        return None
    actor = Actor(email=email, username=username, super_admin=super_admin)
    return await load_access(conn, actor, workspace_id)


async def owner_access(services: TriggerServices, trigger: TriggerRow) -> Access:
    """The access of the trigger's owner in its workspace, read now: an owner removed from
    the workspace (or deleted) can no longer run anything through their triggers."""
    async with services.pool.connection() as conn:
        access = await acting_access(
            conn,
            email=trigger.email,
            username=trigger.owner_username,
            workspace_id=trigger.workspace_id,
            superadmin_secret_set=bool(services.settings.superadmin_secret),
        )
    if access is None:
        raise Forbidden(
            f"the owner of trigger {trigger.path} ({trigger.email}) no longer exists: "
            "save the trigger again as an existing user"
        )
    return access


async def runnable_row(
    conn: psycopg.AsyncConnection, workspace_id: str, path: str, *, is_flow: bool
) -> dict[str, Any] | None:
    """The flow at ``path``, or the live version of the script there (``None``: none)."""
    cur = conn.cursor(row_factory=dict_row)
    query = Q["get_flow"] if is_flow else Q["get_live_script_by_path"]
    await cur.execute(query, {"workspace_id": workspace_id, "path": path})
    return await cur.fetchone()


async def start_run(
    services: TriggerServices,
    trigger: TriggerRow,
    args: Mapping[str, Any],
    *,
    wait: bool,
    timeout_s: float | None,
    job_id: UUID | None = None,
    owner: Access | None = None,
    idempotency_key: str | None = None,
) -> StartedRun:
    from gristmill.triggers.kinds import StartedRun

    access = owner or await owner_access(services, trigger)
    # A start naming its job may repeat one: answered with that job, whatever its id.
    named = job_id is not None or idempotency_key is not None
    job_id = job_id or uuid4()

    async def start() -> UUID:
        if trigger.is_flow:
            return await services.flows.run_flow(
                trigger.workspace_id,
                access.actor,
                trigger.script_path,
                args,
                job_id=job_id,
                access=access,
                trigger_kind=trigger.kind,
                trigger=trigger.path,
                idempotency_key=idempotency_key,
            )
        options = RunOptions(
            job_id=job_id,
            trigger_kind=trigger.kind,
            trigger=trigger.path,
            idempotency_key=idempotency_key,
        )
        return await services.submitter.run_script_by_path(
            trigger.workspace_id, access.actor, trigger.script_path, args, options, access=access
        )

    if not wait:
        return StartedRun(await start())
    settings = services.settings
    if named:
        job_id, done = await services.submitter.run_named_and_wait(
            trigger.workspace_id,
            start,
            timeout_s=timeout_s if timeout_s is not None else settings.timeout_wait_result_s,
            queue_limit=settings.queue_limit_wait_result,
        )
        return StartedRun(job_id, done)
    done = await services.submitter.run_and_wait(
        trigger.workspace_id,
        job_id,
        start,
        timeout_s=timeout_s if timeout_s is not None else settings.timeout_wait_result_s,
        queue_limit=settings.queue_limit_wait_result,
    )
    return StartedRun(job_id, done)
