"""Testing flows, the pure parts (gristmill.flows.testing): pinning steps without editing the
flow, and one step's inputs evaluated in a context given by the caller."""

from __future__ import annotations

from typing import Any

import pytest
from gristmill.errors import BadInput
from gristmill.flows.expressions import Evaluator
from gristmill.flows.model import flow_to_dict, load_flow
from gristmill.flows.testing import StepContext, pin_steps, pin_value, step_to_run

VALUE: dict[str, Any] = {
    "modules": [
        {"id": "a", "value": {"type": "rawscript", "language": "python3", "content": "x"}},
        {
            "id": "loop",
            "value": {
                "type": "forloopflow",
                "iterator": {"type": "javascript", "expr": "results.a"},
                "modules": [
                    {
                        "id": "each",
                        "value": {
                            "type": "rawscript",
                            "language": "bash",
                            "content": "echo",
                            "input_transforms": {
                                "v": {"type": "javascript", "expr": "flow_input.iter.value"},
                                "k": {"type": "static", "value": "fixed"},
                                "both": {"type": "javascript", "expr": "params.k + results.a[0]"},
                            },
                        },
                    }
                ],
            },
        },
        {"id": "saved", "value": {"type": "script", "path": "f/x/y", "input_transforms": {}}},
    ]
}


def test_pins_become_windmill_mocks_and_unknown_ids_are_refused() -> None:
    flow = load_flow({"summary": "", "value": VALUE})
    pinned = pin_steps(flow, {"a": [1], "each": 0})
    data = flow_to_dict(pinned)["value"]
    assert data["modules"][0]["mock"] == {"enabled": True, "return_value": [1]}
    assert data["modules"][1]["value"]["modules"][0]["mock"]["return_value"] == 0
    assert "mock" not in flow_to_dict(flow)["value"]["modules"][0]  # the original unchanged
    assert pin_value(VALUE, None) is VALUE
    assert pin_value(VALUE, {"saved": 1})["modules"][2]["mock"]["enabled"] is True
    with pytest.raises(BadInput, match=r"pinned: no step 'x', 'z' in the flow \(its steps: a, "):
        pin_steps(flow, {"z": 1, "x": 2})


def test_one_step_inputs_in_the_given_context() -> None:
    flow = load_flow({"summary": "", "value": VALUE})
    ev = Evaluator()
    step = step_to_run(
        flow,
        "each",
        StepContext({"n": 1}, {"a": ["A"]}, None, {"value": 7, "index": 0}),
        evaluator=ev,
    )
    assert step.kind == "rawscript" and step.language == "bash" and step.content == "echo"
    assert step.args == {"v": 7, "k": "fixed", "both": "fixedA"}
    saved = step_to_run(flow, "saved", StepContext({}, {}), evaluator=ev)
    assert saved.kind == "script" and saved.path == "f/x/y" and saved.args == {}
    with pytest.raises(BadInput, match=r'step "loop" is a forloopflow'):
        step_to_run(flow, "loop", StepContext({}, {}), evaluator=ev)
    with pytest.raises(BadInput, match=r'test_step: step "each" input \'v\''):
        step_to_run(flow, "each", StepContext({}, {"a": []}), evaluator=ev)
