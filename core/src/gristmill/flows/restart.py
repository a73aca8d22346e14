"""Restarting a finished flow from one of its steps, as pure functions.

A restart is a new flow job running the same flow: its status starts with the results and
public statuses of the steps before the chosen one copied from the old run, and the machine
of :mod:`gristmill.flows.state` runs on from that step (:func:`restart`). Windmill's route
is ``POST /jobs/restart/f/{id}/from/{step_id}[/{branch_or_iteration_n}]``.

**The rule** (what is reused, what runs again):

- The restart point is always a **top-level** step: a step id inside a loop or branch
  restarts the top-level module that contains it (at the iteration or branch given, else
  from its start). The failure module and the preprocessor cannot be restarted from.
- Every top-level step before it must have completed in the old run (``Success``, or
  ``Failure`` with ``continue_on_error``): their results (and those of the steps nested in
  them) are copied, their jobs are not run again; ``previous_result`` is the result of the
  step just before (the flow's args for the first step).
- With an iteration ``n`` on a ``forloopflow`` or ``whileloopflow``: iterations ``0..n-1``
  keep their results, the loop runs from iteration ``n`` with the **old run's iterator**
  (a ``forloopflow``'s list is not evaluated again). On a ``branchall``: branches
  ``0..n-1`` keep their results, branch ``n`` and the next run. ``n`` may be at most the
  number of iterations (branches) the old run completed, and must name an iteration that
  exists. ``n = 0`` is the module from its start (a ``forloopflow``'s iterator evaluated
  again). An iteration on another kind of module, or ``n > 0`` on a parallel loop or
  ``branchall`` (its iterations end in any order), is refused.
- The args are the old run's unless others are given (the copied results stay those of
  the old args). Everything after the restart point runs as in a new run: retries start
  again, the failure module runs if the flow fails.

Refusals are :class:`~gristmill.errors.BadInput` naming the step: a step id not in the flow,
an iteration out of range, a flow still running, a step before the restart point that did
not complete.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping
from typing import Any

from gristmill.errors import BadInput
from gristmill.flows import state
from gristmill.flows.expressions import Evaluator
from gristmill.flows.model import (
    BranchAll,
    ForloopFlow,
    OpenFlow,
    WhileloopFlow,
    iter_modules,
)

__all__ = ["restart", "restart_status"]


def restart(
    flow: OpenFlow,
    old: state.FlowStatus,
    *,
    step_id: str,
    iteration: int | None,
    args: Mapping[str, Any],
    flow_job_id: uuid.UUID | str,
    evaluator: Evaluator,
    resource: state.Resolver | None = None,
    variable: state.Resolver | None = None,
) -> state.Decision:
    """The first decision of the new run (see the module's rule); :class:`BadInput` when
    the restart is refused."""
    status = restart_status(
        flow, old, step_id=step_id, iteration=iteration, args=args, flow_job_id=flow_job_id
    )
    return state.walk(flow, status, evaluator=evaluator, resource=resource, variable=variable)


def restart_status(
    flow: OpenFlow,
    old: state.FlowStatus,
    *,
    step_id: str,
    iteration: int | None,
    args: Mapping[str, Any],
    flow_job_id: uuid.UUID | str,
) -> state.FlowStatus:
    """The status a restart starts from: the earlier steps done, the machine positioned at
    the restart point."""
    modules = flow.value.modules
    paths = {m.id: path for m, path in iter_modules(flow)}
    top_ids = [m.id for m in modules]
    if step_id not in paths:
        raise BadInput(
            f'restart: step "{step_id}" is not in the flow (its top-level steps: '
            f"{', '.join(top_ids) or 'none'})"
        )
    path = paths[step_id]
    if path[0] != "modules":
        raise BadInput(
            f'restart: step "{step_id}" is the flow\'s {path[0]}, which cannot be restarted '
            f"from: name one of its steps ({', '.join(top_ids) or 'none'})"
        )
    if not old.engine.finished:
        raise BadInput(
            f'restart from step "{step_id}": the flow is still running; restart it once it '
            "has ended (or cancel it)"
        )
    k = path[1]
    assert isinstance(k, int)
    top = modules[k]
    for i in range(k):
        before = modules[i]
        entry = old.modules[i] if i < len(old.modules) else None
        completed = (
            entry is not None
            and entry.id == before.id
            and before.id in old.engine.results
            and (entry.type == "Success" or (entry.type == "Failure" and before.continue_on_error))
        )
        if not completed:
            how = "failed" if entry is not None and entry.type == "Failure" else "did not complete"
            raise BadInput(
                f'restart from step "{step_id}": step "{before.id}" before it {how} in that '
                f'run, so its result cannot be reused; restart from "{before.id}" or earlier'
            )
    kept = {m.id for m, p in iter_modules(flow) if p[0] == "modules" and int(p[1]) < k}
    results = {i: copy.deepcopy(r) for i, r in old.engine.results.items() if i in kept}
    previous = copy.deepcopy(results[modules[k - 1].id]) if k > 0 else copy.deepcopy(dict(args))
    statuses = [old.modules[i].model_copy(deep=True) for i in range(k)]
    statuses += [state.FlowStatusModule(id=m.id) for m in modules[k:]]
    frames = [state.Frame(kind="root", pos=k, last=copy.deepcopy(previous))]
    if iteration is not None and iteration != 0:
        frames.append(_inner_frame(top, old, k, iteration, previous, statuses[k]))
    elif iteration is not None and not isinstance(
        top.value, ForloopFlow | WhileloopFlow | BranchAll
    ):
        _not_iterable(top)
    failure = flow.value.failure_module
    return state.FlowStatus(
        step=k,
        modules=statuses,
        failure_module=state.FlowStatusModule(id=failure.id) if failure is not None else None,
        engine=state.EngineState(
            args=copy.deepcopy(dict(args)),
            results=results,
            previous_result=previous,
            frames=frames,
            namespace=str(flow_job_id),
        ),
    )


def _not_iterable(top: Any) -> None:
    raise BadInput(
        f'restart: step "{top.id}" is a {top.value.type}: an iteration or branch number '
        "applies to forloopflow, whileloopflow and branchall steps only"
    )


def _inner_frame(
    top: Any,
    old: state.FlowStatus,
    k: int,
    n: int,
    previous: Any,
    entry: state.FlowStatusModule,
) -> state.Frame:
    """The loop's (or ``branchall``'s) frame at iteration (branch) ``n``, the first ``n``
    results reused; ``entry`` (the module's public status) is updated to match."""
    inner = top.value
    if not isinstance(inner, ForloopFlow | WhileloopFlow | BranchAll):
        _not_iterable(top)
    if not isinstance(inner, WhileloopFlow) and inner.parallel:
        # Its iterations run as child flows, finishing in any order: no prefix of them is
        # known to be done.
        raise BadInput(
            f'restart: step "{top.id}" is a parallel {inner.type}: restart it from its start '
            "(no iteration or branch number, or 0)"
        )
    old_entry = old.modules[k] if k < len(old.modules) else None
    if top.id in old.engine.partial:
        done = old.engine.partial[top.id]
    elif old_entry is not None and old_entry.type == "Success":
        found = old.engine.results.get(top.id)
        done = found if isinstance(found, list) else []  # pyright: ignore[reportUnknownVariableType]
    else:
        done = []
    done_list: list[Any] = list(done)  # pyright: ignore[reportUnknownArgumentType]
    word = "branch" if isinstance(inner, BranchAll) else "iteration"
    limit = len(done_list)
    if isinstance(inner, ForloopFlow):
        itered = old_entry.iterator.itered if old_entry and old_entry.iterator else []
        limit = min(limit, len(itered) - 1)
    elif isinstance(inner, BranchAll):
        itered = None
        limit = min(limit, len(inner.branches) - 1)
    else:
        itered = None
    if n < 0 or n > limit:
        raise BadInput(
            f'restart: step "{top.id}": {word} {n} is out of range: that run completed '
            f"{len(done_list)} {word}{'es' if word == 'branch' else 's'}, so {word}s 0 to "
            f"{max(limit, 0)} can be restarted from"
        )
    kept = copy.deepcopy(done_list[:n])
    container: list[str | int] = ["modules", k]
    entry.type = "InProgress"
    if isinstance(inner, ForloopFlow):
        assert itered is not None
        entry.iterator = state.FlowIterator(index=n, itered=copy.deepcopy(itered))
        return state.Frame(
            kind="forloop",
            container=container,
            index=n,
            itered=copy.deepcopy(itered),
            results=kept,
            entry_previous=copy.deepcopy(previous),
        )
    if isinstance(inner, WhileloopFlow):
        return state.Frame(
            kind="whileloop",
            container=container,
            index=n,
            results=kept,
            entry_previous=copy.deepcopy(previous),
        )
    entry.branchall = state.BranchAllStatus(branch=n, len=len(inner.branches))
    return state.Frame(
        kind="branchall",
        container=container,
        branch=n,
        results=kept,
        entry_previous=copy.deepcopy(previous),
    )
