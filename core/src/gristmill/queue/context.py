"""Where a job stands: its flow, its trigger, and the paths derived from them (Windmill's
``get_reserved_variables``): the state path a job reads and writes with ``get_state`` /
``set_state``, and a unique object path for what it stores elsewhere.

The worker (``WM_*`` variables) and the token resolver (the one item an operator's job may
write) both use :func:`state_path`, so the two always agree.
"""

from __future__ import annotations

import time
from uuid import UUID

__all__ = ["FLOW_KINDS", "SCHEDULE_TRIGGER", "object_path", "state_path"]

#: Job kinds whose child jobs are flow steps.
FLOW_KINDS = ("flow", "flowpreview", "flownode")
#: ``job.trigger_kind`` of a run started by a schedule (``job.trigger`` is its path).
SCHEDULE_TRIGGER = "schedule"


def _joined(path: str) -> str:
    return path.replace("/", "_")


def _trigger(username: str, trigger_kind: str | None, trigger: str | None) -> str:
    """Who or what started the run, as one path segment: the schedule's path (``/`` as ``_``)
    for a scheduled run, else the user. Windmill uses the literal ``user`` for every manual
    run (all users share one state); here each user has their own, which an operator's job
    may write."""
    if trigger_kind == SCHEDULE_TRIGGER and trigger:
        return _joined(trigger)
    return username


def state_path(
    runnable_path: str | None,
    username: str,
    *,
    trigger_kind: str | None = None,
    trigger: str | None = None,
    flow_path: str | None = None,
    flow_step_id: str | None = None,
) -> str:
    """``WM_STATE_PATH``: ``<flow path>/<step>_<trigger>`` for a flow step,
    ``<script path>/<trigger>`` for a script, ``u/<user>/tmp_state`` for a preview."""
    who = _trigger(username, trigger_kind, trigger)
    if flow_path:
        return f"{flow_path}/{flow_step_id or 'nostep'}_{who}"
    if runnable_path:
        return f"{runnable_path}/{who}"
    return f"u/{username}/tmp_state"


def object_path(
    job_id: UUID | str,
    runnable_path: str | None,
    *,
    trigger_kind: str | None = None,
    trigger: str | None = None,
    flow_path: str | None = None,
    flow_step_id: str | None = None,
) -> str:
    """``WM_OBJECT_PATH``: a key unique to this run, to store its outputs elsewhere (S3...):
    ``<path>/<schedule or manual>/[<step>/]<ms>_<job id>``, paths with ``/`` as ``_``."""
    schedule = _joined(trigger) if trigger_kind == SCHEDULE_TRIGGER and trigger else "manual"
    stamp = f"{int(time.time() * 1000)}_{job_id}"
    if flow_path:
        return f"{_joined(flow_path)}/{schedule}/{flow_step_id or ''}/{stamp}"
    return f"{_joined(runnable_path or '')}/{schedule}/{stamp}"
