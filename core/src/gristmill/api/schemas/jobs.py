"""Jobs: runs (request bodies and options), a job, its updates and result, lists."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from gristmill.queue.states import JobStatus
from gristmill.queue.submit import scheduled_in
from gristmill.validation import INT4_MAX, MAX_PER_PAGE

__all__ = [
    "CancelBody",
    "CompletedJob",
    "DependenciesBody",
    "FlowDependenciesBody",
    "Job",
    "JobFilters",
    "JobUpdate",
    "PreviewBody",
    "QueuedJob",
    "ResultMaybe",
    "ResumeUrls",
    "RunOptionsQuery",
]


class RunOptionsQuery(BaseModel):
    """Query parameters shared by the run endpoints."""

    model_config = ConfigDict(extra="ignore")

    scheduled_for: dt.datetime | None = None
    scheduled_in_secs: int | None = Field(default=None, ge=0, le=INT4_MAX)
    tag: str | None = None
    job_id: UUID | None = None
    parent_job: UUID | None = None
    #: The root of the job's parent chain (clients send ``WM_ROOT_FLOW_JOB_ID``).
    root_job: UUID | None = None
    timeout: int | None = Field(default=None, ge=1, le=INT4_MAX)

    def when(self) -> dt.datetime | None:
        if self.scheduled_in_secs is not None:
            return scheduled_in(self.scheduled_in_secs)
        if self.scheduled_for is not None and self.scheduled_for.tzinfo is None:
            return self.scheduled_for.replace(tzinfo=dt.UTC)
        return self.scheduled_for


class PreviewBody(BaseModel):
    """Code to run without saving it."""

    model_config = ConfigDict(extra="ignore")

    content: str
    language: str
    args: dict[str, Any] = {}
    path: str | None = None
    tag: str | None = None
    #: The script's lock (as stored on a version); without it the worker resolves one.
    lock: str | None = None


class RawScriptForDependencies(BaseModel):
    """One script of a dependency request: its code, language and path."""

    model_config = ConfigDict(extra="ignore")

    raw_code: str
    language: str
    script_path: str


class DependenciesBody(BaseModel):
    """Code whose dependencies to lock without saving it (Windmill's body of
    ``jobs/run/dependencies_async``, sent by ``wmill generate-metadata``)."""

    model_config = ConfigDict(extra="ignore")

    raw_scripts: list[RawScriptForDependencies]
    #: The path of the script to lock, one of ``raw_scripts``.
    entrypoint: str
    #: Windmill's workspace dependencies (shared requirement files): not in Gristmill.
    raw_workspace_dependencies: dict[str, str] | None = None
    temp_script_refs: dict[str, Any] | None = None

    def script(self) -> RawScriptForDependencies:
        """The entrypoint's script; a body asking for what Gristmill does not do is refused."""
        if self.raw_workspace_dependencies:
            raise ValueError(
                "raw_workspace_dependencies: Gristmill has no workspace dependencies; "
                "put the script's requirements in the script"
            )
        if self.temp_script_refs:
            raise ValueError("temp_script_refs: Gristmill locks one script at a time")
        for script in self.raw_scripts:
            if script.script_path == self.entrypoint:
                return script
        raise ValueError(f"entrypoint {self.entrypoint!r} is not one of raw_scripts")


class FlowDependenciesBody(BaseModel):
    """A flow value whose inline scripts to lock without saving it (Windmill's body of
    ``jobs/run/flow_dependencies_async``, sent by ``wmill generate-metadata``)."""

    model_config = ConfigDict(extra="ignore")

    flow_value: dict[str, Any]
    path: str
    use_local_lockfiles: bool | None = None
    #: Windmill's workspace dependencies (shared requirement files): not in Gristmill.
    raw_workspace_dependencies: dict[str, str] | None = None
    temp_script_refs: dict[str, Any] | None = None

    def check(self) -> None:
        """Refuse what Gristmill does not do (as :meth:`DependenciesBody.script`)."""
        if self.raw_workspace_dependencies:
            raise ValueError(
                "raw_workspace_dependencies: Gristmill has no workspace dependencies; "
                "put each script's requirements in the script"
            )
        if self.temp_script_refs:
            raise ValueError("temp_script_refs: Gristmill locks the scripts of the flow only")


class FlowPreviewBody(BaseModel):
    """A flow to run without saving it (Windmill's ``FlowPreview``)."""

    model_config = ConfigDict(extra="ignore")

    #: The flow's ``FlowValue``: ``modules``, ``failure_module``...
    value: dict[str, Any]
    args: dict[str, Any] = {}
    path: str | None = None
    tag: str | None = None
    #: Gristmill's: step id → result, those steps not run (as with Windmill's ``mock``).
    pinned: dict[str, Any] | None = None


