"""The evaluator of a flow's JavaScript expressions.

OpenFlow puts JavaScript in several places: an input transform ``{"type": "javascript",
"expr": ...}``, a ``branchone`` branch's ``expr``, ``skip_if``, ``stop_after_if``,
``retry_if``. :class:`Evaluator` runs one such expression in QuickJS (the ``quickjs`` wheel),
an embedded engine with no I/O at all: no ``require``, ``fetch``, ``process``, timers or
file system exist in it.

What an expression sees (Windmill's names): ``flow_input`` (with ``flow_input.iter =
{value, index}`` inside a loop), ``results.<step id>``, ``previous_result``, ``params``,
and, when the flow engine sets them, ``resume``, ``resumes`` and ``approvers`` (after a suspend),
``result`` (``stop_after_if``) and ``error`` (``retry_if``; else ``previous_result.error``
when the previous result is an error, as Windmill does). A name the context does not set is
not defined: using it is a ``ReferenceError`` rather than a silent ``undefined``.
``resource('path')`` and ``variable('path')`` are found in the text before evaluation
(their argument must be a string literal), resolved through the context's callbacks and
injected, because the engine cannot call out.

Shape, as Windmill: the text is an expression (``flow_input.x + 1``) or a function body
with ``return`` (``const a = results.a; return a.b``); ``await`` is allowed (Windmill runs
the text in an async function), though nothing here is asynchronous.

Values cross as JSON both ways. Going in, numbers become JavaScript doubles (an integer
beyond 2^53 loses precision, as in Windmill and Node). Coming out, ``JSON.stringify``'s
rules apply: a result of ``undefined`` (or a function or symbol) is ``None``; an
``undefined`` or function member of an object is dropped, of an array is ``None``; ``NaN``
and ``Infinity`` are ``None``; a ``Date`` is its ISO string; a ``BigInt`` comes back as an
exact Python ``int`` (where ``JSON.stringify`` alone would throw).

Every evaluation gets a fresh QuickJS runtime: creating one costs about 0.2 ms (measured:
the report of the flows-expr branch), so a global an expression sets, a prototype it
patches or the state an exceeded limit leaves can never reach the next evaluation; and a
QuickJS runtime must stay on the thread that created it, which a per-call runtime
guarantees when the engine evaluates from worker threads. The call holds the GIL while
JavaScript runs (up to the time limit): async callers run it in a thread.
"""

from __future__ import annotations

import ast
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Final, Literal

import quickjs

from gristmill.errors import BadInput

__all__ = [
    "NOT_SET",
    "Evaluator",
    "ExprContext",
    "ExpressionError",
    "References",
    "find_references",
]


class _NotSet(Enum):
    NOT_SET = "NOT_SET"


#: The value of a context field the flow engine did not set (``None`` is a real JSON
#: ``null``, e.g. the result of a step that returned nothing).
NOT_SET: Final = _NotSet.NOT_SET

ErrorKind = Literal["syntax", "runtime", "timeout", "memory", "reference", "input"]


class ExpressionError(BadInput):
    """An expression could not be evaluated; the message names where and the expression.

    A ``BadInput`` because the fault is the flow's (its text, or what it refers to), which
    the API reports as 400 at save time and the flow engine as the step's error at run time.
    """

    def __init__(self, message: str, *, where: str, expr: str, kind: ErrorKind) -> None:
        super().__init__(message)
        self.where = where
        self.expr = expr
        self.kind: ErrorKind = kind


#: A resource resolver: the resource's value at a path; raises ``LookupError`` (e.g.
#: ``NotFound``) when there is none visible.
ResourceResolver = Callable[[str], Any]
#: A variable resolver: the variable's (decrypted) value at a path; raises ``LookupError``.
VariableResolver = Callable[[str], Any]


