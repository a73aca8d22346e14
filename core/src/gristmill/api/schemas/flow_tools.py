"""Bodies of the flow tools: testing one step alone."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["TestStepBody"]


class TestStepBody(BaseModel):
    """One step of a flow, run alone with the context it would see in a run."""

    model_config = ConfigDict(extra="forbid")
    __test__ = False  # not a pytest class

    #: The flow's ``FlowValue`` (``modules``...); or ``path``, a saved flow's.
    value: dict[str, Any] | None = None
    path: str | None = None
    step_id: str = Field(description="The id of the step to run (at any depth).")
    flow_input: dict[str, Any] = Field(default_factory=dict, description="The flow's args.")
    results: dict[str, Any] = Field(
        default_factory=dict, description="Earlier steps' results, by step id (`results.x`)."
    )
    previous_result: Any = Field(default=None, description="`previous_result`.")
    iter: dict[str, Any] | None = Field(
        default=None,
        description='Inside a loop: `{"value": ..., "index": ...}` (`flow_input.iter`).',
    )
