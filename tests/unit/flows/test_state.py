"""The flow state machine, driven by a fake runner: each RunStep is "run" by a Python callable
standing for the step, and its result fed back through step_finished."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from gristmill.flows.expressions import Evaluator
from gristmill.flows.model import OpenFlow, Retry, load_flow
from gristmill.flows.state import (
    Decision,
    FinishFlow,
    FlowStatus,
    RunStep,
    retry_delay,
    start,
    step_finished,
)

# A step's stand-in: its evaluated args and the RunStep → (success, result).
Handler = Callable[[dict[str, Any], RunStep], tuple[bool, Any]]


@pytest.fixture(scope="module")
def ev() -> Evaluator:
    return Evaluator()


def ok(fn: Callable[[dict[str, Any]], Any]) -> Handler:
    return lambda args, _step: (True, fn(args))


def fail(message: str = "boom") -> Handler:
    return lambda _args, _step: (False, {"error": {"name": "Error", "message": message}})


@dataclass
class Run:
    finish: FinishFlow
    steps: list[RunStep] = field(default_factory=list[RunStep])
    status: FlowStatus | None = None
    decisions: list[Decision] = field(default_factory=list[Decision])

    def ran(self) -> list[str]:
        return [s.module_id for s in self.steps]


def drive(ev: Evaluator, flow: OpenFlow, args: dict[str, Any], handlers: dict[str, Handler]) -> Run:
    decision = start(flow, args, evaluator=ev, flow_job_id="0b6f1c3e-1111-4a4a-8a8a-000000000001")
    steps: list[RunStep] = []
    decisions = [decision]
    for _ in range(200):
        (action,) = decision.actions  # one action at a time: sequential flows
        if isinstance(action, FinishFlow):
            return Run(action, steps, decision.status, decisions)
        steps.append(action)
        success, result = handlers[action.module_id](action.args, action)
        # The engine stores the status as JSON and reads it back: do the same.
        stored = FlowStatus.model_validate(decision.status.to_json())
        decision = step_finished(
            flow, stored, job_id=action.job_id, success=success, result=result, evaluator=ev
        )
        decisions.append(decision)
    raise AssertionError("the flow did not finish")


def script(id_: str, **inputs: str) -> dict[str, Any]:
    """A rawscript module whose inputs are JavaScript expressions."""
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


# ---------------------------------------------------------------------------------------------
# Sequential steps and module kinds


def test_sequential_rawscripts_pass_results_and_the_last_is_the_flow_result(ev: Evaluator) -> None:
    flow = flow_of(script("a", x="flow_input.n + 1"), script("b", y="results.a * 10"))
    run = drive(ev, flow, {"n": 1}, {"a": ok(lambda a: a["x"]), "b": ok(lambda a: a["y"] + 1)})
    assert run.ran() == ["a", "b"]
    assert run.steps[0].args == {"x": 2} and run.steps[1].args == {"y": 20}
    assert run.finish == FinishFlow(True, 21)
    first = run.steps[0]
    assert first.kind == "rawscript" and first.language == "python3"
    assert first.content == "def main(): pass" and first.path == ("modules", 0)
    public = run.status.windmill_json() if run.status else {}
    assert [m["type"] for m in public["modules"]] == ["Success", "Success"]
    assert public["modules"][1]["job"] == run.steps[1].job_id
    assert "engine" not in public


def test_script_and_flow_modules_carry_their_path_and_static_inputs(ev: Evaluator) -> None:
    flow = flow_of(
        {
            "id": "a",
            "value": {
                "type": "script",
                "path": "f/lib/double",
                "hash": "abc",
                "input_transforms": {"x": {"type": "static", "value": [1, 2]}},
            },
        },
        {
            "id": "b",
            "value": {
                "type": "flow",
                "path": "f/lib/sub",
                "input_transforms": {"v": {"type": "javascript", "expr": "previous_result"}},
            },
        },
    )
    run = drive(ev, flow, {}, {"a": ok(lambda a: a["x"] * 2), "b": ok(lambda a: {"got": a["v"]})})
    a, b = run.steps
    assert (a.kind, a.script_path, a.script_hash, a.args) == (
        "script",
        "f/lib/double",
        "abc",
        {"x": [1, 2]},
    )
    assert (b.kind, b.script_path, b.args) == ("flow", "f/lib/sub", {"v": [1, 2, 1, 2]})
    assert run.finish.result == {"got": [1, 2, 1, 2]}


def test_identity_passes_the_previous_result_and_first_previous_is_flow_input(
    ev: Evaluator,
) -> None:
    flow = flow_of({"id": "a", "value": {"type": "identity"}}, script("b", p="previous_result"))
    run = drive(ev, flow, {"k": 1}, {"b": ok(lambda a: a["p"])})
    assert run.ran() == ["b"]
    assert run.finish.result == {"k": 1}


def test_job_ids_are_deterministic_and_a_replayed_call_gives_the_same_decision(
    ev: Evaluator,
) -> None:
    flow = flow_of(script("a", x="flow_input.n"), script("b", y="results.a"))
    first = start(flow, {"n": 3}, evaluator=ev, flow_job_id="0b6f1c3e-1111-4a4a-8a8a-000000000001")
    again = start(flow, {"n": 3}, evaluator=ev, flow_job_id="0b6f1c3e-1111-4a4a-8a8a-000000000001")
    assert first.actions == again.actions
    status_json = first.status.to_json()
    (action,) = first.actions
    assert isinstance(action, RunStep)
    d1 = step_finished(
        flow, first.status, job_id=action.job_id, success=True, result=3, evaluator=ev
    )
    d2 = step_finished(
        flow,
        FlowStatus.model_validate(status_json),
        job_id=action.job_id,
        success=True,
        result=3,
        evaluator=ev,
    )
    assert d1.actions == d2.actions and d1.status == d2.status
    assert first.status.to_json() == status_json  # the input was not modified
    # The same completion against the new status (a duplicate report) changes nothing.
    dup = step_finished(flow, d1.status, job_id=action.job_id, success=True, result=3, evaluator=ev)
    assert dup.ignored and dup.actions == [] and dup.status is d1.status


# ---------------------------------------------------------------------------------------------
# Branches


def branchone(default: list[dict[str, Any]]) -> OpenFlow:
    return flow_of(
        {
            "id": "br",
            "value": {
                "type": "branchone",
                "branches": [
                    {"expr": "flow_input.n > 10", "modules": [script("big", v="flow_input.n")]},
                    {
                        "expr": "flow_input.n > 5",
                        "modules": [
                            script("mid1", v="flow_input.n"),
                            script("mid2", v="previous_result"),
                        ],
                    },
                ],
                "default": default,
            },
        },
        script("after", r="results.br"),
    )


@pytest.mark.parametrize(
    ("n", "ran", "chosen", "result"),
    [
        (20, ["big", "after"], {"type": "branch", "branch": 0}, "big20"),
        (7, ["mid1", "mid2", "after"], {"type": "branch", "branch": 1}, "mid2mid17"),
        (1, ["small", "after"], {"type": "default"}, "small1"),
    ],
)
def test_branchone_runs_the_first_true_branch_else_default(
    ev: Evaluator, n: int, ran: list[str], chosen: dict[str, Any], result: str
) -> None:
    flow = branchone([script("small", v="flow_input.n")])
    handlers = {
        name: ok(lambda a, name=name: f"{name}{a['v']}")
        for name in ("big", "mid1", "mid2", "small")
    }
    handlers["after"] = ok(lambda a: a["r"])
    run = drive(ev, flow, {"n": n}, handlers)
    assert run.ran() == ran
    assert run.finish.result == result
    assert run.status is not None
    assert run.status.windmill_json()["modules"][0]["branch_chosen"] == chosen


def test_branchone_empty_default_gives_null(ev: Evaluator) -> None:
    run = drive(ev, branchone([]), {"n": 0}, {"after": ok(lambda a: a["r"])})
    assert run.ran() == ["after"] and run.finish.result is None


def test_branchall_sequential_result_list_and_skip_failure(ev: Evaluator) -> None:
    def make(skip: bool) -> OpenFlow:
        return flow_of(
            {
                "id": "all",
                "value": {
                    "type": "branchall",
                    "branches": [
                        {"modules": [script("x", v="1")]},
                        {"skip_failure": skip, "modules": [script("bad")]},
                        {"modules": [script("y", v="2"), script("z", v="previous_result + 1")]},
                    ],
                },
            }
        )

    handlers = {
        "x": ok(lambda a: a["v"]),
        "bad": fail(),
        "y": ok(lambda a: a["v"]),
        "z": ok(lambda a: a["v"]),
    }
    run = drive(ev, make(True), {}, handlers)
    assert run.ran() == ["x", "bad", "y", "z"]
    assert run.finish.success
    assert run.finish.result == [1, {"error": {"name": "Error", "message": "boom"}}, 3]
    assert run.status is not None
    assert run.status.modules[0].branchall is not None and run.status.modules[0].branchall.len == 3

    run = drive(ev, make(False), {}, handlers)
    assert run.ran() == ["x", "bad"]
    assert not run.finish.success
    assert run.finish.result == {"error": {"name": "Error", "message": "boom"}}


# ---------------------------------------------------------------------------------------------
# Loops


def forloop(iterator: str, *, skip_failures: bool = True, **extra: Any) -> OpenFlow:
    return flow_of(
        {
            "id": "loop",
            "value": {
                "type": "forloopflow",
                "iterator": {"type": "javascript", "expr": iterator},
                "skip_failures": skip_failures,
                "modules": [script("double", v="flow_input.iter.value", i="flow_input.iter.index")],
            },
            **extra,
        },
        script("after", r="results.loop"),
    )


def test_forloop_runs_each_item_with_iter_and_collects_results(ev: Evaluator) -> None:
    run = drive(
        ev,
        forloop("flow_input.items"),
        {"items": [1, 2, 3]},
        {"double": ok(lambda a: a["v"] * 2), "after": ok(lambda a: a["r"])},
    )
    assert [s.args for s in run.steps[:3]] == [{"v": 1, "i": 0}, {"v": 2, "i": 1}, {"v": 3, "i": 2}]
    assert run.steps[1].iterations == ({"value": 2, "index": 1},)
    assert run.finish.result == [2, 4, 6]
    assert run.status is not None
    loop = run.status.windmill_json()["modules"][0]
    assert loop["type"] == "Success" and loop["iterator"]["itered"] == [1, 2, 3]
    assert loop["flow_jobs"] == [s.job_id for s in run.steps[:3]]
    assert loop["flow_jobs_success"] == [True, True, True]


def test_forloop_iterator_not_a_list_fails_naming_the_step(ev: Evaluator) -> None:
    run = drive(ev, forloop("flow_input.items"), {"items": "abc"}, {})
    assert not run.finish.success and run.steps == []
    message = run.finish.result["error"]["message"]
    assert 'step "loop"' in message and "list" in message and "str" in message


def test_forloop_empty_iterator_gives_an_empty_list(ev: Evaluator) -> None:
    run = drive(ev, forloop("[]"), {}, {"after": ok(lambda a: a["r"])})
    assert run.ran() == ["after"] and run.finish.result == []


def test_forloop_skip_failures(ev: Evaluator) -> None:
    def double(args: dict[str, Any], _s: RunStep) -> tuple[bool, Any]:
        if args["v"] == 2:
            return False, {"error": {"name": "Error", "message": "two"}}
        return True, args["v"] * 2

    handlers: dict[str, Handler] = {"double": double, "after": ok(lambda a: a["r"])}
    run = drive(ev, forloop("[1, 2, 3]"), {}, handlers)
    assert run.finish.success
    assert run.finish.result == [2, {"error": {"name": "Error", "message": "two"}}, 6]

    run = drive(ev, forloop("[1, 2, 3]", skip_failures=False), {}, handlers)
    assert run.ran() == ["double", "double"]
    assert not run.finish.success
    assert run.finish.result == {"error": {"name": "Error", "message": "two"}}
    assert run.status is not None and run.status.modules[0].type == "Failure"


def test_loop_stop_after_if_breaks_the_loop_not_the_flow(ev: Evaluator) -> None:
    flow = forloop("[1, 2, 3, 4]", stop_after_if={"expr": "result >= 4", "skip_if_stopped": True})
    run = drive(ev, flow, {}, {"double": ok(lambda a: a["v"] * 2), "after": ok(lambda a: a["r"])})
    assert run.ran() == ["double", "double", "after"]
    assert run.finish == FinishFlow(True, [2, 4])


def test_whileloop_runs_until_stop_after_if(ev: Evaluator) -> None:
    flow = flow_of(
        {
            "id": "w",
            "stop_after_if": {"expr": "result.done"},
            "value": {
                "type": "whileloopflow",
                "modules": [script("tick", i="flow_input.iter.index")],
            },
        }
    )
    run = drive(ev, flow, {}, {"tick": ok(lambda a: {"i": a["i"], "done": a["i"] == 2})})
    assert [s.args["i"] for s in run.steps] == [0, 1, 2]
    assert run.finish.success
    assert run.finish.result == [
        {"i": 0, "done": False},
        {"i": 1, "done": False},
        {"i": 2, "done": True},
    ]


def test_stop_after_if_inside_a_loop_body_breaks_the_loop(ev: Evaluator) -> None:
    inner = script("tick", i="flow_input.iter.index")
    inner["stop_after_if"] = {"expr": "result === 'enough'"}
    flow = flow_of(
        {"id": "w", "value": {"type": "whileloopflow", "modules": [inner, script("never")]}},
        script("after", r="results.w"),
    )
    handlers = {
        "tick": ok(lambda a: "enough" if a["i"] == 1 else a["i"]),
        "never": ok(lambda a: "n"),
        "after": ok(lambda a: a["r"]),
    }
    run = drive(ev, flow, {}, handlers)
    assert run.ran() == ["tick", "never", "tick", "after"]
    assert run.finish.result == ["n", "enough"]


# ---------------------------------------------------------------------------------------------
# skip_if, stop_after_if, continue_on_error


def test_skip_if_skips_the_step_and_passes_the_previous_result(ev: Evaluator) -> None:
    b = script("b", x="1")
    b["skip_if"] = {"expr": "previous_result === 'a'"}
    flow = flow_of(script("a"), b, script("c", p="previous_result"))
    run = drive(
        ev, flow, {}, {"a": ok(lambda a: "a"), "b": ok(lambda a: "b"), "c": ok(lambda a: a["p"])}
    )
    assert run.ran() == ["a", "c"]
    assert run.finish.result == "a"
    assert run.status is not None
    skipped = run.status.windmill_json()["modules"][1]
    assert skipped["type"] == "Success" and skipped["skipped"] is True


def test_stop_after_if_ends_the_flow_successfully(ev: Evaluator) -> None:
    a = script("a")
    a["stop_after_if"] = {"expr": "result.length === 0", "skip_if_stopped": True}
    flow = flow_of(a, script("b"))
    run = drive(ev, flow, {}, {"a": ok(lambda a: []), "b": ok(lambda a: "b")})
    assert run.ran() == ["a"]
    assert run.finish == FinishFlow(True, [], skipped=True, stopped_early=True)


def test_stop_after_if_with_error_message_fails_the_flow(ev: Evaluator) -> None:
    a = script("a")
    a["stop_after_if"] = {"expr": "result > 1", "error_message": "too big"}
    flow = flow_of(a, script("b"), failure_module=script("failure"))
    run = drive(ev, flow, {}, {"a": ok(lambda a: 2), "b": ok(lambda a: "b")})
    assert run.ran() == ["a"]  # neither b nor the failure module
    assert run.finish == FinishFlow(False, "Flow early stop: too big", stopped_early=True)


def test_continue_on_error_passes_the_error_on(ev: Evaluator) -> None:
    a = script("a")
    a["continue_on_error"] = True
    flow = flow_of(a, script("b", e="previous_result.error.message"))
    run = drive(ev, flow, {}, {"a": fail("oops"), "b": ok(lambda a: a["e"])})
    assert run.ran() == ["a", "b"]
    assert run.finish == FinishFlow(True, "oops")
    assert run.status is not None and run.status.modules[0].type == "Failure"


def test_expression_error_in_an_input_fails_the_step_named(ev: Evaluator) -> None:
    flow = flow_of(script("a", x="results.nope.x"))
    run = drive(ev, flow, {}, {})
    assert run.steps == [] and not run.finish.success
    assert 'step "a" input' in run.finish.result["error"]["message"]


# ---------------------------------------------------------------------------------------------
# Retries and the failure module


def test_retry_delays_constant_then_exponential() -> None:
    retry = Retry.model_validate(
        {
            "constant": {"attempts": 2, "seconds": 5},
            "exponential": {"attempts": 3, "multiplier": 2, "seconds": 3},
        }
    )
    assert [retry_delay(retry, n) for n in range(1, 7)] == [5, 5, 6, 18, 54, None]
    assert retry_delay(None, 1) is None


def test_retries_then_success(ev: Evaluator) -> None:
    a = script("a")
    a["retry"] = {
        "constant": {"attempts": 1, "seconds": 5},
        "exponential": {"attempts": 2, "multiplier": 2, "seconds": 3},
    }
    a["sleep"] = {"type": "static", "value": 7}
    attempts: list[int] = []

    def flaky(_args: dict[str, Any], step: RunStep) -> tuple[bool, Any]:
        attempts.append(step.attempt)
        return (step.attempt == 2, "ok" if step.attempt == 2 else {"error": {"message": "x"}})

    run = drive(ev, flow_of(a, script("b")), {}, {"a": flaky, "b": ok(lambda a: "done")})
    assert attempts == [0, 1, 2]
    assert [s.delay_s for s in run.steps] == [0, 5, 6, 7]  # retries, then a's sleep before b
    assert len({s.job_id for s in run.steps}) == 4
    assert run.finish == FinishFlow(True, "done")
    assert run.status is not None
    assert run.status.modules[0].failed_retries == [s.job_id for s in run.steps[:2]]
    assert run.status.retry.fail_count == 0


def test_retries_exhausted_then_failure_module(ev: Evaluator) -> None:
    a = script("a")
    a["retry"] = {"constant": {"attempts": 2, "seconds": 1}}
    failure = script("failure", msg="previous_result.error.message")
    flow = flow_of(a, script("b"), failure_module=failure)
    run = drive(ev, flow, {}, {"a": fail("bad"), "failure": ok(lambda a: {"handled": a["msg"]})})
    assert run.ran() == ["a", "a", "a", "failure"]
    assert run.steps[-1].path == ("failure_module",)
    assert run.finish == FinishFlow(False, {"handled": "bad"})
    assert run.status is not None
    public = run.status.windmill_json()
    assert public["failure_module"]["type"] == "Success"
    assert public["failure_module"]["parent_module"] == "a"
    assert public["modules"][0]["type"] == "Failure"


def test_failure_module_recover_true_makes_the_flow_succeed(ev: Evaluator) -> None:
    flow = flow_of(script("a"), failure_module=script("failure"))
    run = drive(ev, flow, {}, {"a": fail(), "failure": ok(lambda a: {"recover": True})})
    assert run.finish == FinishFlow(True, {"recover": True})


def test_retry_if_false_does_not_retry(ev: Evaluator) -> None:
    a = script("a")
    a["retry"] = {
        "constant": {"attempts": 3, "seconds": 1},
        "retry_if": {"expr": "error.message === 'transient'"},
    }
    run = drive(ev, flow_of(a), {}, {"a": fail("permanent")})
    assert run.ran() == ["a"] and not run.finish.success
    run = drive(ev, flow_of(a), {}, {"a": fail("transient")})
    assert run.ran() == ["a"] * 4


# ---------------------------------------------------------------------------------------------
# Not yet supported


@pytest.mark.parametrize(
    ("module", "named"),
    [
        (
            {
                "id": "p",
                "value": {"type": "whileloopflow", "parallel": True, "modules": []},
            },
            "parallel whileloopflow",
        ),
        ({"id": "ai", "value": {"type": "aiagent", "tools": []}}, "'aiagent'"),
    ],
)
def test_unsupported_features_finish_the_flow_failed_naming_them(
    ev: Evaluator, module: dict[str, Any], named: str
) -> None:
    decision = start(flow_of(module), {}, evaluator=ev)
    (action,) = decision.actions
    assert isinstance(action, FinishFlow) and not action.success
    assert named in action.result["error"]["message"]
