"""The job wrapper, run by real Bun and Deno exactly as a worker runs it.

Each test runs jobs through :func:`gristmill.testing.runner.run_job` (the worker's own code
path, without a database) on both runtimes: arguments in main's order, defaults, conversions,
results that JSON cannot hold, errors and logs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from gristmill.runtimes import Recipe, Runtime
from gristmill.runtimes.signature import FUNCTION_CALL_DEFAULT
from gristmill.testing.contract import require_toolchain
from gristmill.testing.runner import RanJob, make_context, run_job
from gristmill_typescript.bun import BunRuntime
from gristmill_typescript.deno import DenoRuntime


@pytest.fixture(scope="module", params=["bun", "deno"])
def runtime(request: pytest.FixtureRequest) -> Runtime:
    made: Runtime = BunRuntime() if request.param == "bun" else DenoRuntime()
    require_toolchain(made)
    return made


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # One cache per runtime for the module, as on a worker: Deno compiles each wrapper once.
    return tmp_path_factory.mktemp("cache")


def run(
    runtime: Runtime,
    tmp_path: Path,
    cache_root: Path,
    code: str,
    args: dict[str, Any] | None = None,
    timeout_s: float = 60.0,
) -> RanJob:
    return run_job(
        runtime,
        code,
        args or {},
        tmp_path,
        timeout_s=timeout_s,
        cache_dir=cache_root / runtime.name,
    )


def ok(ran: RanJob) -> Any:
    assert ran.outcome.success, f"{ran.outcome.result_json}\nlogs:\n{ran.logs}"
    return ran.result


def error(ran: RanJob) -> dict[str, Any]:
    assert not ran.outcome.success, ran.outcome.result_json
    return ran.result["error"]


# ------------------------------------------------------------------------------ arguments


def test_arguments_are_passed_in_main_order(
    runtime: Runtime, tmp_path: Path, cache_root: Path
) -> None:
    code = (
        "export function main(first: string, second: number, third: boolean) {\n"
        "  return [first, second, third];\n"
        "}\n"
    )
    # The JSON object's order is not main's order: positions come from the signature.
    args = {"third": True, "second": 2, "first": "one"}
    assert ok(run(runtime, tmp_path, cache_root, code, args)) == ["one", 2, True]


def test_defaults_apply_when_missing_or_null(
    runtime: Runtime, tmp_path: Path, cache_root: Path
) -> None:
    """Windmill issue #7447: a field left empty (null, or absent) gets main's default."""
    code = (
        'export function main(a: number = 3, b: string = "hi", c = [1], d?: string,\n'
        "    e: string | null = 'dflt', f: string | undefined, g = new Date(0)) {\n"
        "  return { a, b, c, d: d === undefined ? 'undefined' : d, e,\n"
        "    f: f === undefined ? 'undefined' : f, g: g instanceof Date };\n"
        "}\n"
    )
    expected = {"a": 3, "b": "hi", "c": [1], "d": "undefined", "e": "dflt", "f": "undefined"}
    assert ok(run(runtime, tmp_path, cache_root, code)) == {**expected, "g": True}
    nulls = {name: None for name in "abcdefg"}
    # ``e`` admits null itself: null is its value, not "use the default".
    assert ok(run(runtime, tmp_path, cache_root, code, nulls)) == {
        **expected,
        "e": None,
        "g": True,
    }
    # A default computed at run time, sent back as the form shows it: main's default applies.
    sent = {"a": 5, "b": "", "g": FUNCTION_CALL_DEFAULT}
    assert ok(run(runtime, tmp_path, cache_root, code, sent)) == {
        **expected,
        "a": 5,
        "b": "",
        "g": True,
    }


def test_optional_without_default_gets_undefined_or_null(
    runtime: Runtime, tmp_path: Path, cache_root: Path
) -> None:
    code = (
        "export function main(x?: number, y: number | null) {\n"
        "  return [x === undefined, y === undefined, y === null];\n"
        "}\n"
    )
    assert ok(run(runtime, tmp_path, cache_root, code)) == [True, True, False]
    assert ok(run(runtime, tmp_path, cache_root, code, {"x": None, "y": None})) == [
        True,
        False,
        True,
    ]


