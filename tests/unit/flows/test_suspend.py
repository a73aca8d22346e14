"""Suspend (approval) steps in the pure state machine: after the suspending step the flow
waits, resume events count approvals, a disapproval or the timeout fails (or goes on)."""

from __future__ import annotations

from typing import Any

import pytest
from gristmill.flows.expressions import Evaluator
from gristmill.flows.model import OpenFlow, load_flow
from gristmill.flows.state import (
    Decision,
    FinishFlow,
    FlowStatus,
    RunStep,
    resume,
    start,
    step_finished,
    unsupported_features,
)
from gristmill.flows.suspend import DEFAULT_TIMEOUT_S

FLOW_ID = "0b6f1c3e-1111-4a4a-8a8a-000000000002"


@pytest.fixture(scope="module")
def ev() -> Evaluator:
    return Evaluator()


def script(id_: str, suspend: dict[str, Any] | None = None, **inputs: str) -> dict[str, Any]:
    module: dict[str, Any] = {
        "id": id_,
        "value": {
            "type": "rawscript",
            "language": "python3",
            "content": "def main(): pass",
            "input_transforms": {k: {"type": "javascript", "expr": v} for k, v in inputs.items()},
        },
    }
    if suspend is not None:
        module["suspend"] = suspend
    return module


def flow_of(*modules: dict[str, Any], **value: Any) -> OpenFlow:
    return load_flow({"summary": "t", "value": {"modules": list(modules), **value}})


def stored(decision: Decision) -> FlowStatus:
    # The engine stores the status as JSON and reads it back: do the same.
    return FlowStatus.model_validate(decision.status.to_json())


def run_step(
    ev: Evaluator, flow: OpenFlow, decision: Decision, result: Any, *, success: bool = True
) -> Decision:
    (action,) = decision.actions
    assert isinstance(action, RunStep)
    return step_finished(
        flow,
        stored(decision),
        job_id=action.job_id,
        success=success,
        result=result,
        evaluator=ev,
    )


def suspended(ev: Evaluator, flow: OpenFlow) -> tuple[Decision, str]:
    """Start ``flow`` and complete its first step ``a`` (which suspends)."""
    first = start(flow, {"n": 1}, evaluator=ev, flow_job_id=FLOW_ID)
    (action,) = first.actions
    assert isinstance(action, RunStep) and action.module_id == "a"
    decision = run_step(ev, flow, first, {"urls": "x"})
    return decision, action.job_id


def approve(
    ev: Evaluator, flow: OpenFlow, decision: Decision, payload: Any, approver: str | None
) -> Decision:
    return resume(
        flow, stored(decision), approved=True, payload=payload, approver=approver, evaluator=ev
    )


def test_suspend_is_no_longer_unsupported() -> None:
    flow = flow_of(script("a", {"required_events": 1}), script("b"))
    assert unsupported_features(flow) == []


def test_the_flow_waits_for_events_after_the_suspending_step(ev: Evaluator) -> None:
    flow = flow_of(script("a", {"required_events": 2, "timeout": 60}), script("b"))
    decision, job_a = suspended(ev, flow)
    assert decision.actions == [] and not decision.ignored
    public = decision.status.windmill_json()
    assert public["step"] == 1
    assert public["modules"][0] == {
        "type": "WaitingForEvents",
        "id": "a",
        "job": job_a,
        "count": 2,
        "failed_retries": [],
        "skipped": False,
    }
    wait = decision.status.engine.suspended
    assert wait is not None and wait.job_id == job_a and wait.timeout_s == 60
    assert decision.status.engine.awaiting is None  # nothing awaited: no job pushed


def test_one_approval_resumes_and_the_next_step_sees_the_payload(ev: Evaluator) -> None:
    flow = flow_of(
        script("a", {"required_events": 1}),
        script("b", r="resume", rs="resumes", who="approvers", prev="results.a"),
    )
    decision, _ = suspended(ev, flow)
    decision = approve(ev, flow, decision, {"ok": 1}, "alice")
    (action,) = decision.actions
    assert isinstance(action, RunStep) and action.module_id == "b"
    assert action.args == {
        "r": {"ok": 1},
        "rs": [{"ok": 1}],
        "who": ["alice"],
        "prev": {"urls": "x"},
    }
    assert decision.status.windmill_json()["modules"][0]["type"] == "Success"
    assert decision.status.engine.suspended is None
    done = run_step(ev, flow, decision, 5)
    assert done.actions == [FinishFlow(True, 5)]


