"""Suspended flow steps: what the approval page reads (Windmill's ``getSuspendedJobFlow``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from gristmill.api.schemas.jobs import Job

__all__ = ["Approval", "ApprovalRecord", "SuspendedJobFlow"]


class Approval(BaseModel):
    """Windmill's ``{resume_id, approver}``."""

    resume_id: int
    approver: str


class ApprovalRecord(BaseModel):
    """One resume event: an approval or a disapproval."""

    resume_id: int
    approver: str
    approved: bool
    created_at: datetime


class SuspendedJobFlow(BaseModel):
    """The flow of a suspended step. ``job`` and ``approvers`` are Windmill's; the rest is
    Gristmill's, so the approval page needs no other call."""

    job: Job
    #: The approvals so far (Windmill's list: disapprovals are in ``approvals``).
    approvers: list[Approval]
    #: The suspending step's module id.
    step_id: str
    #: The flow still waits at this step: the link can be used.
    waiting: bool
    required_events: int
    #: The step's ``suspend.resume_form`` (``{"schema": {...}}``), if any.
    resume_form: dict[str, Any] | None = None
    hide_cancel: bool = False
    user_auth_required: bool = False
    #: When the step times out (while waiting).
    suspend_until: datetime | None = None
    approvals: list[ApprovalRecord]