@dataclass(frozen=True, slots=True)
class ExprContext:
    """What an expression sees. Fields left :data:`NOT_SET` are not defined in JavaScript."""

    flow_input: Mapping[str, Any] = field(default_factory=dict[str, Any])
    #: Step id → result, for the steps that have run.
    results: Mapping[str, Any] = field(default_factory=dict[str, Any])
    previous_result: Any = NOT_SET
    #: The step's own evaluated inputs (Windmill's ``params``).
    params: Mapping[str, Any] = field(default_factory=dict[str, Any])
    #: Inside a loop: ``{"value": ..., "index": ...}``, seen as ``flow_input.iter``.
    iter: Mapping[str, Any] | None = None
    resume: Any = NOT_SET
    approvers: Any = NOT_SET
    #: After a suspend: every resume payload (``resume`` is the last one).
    resumes: Any = NOT_SET
    #: The step's result, for ``stop_after_if``.
    result: Any = NOT_SET
    #: The step's error, for ``retry_if``.
    error: Any = NOT_SET
    resource: ResourceResolver | None = None
    variable: VariableResolver | None = None


@dataclass(frozen=True, slots=True)
class References:
    """The literal paths of an expression's ``resource(...)`` and ``variable(...)`` calls."""

    resources: tuple[str, ...]
    variables: tuple[str, ...]


DEFAULT_TIME_LIMIT_S: Final = 1.0
#: Counts the expression's inputs too (the results it reads are parsed inside the engine).
DEFAULT_MEMORY_LIMIT_BYTES: Final = 128 * 1024 * 1024
#: The expression as quoted in messages is cut after this many characters.
_QUOTED_MAX: Final = 200

# Strings and comments are consumed first, so that a call inside them is not a call; a
# template literal is not consumed, because `${variable('x')}` inside one is a real call.
_CALL_SCAN = re.compile(
    r"""'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*"|//[^\n]*|/\*.*?\*/"""
    r"""|(?<![\w$.])(resource|variable)\s*\(""",
    re.DOTALL,
)
_LITERAL_ARG = re.compile(
    r"""\s*('(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*"|`[^`\\$]*`)\s*\)""",
)
_RETURN = re.compile(r"(?<![\w$.])return(?![\w$])")
_AWAIT = re.compile(r"(?<![\w$.])await(?![\w$])")
# `results.a`, `results?.a`, `results["a"]`, `results['a']`: a static step reference.
_STATIC_RESULT = re.compile(
    r"""(?<![\w$.])results\s*(?:\?\.\s*|\.\s*)(?:([A-Za-z_$][\w$]*)|\[\s*(?:"([^"\\]*)"|'([^'\\]*)')\s*\])"""
    r"""|(?<![\w$.])results\s*\[\s*(?:"([^"\\]*)"|'([^'\\]*)')\s*\]"""
)
_ANY_RESULTS = re.compile(r"(?<![\w$.])results(?![\w$])")
# A plain path into the context, answered without the engine when every step exists.
_SIMPLE_PATH = re.compile(
    r"""(flow_input|results|previous_result|params)((?:\??\.[A-Za-z_$][\w$]*|\[\d+\]|\["[^"\\]*"\])*)"""
)
_SEGMENT = re.compile(r"""\??\.([A-Za-z_$][\w$]*)|\[(\d+)\]|\["([^"\\]*)"\]""")
_BIGINT_TAG: Final = "\u0000gristmill-bigint:"
# The tag as it appears inside the JSON text (the NUL escaped).
_BIGINT_TAG_JSON: Final = json.dumps(_BIGINT_TAG)[1:-1]
# Windmill's names, in the order the compiled function takes them.
_NAMES: Final = (
    "flow_input",
    "results",
    "previous_result",
    "params",
    "resume",
    "approvers",
    "resumes",
    "result",
    "error",
)

