"""Bodies of the job metrics endpoints."""

from __future__ import annotations

from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StrictInt

__all__ = ["SetProgressBody"]


class SetProgressBody(BaseModel):
    """A job's progress, in percent (Windmill's ``set_progress`` body)."""

    model_config = ConfigDict(extra="ignore")

    # Strict: Windmill's field is an integer; 42.5 is refused rather than rounded.
    percent: StrictInt = Field(ge=0, le=100)
    #: The flow the job is a step of (recorded with the flow's status once flows exist).
    flow_job_id: UUID | None = None