def test_two_approvals_are_needed_when_required_events_is_two(ev: Evaluator) -> None:
    flow = flow_of(script("a", {"required_events": 2}), script("b", r="resume", who="approvers"))
    decision, _ = suspended(ev, flow)
    decision = approve(ev, flow, decision, 1, "alice")
    assert decision.actions == [] and not decision.ignored
    assert decision.status.windmill_json()["modules"][0]["type"] == "WaitingForEvents"
    decision = approve(ev, flow, decision, 2, None)
    (action,) = decision.actions
    assert isinstance(action, RunStep)
    assert action.args == {"r": 2, "who": ["alice", "anonymous"]}


def test_the_resume_values_are_dropped_after_the_next_step(ev: Evaluator) -> None:
    flow = flow_of(script("a", {}), script("b"), script("c", r="typeof resume"))
    decision, _ = suspended(ev, flow)  # a missing required_events is 1, as Windmill
    decision = approve(ev, flow, decision, None, "bob")
    decision = run_step(ev, flow, decision, 2)
    assert decision.status.engine.resumes is None
    # Outside a suspend `resume` is not defined at all (Gristmill's rule for unset names).
    (action,) = decision.actions
    assert isinstance(action, RunStep) and action.args == {"r": "undefined"}


def test_a_disapproval_fails_the_flow_with_windmills_error(ev: Evaluator) -> None:
    flow = flow_of(script("a", {"required_events": 2}), script("b"))
    decision, _ = suspended(ev, flow)
    decision = resume(
        flow, stored(decision), approved=False, payload=None, approver="carol", evaluator=ev
    )
    error = {"error": {"name": "SuspendedDisapproved", "message": "Disapproved by carol"}}
    assert decision.actions == [FinishFlow(False, error)]
    assert decision.status.windmill_json()["modules"][0]["type"] == "Failure"


def test_a_disapproval_runs_the_failure_module(ev: Evaluator) -> None:
    flow = flow_of(
        script("a", {"required_events": 1}),
        script("b"),
        failure_module=script("failure", e="previous_result.error.name"),
    )
    decision, _ = suspended(ev, flow)
    decision = resume(
        flow, stored(decision), approved=False, payload=None, approver=None, evaluator=ev
    )
    (action,) = decision.actions
    assert isinstance(action, RunStep) and action.module_id == "failure"
    assert action.args == {"e": "SuspendedDisapproved"}
    assert decision.status.failure_module is not None
    assert decision.status.failure_module.parent_module == "a"


def test_the_timeout_fails_the_flow(ev: Evaluator) -> None:
    flow = flow_of(script("a", {"required_events": 1}), script("b"))
    decision, _ = suspended(ev, flow)
    assert decision.status.engine.suspended is not None
    assert decision.status.engine.suspended.timeout_s == DEFAULT_TIMEOUT_S
    decision = resume(
        flow,
        stored(decision),
        approved=False,
        payload=None,
        approver=None,
        timed_out=True,
        evaluator=ev,
    )
    error = {"error": {"name": "SuspendedTimedOut", "message": "Timed out waiting to be resumed"}}
    assert decision.actions == [FinishFlow(False, error)]


def test_continue_on_disapprove_timeout_goes_on_with_the_error_as_resume(ev: Evaluator) -> None:
    flow = flow_of(
        script("a", {"required_events": 1, "continue_on_disapprove_timeout": True}),
        script("b", name="resume.error.name", who="approvers"),
    )
    decision, _ = suspended(ev, flow)
    timed_out = resume(
        flow,
        stored(decision),
        approved=False,
        payload=None,
        approver=None,
        timed_out=True,
        evaluator=ev,
    )
    (action,) = timed_out.actions
    assert isinstance(action, RunStep) and action.args == {"name": "SuspendedTimedOut", "who": []}
    rejected = resume(
        flow, stored(decision), approved=False, payload=None, approver="dan", evaluator=ev
    )
    (action,) = rejected.actions
    assert isinstance(action, RunStep)
    assert action.args == {"name": "SuspendedDisapproved", "who": ["dan"]}


