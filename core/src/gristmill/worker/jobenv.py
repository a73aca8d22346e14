"""The environment of a job's process: Windmill's job variables (``WM_*``), so that the real
``wmill`` and ``windmill-client`` libraries work inside scripts, plus what plugins add."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import replace
from typing import Any

import pluggy

from gristmill.auth.tokens import mint_job_token
from gristmill.config import Settings
from gristmill.queue.context import SCHEDULE_TRIGGER, object_path, state_path
from gristmill.runtimes import JobContext
from gristmill.scripts.hashes import format_hash

__all__ = ["job_env"]


def _tick(when: Any) -> str:
    if not isinstance(when, dt.datetime):
        return ""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def job_env(
    settings: Settings,
    plugins: pluggy.PluginManager,
    secret: bytes,
    job: dict[str, Any],
    ctx: JobContext,
) -> dict[str, str]:
    """The complete environment of ``job``'s processes (nothing of the worker's own)."""
    username = job["permissioned_as"].removeprefix("u/")
    # Flow and trigger context (absent from rows of older callers: .get).
    where = {
        "trigger_kind": job.get("trigger_kind"),
        "trigger": job.get("trigger"),
        "flow_path": job.get("flow_path"),
        "flow_step_id": job.get("flow_step_id"),
    }
    flow_job_id = job.get("flow_job_id")
    schedule = job.get("trigger") if job.get("trigger_kind") == SCHEDULE_TRIGGER else None
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": str(ctx.job_dir),
        "LANG": "C.UTF-8",
        "BASE_URL": settings.public_url,
        "WM_BASE_URL": settings.public_url,
        "BASE_INTERNAL_URL": settings.internal_url,
        "WM_WORKSPACE": job["workspace_id"],
        "WM_JOB_ID": str(job["id"]),
        "WM_JOB_PATH": job["runnable_path"] or "",
        "WM_EMAIL": job["email"],
        "WM_USERNAME": username,
        "WM_PERMISSIONED_AS": job["permissioned_as"],
        "WM_TOKEN": mint_job_token(secret, job_id=job["id"], email=job["email"], username=username),
        # Windmill sets these to "" outside a flow or a schedule; clients test emptiness.
        "WM_FLOW_JOB_ID": str(flow_job_id) if flow_job_id else "",
        "WM_FLOW_PATH": where["flow_path"] or "",
        "WM_FLOW_STEP_ID": where["flow_step_id"] or "",
        "WM_SCHEDULE_PATH": schedule or "",
        "WM_ROOT_JOB_ID": str(job["root_job"]) if job["root_job"] else "",
        # The job token's state path is computed by the same function: they always agree.
        "WM_STATE_PATH": state_path(job["runnable_path"], username, **where),
        "WM_OBJECT_PATH": object_path(job["id"], job["runnable_path"], **where),
        "WM_RUNNABLE_ID": format_hash(job["runnable_hash"])
        if job.get("runnable_hash") is not None
        else "",
    }
    env["WM_STATE_PATH_NEW"] = env["WM_STATE_PATH"]
    if schedule:
        # The tick a schedule's run is for (Windmill's format: "2026-01-02 03:04:05 UTC").
        env["WM_SCHEDULED_FOR"] = _tick(job.get("scheduled_for"))
    # The innermost flow around this step; a job started by a script gets its root job.
    root = job["root_job"] or flow_job_id
    if root:
        env["WM_ROOT_FLOW_JOB_ID"] = str(root)
    extra: dict[str, str] = {}
    # pluggy returns the last registered plugin's result first: reversed, later wins.
    for addition in reversed(plugins.hook.job_env(job=replace(ctx, env=dict(env)))):
        if addition:
            extra.update({str(k): str(v) for k, v in addition.items()})
    # The core's job variables win over plugins: a plugin cannot impersonate a job.
    return {**extra, **env}
