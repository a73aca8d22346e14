"""The flow expression evaluator: context, resolution, errors, limits, JSON crossing."""

from __future__ import annotations

from typing import Any

import pytest
from gristmill.errors import BadInput, GristmillError, NotFound
from gristmill.flows.expressions import (
    Evaluator,
    ExprContext,
    ExpressionError,
    References,
    find_references,
)

WHERE = 'step "b" input "x"'


@pytest.fixture(scope="module")
def ev() -> Evaluator:
    return Evaluator()


def run(ev: Evaluator, expr: str, **context: Any) -> Any:
    return ev.evaluate(expr, ExprContext(**context), where=WHERE)


def fails(ev: Evaluator, expr: str, **context: Any) -> ExpressionError:
    with pytest.raises(ExpressionError) as info:
        run(ev, expr, **context)
    return info.value


# --- what an expression sees ---------------------------------------------------------------


def test_flow_input_and_arithmetic(ev: Evaluator) -> None:
    assert run(ev, "flow_input.x + 1", flow_input={"x": 41}) == 42
    assert run(ev, "flow_input.x", flow_input={"x": [1, {"a": None}]}) == [1, {"a": None}]
    assert run(ev, "`${flow_input.name}!`.toUpperCase()", flow_input={"name": "ada"}) == "ADA!"


def test_results_of_earlier_steps(ev: Evaluator) -> None:
    results = {"a": {"rows": [1, 2, 3]}, "c": "x"}
    assert run(ev, "results.a.rows.length", results=results) == 3
    assert run(ev, 'results["a"].rows[2]', results=results) == 3
    assert run(ev, "results.a.rows.map(r => r * 2)", results=results) == [2, 4, 6]
    # A dynamic access sees every step, not only those named in the text.
    assert run(ev, "Object.keys(results).sort()", results=results) == ["a", "c"]
    assert run(ev, "['a', 'c'].map(k => results[k]).length", results=results) == 2


def test_a_step_that_has_not_run_is_an_error_naming_it(ev: Evaluator) -> None:
    err = fails(ev, "results.missing.foo", results={"a": 1})
    assert 'step "missing" has not run' in str(err)
    assert str(err).startswith(WHERE + ': javascript expression "results.missing.foo" failed:')
    assert err.kind == "runtime"
    # A null result is a result: not an error.
    assert run(ev, "results.a", results={"a": None}) is None


def test_previous_result_params_and_iter(ev: Evaluator) -> None:
    assert run(ev, "previous_result.n * 2", previous_result={"n": 4}) == 8
    assert run(ev, "params.x + params.y", params={"x": 1, "y": 2}) == 3
    got = run(
        ev,
        "[flow_input.iter.value, flow_input.iter.index, flow_input.k]",
        flow_input={"k": "kept"},
        iter={"value": "v", "index": 3},
    )
    assert got == ["v", 3, "kept"]
    # The plain path (answered without the engine) agrees.
    assert run(ev, "flow_input.iter.index", iter={"value": "v", "index": 3}) == 3


def test_suspend_result_and_error_names(ev: Evaluator) -> None:
    assert run(ev, "resume.ok && approvers[0]", resume={"ok": True}, approvers=["ada"]) == "ada"
    assert run(ev, "result.count > 2", result={"count": 3}) is True
    assert run(ev, "error.name === 'Timeout'", error={"name": "Timeout"}) is True
    # As in Windmill, `error` falls back to the previous result's error.
    assert run(ev, "error.message", previous_result={"error": {"message": "boom"}}) == "boom"


def test_an_unset_name_is_not_defined(ev: Evaluator) -> None:
    err = fails(ev, "resume.ok")
    assert "ReferenceError" in str(err)
    assert "resume" in str(err)
    assert run(ev, "typeof previous_result") == "undefined"


