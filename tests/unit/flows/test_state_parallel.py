"""Parallel loops and branches, and sub-flows, in the pure state machine: each parallel
iteration or branch is a child flow (a ``flownode`` action) started with what it inherits,
whose completion is fed back to its parent in any order."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from gristmill.flows.expressions import Evaluator
from gristmill.flows.model import OpenFlow, load_flow, parse_flow
from gristmill.flows.state import (
    MAX_DEPTH,
    CancelJobs,
    FinishFlow,
    FlowStatus,
    Inherit,
    RunStep,
    start,
    step_finished,
)

Handler = Callable[[dict[str, Any], RunStep], tuple[bool, Any]]


@pytest.fixture(scope="module")
def ev() -> Evaluator:
    return Evaluator()


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


@dataclass
class Tree:
    """Every flow of a run (the root and its children) and the steps run, driven like the
    engine does: children started from their RunStep, their finish fed to their parent."""

    ev: Evaluator
    handlers: dict[str, Handler]
    #: Completes the pending jobs in this order: "fifo" or "lifo".
    order: str = "fifo"
    flows: dict[str, tuple[OpenFlow, FlowStatus]] = field(default_factory=dict)
    parent: dict[str, str] = field(default_factory=dict)
    pending: list[tuple[str, RunStep]] = field(default_factory=list)
    steps: list[RunStep] = field(default_factory=list)
    finished: dict[str, FinishFlow] = field(default_factory=dict)
    canceled: list[str] = field(default_factory=list)
    flownodes: list[RunStep] = field(default_factory=list)

    def apply(self, flow_id: str, flow: OpenFlow, decision: Any) -> None:
        # Stored as JSON and read back, as the engine does.
        self.flows[flow_id] = (flow, FlowStatus.model_validate(decision.status.to_json()))
        for action in decision.actions:
            if isinstance(action, FinishFlow):
                self.finished[flow_id] = action
                if flow_id in self.parent:
                    self.complete(self.parent[flow_id], flow_id, action.success, action.result)
            elif isinstance(action, CancelJobs):
                self.canceled.extend(action.job_ids)
            elif action.kind == "flownode":
                self.flownodes.append(action)
                assert action.flow_value is not None and action.inherit is not None
                child = parse_flow({"summary": "", "value": action.flow_value})
                self.parent[action.job_id] = flow_id
                d = start(
                    child,
                    action.args,
                    evaluator=self.ev,
                    flow_job_id=action.job_id,
                    inherit=action.inherit,
                )
                self.apply(action.job_id, child, d)
            else:
                self.pending.append((flow_id, action))

    def complete(self, flow_id: str, job_id: str, success: bool, result: Any) -> None:
        if job_id in self.canceled:
            return
        flow, status = self.flows[flow_id]
        decision = step_finished(
            flow, status, job_id=job_id, success=success, result=result, evaluator=self.ev
        )
        assert not decision.ignored, f"{job_id} was ignored by {flow_id}"
        self.apply(flow_id, flow, decision)

    def run(self, flow: OpenFlow, args: dict[str, Any]) -> FinishFlow:
        root = "0b6f1c3e-1111-4a4a-8a8a-000000000001"
        self.apply(root, flow, start(flow, args, evaluator=self.ev, flow_job_id=root))
        for _ in range(500):
            if root in self.finished:
                return self.finished[root]
            flow_id, step = self.pending.pop(0 if self.order == "fifo" else -1)
            if step.job_id in self.canceled:
                continue
            self.steps.append(step)
            success, result = self.handlers[step.module_id](step.args, step)
            self.complete(flow_id, step.job_id, success, result)
        raise AssertionError("the flow did not finish")

    def status(self) -> dict[str, Any]:
        return self.flows["0b6f1c3e-1111-4a4a-8a8a-000000000001"][1].windmill_json()


def ok(fn: Callable[[dict[str, Any]], Any]) -> Handler:
    return lambda args, _step: (True, fn(args))


def fail(_args: dict[str, Any], _step: RunStep) -> tuple[bool, Any]:
    return False, {"error": {"name": "Error", "message": "boom"}}


def parallel_loop(**extra: Any) -> OpenFlow:
    return flow_of(
        script("before", n="flow_input.n"),
        {
            "id": "loop",
            "value": {
                "type": "forloopflow",
                "parallel": True,
                "iterator": {"type": "javascript", "expr": "flow_input.items"},
                "skip_failures": False,
                "modules": [
                    script(
                        "double",
                        v="flow_input.iter.value",
                        i="flow_input.iter.index",
                        b="results.before",
                        p="previous_result",
                    )
                ],
                **extra,
            },
        },
        script("after", r="results.loop"),
    )


HANDLERS: dict[str, Handler] = {
    "before": ok(lambda a: a["n"] * 100),
    "double": ok(lambda a: {"v": a["v"] * 2, "i": a["i"], "b": a["b"], "p": a["p"]}),
    "after": ok(lambda a: a["r"]),
}


@pytest.mark.parametrize("order", ["fifo", "lifo"])
def test_parallel_forloop_runs_iterations_as_children_in_context_results_in_order(
    ev: Evaluator, order: str
) -> None:
    tree = Tree(ev, HANDLERS, order=order)
    finish = tree.run(parallel_loop(), {"n": 1, "items": [1, 2, 3]})
    assert finish.success
    # Each iteration saw its item and index, the parent's results and previous_result.
    assert finish.result == [
        {"v": 2 * v, "i": i, "b": 100, "p": 100} for i, v in enumerate([1, 2, 3])
    ]
    assert len(tree.flownodes) == 3
    # All three were launched at once (no parallelism bound), before any completed.
    assert [s.module_id for s in tree.steps] == ["before", "double", "double", "double", "after"]
    loop = tree.status()["modules"][1]
    assert loop["type"] == "Success"
    assert loop["flow_jobs"] == [n.job_id for n in tree.flownodes]
    assert loop["flow_jobs_success"] == [True, True, True]
    assert loop["iterator"]["itered"] == [1, 2, 3]


def test_parallelism_bounds_how_many_children_run_at_once(ev: Evaluator) -> None:
    flow = parallel_loop(parallelism={"type": "static", "value": 2})
    root = "0b6f1c3e-1111-4a4a-8a8a-000000000001"
    tree = Tree(ev, HANDLERS)
    tree.apply(
        root, flow, start(flow, {"n": 1, "items": [1, 2, 3, 4, 5]}, evaluator=ev, flow_job_id=root)
    )
    # "before" is the only pending step.
    flow_id, before = tree.pending.pop(0)
    tree.complete(flow_id, before.job_id, True, 100)
    assert len(tree.flownodes) == 2
    assert len(tree.flows[root][1].engine.frames[-1].running) == 2
    # One iteration ends: one more is launched, never more than two at once.
    flow_id, step = tree.pending.pop(0)
    tree.complete(flow_id, step.job_id, True, 0)
    assert len(tree.flownodes) == 3
    assert len(tree.flows[root][1].engine.frames[-1].running) == 2


def test_a_failed_iteration_fails_the_loop_and_cancels_the_others(ev: Evaluator) -> None:
    calls = {"n": 0}

    def first_fails(args: dict[str, Any], step: RunStep) -> tuple[bool, Any]:
        calls["n"] += 1
        return fail(args, step) if args["i"] == 0 else (True, args["v"])

    tree = Tree(ev, {**HANDLERS, "double": first_fails})
    finish = tree.run(parallel_loop(), {"n": 1, "items": [1, 2, 3]})
    assert not finish.success
    assert finish.result == {"error": {"name": "Error", "message": "boom"}}
    # The two other iterations' flows were canceled, "after" never ran.
    assert sorted(tree.canceled) == sorted(n.job_id for n in tree.flownodes[1:])
    assert "after" not in [s.module_id for s in tree.steps]


def test_skip_failures_keeps_the_error_as_that_iteration_result(ev: Evaluator) -> None:
    flow = parallel_loop(skip_failures=True)
    handlers = {
        **HANDLERS,
        "double": lambda a, s: fail(a, s) if a["i"] == 1 else (True, a["v"]),
    }
    finish = Tree(ev, handlers, order="lifo").run(flow, {"n": 1, "items": [1, 2, 3]})
    assert finish.success
    assert finish.result == [1, {"error": {"name": "Error", "message": "boom"}}, 3]


def test_bad_parallelism_fails_the_module_named(ev: Evaluator) -> None:
    flow = parallel_loop(parallelism={"type": "javascript", "expr": "0"})
    finish = Tree(ev, HANDLERS).run(flow, {"n": 1, "items": [1]})
    assert not finish.success
    assert 'step "loop" parallelism' in finish.result["error"]["message"]


def test_parallel_branchall_results_by_branch_and_skip_failure(ev: Evaluator) -> None:
    def make(skip: bool) -> OpenFlow:
        return flow_of(
            {
                "id": "all",
                "value": {
                    "type": "branchall",
                    "parallel": True,
                    "branches": [
                        {"modules": [script("x", v="flow_input.k")]},
                        {"skip_failure": skip, "modules": [script("bad")]},
                        {"modules": [script("y", v="2"), script("z", v="previous_result + 1")]},
                    ],
                },
            }
        )

    handlers: dict[str, Handler] = {
        "x": ok(lambda a: a["v"]),
        "bad": fail,
        "y": ok(lambda a: a["v"]),
        "z": ok(lambda a: a["v"]),
    }
    tree = Tree(ev, handlers, order="lifo")
    finish = tree.run(make(True), {"k": 7})
    assert finish.success
    assert finish.result == [7, {"error": {"name": "Error", "message": "boom"}}, 3]
    status = tree.status()["modules"][0]
    assert status["branchall"]["len"] == 3
    assert status["flow_jobs_success"] == [True, False, True]

    finish = Tree(ev, handlers).run(make(False), {"k": 7})
    assert not finish.success


def test_empty_parallel_loop_gives_an_empty_list(ev: Evaluator) -> None:
    finish = Tree(ev, HANDLERS).run(parallel_loop(), {"n": 1, "items": []})
    assert finish.success and finish.result == []


def test_nested_loop_inside_a_parallel_iteration_sees_both_iterations(ev: Evaluator) -> None:
    flow = flow_of(
        {
            "id": "outer",
            "value": {
                "type": "forloopflow",
                "parallel": True,
                "iterator": {"type": "static", "value": ["a", "b"]},
                "modules": [
                    {
                        "id": "inner",
                        "value": {
                            "type": "forloopflow",
                            "iterator": {"type": "static", "value": [1, 2]},
                            "modules": [script("leaf", v="flow_input.iter.value")],
                        },
                    }
                ],
            },
        }
    )
    tree = Tree(ev, {"leaf": lambda a, s: (True, [i["value"] for i in s.iterations])})
    finish = tree.run(flow, {})
    assert finish.success
    assert finish.result == [[["a", 1], ["a", 2]], [["b", 1], ["b", 2]]]


def test_a_sub_flow_step_is_a_flow_action_one_level_deeper(ev: Evaluator) -> None:
    flow = flow_of(
        {
            "id": "sub",
            "value": {
                "type": "flow",
                "path": "f/sub",
                "input_transforms": {"x": {"type": "javascript", "expr": "flow_input.n"}},
            },
        }
    )
    decision = start(flow, {"n": 3}, evaluator=ev, inherit=Inherit(depth=2))
    (action,) = decision.actions
    assert isinstance(action, RunStep)
    assert action.kind == "flow" and action.script_path == "f/sub" and action.args == {"x": 3}
    assert action.inherit == Inherit(depth=3)
    # A child flow started with it starts from its own args, not its parent's context.
    child = flow_of(script("c", got="flow_input.x", prev="previous_result"))
    d = start(child, action.args, evaluator=ev, inherit=action.inherit)
    (step,) = d.actions
    assert isinstance(step, RunStep) and step.args == {"got": 3, "prev": {"x": 3}}
    assert d.status.engine.depth == 3


def test_sub_flows_too_deep_fail_the_step_naming_it(ev: Evaluator) -> None:
    flow = flow_of({"id": "sub", "value": {"type": "flow", "path": "f/me"}})
    decision = start(flow, {}, evaluator=ev, inherit=Inherit(depth=MAX_DEPTH))
    (action,) = decision.actions
    assert isinstance(action, FinishFlow) and not action.success
    assert 'step "sub"' in action.result["error"]["message"]
    assert "f/me" in action.result["error"]["message"]


def test_a_completion_for_a_job_not_running_is_ignored(ev: Evaluator) -> None:
    flow = parallel_loop()
    root = "0b6f1c3e-1111-4a4a-8a8a-000000000001"
    tree = Tree(ev, HANDLERS)
    tree.apply(root, flow, start(flow, {"n": 1, "items": [1, 2]}, evaluator=ev, flow_job_id=root))
    flow_id, before = tree.pending.pop(0)
    tree.complete(flow_id, before.job_id, True, 1)
    _, status = tree.flows[root]
    d = step_finished(flow, status, job_id=before.job_id, success=True, result=1, evaluator=ev)
    assert d.ignored
    first = tree.flownodes[0].job_id
    d1 = step_finished(flow, status, job_id=first, success=True, result=1, evaluator=ev)
    assert not d1.ignored
    d2 = step_finished(flow, d1.status, job_id=first, success=True, result=1, evaluator=ev)
    assert d2.ignored