def test_date_arguments_are_dates(runtime: Runtime, tmp_path: Path, cache_root: Path) -> None:
    code = (
        "export function main(when: Date, later?: Date, plain: string = 'x') {\n"
        "  return { isDate: when instanceof Date, iso: when.toISOString(),\n"
        "    year: when.getUTCFullYear(), later: later === undefined ? null : later.getTime(),\n"
        "    plain };\n"
        "}\n"
    )
    ran = run(runtime, tmp_path, cache_root, code, {"when": "2024-01-31T12:30:00+02:00"})
    assert ok(ran) == {
        "isDate": True,
        "iso": "2024-01-31T10:30:00.000Z",
        "year": 2024,
        "later": None,
        "plain": "x",
    }


def test_bigint_and_base64_arguments(runtime: Runtime, tmp_path: Path, cache_root: Path) -> None:
    code = (
        "export function main(n: bigint, m = 2n, data: Base64, count = 1) {\n"
        "  return [typeof n, n * m, typeof data, atob(data), typeof count];\n"
        "}\n"
    )
    ran = run(runtime, tmp_path, cache_root, code, {"n": 21, "data": "aGVsbG8="})
    # Base64 arguments stay base64 strings, as Windmill's Base64 type is a string.
    assert ok(ran) == ["bigint", 42, "string", "hello", "number"]


def test_objects_and_lists_arrive_as_json(
    runtime: Runtime, tmp_path: Path, cache_root: Path
) -> None:
    code = (
        "export function main(db: Resource<'postgresql'>, tags: string[], {a, b}: {a: number,"
        " b: string}) {\n"
        "  return { host: db.host, tags: tags.length, a, b };\n"
        "}\n"
    )
    args = {"db": {"host": "localhost"}, "tags": ["x", "y"], "anon1": {"a": 1, "b": "two"}}
    assert ok(run(runtime, tmp_path, cache_root, code, args)) == {
        "host": "localhost",
        "tags": 2,
        "a": 1,
        "b": "two",
    }


# ------------------------------------------------------------------------------ results


def test_async_main_is_awaited(runtime: Runtime, tmp_path: Path, cache_root: Path) -> None:
    code = (
        "export async function main(x: number) {\n"
        "  await new Promise((resolve) => setTimeout(resolve, 10));\n"
        "  return x * 2;\n"
        "}\n"
    )
    assert ok(run(runtime, tmp_path, cache_root, code, {"x": 21})) == 42


def test_results_json_cannot_hold(runtime: Runtime, tmp_path: Path, cache_root: Path) -> None:
    code = """\
class Point {
  constructor(public x: number, public y: number) {}
}
export function main() {
  const shared = { s: 1 };
  return {
    small: 42n,
    huge: 2n ** 70n,
    date: new Date(Date.UTC(2024, 0, 2, 3, 4, 5)),
    invalidDate: new Date("nope"),
    undef: undefined,
    list: [undefined, NaN, Infinity, () => 1],
    map: new Map<any, any>([["a", 1], [2, new Set(["x"])]]),
    set: new Set([1, 2, 2]),
    bytes: new TextEncoder().encode("hi"),
    point: new Point(1, 2),
    error: new TypeError("bad"),
    twice: [shared, shared],
    nul: "a\\u0000b",
  };
}
"""
    assert ok(run(runtime, tmp_path, cache_root, code)) == {
        "small": 42,
        "huge": str(2**70),
        "date": "2024-01-02T03:04:05.000Z",
        "invalidDate": None,
        "list": [None, None, None, None],
        "map": {"a": 1, "2": ["x"]},
        "set": [1, 2],
        "bytes": "aGk=",
        "point": {"x": 1, "y": 2},
        "error": {"name": "TypeError", "message": "bad"},
        "twice": [{"s": 1}, {"s": 1}],
        "nul": "a\ufffdb",
    }


@pytest.mark.parametrize(
    ("returned", "expected"),
    [("undefined", None), ("null", None), ("'text'", "text"), ("[]", [])],
)
def test_plain_results(
    runtime: Runtime, tmp_path: Path, cache_root: Path, returned: str, expected: Any
) -> None:
    code = f"export function main() {{\n  return {returned};\n}}\n"
    assert ok(run(runtime, tmp_path, cache_root, code)) == expected


def test_circular_result_is_an_error(runtime: Runtime, tmp_path: Path, cache_root: Path) -> None:
    code = (
        "export function main() {\n  const a: any = { name: 'a' };\n  a.self = a;\n  return a;\n}\n"
    )
    err = error(run(runtime, tmp_path, cache_root, code))
    assert err["name"] == "TypeError"
    assert "circular" in err["message"]


