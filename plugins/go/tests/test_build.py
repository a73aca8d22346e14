"""Real Go builds and runs: the program cache, compile errors, the wrapper's protocol."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from gristmill.runtimes import Recipe
from gristmill.testing.contract import require_toolchain
from gristmill.testing.runner import RanJob, make_context, run_job, run_job_async
from gristmill.worker.execution import execute
from gristmill_go.runtime import GoRuntime


@pytest.fixture
def runtime(go_build_cache: Path) -> GoRuntime:
    runtime = GoRuntime(build_cache=go_build_cache)
    require_toolchain(runtime)
    return runtime


def _run(runtime: GoRuntime, code: str, args: dict[str, Any], root: Path, **kw: Any) -> RanJob:
    return run_job(runtime, code, args, root, **kw)


def _error(ran: RanJob) -> dict[str, Any]:
    assert not ran.outcome.success, ran.outcome.result_json
    return ran.result["error"]


def _programs(cache_dir: Path) -> list[str]:
    return sorted(p.name for p in (cache_dir / "bin").iterdir())


HELLO = (
    'package inner\n\nimport "fmt"\n\n'
    "func main(name string) (interface{}, error) {\n"
    '\tfmt.Println("hello", name)\n'
    '\treturn "hi " + name, nil\n'
    "}\n"
)


def test_a_cached_program_skips_the_build(runtime: GoRuntime, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    started = time.perf_counter()
    first = _run(runtime, HELLO, {"name": "Ada"}, tmp_path, cache_dir=cache)
    cold = time.perf_counter() - started
    assert first.outcome.success, first.outcome.result_json
    assert first.result == "hi Ada"
    assert first.logs == "hello Ada\n"
    assert len(_programs(cache)) == 1
    # Go's telemetry is off: nothing written into the job's HOME.
    assert not (first.job_dir / ".config").exists()
    assert (cache / "goconfig" / "go" / "telemetry" / "mode").read_text() == "off"

    ctx = make_context(runtime, HELLO, {"name": "Bob"}, tmp_path, cache_dir=cache)
    steps = runtime.prepare(ctx)
    assert [step.phase for step in steps] == ["run"]
    assert steps[0].argv == [str(cache / "bin" / _programs(cache)[0])]
    assert not (ctx.job_dir / "build").exists()

    started = time.perf_counter()
    second = _run(runtime, HELLO, {"name": "Bob"}, tmp_path, cache_dir=cache)
    cached = time.perf_counter() - started
    assert second.result == "hi Bob" and second.logs == "hello Bob\n"
    assert cached < cold / 2, (cold, cached)


def test_a_changed_script_is_built_again(runtime: GoRuntime, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert _run(runtime, HELLO, {"name": "a"}, tmp_path, cache_dir=cache).result == "hi a"
    changed = HELLO.replace('"hi "', '"hello "')
    assert _run(runtime, changed, {"name": "a"}, tmp_path, cache_dir=cache).result == "hello a"
    assert len(_programs(cache)) == 2


def test_concurrent_builds_of_one_script_both_succeed(runtime: GoRuntime, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    code = HELLO.replace("hi ", "concurrent ")

    async def both() -> list[RanJob]:
        return list(
            await asyncio.gather(
                run_job_async(runtime, code, {"name": "one"}, tmp_path, cache_dir=cache),
                run_job_async(runtime, code, {"name": "two"}, tmp_path, cache_dir=cache),
            )
        )

    one, two = asyncio.run(both())
    assert (one.result, two.result) == ("concurrent one", "concurrent two")
    # One program, and no temporary file left behind.
    assert len(_programs(cache)) == 1
    assert not [p for p in (cache / "bin").iterdir() if p.name.startswith(".")]


def test_without_a_cache_directory_the_program_is_built_in_the_job(
    runtime: GoRuntime, tmp_path: Path
) -> None:
    ctx = make_context(runtime, HELLO, {"name": "x"}, tmp_path)
    ctx = dataclasses.replace(ctx, cache_dir=None)
    steps = runtime.prepare(ctx)
    assert [step.phase for step in steps] == ["build", "run"]
    assert steps[0].argv[-1] == steps[1].argv[0] == str(ctx.job_dir / "main")
    assert steps[0].env["GOPATH"].startswith(str(ctx.job_dir))
    execution = asyncio.run(execute(runtime, ctx, on_output=lambda _: None, cancel=asyncio.Event()))
    assert execution.outcome is not None
    assert execution.outcome.result_json.strip() == '"hi x"'
    assert (ctx.job_dir / "main").is_file() and not (ctx.job_dir / "main").is_symlink()


def test_compile_errors_name_the_file_and_line(runtime: GoRuntime, tmp_path: Path) -> None:
    code = "package inner\n\nfunc main() int {\n\ty := 1\n\treturn undefinedThing\n}\n"
    error = _error(_run(runtime, code, {}, tmp_path))
    assert error["name"] == "CompilationError"
    assert "main.go:4:2: declared and not used: y" in error["message"]
    assert "main.go:5:9: undefined: undefinedThing" in error["message"]
    # The user's file is main.go, not the job's module layout.
    assert "inner/main.go" not in error["message"]


def test_importing_a_module_that_cannot_be_fetched_fails_the_lock(
    go_build_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOPROXY", "off")  # this machine has no module proxy anyway
    runtime = GoRuntime(build_cache=go_build_cache)
    require_toolchain(runtime)
    code = (
        'package inner\n\nimport "github.com/google/uuid"\n\n'
        "func main() string {\n\treturn uuid.NewString()\n}\n"
    )
    error = _error(_run(runtime, code, {}, tmp_path))
    assert error["name"] == "LockError"
    assert "cannot find module providing package github.com/google/uuid" in error["message"]
    assert "module lookup disabled by GOPROXY=off" in error["message"]


def test_a_build_without_a_lock_explains_a_module_import(
    runtime: GoRuntime, tmp_path: Path
) -> None:
    # A job the core did not lock (it always does for such a script): the build says why.
    code = (
        'package inner\n\nimport "github.com/google/uuid"\n\n'
        "func main() string {\n\treturn uuid.NewString()\n}\n"
    )
    build = runtime.prepare(make_context(runtime, code, {}, tmp_path))[0]
    done = subprocess.run(
        list(build.argv), env=dict(build.env), cwd=build.cwd, capture_output=True, text=True
    )
    assert done.returncode != 0
    assert "main.go:3:8" in done.stderr
    assert "github.com/google/uuid is not in Go's standard library" in done.stderr
    assert "built without a lock" in done.stderr


def test_a_panic_is_the_error_with_its_stack(runtime: GoRuntime, tmp_path: Path) -> None:
    code = "package inner\n\nfunc main(xs []int) int {\n\treturn xs[5]\n}\n"
    ran = _run(runtime, code, {"xs": [1, 2]}, tmp_path)
    error = _error(ran)
    assert error["name"] == "Panic"
    assert error["message"] == "runtime error: index out of range [5] with length 2"
    assert "script/inner/main.go:4" in error["stack"]
    # The wrapper's own frames are cut off.
    assert "gristmill" not in error["stack"]
    assert "panic: runtime error" in ran.logs


@pytest.mark.parametrize(
    ("body", "name", "message"),
    [
        ('return nil, errors.New("boom")', "Error", "boom"),
        ('return nil, fmt.Errorf("wrapped: %w", errors.New("inner"))', "Error", "wrapped: inner"),
        ('_, err := os.Open("/nonexistent")\n\treturn nil, err', "PathError", "open /nonexistent"),
        ("return nil, &QuotaError{Left: 0}", "QuotaError", "quota exhausted"),
    ],
)
def test_a_returned_error_fails_the_job(
    runtime: GoRuntime, tmp_path: Path, body: str, name: str, message: str
) -> None:
    code = (
        'package inner\n\nimport (\n\t"errors"\n\t"fmt"\n\t"os"\n)\n\n'
        "var _, _, _ = errors.New, fmt.Errorf, os.Open\n\n"
        "type QuotaError struct{ Left int }\n\n"
        'func (e *QuotaError) Error() string { return "quota exhausted" }\n\n'
        f"func main() (interface{{}}, error) {{\n\t{body}\n}}\n"
    )
    ran = _run(runtime, code, {}, tmp_path)
    error = _error(ran)
    assert error["name"] == name
    assert message in error["message"]
    assert error["stack"] == ""


def test_struct_slice_map_and_other_arguments_are_decoded(
    runtime: GoRuntime, tmp_path: Path
) -> None:
    code = """package inner

