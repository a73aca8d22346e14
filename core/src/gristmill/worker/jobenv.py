"""The environment of a job's process: Windmill's job variables (``WM_*``), so that the real
``wmill`` and ``windmill-client`` libraries work inside scripts, plus what plugins add."""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

import pluggy

from gristmill.auth.tokens import mint_job_token
from gristmill.config import Settings
from gristmill.runtimes import JobContext

__all__ = ["job_env"]


def job_env(
    settings: Settings,
    plugins: pluggy.PluginManager,
    secret: bytes,
    job: dict[str, Any],
    ctx: JobContext,
) -> dict[str, str]:
    """The complete environment of ``job``'s processes (nothing of the worker's own)."""
    username = job["permissioned_as"].removeprefix("u/")
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
    }
    if job["runnable_path"]:
        env["WM_STATE_PATH"] = env["WM_STATE_PATH_NEW"] = f"{job['runnable_path']}/{username}"
    if job["root_job"]:
        env["WM_ROOT_FLOW_JOB_ID"] = str(job["root_job"])
    extra: dict[str, str] = {}
    # pluggy returns the last registered plugin's result first: reversed, later wins.
    for addition in reversed(plugins.hook.job_env(job=replace(ctx, env=dict(env)))):
        if addition:
            extra.update({str(k): str(v) for k, v in addition.items()})
    # The core's job variables win over plugins: a plugin cannot impersonate a job.
    return {**extra, **env}