# ------------------------------------------------------------------------------ errors and logs


def test_error_has_name_message_and_stack_in_main(
    runtime: Runtime, tmp_path: Path, cache_root: Path
) -> None:
    code = (
        "class QuotaError extends Error {\n"
        "  name = 'QuotaError';\n"
        "}\n"
        "function check(n: number) {\n"
        "  if (n > 1) throw new QuotaError(`too many: ${n}`);\n"
        "}\n"
        "export async function main(n: number) {\n"
        "  await Promise.resolve();\n"
        "  check(n);\n"
        "}\n"
    )
    ran = run(runtime, tmp_path, cache_root, code, {"n": 5})
    err = error(ran)
    assert err["name"] == "QuotaError"
    assert err["message"] == "too many: 5"
    assert "main.ts:5" in err["stack"] and "main.ts:9" in err["stack"]
    # The wrapper's own frames are noise for the user.
    assert "wrapper.mjs" not in err["stack"]
    assert (ran.job_dir / "result.json").exists()


def test_thrown_values_that_are_not_errors(
    runtime: Runtime, tmp_path: Path, cache_root: Path
) -> None:
    code = "export function main() {\n  throw 'plain string';\n}\n"
    assert error(run(runtime, tmp_path, cache_root, code)) == {
        "name": "Error",
        "message": "plain string",
        "stack": "",
    }
    code = "export async function main() {\n  throw { code: 42 };\n}\n"
    assert error(run(runtime, tmp_path, cache_root, code)) == {
        "name": "Error",
        "message": '{"code":42}',
        "stack": "",
    }


def test_errors_outside_main_still_fail_the_job(
    runtime: Runtime, tmp_path: Path, cache_root: Path
) -> None:
    top_level = "throw new RangeError('at import');\nexport function main() {\n  return 1;\n}\n"
    err = error(run(runtime, tmp_path, cache_root, top_level))
    assert (err["name"], err["message"]) == ("RangeError", "at import")
    stray = (
        "export async function main() {\n"
        "  setTimeout(() => { throw new Error('in a callback'); }, 1);\n"
        "  await new Promise((resolve) => setTimeout(resolve, 2000));\n"
        "}\n"
    )
    assert error(run(runtime, tmp_path, cache_root, stray))["message"] == "in a callback"
    unawaited = (
        "export async function main() {\n"
        "  Promise.reject(new Error('nobody awaits me'));\n"
        "  await new Promise((resolve) => setTimeout(resolve, 2000));\n"
        "}\n"
    )
    assert error(run(runtime, tmp_path, cache_root, unawaited))["message"] == "nobody awaits me"


def test_missing_module_is_reported(runtime: Runtime, tmp_path: Path, cache_root: Path) -> None:
    code = (
        "import { helper } from './helper.ts';\nexport function main() {\n  return helper();\n}\n"
    )
    err = error(run(runtime, tmp_path, cache_root, code))
    assert "helper.ts" in err["message"]


def test_script_exiting_itself(runtime: Runtime, tmp_path: Path, cache_root: Path) -> None:
    code = "export function main() {\n  console.log('bye');\n  process.exit(3);\n}\n"
    if runtime.name == "deno":
        code = "export function main() {\n  console.log('bye');\n  Deno.exit(3);\n}\n"
    err = error(run(runtime, tmp_path, cache_root, code))
    assert err["name"] == "ExecutionErr"
    assert "exited with code 3" in err["message"] and "bye" in err["message"]


def test_open_handles_do_not_keep_the_job_running(
    runtime: Runtime, tmp_path: Path, cache_root: Path
) -> None:
    code = "export function main() {\n  setInterval(() => {}, 1000);\n  return 'done';\n}\n"
    assert ok(run(runtime, tmp_path, cache_root, code, timeout_s=10)) == "done"


def test_console_output_is_the_log(runtime: Runtime, tmp_path: Path, cache_root: Path) -> None:
    code = (
        "export function main() {\n"
        "  console.log('to stdout', { a: 1 });\n"
        "  console.error('to stderr');\n"
        "  console.log('x'.repeat(100000));\n"
        "  return 1;\n"
        "}\n"
    )
    ran = run(runtime, tmp_path, cache_root, code)
    assert ok(ran) == 1
    assert "to stdout" in ran.logs and "to stderr" in ran.logs
    assert "x" * 100000 in ran.logs  # flushed before the process exits
    assert "\x1b[" not in ran.logs  # no color codes in stored logs