# Runs in the fresh runtime before the expression: builds `results` (a step that has not
# run is an error naming it, not Windmill's silent null), `resource`, `variable`, and the
# encoder of the answer. `__g` is what Python hands in, as one JSON text.
_PRELUDE = r"""
"use strict";
const __g = JSON.parse(__G_JSON);
const __steps = __g.results;
globalThis.results = new Proxy(__steps, {
  get(target, key) {
    if (typeof key !== "string" || Object.prototype.hasOwnProperty.call(target, key)
        || key in Object.prototype) {
      return target[key];
    }
    if (key === "toJSON" || key === "then") return undefined;
    throw new ReferenceError(`results.${key}: step "${key}" has not run (or does not exist)`);
  },
});
globalThis.resource = function resource(path) {
  if (Object.prototype.hasOwnProperty.call(__g.res, path)) return __g.res[path];
  throw new Error(`resource("${path}") was not resolved before the evaluation`);
};
globalThis.variable = function variable(path) {
  if (Object.prototype.hasOwnProperty.call(__g.vars, path)) return __g.vars[path];
  throw new Error(`variable("${path}") was not resolved before the evaluation`);
};
globalThis.__encode = function (value) {
  const text = JSON.stringify(value ?? null, (k, v) =>
    typeof v === "bigint" ? __BIGINT_TAG + v.toString() : v);
  return text === undefined ? "null" : text;
};
"""


def _quote(expr: str) -> str:
    one_line = " ".join(expr.split())
    return one_line if len(one_line) <= _QUOTED_MAX else one_line[:_QUOTED_MAX] + "…"


def _prefix(where: str, expr: str) -> str:
    return f'{where}: javascript expression "{_quote(expr)}"'


def find_references(expr: str, *, where: str) -> References:
    """The paths of ``resource('p')`` / ``variable('p')`` calls in ``expr``, in order.

    The flow engine may call this to fetch the values before evaluating. A call whose
    argument is not a string literal cannot be resolved ahead, so it is an error.
    """
    resources: list[str] = []
    variables: list[str] = []
    for match in _CALL_SCAN.finditer(expr):
        name = match.group(1)
        if name is None:
            continue
        arg = _LITERAL_ARG.match(expr, match.end())
        if arg is None:
            raise ExpressionError(
                f"{_prefix(where, expr)}: {name}() takes a string literal path "
                f"(e.g. {name}('f/folder/x')), so that it is resolved before the evaluation",
                where=where,
                expr=expr,
                kind="reference",
            )
        literal = arg.group(1)
        path = literal[1:-1] if literal.startswith("`") else str(ast.literal_eval(literal))
        target = resources if name == "resource" else variables
        if path not in target:
            target.append(path)
    return References(tuple(resources), tuple(variables))


