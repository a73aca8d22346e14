"""Testing flows, as pure functions: one step run alone with a context given by the caller
(:func:`step_to_run`), and results pinned at run time without editing the flow
(:func:`pin_steps`).

Both stay in Windmill's terms: a step run alone is an ordinary preview (or script) job whose
arguments are the step's input transforms evaluated as the engine would (``flow_input``,
``results``, ``previous_result``, ``flow_input.iter``); a pinned step is a module with
Windmill's ``mock: {enabled: true, return_value}``, which the engine already skips.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from gristmill.errors import BadInput
from gristmill.flows.expressions import Evaluator, ExprContext, ExpressionError
from gristmill.flows.model import (
    JavascriptTransform,
    Mock,
    OpenFlow,
    PathScript,
    RawScript,
    StaticTransform,
    flow_to_dict,
    iter_modules,
    parse_flow,
)

__all__ = ["StepContext", "StepToRun", "pin_steps", "pin_value", "step_to_run"]


def pin_steps(flow: OpenFlow, pinned: Mapping[str, Any]) -> OpenFlow:
    """The flow with each step of ``pinned`` (step id → result) given Windmill's
    ``mock: {enabled: true, return_value: result}``: the step is not run and its result is
    the one pinned (a loop or branch pinned is not entered). ``flow`` is not modified; a
    step id not in the flow is refused, naming it."""
    if not pinned:
        return flow
    ids = [m.id for m, _ in iter_modules(flow)]
    unknown = sorted(set(pinned) - set(ids))
    if unknown:
        raise BadInput(
            f"pinned: no step {', '.join(repr(u) for u in unknown)} in the flow "
            f"(its steps: {', '.join(ids) or 'none'})"
        )
    pinned_flow = flow.model_copy(deep=True)
    for module, _ in iter_modules(pinned_flow):
        if module.id in pinned:
            module.mock = Mock(enabled=True, return_value=copy.deepcopy(pinned[module.id]))
    # Read back from JSON, so that the fields set here count as set (the job stores them).
    return OpenFlow.model_validate(flow_to_dict(pinned_flow))


def pin_value(value: dict[str, Any], pinned: Mapping[str, Any] | None) -> dict[str, Any]:
    """:func:`pin_steps` on a flow's raw ``value`` (as a request sends it); ``value`` itself
    when nothing is pinned."""
    if not pinned:
        return value
    flow = pin_steps(parse_flow({"summary": "", "value": value}), pinned)
    return flow_to_dict(flow)["value"]


@dataclass(frozen=True, slots=True)
class StepContext:
    """What the step's input transforms see, as in a run of the flow."""

    flow_input: Mapping[str, Any]
    results: Mapping[str, Any]
    previous_result: Any = None
    #: Inside a loop: ``{"value": ..., "index": ...}`` (``flow_input.iter``).
    iter: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class StepToRun:
    """A step with its evaluated inputs: an inline script (``rawscript``) or a saved one."""

    kind: Literal["rawscript", "script"]
    module_id: str
    args: dict[str, Any]
    language: str | None = None
    content: str | None = None
    lock: str | None = None
    #: ``rawscript``: its optional path; ``script``: the script to run (or its hash).
    path: str | None = None
    hash: str | None = None
    tag: str | None = None


def step_to_run(
    flow: OpenFlow, step_id: str, context: StepContext, *, evaluator: Evaluator
) -> StepToRun:
    """The step ``step_id`` of ``flow`` (at any depth) with its input transforms evaluated
    in ``context``; :class:`BadInput` names a step not in the flow, a step that is no
    script (loops and branches: test their steps one by one), or an input that fails."""
    found = {m.id: m for m, _ in iter_modules(flow)}
    module = found.get(step_id)
    if module is None:
        raise BadInput(
            f'test_step: step "{step_id}" is not in the flow (its steps: '
            f"{', '.join(found) or 'none'})"
        )
    inner = module.value
    if not isinstance(inner, RawScript | PathScript):
        raise BadInput(
            f'test_step: step "{step_id}" is a {inner.type}: only script steps (rawscript, '
            "script) run alone; test the steps inside it one by one"
        )
    args: dict[str, Any] = {}
    for name, transform in (inner.input_transforms or {}).items():
        if isinstance(transform, StaticTransform):
            args[name] = copy.deepcopy(transform.value)
            continue
        assert isinstance(transform, JavascriptTransform)
        scoped = ExprContext(
            flow_input=dict(context.flow_input),
            results=dict(context.results),
            previous_result=context.previous_result,
            iter=context.iter,
            params=dict(args),
        )
        try:
            args[name] = evaluator.evaluate(
                transform.expr, scoped, where=f'step "{step_id}" input {name!r}'
            )
        except ExpressionError as exc:
            raise BadInput(f"test_step: {exc}") from None
    if isinstance(inner, RawScript):
        lock = "\n".join(inner.lock) if isinstance(inner.lock, list) else inner.lock
        return StepToRun(
            kind="rawscript",
            module_id=step_id,
            args=args,
            language=inner.language,
            content=inner.content,
            lock=lock,
            path=inner.path,
            tag=inner.tag,
        )
    return StepToRun(
        kind="script",
        module_id=step_id,
        args=args,
        path=inner.path,
        hash=inner.hash,
        tag=inner.tag_override,
    )
