"""The save-time checks of a flow: each problem with its exact message."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from gristmill.errors import BadInput
from gristmill.flows import OpenFlow, check_flow, flow_problems, js_syntax_problem, parse_flow

FLOWS = Path(__file__).parent / "windmill"


def _flow(*modules: dict[str, Any], **value: Any) -> OpenFlow:
    return parse_flow({"summary": "", "value": {"modules": list(modules), **value}})


def _script(id: str, path: str = "f/lib/x", **transforms: Any) -> dict[str, Any]:
    return {
        "id": id,
        "value": {"type": "script", "path": path, "input_transforms": transforms},
    }


def _raw(id: str, language: str = "python3", **module: Any) -> dict[str, Any]:
    value = {"type": "rawscript", "language": language, "content": "def main(): pass"}
    return {"id": id, "value": {**value, "input_transforms": {}}, **module}


def _loop(id: str, *modules: dict[str, Any], **value: Any) -> dict[str, Any]:
    value.setdefault("iterator", {"type": "javascript", "expr": "[1, 2]"})
    return {
        "id": id,
        "value": {"type": "forloopflow", "modules": list(modules), "skip_failures": False, **value},
    }


def _js(expr: str) -> dict[str, str]:
    return {"type": "javascript", "expr": expr}


@pytest.mark.parametrize("name", ["approval.json", "branches.json", "while_loop.json"])
def test_the_example_flows_pass(name: str) -> None:
    flow = parse_flow(json.loads((FLOWS / name).read_text()))
    check_flow(
        flow,
        script_exists=lambda path: True,
        flow_exists=lambda path: True,
        flow_path="f/examples/this",
        known_languages={"python3", "bun", "deno", "bash"},
    )


def test_check_flow_raises_every_problem_in_one_message() -> None:
    flow = _flow(_raw("a"), _raw("a"), _script("b", x=_js("")))
    with pytest.raises(BadInput) as caught:
        check_flow(flow)
    assert str(caught.value) == (
        'module "a" (rawscript) id: duplicate: the step at modules[0] has the same id as the '
        'one at modules[1]; module "b" (script) input_transforms.x: the JavaScript expression '
        "is empty"
    )


# --- Ids ---------------------------------------------------------------------------------


def test_duplicate_ids_anywhere_in_the_tree() -> None:
    flow = _flow(
        _raw("a"),
        _loop("b", _raw("c"), _loop("d", _raw("a"))),
        failure_module=_raw("c"),
        preprocessor_module=_raw("d"),
    )
    assert flow_problems(flow) == [
        'module "d" (forloopflow) id: duplicate: the step at preprocessor_module has the same '
        "id as the one at modules[1].value.modules[1]",
        'module "a" (rawscript) id: duplicate: the step at modules[0] has the same id as the '
        "one at modules[1].value.modules[1].value.modules[0]",
        'module "c" (rawscript) id: duplicate: the step at modules[1].value.modules[0] has the '
        "same id as the one at failure_module",
    ]


def test_duplicate_ids_across_branches() -> None:
    flow = _flow(
        {
            "id": "b",
            "value": {
                "type": "branchone",
                "branches": [{"expr": "true", "modules": [_raw("x")]}],
                "default": [_raw("x")],
            },
        },
        {"id": "c", "value": {"type": "branchall", "branches": [{"modules": [_raw("b")]}]}},
    )
    assert flow_problems(flow) == [
        'module "x" (rawscript) id: duplicate: the step at '
        "modules[0].value.branches[0].modules[0] has the same id as the one at "
        "modules[0].value.default[0]",
        'module "b" (rawscript) id: duplicate: the step at modules[0] has the same id as the '
        "one at modules[1].value.branches[0].modules[0]",
    ]


@pytest.mark.parametrize("bad", ["a-b", "1a", "a b", "résultat", "a.b"])
def test_ids_must_be_identifiers(bad: str) -> None:
    assert flow_problems(_flow(_raw(bad))) == [
        f'module "{bad}" (rawscript) id: must start with a letter or _ and hold only letters, '
        "digits and _ (expressions read it as results.<id>)"
    ]


@pytest.mark.parametrize("good", ["a", "step_2", "_x", "Failure", "preprocessor"])
def test_identifier_ids_pass(good: str) -> None:
    assert flow_problems(_flow(_raw(good))) == []


def test_an_empty_id_is_refused_with_where_the_step_is() -> None:
    assert flow_problems(_flow(_raw("a"), _loop("b", _raw("")))) == [
        'module "" (rawscript) id: a step needs an id (the step at modules[1].value.modules[0] '
        "has none)"
    ]


# --- Transforms and expressions -----------------------------------------------------------


def test_a_javascript_transform_with_an_empty_expr() -> None:
    assert flow_problems(_flow(_script("a", x=_js("  ")))) == [
        'module "a" (script) input_transforms.x: the JavaScript expression is empty'
    ]


def test_a_static_transform_without_value_is_allowed() -> None:
    assert flow_problems(_flow(_script("a", x={"type": "static"}))) == []


def test_missing_input_transforms_are_allowed_as_windmill_does() -> None:
    flow = _flow({"id": "a", "value": {"type": "script", "path": "f/x"}})
    assert flow_problems(flow) == []


def test_javascript_that_does_not_scan_is_refused() -> None:
    flow = _flow(
        _script("a", x=_js("results.b[0"), y=_js("'abc")),
        _raw("b", skip_if={"expr": "flow_input.x)"}),
        _raw("c", stop_after_if={"expr": "`${result"}),
        _raw("d", retry={"retry_if": {"expr": "/* x"}}),
        {**_loop("e"), "stop_after_all_iters_if": {"expr": "(("}},
        skip_expr="{",
    )
    assert flow_problems(flow) == [
        "module \"a\" (script) input_transforms.x: unclosed '[' at 9 in 'results.b[0'",
        'module "a" (script) input_transforms.y: unclosed string at 0 in "\'abc"',
        "module \"b\" (rawscript) skip_if.expr: unbalanced ')' at 12 in 'flow_input.x)'",
        'module "c" (rawscript) stop_after_if.expr: unclosed template literal at 0 in '
        "'`${result'",
        "module \"d\" (rawscript) retry.retry_if.expr: unclosed comment at 0 in '/* x'",
        "module \"e\" (forloopflow) stop_after_all_iters_if.expr: unclosed '(' at 1 in '(('",
        "flow skip_expr: unclosed '{' at 0 in '{'",
    ]


def test_branch_expressions_sleep_timeout_and_suspend_groups_are_checked() -> None:
    flow = _flow(
        {
            "id": "a",
            "value": {
                "type": "branchone",
                "branches": [{"expr": "", "modules": []}, {"expr": "x ]", "modules": []}],
                "default": [],
            },
            "sleep": _js(""),
            "timeout": _js("("),
            "suspend": {"required_events": 1, "user_groups_required": _js("")},
        },
    )
    assert flow_problems(flow) == [
        'module "a" (branchone) sleep: the JavaScript expression is empty',
        "module \"a\" (branchone) timeout: unclosed '(' at 0 in '('",
        'module "a" (branchone) suspend.user_groups_required: the JavaScript expression is empty',
        'module "a" (branchone) branches[0].expr: the JavaScript expression is empty',
        "module \"a\" (branchone) branches[1].expr: unbalanced ']' at 2 in 'x ]'",
    ]


@pytest.mark.parametrize(
    "expr",
    [
        "flow_input.n",
        "results.a.country === 'FR' && /^75/.test(results.a.zip)",
        "`Order ${results.a.id}: ${ {a: 1}.a }`",
        'x.replace(/"/g, "")',
        "a / b / c",
        "// a comment\nx",
        "x /* ( */ + 1",
        'resume["comment"]',
        "'it\\'s'",
        "return /[)]/.test(x)",
        "{ a: [1, (2)] }",
    ],
)
def test_valid_javascript_passes_the_light_check(expr: str) -> None:
    assert js_syntax_problem(expr) is None


# --- Scripts, flows and cycles --------------------------------------------------------------


def test_a_script_module_whose_script_does_not_exist() -> None:
    flow = _flow(_script("a", "f/lib/here"), _script("b", "f/lib/gone"))
    assert flow_problems(flow, script_exists=lambda path: path == "f/lib/here") == [
        'module "b" (script) path: no script at "f/lib/gone"'
    ]
    # Without the callback nothing is looked up.
    assert flow_problems(flow) == []


def test_a_script_module_pinned_to_a_hash() -> None:
    pinned = {"id": "a", "value": {"type": "script", "path": "f/lib/x", "hash": "00ff00ff00ff00ff"}}
    malformed = {"id": "b", "value": {"type": "script", "path": "f/lib/x", "hash": "xyz"}}
    flow = _flow(pinned, malformed)
    # The pinned version is looked up, not the path.
    assert flow_problems(
        flow, script_exists=lambda path: False, hash_exists=lambda h: h == "00ff00ff00ff00ff"
    ) == ["module \"b\" (script) hash: 'xyz' is not a script hash (16 hex digits)"]
    assert flow_problems(_flow(pinned), hash_exists=lambda h: False) == [
        'module "a" (script) hash: no version 00ff00ff00ff00ff of a script (path "f/lib/x") '
        "in this workspace"
    ]


def test_a_script_or_flow_module_without_path() -> None:
    flow = _flow(
        {"id": "a", "value": {"type": "script", "path": ""}},
        {"id": "b", "value": {"type": "flow", "path": ""}},
    )
    assert flow_problems(flow) == [
        'module "a" (script) path: a script module needs the path of a script',
        'module "b" (flow) path: a flow module needs the path of a flow',
    ]


def _sub(id: str, path: str) -> dict[str, Any]:
    return {"id": id, "value": {"type": "flow", "path": path, "input_transforms": {}}}


def test_a_flow_module_naming_its_own_flow() -> None:
    flow = _flow(_loop("a", _sub("b", "f/me")))
    assert flow_problems(flow, flow_path="f/me") == [
        'module "b" (flow) path: the flow "f/me" runs itself as a sub-flow'
    ]


def test_a_flow_module_whose_flow_does_not_exist() -> None:
    flow = _flow(_sub("a", "f/gone"))
    assert flow_problems(flow, flow_exists=lambda path: False) == [
        'module "a" (flow) path: no flow at "f/gone"'
    ]
    assert flow_problems(flow, get_flow=lambda path: None) == [
        'module "a" (flow) path: no flow at "f/gone"'
    ]


def test_a_cycle_of_sub_flows_is_named() -> None:
    saved = {
        "f/b": _flow(_raw("x"), _sub("y", "f/c")),
        "f/c": _flow(
            {
                "id": "z",
                "value": {"type": "branchall", "branches": [{"modules": [_sub("w", "f/a")]}]},
            }
        ),
    }
    flow = _flow(_sub("s", "f/b"))
    assert flow_problems(flow, flow_path="f/a", get_flow=saved.get) == [
        'module "s" (flow) path: sub-flows form a cycle: f/a -> f/b -> f/c -> f/a'
    ]
    # A cycle further down that does not pass through this flow is found too.
    saved["f/c"] = _flow(_sub("w", "f/b"))
    assert flow_problems(flow, flow_path="f/new", get_flow=saved.get) == [
        'module "s" (flow) path: sub-flows form a cycle: f/new -> f/b -> f/c -> f/b'
    ]
    # No cycle: a sub-flow used twice (a diamond) is fine.
    saved["f/c"] = _flow(_raw("x"))
    saved["f/d"] = _flow(_sub("p", "f/c"), _sub("q", "f/c"))
    flow = _flow(_sub("s", "f/b"), _sub("t", "f/d"))
    assert flow_problems(flow, flow_path="f/a", get_flow=saved.get) == []


# --- Languages, loops, early return, unsupported modules --------------------------------------


def test_a_rawscript_language_that_is_not_installed() -> None:
    flow = _flow(_raw("a", "python3"), _raw("b", "cobol"))
    assert flow_problems(flow, known_languages={"python3", "bash"}) == [
        'module "b" (rawscript) language: "cobol" is not an installed language '
        "(installed: bash, python3)"
    ]
    assert flow_problems(flow) == []


def test_parallelism_without_parallel() -> None:
    flow = _flow(
        _loop("a", parallelism={"type": "static", "value": 2}),
        _loop("b", parallel=True, parallelism={"type": "static", "value": 2}),
        {
            "id": "c",
            "value": {
                "type": "whileloopflow",
                "modules": [],
                "skip_failures": True,
                "parallelism": _js("flow_input.n"),
            },
        },
    )
    assert flow_problems(flow) == [
        'module "a" (forloopflow) parallelism: is set but parallel is not',
        'module "c" (whileloopflow) parallelism: is set but parallel is not',
    ]


@pytest.mark.parametrize("limit", [0, -1, 1.5, "4", True])
def test_a_static_parallelism_must_be_a_positive_integer(limit: Any) -> None:
    flow = _flow(_loop("a", parallel=True, parallelism={"type": "static", "value": limit}))
    assert flow_problems(flow) == [
        f'module "a" (forloopflow) parallelism: must be a positive integer, not {limit!r}'
    ]


@pytest.mark.parametrize(
    ("value", "kind"),
    [("abc", "a string"), (3, "a number"), ({"a": 1}, "an object"), (None, "null")],
)
def test_a_static_iterator_must_be_a_list(value: Any, kind: str) -> None:
    flow = _flow(_loop("b", iterator={"type": "static", "value": value}))
    assert flow_problems(flow) == [
        f'module "b" (forloopflow) iterator: a static iterator must be a list, not {kind}'
    ]


def test_a_static_list_or_javascript_iterator_passes() -> None:
    flow = _flow(
        _loop("a", iterator={"type": "static", "value": [1]}),
        _loop("b", iterator=_js("results.a")),
    )
    assert flow_problems(flow) == []


def test_early_return_must_name_a_top_level_step() -> None:
    flow = _flow(_raw("a"), _loop("b", _raw("c")), early_return="c")
    assert flow_problems(flow) == [
        'flow early_return: "c" is not a step at the top level of the flow'
    ]
    assert flow_problems(_flow(_raw("a"), early_return="a")) == []


def test_unsupported_module_types_are_named() -> None:
    flow = parse_flow(json.loads((FLOWS / "failure_retries.json").read_text()))
    assert flow_problems(flow) == [
        'module "b" (aiagent) type: Gristmill does not run aiagent modules'
    ]