def _resolve(
    paths: tuple[str, ...],
    resolver: Callable[[str], Any] | None,
    kind: str,
    where: str,
    expr: str,
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for path in paths:
        if resolver is None:
            raise ExpressionError(
                f"{_prefix(where, expr)}: {kind}('{path}') cannot be resolved here",
                where=where,
                expr=expr,
                kind="reference",
            )
        try:
            values[path] = resolver(path)
        except LookupError:
            raise ExpressionError(
                f"{_prefix(where, expr)}: {kind} '{path}' not found",
                where=where,
                expr=expr,
                kind="reference",
            ) from None
    return values


def _referenced_steps(expr: str, results: Mapping[str, Any]) -> Mapping[str, Any]:
    """The results the expression can read: only the steps it names when every use of
    ``results`` is a static ``results.<id>`` (most transforms), so that a flow with large
    results does not copy them all into the engine for each input; else all."""
    static = {next(g for g in m.groups() if g is not None) for m in _STATIC_RESULT.finditer(expr)}
    if len(_ANY_RESULTS.findall(expr)) != len(_STATIC_RESULT.findall(expr)):
        return results
    return {k: results[k] for k in static if k in results}


def _error_value(context: ExprContext) -> Any:
    if context.error is not NOT_SET:
        return context.error
    previous = context.previous_result
    if isinstance(previous, dict) and "error" in previous:
        return previous["error"]  # pyright: ignore[reportUnknownVariableType]
    return NOT_SET


#: What the fast path answers when it cannot (the engine then does).
_MISS: Final = object()


def _fast_path(expr: str, context: ExprContext) -> Any:
    """Answers a plain path such as ``flow_input.x`` or ``results.a.b[0]`` without the
    engine, when every step of it exists (else the engine answers, with its own
    semantics and errors). Windmill takes the same shortcut."""
    match = _SIMPLE_PATH.fullmatch(expr)
    if match is None:
        return _MISS
    root, rest = match.group(1), match.group(2)
    value: Any
    if root == "flow_input":
        value = _flow_input(context)
    elif root == "results":
        if not rest:
            return _MISS
        value = context.results
    elif root == "params":
        value = context.params
    else:
        if context.previous_result is NOT_SET:
            return _MISS
        value = context.previous_result
    for segment in _SEGMENT.finditer(rest):
        key, index, quoted = segment.groups()
        if index is not None and isinstance(value, list):
            items: list[Any] = value  # pyright: ignore[reportUnknownVariableType]
            position = int(index)
            if position >= len(items):
                return _MISS
            value = items[position]
            continue
        name = key if key is not None else quoted if quoted is not None else index
        if not isinstance(value, Mapping) or name not in value:
            return _MISS
        value = value[name]  # pyright: ignore[reportUnknownVariableType]
    # A float the engine would turn to null, or an int it would round: let it answer.
    if isinstance(value, float | int | dict | list) and not isinstance(value, bool):
        if isinstance(value, float) and value != value:
            return _MISS
        if isinstance(value, int) and abs(value) > 2**53:
            return _MISS
    return value  # pyright: ignore[reportUnknownVariableType]


def _flow_input(context: ExprContext) -> Mapping[str, Any]:
    if context.iter is None:
        return context.flow_input
    return {**context.flow_input, "iter": dict(context.iter)}


def _restore_bigints(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_BIGINT_TAG):
        return int(value[len(_BIGINT_TAG) :])
    if isinstance(value, list):
        return [_restore_bigints(v) for v in value]  # pyright: ignore[reportUnknownVariableType]
    if isinstance(value, dict):
        return {k: _restore_bigints(v) for k, v in value.items()}  # pyright: ignore[reportUnknownVariableType]
    return value


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class Evaluator:
    """Evaluates flow expressions, each in a fresh, limited QuickJS runtime.

    One per flow engine process (it holds only its limits). Thread-safe: each call owns its
    runtime from creation to disposal.
    """

    def __init__(
        self,
        *,
        time_limit_s: float = DEFAULT_TIME_LIMIT_S,
        memory_limit_bytes: int = DEFAULT_MEMORY_LIMIT_BYTES,
    ) -> None:
        self.time_limit_s = time_limit_s
        self.memory_limit_bytes = memory_limit_bytes

    def evaluate(self, expr: str, context: ExprContext, *, where: str) -> Any:
        """The JSON value of ``expr`` in ``context``; ``where`` names it in errors (e.g.
        ``step "b" input "x"``). Raises :class:`ExpressionError`."""
        text = expr.strip()
        fast = _fast_path(text, context)
        if fast is not _MISS:
            return fast
        refs = find_references(text, where=where)
        resources = _resolve(refs.resources, context.resource, "resource", where, expr)
        variables = _resolve(refs.variables, context.variable, "variable", where, expr)
        names: list[str] = []
        values: list[Any] = []
        for name in _NAMES:
            if name == "results":
                continue  # a global Proxy built by the prelude
            value: Any = {
                "flow_input": _flow_input(context),
                "previous_result": context.previous_result,
                "params": context.params,
                "resume": context.resume,
                "approvers": context.approvers,
                "resumes": context.resumes,
                "result": context.result,
                "error": _error_value(context),
            }[name]
            if value is not NOT_SET:
                names.append(name)
                values.append(value)
        try:
            given = json.dumps(
                {
                    "args": values,
                    "results": _referenced_steps(text, context.results),
                    "res": resources,
                    "vars": variables,
                },
                allow_nan=False,
            )
        except (TypeError, ValueError) as exc:
            raise ExpressionError(
                f"{_prefix(where, expr)}: its context is not JSON ({exc})",
                where=where,
                expr=expr,
                kind="input",
            ) from None
        return self._run(text, names, given, where=where, expr=expr)

    def _run(self, text: str, names: list[str], given: str, *, where: str, expr: str) -> Any:
        ctx = quickjs.Context()
        ctx.set_memory_limit(self.memory_limit_bytes)
        ctx.set_time_limit(self.time_limit_s)
        deadline = time.monotonic() + self.time_limit_s
        is_async = _AWAIT.search(text) is not None
        constructor = "(async function () {}).constructor" if is_async else "Function"
        params = ", ".join(json.dumps(n) for n in names)
        stage = "syntax"
        try:
            ctx.eval(
                f"const __G_JSON = {json.dumps(given)};\n"
                f"const __BIGINT_TAG = {json.dumps(_BIGINT_TAG)};\n" + _PRELUDE
            )
            # An expression first, else a function body (Windmill makes a body of any text
            # containing "return ", which misreads `'no return here'.length`). When neither
            # compiles, the error reported is the body's if the text has `return`.
            errors: list[Exception] = []
            for body in (f"return (\n{text}\n);", text):
                try:
                    ctx.eval(
                        f"globalThis.__f = new ({constructor})({params}"
                        f"{', ' if params else ''}{json.dumps(body)});"
                    )
                    break
                except quickjs.JSException as exc:
                    errors.append(exc)
            else:
                raise errors[1] if _RETURN.search(text) else errors[0]
            stage = "runtime"
            call = "__f.apply(null, __g.args)"
            if not is_async:
                encoded = ctx.eval(f"__encode({call})")
            else:
                ctx.eval(
                    "globalThis.__done = false; globalThis.__err = undefined;"
                    f"{call}.then(v => {{ globalThis.__out = __encode(v); __done = true; }},"
                    " e => { globalThis.__err = e; __done = true; });"
                )
                # Each job gets the runtime's limit afresh: the deadline bounds the sum.
                while ctx.execute_pending_job():
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise quickjs.JSException("InternalError: interrupted")
                    ctx.set_time_limit(remaining)
                if not ctx.eval("__done"):
                    raise quickjs.JSException(
                        "Error: the expression awaits a promise that never settles"
                    )
                encoded = ctx.eval("if (__err !== undefined) throw __err; __out")
        except quickjs.JSException as exc:
            raise self._error(exc, stage, where, expr) from None
        finally:
            del ctx
        value = json.loads(encoded)
        if _BIGINT_TAG_JSON in encoded:
            value = _restore_bigints(value)
        return value

    def _error(self, exc: Exception, stage: str, where: str, expr: str) -> ExpressionError:
        message = _first_line(exc)
        prefix = _prefix(where, expr)
        if "interrupted" in message and message.startswith("InternalError"):
            return ExpressionError(
                f"{prefix} took longer than its time limit of {self.time_limit_s:g} s",
                where=where,
                expr=expr,
                kind="timeout",
            )
        if "out of memory" in message:
            return ExpressionError(
                f"{prefix} exceeded its memory limit of "
                f"{self.memory_limit_bytes // (1024 * 1024)} MB (its inputs count too)",
                where=where,
                expr=expr,
                kind="memory",
            )
        kind: ErrorKind = "syntax" if stage == "syntax" else "runtime"
        return ExpressionError(f"{prefix} failed: {message}", where=where, expr=expr, kind=kind)