import (
	"fmt"
	t "time"
)

type Address struct {
	City string `json:"city"`
}

type Person struct {
	Name    string   `json:"name"`
	Home    *Address `json:"home"`
	Aliases []string `json:"aliases"`
}

func main(p Person, counts map[string]int, o struct{ X float64 `json:"x"` }, ids [3]int,
	raw []byte, at t.Time, anything interface{}, rest ...bool) (interface{}, error) {
	return map[string]interface{}{
		"name": p.Name, "city": p.Home.City, "aliases": len(p.Aliases),
		"counts": counts, "x": o.X * 2, "ids": ids, "raw": string(raw),
		"year": at.Year(), "anything": fmt.Sprintf("%T", anything), "rest": rest,
	}, nil
}
"""
    args = {
        "p": {"name": "Ada", "home": {"city": "London"}, "aliases": ["a", "b"]},
        "counts": {"a": 1, "b": 2},
        "o": {"x": 1.25},
        "ids": [1, 2, 3],
        "raw": "aGVsbG8=",
        "at": "2024-02-29T12:00:00Z",
        "anything": [1, "two"],
        "rest": [True, False],
    }
    ran = _run(runtime, code, args, tmp_path)
    assert ran.outcome.success, ran.outcome.result_json
    assert ran.result == {
        "name": "Ada",
        "city": "London",
        "aliases": 2,
        "counts": {"a": 1, "b": 2},
        "x": 2.5,
        "ids": [1, 2, 3],
        "raw": "hello",
        "year": 2024,
        "anything": "[]interface {}",
        "rest": [True, False],
    }


def test_an_argument_that_does_not_fit_names_it(runtime: GoRuntime, tmp_path: Path) -> None:
    code = "package inner\n\nfunc main(small int8) int8 {\n\treturn small\n}\n"
    error = _error(_run(runtime, code, {"small": 300}, tmp_path))
    assert error["name"] == "ArgumentError"
    assert error["message"] == "argument 'small': cannot use a JSON number 300 as int8"


@pytest.mark.parametrize(
    ("signature", "body", "result"),
    [
        ("main()", "", None),
        ("main() error", "return nil", None),
        ("main() []string", 'return []string{"<a>", "b&c"}', ["<a>", "b&c"]),
        ("main() (out *int, err error)", "return", None),
    ],
)
def test_result_shapes(
    runtime: GoRuntime, tmp_path: Path, signature: str, body: str, result: Any
) -> None:
    code = f"package inner\n\nfunc {signature} {{\n\t{body}\n}}\n"
    ran = _run(runtime, code, {}, tmp_path)
    assert ran.outcome.success, ran.outcome.result_json
    assert ran.result == result


def test_a_result_json_cannot_hold(runtime: GoRuntime, tmp_path: Path) -> None:
    code = "package inner\n\nfunc main() chan int {\n\treturn make(chan int)\n}\n"
    error = _error(_run(runtime, code, {}, tmp_path))
    assert error["name"] == "ResultError"
    assert "chan int" in error["message"]


def test_the_script_may_change_directory_and_exit(runtime: GoRuntime, tmp_path: Path) -> None:
    moved = (
        'package inner\n\nimport "os"\n\n'
        'func main() string {\n\t_ = os.Chdir("/")\n\treturn "moved"\n}\n'
    )
    assert _run(runtime, moved, {}, tmp_path).result == "moved"
    exits = (
        'package inner\n\nimport (\n\t"fmt"\n\t"os"\n)\n\n'
        'func main() {\n\tfmt.Println("bye")\n\tos.Exit(3)\n}\n'
    )
    error = _error(_run(runtime, exits, {}, tmp_path))
    assert error["name"] == "ExecutionErr"
    assert "exited with code 3" in error["message"] and "bye" in error["message"]


def test_the_job_environment_and_go_settings(
    runtime: GoRuntime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRISTMILL_SECRET_OF_THE_WORKER", "x")
    code = (
        'package inner\n\nimport "os"\n\n'
        "func main() map[string]string {\n"
        "\tout := map[string]string{}\n"
        '\tfor _, k := range []string{"WM_JOB_ID", "GRISTMILL_SECRET_OF_THE_WORKER", "GOCACHE"} {\n'
        "\t\tout[k] = os.Getenv(k)\n\t}\n\treturn out\n}\n"
    )
    ctx = make_context(runtime, code, {}, tmp_path)
    build, run = runtime.prepare(ctx)
    assert isinstance(build, Recipe) and isinstance(run, Recipe)
    assert build.failure_name == "CompilationError"
    assert run.env == dict(ctx.env)
    assert build.env["GOTOOLCHAIN"] == "local"
    assert build.env["GOFLAGS"] == "-mod=mod"
    assert build.env["GOCACHE"] == str(runtime.build_cache)
    assert ctx.cache_dir is not None
    assert build.env["GOPATH"].startswith(str(ctx.cache_dir))
    if "GOPROXY" not in os.environ:
        assert (build.env["GOPROXY"], build.env["GOSUMDB"]) == ("off", "off")
    assert "GRISTMILL_SECRET_OF_THE_WORKER" not in build.env
    ran = _run(runtime, code, {}, tmp_path)
    assert ran.result["WM_JOB_ID"] and ran.result["GOCACHE"] == ""
    assert ran.result["GRISTMILL_SECRET_OF_THE_WORKER"] == ""


def test_a_plugin_variable_wins_over_the_go_defaults(runtime: GoRuntime, tmp_path: Path) -> None:
    ctx = make_context(runtime, HELLO, {"name": "x"}, tmp_path)
    ctx = dataclasses.replace(ctx, env={**ctx.env, "GOPROXY": "https://proxy.example"})
    build = runtime.prepare(ctx)[0]
    assert build.env["GOPROXY"] == "https://proxy.example"


def test_the_template_runs(runtime: GoRuntime, tmp_path: Path) -> None:
    ran = _run(runtime, runtime.template(), {"name": "Ada", "times": 2}, tmp_path)
    assert ran.result == "Hello, Ada!"
    assert ran.logs == "Hello, Ada!\nHello, Ada!\n"