def test_function_body_with_return_and_await(ev: Evaluator) -> None:
    body = "const rows = results.a;\nif (rows.length > 1) { return rows[1]; }\nreturn null;"
    assert run(ev, body, results={"a": [10, 20]}) == 20
    assert run(ev, "await Promise.resolve(flow_input.x)", flow_input={"x": 5}) == 5
    assert run(ev, "const v = await 2; return v + 1") == 3
    # `return` inside a string does not make a body of an expression.
    assert run(ev, "'no return here'.length") == 14


# --- resource() and variable() -------------------------------------------------------------


def test_find_references_reads_literal_paths_only() -> None:
    expr = """resource('u/ada/pg').host + variable("f/x/token") + `${variable(`f/y`)}`"""
    assert find_references(expr, where=WHERE) == References(("u/ada/pg",), ("f/x/token", "f/y"))
    # Calls inside strings and comments, and methods of the same name, are not calls.
    quiet = "'resource(1)' + obj.variable(x) // variable(y)\n"
    assert find_references(quiet, where=WHERE) == References((), ())


def test_a_non_literal_path_is_an_error_naming_the_expression() -> None:
    with pytest.raises(ExpressionError) as info:
        find_references("variable(flow_input.path)", where=WHERE)
    assert str(info.value).startswith(WHERE + ': javascript expression "variable(flow_input.path)"')
    assert "string literal" in str(info.value)
    assert info.value.kind == "reference"


def test_resources_and_variables_are_resolved_before_evaluation(ev: Evaluator) -> None:
    calls: list[str] = []

    def res(path: str) -> Any:
        calls.append(path)
        return {"host": "db", "port": 5432}

    def var(path: str) -> Any:
        calls.append(path)
        return "s3cret"

    got = run(
        ev,
        "resource('u/ada/pg').port + ':' + variable('f/x/token')",
        resource=res,
        variable=var,
    )
    assert got == "5432:s3cret"
    assert calls == ["u/ada/pg", "f/x/token"]


def test_a_missing_resource_or_variable_names_its_path(ev: Evaluator) -> None:
    def nowhere(path: str) -> Any:
        raise NotFound(path)

    err = fails(ev, "variable('f/x/gone')", variable=nowhere)
    assert "variable 'f/x/gone' not found" in str(err)
    err = fails(ev, "resource('u/ada/gone').x", resource=nowhere)
    assert "resource 'u/ada/gone' not found" in str(err)
    err = fails(ev, "resource('u/ada/pg')")  # no resolver given
    assert "resource('u/ada/pg') cannot be resolved here" in str(err)


# --- errors --------------------------------------------------------------------------------


def test_syntax_error_message(ev: Evaluator) -> None:
    err = fails(ev, "results.a.foo(", results={"a": {}})
    assert str(err).startswith(
        WHERE + ': javascript expression "results.a.foo(" failed: SyntaxError'
    )
    assert err.kind == "syntax"
    assert err.where == WHERE and err.expr == "results.a.foo("
    assert isinstance(err, BadInput) and isinstance(err, GristmillError)
    # A body's syntax error is reported for a body.
    err = fails(ev, "return )")
    assert "SyntaxError" in str(err)


def test_runtime_error_message(ev: Evaluator) -> None:
    err = fails(ev, "flow_input.a.b", flow_input={})
    assert str(err) == (
        WHERE + ': javascript expression "flow_input.a.b" failed: '
        "TypeError: cannot read property 'b' of undefined"
    )
    assert err.kind == "runtime"
    assert "boom" in str(fails(ev, "(() => { throw new Error('boom') })()"))
    assert "a string" in str(fails(ev, "(() => { throw 'a string' })()"))
    assert "rejected" in str(fails(ev, "await Promise.reject(new Error('rejected'))"))


# --- limits and isolation ------------------------------------------------------------------


def test_an_endless_loop_stops_at_the_time_limit() -> None:
    ev = Evaluator(time_limit_s=0.2)
    for expr in ("while (true) {}", "for (;;) { try { while (true) {} } catch (e) {} }"):
        err = fails(ev, expr)
        assert err.kind == "timeout"
        assert str(err).startswith(WHERE + ": javascript expression")
        assert "time limit of 0.2 s" in str(err)
    # An endless chain of awaits (each a separate engine job) stops too.
    err = fails(ev, "let i = 0; while (true) { await null; i++ }")
    assert err.kind == "timeout"
    assert run(ev, "1 + 1") == 2


