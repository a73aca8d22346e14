"""Payloads of the triggers of the ``trigger`` table (every kind but schedules): the fields
every trigger has; a kind's own fields are its ``config_model``, flat beside them."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gristmill.errors import BadInput

__all__ = ["NewTriggerCommon", "SetEnabled", "SetMode", "TriggerCommon"]


class NewTriggerCommon(BaseModel):
    """What a create or update of any trigger kind sends besides the kind's own fields."""

    # Unknown fields are ignored, as Windmill's API does (its CLI sends fields of newer
    # versions); the kind's own fields are checked by its model.
    model_config = ConfigDict(extra="ignore")

    path: str = Field(description="The trigger's path, e.g. u/alice/on_order.")
    script_path: str = Field(description="The script or flow it starts.")
    is_flow: bool = Field(default=False, description="Whether script_path is a flow.")
    summary: str | None = None
    description: str | None = None
    #: Windmill's older flag; ``mode`` wins when both are sent.
    enabled: bool | None = None
    mode: Literal["enabled", "disabled", "suspended"] | None = None
    error_handler_path: str | None = None
    error_handler_args: dict[str, Any] | None = None
    retry: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _refuse_unsupported(self) -> NewTriggerCommon:
        # Refused rather than ignored: a user counting on them must not be surprised later.
        if self.mode == "suspended":
            raise BadInput(
                'mode "suspended" (jobs queued but held) is not supported yet: use "enabled" '
                'or "disabled"'
            )
        for name in ("error_handler_path", "retry"):
            if getattr(self, name) is not None:
                raise BadInput(
                    f"{name} is not supported on triggers yet: leave it out (a schedule's "
                    "on_failure handler and retry are supported)"
                )
        return self

    @property
    def is_enabled(self) -> bool:
        if self.mode is not None:
            return self.mode == "enabled"
        return True if self.enabled is None else self.enabled


class TriggerCommon(BaseModel):
    """The fields every stored trigger has (Windmill's names)."""

    workspace_id: str
    path: str
    script_path: str
    is_flow: bool
    summary: str | None = None
    description: str | None = None
    enabled: bool
    mode: Literal["enabled", "disabled"]
    error: str | None = Field(
        default=None, description="The last error the trigger met; cleared when it works."
    )
    error_at: dt.datetime | None = None
    server_id: str | None = Field(
        default=None, description="The server process holding a listener trigger."
    )
    last_server_ping: dt.datetime | None = None
    edited_by: str
    edited_at: dt.datetime
    email: str
    extra_perms: dict[str, Any] = Field(default_factory=dict)


class SetEnabled(BaseModel):
    enabled: bool


class SetMode(BaseModel):
    mode: Literal["enabled", "disabled"]
