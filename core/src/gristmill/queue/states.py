"""The states, kinds and stop reasons of jobs, as text enums (stored and sent as their
values, which are Windmill's where Windmill has one)."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["JobKind", "JobStatus", "StopReason"]


class JobStatus(StrEnum):
    """How a finished job ended (``job_completed.status``)."""

    SUCCESS = "success"
    FAILURE = "failure"
    CANCELED = "canceled"
    SKIPPED = "skipped"


class JobKind(StrEnum):
    """What a job runs (``job.kind``, Windmill's ``job_kind``)."""

    #: A saved script version, by path or hash.
    SCRIPT = "script"
    #: Code sent with the request, not saved.
    PREVIEW = "preview"
    #: Locking the dependencies of a saved version.
    DEPENDENCIES = "dependencies"
    #: Locking the dependencies of a flow's inline scripts (``wmill generate-metadata``);
    #: the flow value is the job's code, its result the value with each script's lock.
    FLOWDEPENDENCIES = "flowdependencies"
    #: A saved flow, and a flow sent with the request (flows come later: the kinds exist so
    #: that a step's job knows its flow, see gristmill.queue.context).
    FLOW = "flow"
    FLOWPREVIEW = "flowpreview"
    #: A parallel iteration or branch of a flow, run as a child flow job (Windmill's name
    #: for a flow's node run as a job of its own).
    FLOWNODE = "flownode"


class StopReason(StrEnum):
    """Why a worker stops a job's process before it ends by itself."""

    #: Someone canceled the job: it is recorded as canceled.
    CANCEL = "cancel"
    #: Another worker holds the job now (this one was presumed dead): nothing is recorded.
    LOST = "lost"
    #: The worker is stopping: the job goes back to the queue.
    SHUTDOWN = "shutdown"