class CancelBody(BaseModel):
    reason: str | None = None


class JobFilters(BaseModel):
    """Filters of the job lists."""

    model_config = ConfigDict(extra="ignore")

    # Bounded here too, so that the OpenAPI document states the ranges the domain enforces.
    # Windmill counts page 0 as the first page (its CLI's paging loops start at 0).
    page: Annotated[int, AfterValidator(lambda page: max(page, 1))] = Field(
        default=1, ge=0, le=INT4_MAX
    )
    per_page: int = Field(default=100, ge=1, le=MAX_PER_PAGE)
    script_path_exact: str | None = None
    script_path_start: str | None = None
    script_hash: str | None = None
    created_by: str | None = None
    created_before: dt.datetime | None = None
    created_after: dt.datetime | None = None
    running: bool | None = None
    success: bool | None = None
    #: Comma-separated job kinds (``script,preview``).
    job_kinds: str | None = None
    tag: str | None = None
    parent_job: UUID | None = None
    #: The runs of one schedule (Windmill's filter).
    schedule_path: str | None = None
    #: The runs one kind of trigger started (``schedule``, ``webhook``, ``http``, ...).
    trigger_kind: str | None = None
    #: With ``trigger_kind``: the runs of the trigger at this path.
    trigger_path: str | None = None


class _JobBase(BaseModel):
    id: str
    workspace_id: str
    created_by: str
    created_at: dt.datetime
    started_at: dt.datetime | None
    job_kind: str
    permissioned_as: str
    email: str
    tag: str
    priority: int | None
    language: str | None
    script_path: str | None
    script_hash: str | None
    parent_job: str | None
    visible_to_owner: bool = True
    is_flow_step: bool = False
    #: A flow step's module id in its flow (Windmill's ``flow_step_id``).
    flow_step_id: str | None = None
    #: A flow job whose steps run on one worker (its flow's ``same_worker``).
    same_worker: bool = False
    #: A flow job's status (Windmill's FlowStatus); ``None`` for other jobs.
    flow_status: dict[str, Any] | None = None
    #: The flow a flow job runs (its ``value``, as run: a saved flow's version at the start);
    #: only on a single job's read, ``None`` for other jobs.
    raw_flow: dict[str, Any] | None = None
    schedule_path: str | None = None
    #: What started the job (Windmill's ``JobTriggerKind``: ``webhook``, ``schedule``,
    #: ``http``, ``postgres``...); ``None`` for a run from the web UI, a preview or a job.
    trigger_kind: str | None = None
    #: The path of the trigger that started it (a schedule's path), when it has one.
    trigger: str | None = None
    mem_peak: None = None
    canceled: bool
    canceled_by: str | None
    canceled_reason: str | None
    # Present on a single job, not in lists.
    args: dict[str, Any] | None = None
    raw_code: str | None = None
    logs: str | None = None
    root_job: str | None = None
    worker: str | None = None


class QueuedJob(_JobBase):
    """A job waiting for a worker, or running."""

    type: Literal["QueuedJob"] = "QueuedJob"
    running: bool
    scheduled_for: dt.datetime | None
    last_ping: dt.datetime | None = None


class CompletedJob(_JobBase):
    """A finished job."""

    type: Literal["CompletedJob"] = "CompletedJob"
    success: bool
    status: JobStatus
    duration_ms: int | None
    is_skipped: bool
    deleted: bool = False
    #: The script's result (any JSON), or the error object of a failed job.
    result: Any = None
    completed_at: dt.datetime | None = None


#: A job, queued (or running) or completed, told apart by ``type`` as in Windmill.
Job = Annotated[QueuedJob | CompletedJob, Field(discriminator="type")]


class JobUpdate(BaseModel):
    """What changed since a log offset."""

    running: bool
    completed: bool
    new_logs: str
    #: Pass it back as ``log_offset`` to get only what comes after.
    log_offset: int
    mem_peak: None = None
    #: A flow job's status (Windmill's FlowStatus); ``None`` for other jobs.
    flow_status: dict[str, Any] | None = None


class ResultMaybe(BaseModel):
    """A job's result when it has one, else its state."""

    completed: bool
    started: bool | None
    success: bool | None
    #: The script's result (any JSON) once completed.
    result: Any = None


class ResumeUrls(BaseModel):
    """The signed links of one approval of a suspended flow step (Windmill's names)."""

    approvalPage: str
    resume: str
    cancel: str