def test_a_resume_of_a_flow_not_suspended_is_ignored(ev: Evaluator) -> None:
    flow = flow_of(script("a", {"required_events": 1}), script("b"))
    first = start(flow, {}, evaluator=ev, flow_job_id=FLOW_ID)
    decision = resume(flow, stored(first), approved=True, payload=1, approver="x", evaluator=ev)
    assert decision.ignored and decision.actions == []
    waiting, _ = suspended(ev, flow)
    resumed = approve(ev, flow, waiting, 1, "x")
    again = approve(ev, flow, resumed, 1, "x")
    assert again.ignored


def test_a_failed_step_does_not_suspend(ev: Evaluator) -> None:
    flow = flow_of(script("a", {"required_events": 1}), script("b"))
    first = start(flow, {}, evaluator=ev, flow_job_id=FLOW_ID)
    decision = run_step(ev, flow, first, {"error": {"name": "E", "message": "m"}}, success=False)
    assert decision.status.engine.suspended is None
    (action,) = decision.actions
    assert isinstance(action, FinishFlow) and not action.success


def test_the_last_step_may_suspend_and_the_flow_ends_with_its_result(ev: Evaluator) -> None:
    flow = flow_of(script("a", {"required_events": 1}))
    decision, _ = suspended(ev, flow)
    decision = approve(ev, flow, decision, "p", "x")
    assert decision.actions == [FinishFlow(True, {"urls": "x"})]


def test_user_groups_required_is_evaluated_when_the_step_suspends(ev: Evaluator) -> None:
    static = flow_of(
        script(
            "a",
            {
                "user_auth_required": True,
                "self_approval_disabled": True,
                "user_groups_required": {"type": "static", "value": ["ops"]},
            },
        )
    )
    decision, _ = suspended(ev, static)
    wait = decision.status.engine.suspended
    assert wait is not None and wait.user_groups_required == ["ops"]
    assert wait.user_auth_required and wait.self_approval_disabled
    dynamic = flow_of(
        script(
            "a",
            {
                "user_auth_required": True,
                "user_groups_required": {"type": "javascript", "expr": "[result.urls + 'y']"},
            },
        )
    )
    decision, _ = suspended(ev, dynamic)
    wait = decision.status.engine.suspended
    assert wait is not None and wait.user_groups_required == ["xy"]
    bad = flow_of(
        script(
            "a",
            {"user_groups_required": {"type": "javascript", "expr": "42"}},
        )
    )
    decision, _ = suspended(ev, bad)
    (action,) = decision.actions
    assert isinstance(action, FinishFlow) and not action.success
    assert "list of group names" in action.result["error"]["message"]


def test_a_step_inside_a_loop_may_suspend(ev: Evaluator) -> None:
    flow = flow_of(
        {
            "id": "loop",
            "value": {
                "type": "forloopflow",
                "iterator": {"type": "javascript", "expr": "[1, 2]"},
                "modules": [
                    script("a", {"required_events": 1}, v="flow_input.iter.value"),
                    script("b", r="resume"),
                ],
            },
        }
    )
    decision = start(flow, {}, evaluator=ev, flow_job_id=FLOW_ID)
    results: list[Any] = []
    for i in range(2):
        (action,) = decision.actions
        assert isinstance(action, RunStep) and action.module_id == "a"
        decision = run_step(ev, flow, decision, i)
        wait = decision.status.engine.suspended
        assert wait is not None and wait.job_id == action.job_id
        decision = approve(ev, flow, decision, f"p{i}", "x")
        (action,) = decision.actions
        assert isinstance(action, RunStep) and action.module_id == "b"
        results.append(action.args["r"])
        decision = run_step(ev, flow, decision, action.args["r"])
    assert results == ["p0", "p1"]
    assert decision.actions == [FinishFlow(True, ["p0", "p1"])]
