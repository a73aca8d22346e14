"""Static checks of a flow at save time, before any step runs.

:func:`flow_problems` lists every problem found, each naming the module and the field
(``module "b" (forloopflow) iterator: ...``); :func:`check_flow` raises them as one
:class:`~gristmill.errors.BadInput`. What needs the platform (does a script exist? what does a
sub-flow contain?) comes through callbacks, so this module stays pure.

JavaScript is not evaluated here (the evaluator is another module's): an expression is only
checked to be non-empty with balanced brackets and closed strings, comments and template
literals, which catches the typing slips a form produces without a JS parser. Anything subtler
fails when the step runs, with the step and the expression named.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterator
from typing import Any, Literal

from gristmill.errors import BadInput
from gristmill.flows.model import (
    BranchOne,
    FlowModule,
    ForloopFlow,
    InputTransform,
    JavascriptTransform,
    ModulePath,
    OpenFlow,
    PathFlow,
    PathScript,
    RawScript,
    StaticTransform,
    UnsupportedModule,
    WhileloopFlow,
    describe_path,
    iter_modules,
)

__all__ = ["check_flow", "flow_problems", "js_syntax_problem"]

# Ids are read as ``results.<id>`` in expressions: identifier-like, as the Windmill editor
# makes them (a, b, ..., failure, preprocessor).
_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# A script version's hash as Windmill writes it (gristmill.scripts.hashes.format_hash).
_HASH = re.compile(r"^[0-9a-fA-F]{16}$")


def check_flow(
    flow: OpenFlow,
    *,
    script_exists: Callable[[str], bool] | None = None,
    flow_exists: Callable[[str], bool] | None = None,
    get_flow: Callable[[str], OpenFlow | None] | None = None,
    flow_path: str | None = None,
    known_languages: Collection[str] | None = None,
    hash_exists: Callable[[str], bool] | None = None,
) -> None:
    """Raise :class:`BadInput` listing every problem of ``flow`` (see :func:`flow_problems`)."""
    problems = flow_problems(
        flow,
        script_exists=script_exists,
        flow_exists=flow_exists,
        get_flow=get_flow,
        flow_path=flow_path,
        known_languages=known_languages,
        hash_exists=hash_exists,
    )
    if problems:
        raise BadInput("; ".join(problems))


def flow_problems(
    flow: OpenFlow,
    *,
    script_exists: Callable[[str], bool] | None = None,
    flow_exists: Callable[[str], bool] | None = None,
    get_flow: Callable[[str], OpenFlow | None] | None = None,
    flow_path: str | None = None,
    known_languages: Collection[str] | None = None,
    hash_exists: Callable[[str], bool] | None = None,
) -> list[str]:
    """Every problem of the flow, in module order.

    ``script_exists(path)`` and ``flow_exists(path)`` say whether a ``script`` or ``flow``
    module's target exists; ``get_flow(path)`` returns a saved flow (or ``None``) so that
    cycles of sub-flows are found; ``flow_path`` is where this flow is saved (a sub-flow
    naming it is a cycle); ``known_languages`` are the installed runtimes of ``rawscript``;
    ``hash_exists(hash)`` says whether a ``script`` module's pinned version exists (a module
    with a ``hash`` runs that version, so its path is not looked up). Each is skipped when
    not given.
    """
    problems: list[str] = []
    seen: dict[str, ModulePath] = {}
    for module, path in iter_modules(flow):
        label = _label(module)
        problems += _id_problems(module, path, label, seen)
        problems += _module_problems(module, label, known_languages)
        problems += _target_problems(
            module, label, script_exists, flow_exists, get_flow, flow_path, hash_exists
        )
    value = flow.value
    if value.skip_expr is not None:
        problems += [f"flow skip_expr: {p}" for p in _expr_problems(value.skip_expr)]
    top = {m.id for m in value.modules}
    if value.early_return is not None and value.early_return not in top:
        problems.append(
            f'flow early_return: "{value.early_return}" is not a step at the top level of the flow'
        )
    return problems


def _label(module: FlowModule) -> str:
    return f'module "{module.id}" ({module.value.type})'


def _id_problems(
    module: FlowModule, path: ModulePath, label: str, seen: dict[str, ModulePath]
) -> list[str]:
    where = describe_path(path)
    if not module.id:
        return [f"{label} id: a step needs an id (the step at {where} has none)"]
    problems: list[str] = []
    if not _ID.match(module.id):
        problems.append(
            f"{label} id: must start with a letter or _ and hold only letters, digits and _ "
            f"(expressions read it as results.<id>)"
        )
    if module.id in seen:
        problems.append(
            f"{label} id: duplicate: the step at {describe_path(seen[module.id])} has the "
            f"same id as the one at {where}"
        )
    else:
        seen[module.id] = path
    return problems


def _module_problems(
    module: FlowModule, label: str, known_languages: Collection[str] | None
) -> list[str]:
    problems: list[str] = []
    for field, transform in _transforms(module):
        problems += [f"{label} {field}: {p}" for p in _transform_problems(transform)]
    for field, expr in _expressions(module):
        problems += [f"{label} {field}: {p}" for p in _expr_problems(expr)]
    inner = module.value
    if isinstance(inner, UnsupportedModule):
        problems.append(f"{label} type: Gristmill does not run {inner.type} modules")
    if (
        isinstance(inner, RawScript)
        and known_languages is not None
        and inner.language not in known_languages
    ):
        installed = ", ".join(sorted(known_languages)) or "none"
        problems.append(
            f'{label} language: "{inner.language}" is not an installed language '
            f"(installed: {installed})"
        )
    if isinstance(inner, ForloopFlow | WhileloopFlow):
        if inner.parallelism is not None and not inner.parallel:
            problems.append(f"{label} parallelism: is set but parallel is not")
        if isinstance(inner.parallelism, StaticTransform):
            limit = inner.parallelism.value
            if limit is not None and (
                isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
            ):
                problems.append(f"{label} parallelism: must be a positive integer, not {limit!r}")
    if (
        isinstance(inner, ForloopFlow)
        and isinstance(inner.iterator, StaticTransform)
        and not isinstance(inner.iterator.value, list)
    ):
        problems.append(
            f"{label} iterator: a static iterator must be a list, not {_kind(inner.iterator.value)}"
        )
    return problems


def _target_problems(
    module: FlowModule,
    label: str,
    script_exists: Callable[[str], bool] | None,
    flow_exists: Callable[[str], bool] | None,
    get_flow: Callable[[str], OpenFlow | None] | None,
    flow_path: str | None,
    hash_exists: Callable[[str], bool] | None = None,
) -> list[str]:
    inner = module.value
    if isinstance(inner, PathScript):
        if not inner.path:
            return [f"{label} path: a script module needs the path of a script"]
        if inner.hash is not None:
            if not _HASH.match(inner.hash):
                return [f"{label} hash: {inner.hash!r} is not a script hash (16 hex digits)"]
            if hash_exists is not None and not hash_exists(inner.hash):
                return [
                    f'{label} hash: no version {inner.hash} of a script (path "{inner.path}") '
                    "in this workspace"
                ]
            return []
        if script_exists is not None and not script_exists(inner.path):
            return [f'{label} path: no script at "{inner.path}"']
    if isinstance(inner, PathFlow):
        if not inner.path:
            return [f"{label} path: a flow module needs the path of a flow"]
        if inner.path == flow_path:
            return [f'{label} path: the flow "{inner.path}" runs itself as a sub-flow']
        if flow_exists is not None and not flow_exists(inner.path):
            return [f'{label} path: no flow at "{inner.path}"']
        if get_flow is not None:
            start = [flow_path] if flow_path else []
            cycle = _find_cycle(inner.path, [*start, inner.path], get_flow, set())
            if cycle is False:
                return [f'{label} path: no flow at "{inner.path}"']
            if cycle:
                return [f"{label} path: sub-flows form a cycle: {' -> '.join(cycle)}"]
    return []


def _find_cycle(
    path: str,
    chain: list[str],
    get_flow: Callable[[str], OpenFlow | None],
    done: set[str],
) -> list[str] | Literal[False] | None:
    """The chain of sub-flow paths that comes back to one already in ``chain``; ``False``
    when ``path`` itself does not exist; ``None`` when there is no cycle."""
    flow = get_flow(path)
    if flow is None:
        return False
    for module, _ in iter_modules(flow):
        inner = module.value
        if not isinstance(inner, PathFlow):
            continue
        if inner.path in chain:
            return [*chain, inner.path]
        if inner.path in done:
            continue
        found = _find_cycle(inner.path, [*chain, inner.path], get_flow, done)
        if isinstance(found, list):
            return found
    done.add(path)
    return None


def _transforms(module: FlowModule) -> Iterator[tuple[str, InputTransform]]:
    inner = module.value
    transforms = getattr(inner, "input_transforms", None)
    if isinstance(inner, RawScript | PathScript | PathFlow) and transforms:
        for name, transform in transforms.items():
            yield f"input_transforms.{name}", transform
    if isinstance(inner, ForloopFlow):
        yield "iterator", inner.iterator
    if isinstance(inner, ForloopFlow | WhileloopFlow) and inner.parallelism is not None:
        yield "parallelism", inner.parallelism
    for field in ("sleep", "timeout"):
        value = getattr(module, field)
        if isinstance(value, StaticTransform | JavascriptTransform):
            yield field, value
    if module.suspend is not None and module.suspend.user_groups_required is not None:
        yield "suspend.user_groups_required", module.suspend.user_groups_required


def _expressions(module: FlowModule) -> Iterator[tuple[str, str]]:
    for field in ("stop_after_if", "stop_after_all_iters_if", "skip_if"):
        condition = getattr(module, field)
        if condition is not None:
            yield f"{field}.expr", condition.expr
    if module.retry is not None and module.retry.retry_if is not None:
        yield "retry.retry_if.expr", module.retry.retry_if.expr
    inner = module.value
    if isinstance(inner, BranchOne):
        for index, branch in enumerate(inner.branches):
            yield f"branches[{index}].expr", branch.expr


def _transform_problems(transform: InputTransform) -> list[str]:
    if isinstance(transform, JavascriptTransform):
        return _expr_problems(transform.expr)
    return []  # a static transform without a value is Windmill's null


def _expr_problems(expr: str) -> list[str]:
    if not expr.strip():
        return ["the JavaScript expression is empty"]
    problem = js_syntax_problem(expr)
    return [f"{problem} in {expr!r}"] if problem else []


_CLOSERS = {")": "(", "]": "[", "}": "{"}
# After these words a ``/`` starts a regular expression, not a division.
_REGEX_AFTER_WORDS = frozenset(
    {"return", "typeof", "case", "in", "of", "delete", "void", "throw", "new", "instanceof"}
    | {"else", "do", "yield", "await"}
)


def js_syntax_problem(expr: str) -> str | None:
    """A light syntax check of a JavaScript expression: brackets balanced, strings,
    template literals, comments and regular expressions closed. ``None`` when it passes.

    Not a parser: it accepts some invalid code (``a +``) but never refuses valid code it
    can tokenize, which is what matters for flows that run unchanged from Windmill.
    """
    stack: list[tuple[str, int]] = []  # open brackets; "`" marks a template literal's ${
    i, n = 0, len(expr)
    last = ""  # the last significant token's kind: "value" (a / divides) or "op"
    while i < n:
        c = expr[i]
        if c in " \t\r\n":
            i += 1
            continue
        if expr.startswith("//", i):
            end = expr.find("\n", i)
            i = n if end < 0 else end
            continue
        if expr.startswith("/*", i):
            end = expr.find("*/", i + 2)
            if end < 0:
                return f"unclosed comment at {i}"
            i = end + 2
            continue
        if c in "'\"":
            end = _string_end(expr, i, c)
            if end < 0:
                return f"unclosed string at {i}"
            i, last = end, "value"
            continue
        if c == "`" or (c == "}" and stack and stack[-1][0] == "`"):
            if c == "}":
                stack.pop()
            end = _template_part_end(expr, i + 1)
            if end < 0:
                return f"unclosed template literal at {i}"
            if expr[end] == "$":  # "${": an expression inside, up to the matching }
                stack.append(("`", i))
                i = end + 2
                last = "op"
            else:
                i, last = end + 1, "value"
            continue
        if c == "/" and last != "value":
            end = _regex_end(expr, i)
            if end < 0:
                return f"unclosed regular expression at {i}"
            i, last = end, "value"
            continue
        if c in "([{":
            stack.append((c, i))
            i, last = i + 1, "op"
            continue
        if c in ")]}":
            if not stack or stack[-1][0] != _CLOSERS[c]:
                return f"unbalanced {c!r} at {i}"
            stack.pop()
            i, last = i + 1, "value"
            continue
        word = re.match(r"[A-Za-z0-9_$\u0080-\uffff.]+", expr[i:])
        if word:
            text = word.group(0)
            i += len(text)
            last = "op" if text in _REGEX_AFTER_WORDS else "value"
            continue
        i, last = i + 1, "op"
    if stack:
        opener, at = stack[-1]
        return (
            f"unclosed template literal at {at}"
            if opener == "`"
            else f"unclosed {opener!r} at {at}"
        )
    return None


def _string_end(expr: str, start: int, quote: str) -> int:
    i = start + 1
    while i < len(expr):
        if expr[i] == "\\":
            i += 2
            continue
        if expr[i] == quote:
            return i + 1
        if expr[i] == "\n":
            return -1
        i += 1
    return -1


def _template_part_end(expr: str, i: int) -> int:
    """Index of the closing backquote or of the ``$`` of ``${``, or -1."""
    while i < len(expr):
        if expr[i] == "\\":
            i += 2
            continue
        if expr[i] == "`" or expr.startswith("${", i):
            return i
        i += 1
    return -1


def _regex_end(expr: str, start: int) -> int:
    i, in_class = start + 1, False
    while i < len(expr):
        c = expr[i]
        if c == "\\":
            i += 2
            continue
        if c == "\n":
            return -1
        if c == "[":
            in_class = True
        elif c == "]":
            in_class = False
        elif c == "/" and not in_class:
            i += 1
            while i < len(expr) and (expr[i].isalnum() or expr[i] == "_"):
                i += 1  # flags
            return i
        i += 1
    return -1


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