def test_a_huge_allocation_fails_cleanly_and_the_next_evaluation_works() -> None:
    ev = Evaluator(memory_limit_bytes=32 * 1024 * 1024)
    err = fails(ev, "(() => { const a = []; while (true) a.push(new Array(100000).fill(1)); })()")
    assert err.kind == "memory"
    assert "memory limit of 32 MB" in str(err)
    assert fails(ev, "'x'.repeat(2 ** 28).length").kind == "memory"
    assert run(ev, "[1, 2, 3].length") == 3


def test_deep_recursion_is_a_runtime_error(ev: Evaluator) -> None:
    err = fails(ev, "(function f() { return f() + 1 })()")
    assert "stack overflow" in str(err)


def test_nothing_of_the_host_is_reachable(ev: Evaluator) -> None:
    names = ["require", "fetch", "process", "Deno", "std", "os", "setTimeout", "XMLHttpRequest"]
    got = run(ev, "[" + ", ".join(f"typeof {n}" for n in names) + "]")
    assert got == ["undefined"] * len(names)


def test_evaluations_are_isolated(ev: Evaluator) -> None:
    assert run(ev, "(globalThis.leak = 1, Array.prototype.evil = 2, 0)") == 0
    assert run(ev, "[typeof leak, typeof [].evil]") == ["undefined", "undefined"]
    assert run(ev, "var seen = 5; return seen") == 5
    assert run(ev, "typeof seen") == "undefined"


# --- JSON crossing -------------------------------------------------------------------------


def test_undefined_becomes_null_or_is_dropped(ev: Evaluator) -> None:
    assert run(ev, "undefined") is None
    assert run(ev, "flow_input.nothing", flow_input={}) is None
    assert run(ev, "({a: undefined, b: 1, f() {}})") == {"b": 1}
    assert run(ev, "[undefined, () => 1, Symbol('s')]") == [None, None, None]
    assert run(ev, "() => 1") is None


def test_numbers_dates_and_big_ints(ev: Evaluator) -> None:
    assert run(ev, "[NaN, Infinity, -Infinity, -0, 0.5]") == [None, None, None, 0, 0.5]
    assert run(ev, "new Date(Date.UTC(2024, 0, 2))") == "2024-01-02T00:00:00.000Z"
    assert run(ev, "({at: new Date(0)})") == {"at": "1970-01-01T00:00:00.000Z"}
    # A BigInt comes back exact, even nested.
    assert run(ev, "2n ** 70n") == 2**70
    assert run(ev, "({n: [2n ** 64n]})") == {"n": [2**64]}
    # An integer beyond 2^53 going in is a double in JavaScript (as in Windmill and Node).
    assert run(ev, "flow_input.n + 0", flow_input={"n": 2**53 + 1}) == 2**53
    assert run(ev, "flow_input.n", flow_input={"n": 2**53 + 1}) == 2**53
    # Unicode round-trips.
    assert run(ev, "flow_input.s + '✓'", flow_input={"s": "é\u2028"}) == "é\u2028✓"


def test_a_context_that_is_not_json_is_an_error(ev: Evaluator) -> None:
    err = fails(ev, "flow_input.x + 1", flow_input={"x": float("nan")})
    assert err.kind == "input"
    assert "not JSON" in str(err)


def test_evaluations_from_several_threads(ev: Evaluator) -> None:
    """The flow engine evaluates from worker threads: each call owns its runtime."""
    from concurrent.futures import ThreadPoolExecutor

    def one(i: int) -> Any:
        return run(ev, "flow_input.i * 2 + [1, 2].length", flow_input={"i": i})

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(one, range(200))) == [i * 2 + 2 for i in range(200)]