# ------------------------------------------------------------------------------ environment


def test_job_environment(
    runtime: Runtime, tmp_path: Path, cache_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job sees the core's variables and its own directory, nothing of the worker's."""
    monkeypatch.setenv("GRISTMILL_WORKER_SECRET", "do-not-leak")
    code = (
        "export function main() {\n"
        "  const env = (globalThis as any).Deno ? Deno.env.toObject() : process.env;\n"
        "  return { job: env.WM_JOB_ID, home: env.HOME, leak: env.GRISTMILL_WORKER_SECRET ??"
        " null, cwd: (globalThis as any).Deno ? Deno.cwd() : process.cwd() };\n"
        "}\n"
    )
    ran = run(runtime, tmp_path, cache_root, code)
    result = ok(ran)
    assert result["job"] and result["leak"] is None
    assert result["home"] == result["cwd"] == str(ran.job_dir)


def test_recipe(runtime: Runtime, tmp_path: Path, cache_root: Path) -> None:
    code = "export function main(a: string, d?: Date) {\n  return a;\n}\n"
    ctx = make_context(runtime, code, {"a": "x"}, tmp_path, cache_dir=cache_root / runtime.name)
    recipe = runtime.prepare(ctx)
    assert isinstance(recipe, Recipe)
    assert recipe.cwd == ctx.job_dir
    assert os.path.isabs(recipe.argv[0])
    assert recipe.argv[-2].endswith("wrapper.mjs")
    assert json.loads(recipe.argv[-1]) == [["a", None, False], ["d", "date", True]]
    assert (ctx.job_dir / "main.ts").read_text(encoding="utf-8") == code
    added = {k: v for k, v in recipe.env.items() if k not in ctx.env}
    assert all(recipe.env[k] == v for k, v in ctx.env.items())
    cache = str(cache_root / runtime.name)
    if runtime.name == "bun":
        # Bun stops at the job's own package.json; its package cache is shared by jobs.
        assert json.loads((ctx.job_dir / "package.json").read_text())["private"] is True
        assert added["BUN_INSTALL_CACHE_DIR"].startswith(cache)
    else:
        assert added["DENO_DIR"].startswith(cache)
        assert f"--allow-write={ctx.job_dir}" in recipe.argv
        assert "--allow-all" not in recipe.argv and "-A" not in recipe.argv


def test_deno_permissions_are_limited(tmp_path: Path, cache_root: Path) -> None:
    runtime = DenoRuntime()
    require_toolchain(runtime)
    code = "export function main() {\n  return Deno.readTextFileSync('/etc/hostname');\n}\n"
    err = error(run(runtime, tmp_path, cache_root, code))
    assert err["name"] == "NotCapable" and "read access" in err["message"]
    code = (
        "export function main() {\n"
        "  Deno.writeTextFileSync('note.txt', 'kept in the job directory');\n"
        "  return Deno.readTextFileSync('note.txt');\n"
        "}\n"
    )
    assert ok(run(runtime, tmp_path, cache_root, code)) == "kept in the job directory"


def test_bun_runs_scripts_written_for_deno_npm_specifiers(tmp_path: Path) -> None:
    runtime = BunRuntime()
    require_toolchain(runtime)
    ctx = make_context(
        runtime,
        'import x from "npm:left-pad@1.3.0";\nexport function main() {\n  return 1;\n}\n',
        {},
        tmp_path,
    )
    runtime.prepare(ctx)
    written = (ctx.job_dir / "main.ts").read_text(encoding="utf-8")
    assert written.startswith('import x from "left-pad@1.3.0";\n')


def test_a_result_that_cannot_be_written_never_looks_like_success(
    tmp_path: Path, cache_root: Path
) -> None:
    """When Deno cannot write result.json (here the script removed its job directory, and
    Deno, unlike Bun, does not create it again; it also refuses paths under /dev, where job
    directories cannot be any more), the job must fail, saying so, not end with exit code 0
    and no result (which reads as a null result)."""
    runtime = DenoRuntime()
    require_toolchain(runtime)
    code = (
        'import { rmSync } from "node:fs";\n'
        "export function main() {\n"
        "  rmSync(process.cwd(), { recursive: true });\n"
        "  return 1;\n"
        "}\n"
    )
    err = error(run(runtime, tmp_path, cache_root, code))
    assert "exited with code 1" in err["message"], err
    assert "could not write" in err["message"] and "result.json" in err["message"], err
