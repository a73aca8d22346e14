"""Starting a trigger's script or flow as the trigger's owner."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

from gristmill.auth.actor import SUPERADMIN_SECRET_EMAIL, Actor
from gristmill.auth.permissions import Access, load_access
from gristmill.auth.users import get_user
from gristmill.errors import Forbidden
from gristmill.queue.submit import RunOptions

if TYPE_CHECKING:
    from gristmill.triggers.kinds import StartedRun, TriggerRow, TriggerServices

__all__ = ["owner_access", "start_run"]


async def owner_access(services: TriggerServices, trigger: TriggerRow) -> Access:
    """The access of the trigger's owner in its workspace, read now: an owner removed from
    the workspace (or deleted) can no longer run anything through their triggers."""
    if trigger.email == SUPERADMIN_SECRET_EMAIL and services.settings.superadmin_secret:
        # Saved with SUPERADMIN_SECRET: that identity has no user row; it acts while the
        # secret is set (as jobs it started do).
        actor = Actor(SUPERADMIN_SECRET_EMAIL, "superadmin_secret", super_admin=True)
        async with services.pool.connection() as conn:
            return await load_access(conn, actor, trigger.workspace_id)
    user = await get_user(services.pool, trigger.email)
    if user is None:
        raise Forbidden(
            f"the owner of trigger {trigger.path} ({trigger.email}) no longer exists: "
            "save the trigger again as an existing user"
        )
    actor = Actor(email=user.email, username=user.username, super_admin=user.super_admin)
    async with services.pool.connection() as conn:
        return await load_access(conn, actor, trigger.workspace_id)


async def start_run(
    services: TriggerServices,
    trigger: TriggerRow,
    args: Mapping[str, Any],
    *,
    wait: bool,
    timeout_s: float | None,
    job_id: UUID | None = None,
) -> StartedRun:
    from gristmill.triggers.kinds import StartedRun

    access = await owner_access(services, trigger)
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
            )
        options = RunOptions(job_id=job_id, trigger_kind=trigger.kind, trigger=trigger.path)
        return await services.submitter.run_script_by_path(
            trigger.workspace_id, access.actor, trigger.script_path, args, options, access=access
        )

    if not wait:
        return StartedRun(await start())
    settings = services.settings
    done = await services.submitter.run_and_wait(
        trigger.workspace_id,
        job_id,
        start,
        timeout_s=timeout_s if timeout_s is not None else settings.timeout_wait_result_s,
        queue_limit=settings.queue_limit_wait_result,
    )
    return StartedRun(job_id, done)
