"""Suspend (approval) steps: what the flow waits for after a step with ``suspend``, and what
each resume event (an approval, a disapproval, the timeout) does to it. Pure: the state
machine (:func:`gristmill.flows.state.resume`) applies the outcome; the engine stores the
events (table ``resume_job``) and the deadline (``job_flow_status.suspend_until``).

Windmill's rules (``worker_flow.rs``, ``jobs.rs``):

- after the step succeeds, the flow waits for ``required_events`` approvals (the flow's
  status module is ``WaitingForEvents {job, count}``); the timeout is ``suspend.timeout``
  seconds, 30 minutes when unset;
- once enough approvals arrived, the next step sees ``resume`` (the last payload),
  ``resumes`` (every payload, in order) and ``approvers`` (their names, "anonymous" when the
  link named nobody);
- one disapproval fails the flow with ``{"error": {"name": "SuspendedDisapproved",
  "message": "Disapproved by <approver>"}}``, the timeout with ``{"error": {"name":
  "SuspendedTimedOut", "message": "Timed out waiting to be resumed"}}``; with
  ``continue_on_disapprove_timeout`` the flow goes on instead, that error object being the
  last ``resume``;
- with ``user_auth_required``: only logged-in users approve; ``self_approval_disabled`` keeps
  out the user who started the flow; ``user_groups_required`` (static, or a JavaScript
  expression evaluated when the step suspends, seeing its ``result``) limits approvers to
  members of those groups. Workspace admins pass both.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from gristmill.errors import Forbidden
from gristmill.flows.model import FlowModule, Suspend

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "DISAPPROVED",
    "TIMED_OUT",
    "Outcome",
    "ResumeEvent",
    "SuspendWait",
    "SuspendedStep",
    "check_approver",
    "disapproved_error",
    "outcome",
    "required_events",
    "timed_out_error",
]

#: Windmill's timeout when the step sets none.
DEFAULT_TIMEOUT_S = 30 * 60
DISAPPROVED = "SuspendedDisapproved"
TIMED_OUT = "SuspendedTimedOut"


def required_events(suspend: Suspend | None) -> int:
    """How many approvals the step waits for (0: it does not suspend). Windmill reads a
    missing ``required_events`` as 1."""
    if suspend is None:
        return 0
    return 1 if suspend.required_events is None else max(0, suspend.required_events)


class SuspendWait(BaseModel):
    """A flow waiting after a suspending step (kept in the engine's part of the status)."""

    model_config = ConfigDict(extra="forbid")

    #: The suspending step's job (the ``id`` of the signed links); ``None`` when the step
    #: ran no job (skipped, mocked): only the owner's route can resume it then.
    job_id: str | None
    module_id: str
    #: Where the module sits in the flow.
    path: list[str | int]
    required: int
    timeout_s: int
    continue_on_disapprove_timeout: bool = False
    user_auth_required: bool = False
    self_approval_disabled: bool = False
    #: The groups an approver must belong to (one of), evaluated when the step suspended.
    user_groups_required: list[str] = Field(default_factory=list)
    #: The approvals so far: their payloads and approvers, in order.
    resumes: list[Any] = Field(default_factory=list)
    approvers: list[str] = Field(default_factory=list)


def disapproved_error(approver: str | None) -> dict[str, Any]:
    return {"error": {"name": DISAPPROVED, "message": f"Disapproved by {approver or 'unknown'}"}}


def timed_out_error() -> dict[str, Any]:
    return {"error": {"name": TIMED_OUT, "message": "Timed out waiting to be resumed"}}


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a resume event does: keep waiting, go on (with the resume values), or fail."""

    kind: Literal["wait", "continue", "fail"]
    #: ``fail``: the flow's error result.
    error: Any = None
    resumes: tuple[Any, ...] = ()
    approvers: tuple[str, ...] = ()


def outcome(
    wait: SuspendWait, *, approved: bool, payload: Any, approver: str | None, timed_out: bool
) -> Outcome:
    """The effect of one event on ``wait`` (which it updates: the approvals so far)."""
    name = approver or "anonymous"
    if timed_out or not approved:
        error = timed_out_error() if timed_out else disapproved_error(approver)
        if not timed_out:
            wait.approvers.append(name)
        if wait.continue_on_disapprove_timeout:
            return Outcome(
                "continue",
                resumes=(*wait.resumes, error),
                approvers=tuple(wait.approvers),
            )
        return Outcome("fail", error=error)
    wait.resumes.append(payload)
    wait.approvers.append(name)
    if len(wait.resumes) >= wait.required:
        return Outcome("continue", resumes=tuple(wait.resumes), approvers=tuple(wait.approvers))
    return Outcome("wait")


def check_approver(
    wait: SuspendWait,
    *,
    username: str | None,
    email: str | None,
    is_admin: bool,
    groups: frozenset[str],
    creator: str,
    creator_email: str | None,
) -> None:
    """Refuse an approver the step's conditions exclude (Windmill checks them only with
    ``user_auth_required``). ``username`` ``None``: nobody is logged in. Always 403 (Windmill
    answers 401 to an anonymous caller): the signed links take no token by design, and a
    401 would tell clients that the route itself needs one."""
    if not wait.user_auth_required:
        return
    if username is None:
        raise Forbidden(
            "Only logged in users can approve this flow step: send the link with your token"
        )
    if is_admin:
        return
    if wait.self_approval_disabled and (
        username == creator or (email is not None and email == creator_email)
    ):
        raise Forbidden("Self-approval is disabled for this flow step")
    required = wait.user_groups_required
    if required and not groups.intersection(required):
        raise Forbidden(
            "Only users from one of the following groups are allowed to approve this "
            f"workflow: {', '.join(required)}"
        )


@dataclass(frozen=True, slots=True)
class ResumeEvent:
    """A recorded approval or disapproval (a row of ``resume_job``)."""

    resume_id: int
    approver: str | None
    approved: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class SuspendedStep:
    """A suspending step as its approval page shows it."""

    flow_job_id: UUID
    module: FlowModule
    #: ``None`` once the flow no longer waits at this step.
    wait: SuspendWait | None
    suspend_until: datetime | None
    approvals: list[ResumeEvent]
