"""Restarting a finished flow from a step (gristmill.flows.restart): the new run's start
status is built from the old one, and the state machine runs on from the restart point.
Driven by a fake runner, as the state machine's own tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from gristmill.errors import BadInput
from gristmill.flows.expressions import Evaluator
from gristmill.flows.model import OpenFlow, load_flow
from gristmill.flows.restart import restart
from gristmill.flows.state import Decision, FinishFlow, FlowStatus, RunStep, start, step_finished

Handler = Callable[[dict[str, Any]], tuple[bool, Any]]
NEW_ID = "0b6f1c3e-2222-4a4a-8a8a-000000000002"


@pytest.fixture(scope="module")
def ev() -> Evaluator:
    return Evaluator()


def ok(fn: Callable[[dict[str, Any]], Any]) -> Handler:
    return lambda args: (True, fn(args))


def script(id_: str, **inputs: str) -> dict[str, Any]:
    return {
        "id": id_,
        "value": {
            "type": "rawscript",
            "language": "python3",
            "content": "def main(): pass",
            "input_transforms": {k: {"type": "javascript", "expr": v} for k, v in inputs.items()},
        },
    }


def flow_of(*modules: dict[str, Any], **value: Any) -> OpenFlow:
    return load_flow({"summary": "t", "value": {"modules": list(modules), **value}})


def drive(
    ev: Evaluator, flow: OpenFlow, decision: Decision, handlers: dict[str, Handler]
) -> tuple[FinishFlow, FlowStatus, list[RunStep]]:
    steps: list[RunStep] = []
    for _ in range(100):
        (action,) = decision.actions
        if isinstance(action, FinishFlow):
            return action, decision.status, steps
        steps.append(action)
        success, result = handlers[action.module_id](action.args)
        stored = FlowStatus.model_validate(decision.status.to_json())
        decision = step_finished(
            flow, stored, job_id=action.job_id, success=success, result=result, evaluator=ev
        )
    raise AssertionError("the flow did not finish")


def first_run(
    ev: Evaluator, flow: OpenFlow, args: dict[str, Any], handlers: dict[str, Handler]
) -> FlowStatus:
    decision = start(flow, args, evaluator=ev, flow_job_id="0b6f1c3e-1111-4a4a-8a8a-000000000001")
    _, status, _ = drive(ev, flow, decision, handlers)
    return FlowStatus.model_validate(status.to_json())


def again(
    ev: Evaluator,
    flow: OpenFlow,
    old: FlowStatus,
    step: str,
    handlers: dict[str, Handler],
    *,
    iteration: int | None = None,
    args: dict[str, Any] | None = None,
) -> tuple[FinishFlow, FlowStatus, list[RunStep]]:
    decision = restart(
        flow,
        old,
        step_id=step,
        iteration=iteration,
        args=old.engine.args if args is None else args,
        flow_job_id=NEW_ID,
        evaluator=ev,
    )
    return drive(ev, flow, decision, handlers)


THREE = flow_of(
    script("a", x="flow_input.n"),
    script("b", x="results.a"),
    script("c", x="previous_result", a="results.a"),
)


def test_restart_from_a_top_level_step_reuses_the_earlier_results(ev: Evaluator) -> None:
    old = first_run(
        ev,
        THREE,
        {"n": 1},
        {
            "a": ok(lambda a: a["x"] + 1),
            "b": ok(lambda a: a["x"] * 10),
            "c": lambda a: (False, {"error": {"name": "E", "message": "c broke"}}),
        },
    )
    assert old.modules[2].type == "Failure"
    handlers = {"c": ok(lambda a: [a["x"], a["a"]])}  # a and b must not run again
    finish, status, steps = again(ev, THREE, old, "c", handlers)
    assert [s.module_id for s in steps] == ["c"]
    assert steps[0].args == {"x": 20, "a": 2}
    assert finish.success and finish.result == [20, 2]
    public = status.windmill_json()
    assert [m["type"] for m in public["modules"]] == ["Success", "Success", "Success"]
    assert public["modules"][0]["job"] == old.modules[0].job  # the old jobs are referenced
    assert steps[0].job_id not in {m.job for m in old.modules}  # new ids (the new job's)

    # From the second step, with other args: a's old result is kept.
    finish, _, steps = again(
        ev,
        THREE,
        old,
        "b",
        {"b": ok(lambda a: a["x"]), "c": ok(lambda a: a["x"])},
        args={"n": 100},
    )
    assert [s.module_id for s in steps] == ["b", "c"]
    assert finish.result == 2


def loop_flow(skip_failures: bool = False) -> OpenFlow:
    return flow_of(
        script("a", x="flow_input.items"),
        {
            "id": "loop",
            "value": {
                "type": "forloopflow",
                "iterator": {"type": "javascript", "expr": "results.a"},
                "skip_failures": skip_failures,
                "modules": [script("each", v="flow_input.iter.value")],
            },
        },
        script("after", r="results.loop"),
    )


def test_restart_a_failed_loop_from_iteration_n_keeps_the_first_n(ev: Evaluator) -> None:
    flow = loop_flow()

    def flaky(args: dict[str, Any]) -> tuple[bool, Any]:
        if args["v"] == 3:
            return False, {"error": {"name": "E", "message": "3 broke"}}
        return True, args["v"] * 2

    old = first_run(ev, flow, {"items": [1, 2, 3, 4]}, {"a": ok(lambda a: a["x"]), "each": flaky})
    assert old.engine.partial["loop"] == [2, 4]  # kept although the loop failed
    finish, status, steps = again(
        ev,
        flow,
        old,
        "loop",
        {"each": ok(lambda a: a["v"] * 100), "after": ok(lambda a: a["r"])},
        iteration=2,
    )
    assert [s.args for s in steps] == [{"v": 3}, {"v": 4}, {"r": [2, 4, 300, 400]}]
    assert steps[0].iterations == ({"value": 3, "index": 2},)
    assert finish.success and finish.result == [2, 4, 300, 400]
    loop = status.windmill_json()["modules"][1]
    assert loop["type"] == "Success" and loop["iterator"]["itered"] == [1, 2, 3, 4]

    # A nested step id restarts its top-level loop, here at iteration 3.
    _, _, steps = again(
        ev,
        flow,
        old,
        "each",
        {"each": ok(lambda a: a["v"]), "after": ok(lambda a: a["r"])},
        iteration=2,
    )
    assert [s.module_id for s in steps] == ["each", "each", "after"]
    # Iteration 0: the loop from its start, its iterator evaluated again (a is not re-run).
    _, _, steps = again(
        ev,
        flow,
        old,
        "loop",
        {"each": ok(lambda a: a["v"]), "after": ok(lambda a: a["r"])},
        iteration=0,
    )
    assert [s.module_id for s in steps] == ["each"] * 4 + ["after"]


def test_restart_branchall_from_branch_n(ev: Evaluator) -> None:
    flow = flow_of(
        {
            "id": "all",
            "value": {
                "type": "branchall",
                "branches": [
                    {"modules": [script("b0", x="1")]},
                    {"modules": [script("b1", x="2")]},
                    {"modules": [script("b2", x="3")]},
                ],
            },
        }
    )
    double = ok(lambda a: a["x"] * 2)
    old = first_run(
        ev,
        flow,
        {},
        {"b0": double, "b1": double, "b2": lambda a: (False, {"error": {"message": "x"}})},
    )
    finish, _, steps = again(ev, flow, old, "all", {"b2": ok(lambda a: 0)}, iteration=2)
    assert [s.module_id for s in steps] == ["b2"]
    assert finish.result == [2, 4, 0]


def test_refusals_name_the_step(ev: Evaluator) -> None:
    flow = loop_flow()
    old = first_run(
        ev,
        flow,
        {"items": [1, 2]},
        {"a": ok(lambda a: a["x"]), "each": ok(lambda a: a["v"]), "after": ok(lambda a: 0)},
    )
    handlers: dict[str, Handler] = {}
    with pytest.raises(BadInput, match=r'step "nope" is not in the flow \(its top-level steps: a'):
        again(ev, flow, old, "nope", handlers)
    with pytest.raises(BadInput, match=r'step "loop": iteration 2 is out of range'):
        again(ev, flow, old, "loop", handlers, iteration=2)
    with pytest.raises(BadInput, match=r'step "a" is a rawscript: an iteration'):
        again(ev, flow, old, "a", handlers, iteration=1)
    running = old.model_copy(deep=True)
    running.engine.finished = False
    with pytest.raises(BadInput, match=r'step "a": the flow is still running'):
        again(ev, flow, running, "a", handlers)
    # A step before the restart point failed: its result cannot be reused.
    failed = first_run(
        ev,
        THREE,
        {"n": 1},
        {"a": lambda a: (False, {"error": {"message": "no"}})},
    )
    with pytest.raises(BadInput, match=r'step "a" before it failed'):
        again(ev, THREE, failed, "c", handlers)


def test_a_parallel_loop_restarts_from_its_start_only(ev: Evaluator) -> None:
    flow = flow_of(
        {
            "id": "par",
            "value": {
                "type": "forloopflow",
                "iterator": {"type": "javascript", "expr": "[1, 2]"},
                "parallel": True,
                "modules": [script("each", v="flow_input.iter.value")],
            },
        }
    )
    old = FlowStatus.model_validate({"modules": [{"id": "par"}], "engine": {"finished": True}})
    with pytest.raises(BadInput, match=r'step "par" is a parallel forloopflow: restart it from'):
        again(ev, flow, old, "each", {}, iteration=1)
