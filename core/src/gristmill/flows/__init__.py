"""Flows in Windmill's OpenFlow format: the model, reading and writing flow files, and the
checks a flow passes before it is saved.

- :mod:`~gristmill.flows.model`: the Pydantic models (``OpenFlow``, ``FlowValue``,
  ``FlowModule``, the module values, ``InputTransform``, ``Retry``, ``Suspend``...), which keep
  unknown fields so that a flow exported from Windmill comes back out the same;
  ``load_flow`` / ``load_flow_dir`` (JSON, YAML, the CLI's ``!inline`` files),
  ``dump_flow``; ``iter_modules`` (every module and where it sits).
- :mod:`~gristmill.flows.checks`: ``check_flow`` (duplicate or invalid ids, malformed
  transforms and expressions, missing scripts and flows, cycles of sub-flows, ...).
- :mod:`~gristmill.flows.expressions`: ``Evaluator`` (the JavaScript of input transforms and
  of branch, ``skip_if`` and ``stop_after_if`` expressions, in a fresh QuickJS runtime each
  time, with a time and memory limit and no I/O), ``ExprContext``, ``find_references``.
- :mod:`~gristmill.flows.state`: the engine's decisions as pure functions (``start``,
  ``step_finished`` -> a new ``FlowStatus`` and the actions to apply: run a step, finish the
  flow); deterministic, so a decision replayed after a crash gives the same jobs. Used as
  ``flows.state.start(...)``: its names are not re-exported here.

- :mod:`~gristmill.flows.store`: flows and their versions at paths (the database, through
  the caller's ``Access``).
- :mod:`~gristmill.flows.engine`: running flows, the glue between ``state``'s decisions and
  the queue: a flow job that holds no worker slot, its steps pushed as child jobs, advanced in
  the transaction that records each step (its own module: the rest above is pure).

This package never imports ``gristmill.api`` or ``gristmill.server``.
"""

from __future__ import annotations

from gristmill.flows.checks import check_flow, flow_problems, js_syntax_problem
from gristmill.flows.expressions import (
    NOT_SET,
    Evaluator,
    ExprContext,
    ExpressionError,
    References,
    find_references,
)
from gristmill.flows.model import (
    INLINE_PREFIX,
    BranchAll,
    BranchAllBranch,
    BranchOne,
    BranchOneBranch,
    ConstantDelay,
    ExponentialDelay,
    FlowModule,
    FlowModuleValue,
    FlowValue,
    ForloopFlow,
    Identity,
    InputTransform,
    JavascriptTransform,
    Mock,
    ModulePath,
    OpenFlow,
    PathFlow,
    PathScript,
    RawScript,
    ResumeForm,
    Retry,
    RetryIf,
    SkipIf,
    StaticTransform,
    StopAfterIf,
    Suspend,
    UnsupportedModule,
    WhileloopFlow,
    describe_path,
    dump_flow,
    flow_to_dict,
    iter_modules,
    load_flow,
    load_flow_dir,
    module_at,
    parse_flow,
)

__all__ = [
    "INLINE_PREFIX",
    "NOT_SET",
    "BranchAll",
    "BranchAllBranch",
    "BranchOne",
    "BranchOneBranch",
    "ConstantDelay",
    "Evaluator",
    "ExponentialDelay",
    "ExprContext",
    "ExpressionError",
    "FlowModule",
    "FlowModuleValue",
    "FlowValue",
    "ForloopFlow",
    "Identity",
    "InputTransform",
    "JavascriptTransform",
    "Mock",
    "ModulePath",
    "OpenFlow",
    "PathFlow",
    "PathScript",
    "RawScript",
    "References",
    "ResumeForm",
    "Retry",
    "RetryIf",
    "SkipIf",
    "StaticTransform",
    "StopAfterIf",
    "Suspend",
    "UnsupportedModule",
    "WhileloopFlow",
    "check_flow",
    "describe_path",
    "dump_flow",
    "find_references",
    "flow_problems",
    "flow_to_dict",
    "iter_modules",
    "js_syntax_problem",
    "load_flow",
    "load_flow_dir",
    "module_at",
    "parse_flow",
]
