"""Schedules (Windmill's ``NewSchedule``, ``EditSchedule``, ``Schedule``,
``ScheduleWJobs``)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "EditSchedule",
    "NewSchedule",
    "PreviewSchedule",
    "Schedule",
    "ScheduleJob",
    "ScheduleWJobs",
    "SetEnabled",
]


class EditSchedule(BaseModel):
    """What an update changes (Windmill's ``EditSchedule``); fields Gristmill does not use
    (``dynamic_skip``...) are ignored."""

    model_config = ConfigDict(extra="ignore")

    #: The cron expression (croner's syntax, seconds optional).
    schedule: str
    #: An IANA timezone name.
    timezone: str = "UTC"
    args: dict[str, Any] | None = None
    summary: str | None = None
    description: str | None = None
    #: A handler: ``script/<path>`` or ``flow/<path>``.
    on_failure: str | None = None
    on_failure_times: int | None = None
    on_failure_exact: bool | None = None
    on_failure_extra_args: dict[str, Any] | None = None
    on_recovery: str | None = None
    on_recovery_times: int | None = None
    on_recovery_extra_args: dict[str, Any] | None = None
    on_success: str | None = None
    on_success_extra_args: dict[str, Any] | None = None
    ws_error_handler_muted: bool | None = None
    #: ``{constant: {attempts, seconds}, exponential: {attempts, multiplier, seconds}}``.
    retry: dict[str, Any] | None = None
    no_flow_overlap: bool | None = None
    tag: str | None = None
    paused_until: dt.datetime | None = None
    cron_version: str | None = None


class NewSchedule(EditSchedule):
    """A new schedule (Windmill's ``NewSchedule``)."""

    path: str
    #: The script's or flow's path.
    script_path: str
    is_flow: bool = False
    #: Stored disabled unless sent true, as Windmill stores it.
    enabled: bool | None = None


class SetEnabled(BaseModel):
    model_config = ConfigDict(extra="ignore")

    enabled: bool


class PreviewSchedule(BaseModel):
    model_config = ConfigDict(extra="ignore")

    schedule: str
    timezone: str = "UTC"
    cron_version: str | None = None


class Schedule(BaseModel):
    """A schedule as Windmill's clients read it, with Gristmill's firing state."""

    workspace_id: str
    path: str
    edited_by: str
    edited_at: dt.datetime
    schedule: str
    timezone: str
    enabled: bool
    script_path: str
    is_flow: bool
    args: dict[str, Any] | None = None
    extra_perms: dict[str, bool] = Field(default_factory=dict)
    email: str
    permissioned_as: str
    #: Why the schedule stopped (it was disabled), if it did.
    error: str | None = None
    on_failure: str | None = None
    on_failure_times: int | None = None
    on_failure_exact: bool | None = None
    on_failure_extra_args: dict[str, Any] | None = None
    on_recovery: str | None = None
    on_recovery_times: int | None = None
    on_recovery_extra_args: dict[str, Any] | None = None
    on_success: str | None = None
    on_success_extra_args: dict[str, Any] | None = None
    ws_error_handler_muted: bool = False
    retry: dict[str, Any] | None = None
    summary: str | None = None
    description: str | None = None
    no_flow_overlap: bool = False
    tag: str | None = None
    paused_until: dt.datetime | None = None
    cron_version: str | None = None
    #: Gristmill: the next tick to fire (``null`` while disabled).
    next_tick: dt.datetime | None = None
    #: Gristmill: ticks that did not run (missed, overlapping, no worker free), in all.
    skipped_ticks: int = 0
    last_skip_at: dt.datetime | None = None
    #: Gristmill: which ticks the last skip concerned, and why.
    last_skip_reason: str | None = None


class ScheduleJob(BaseModel):
    id: str
    success: bool
    duration_ms: int


class ScheduleWJobs(Schedule):
    #: The schedule's last 20 ended runs, newest first.
    jobs: list[ScheduleJob] = Field(default_factory=list)
