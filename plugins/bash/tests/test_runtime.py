"""Bash jobs run for real: arguments, results, errors and logs, and the runtime's identity."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from gristmill.runtimes import Runtime
from gristmill.testing.contract import require_toolchain
from gristmill.testing.runner import RanJob, make_context, run_job
from gristmill_bash.runtime import BashRuntime


@pytest.fixture
def runtime() -> BashRuntime:
    runtime = BashRuntime()
    require_toolchain(runtime)
    return runtime


def _run(runtime: BashRuntime, code: str, args: dict[str, Any], root: Path) -> RanJob:
    return run_job(runtime, code, args, root, timeout_s=30)


def _error(ran: RanJob) -> dict[str, Any]:
    assert not ran.outcome.success, ran.outcome.result_json
    return ran.result["error"]


# -- identity and toolchain ---------------------------------------------------------------------


def test_identity() -> None:
    runtime = BashRuntime()
    assert isinstance(runtime, Runtime)
    assert (runtime.name, runtime.display_name) == ("bash", "Bash")
    assert runtime.aliases == ()
    assert runtime.file_extensions == (".sh",)


def test_toolchain_reports_the_bash_version(runtime: BashRuntime) -> None:
    toolchain = runtime.toolchain()
    assert toolchain.version and toolchain.version[0].isdigit()
    assert runtime.bash and os.path.isabs(runtime.bash)


def test_bash_path_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BASH_PATH", "/opt/bash/bin/bash")
    assert BashRuntime().bash == "/opt/bash/bin/bash"
    assert BashRuntime(bash="/x/bash").bash == "/x/bash"


def test_missing_bash_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    toolchain = BashRuntime(bash="/nonexistent/bash").toolchain()
    assert not toolchain.available
    assert "/nonexistent/bash" in toolchain.message and "BASH_PATH" in toolchain.message
    monkeypatch.delenv("BASH_PATH", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    toolchain = BashRuntime().toolchain()
    assert not toolchain.available
    assert "bash was not found on PATH" in toolchain.message and "BASH_PATH" in toolchain.message


def test_template_runs(runtime: BashRuntime, tmp_path: Path) -> None:
    ran = _run(runtime, runtime.template(), {"name": "Ada"}, tmp_path)
    assert ran.result == "Hello, Ada!"


# -- arguments ------------------------------------------------------------------------------------


SHOW_ARGS = 'a="$1"\nb="${2:-two}"\nc="${3:-}"\nprintf "[%s]" "$#" "$a" "$b" "$c"\necho\n'


def test_arguments_are_positional_in_signature_order(runtime: BashRuntime, tmp_path: Path) -> None:
    ran = _run(runtime, SHOW_ARGS, {"c": "C", "a": "A", "b": "B"}, tmp_path)
    assert ran.result == "[3][A][B][C]"


def test_missing_and_null_arguments_let_defaults_apply(
    runtime: BashRuntime, tmp_path: Path
) -> None:
    assert _run(runtime, SHOW_ARGS, {"a": "A"}, tmp_path).result == "[3][A][two][]"
    assert _run(runtime, SHOW_ARGS, {"a": "A", "b": None}, tmp_path).result == "[3][A][two][]"
    # An empty string is "unset or empty" for ${n:-}: the default applies too.
    assert _run(runtime, SHOW_ARGS, {"a": "A", "b": ""}, tmp_path).result == "[3][A][two][]"


def test_arguments_are_never_interpreted_by_a_shell(runtime: BashRuntime, tmp_path: Path) -> None:
    hostile = "$(touch pwned) `touch pwned2`; rm -rf / \"quoted\" 'single' *"
    ran = _run(runtime, 'x="$1"\nprintf "%s\\n" "$x"\n', {"x": hostile}, tmp_path)
    assert ran.result == hostile
    assert not (ran.job_dir / "pwned").exists() and not (ran.job_dir / "pwned2").exists()


def test_non_string_arguments_are_passed_as_json(runtime: BashRuntime, tmp_path: Path) -> None:
    # The stored schema says string, but a script whose schema was edited may get anything.
    code = 'a="$1"\nb="$2"\nc="$3"\necho "$a|$b|$c"\n'
    ran = _run(runtime, code, {"a": 5, "b": {"k": [1, True]}, "c": "é"}, tmp_path)
    assert ran.result == '5|{"k": [1, true]}|é'


def test_multiline_and_unicode_arguments(runtime: BashRuntime, tmp_path: Path) -> None:
    code = 'x="$1"\nprintf "%s" "$x" | wc -l\n'
    assert _run(runtime, code, {"x": "one\ntwo\nthree é"}, tmp_path).result == "2"


def test_the_code_decides_the_order_not_the_stored_schema(
    runtime: BashRuntime, tmp_path: Path
) -> None:
    ctx = make_context(runtime, SHOW_ARGS, {"a": "A", "b": "B", "c": "C"}, tmp_path)
    assert ctx.schema is not None
    properties = dict(reversed(list(ctx.schema["properties"].items())))
    recipe = runtime.prepare(replace(ctx, schema={**ctx.schema, "properties": properties}))
    assert list(recipe.argv[-3:]) == ["A", "B", "C"]


def test_recipe_runs_the_script_file_with_the_job_environment(
    runtime: BashRuntime, tmp_path: Path
) -> None:
    ctx = make_context(runtime, SHOW_ARGS, {"a": "A"}, tmp_path)
    recipe = runtime.prepare(ctx)
    assert list(recipe.argv) == [runtime.bash, "main.sh", "A", "", ""]
    assert dict(recipe.env) == dict(ctx.env)
    assert (ctx.job_dir / "main.sh").read_text() == SHOW_ARGS


def test_nul_in_an_argument_is_a_clear_error(runtime: BashRuntime, tmp_path: Path) -> None:
    error = _error(_run(runtime, 'x="$1"\necho "$x"\n', {"x": "a\x00b"}, tmp_path))
    assert error["name"] == "PrepareError" and "NUL character" in error["message"]


def test_arguments_over_the_command_line_limit_are_a_clear_error(
    runtime: BashRuntime, tmp_path: Path
) -> None:
    """Past the API's check (``max_args_bytes``), E2BIG says what it is: not a missing
    toolchain. Linux refuses one command-line word over 128 KiB."""
    error = _error(_run(runtime, 'x="$1"\necho "${#x}"\n', {"x": "a" * 200_000}, tmp_path))
    assert error["name"] == "ExecutionErr"
    assert "E2BIG" in error["message"] and "toolchain" not in error["message"]


def test_the_declared_argument_limit_fits_the_command_line(
    runtime: BashRuntime, tmp_path: Path
) -> None:
    """Arguments at ``max_args_bytes`` (as compact JSON) run, even when a word is JSON text
    (written with spaces, so longer than its compact form)."""
    words = [0] * ((BashRuntime.max_args_bytes - 20) // 2)
    ran = _run(runtime, 'x="$1"\necho "${#x}"\n', {"x": words}, tmp_path)
    assert ran.outcome.success, ran.outcome.result_json


def test_job_environment_only(runtime: BashRuntime, tmp_path: Path) -> None:
    code = 'echo "$HOME|${WM_WORKSPACE}|${VIRTUAL_ENV:-none}|${PYTEST_CURRENT_TEST:-none}"\n'
    ran = _run(runtime, code, {}, tmp_path)
    assert ran.result == f"{ran.job_dir}|main|none|none"


# -- results --------------------------------------------------------------------------------------


def test_result_is_the_last_line_printed(runtime: BashRuntime, tmp_path: Path) -> None:
    ran = _run(runtime, 'echo first\necho "  last line  "\necho\necho "   "\n', {}, tmp_path)
    assert ran.result == "last line"
    assert ran.logs == "first\n  last line  \n\n   \n"


def test_a_json_last_line_stays_a_string(runtime: BashRuntime, tmp_path: Path) -> None:
    # Windmill's rule: write result.json for a JSON result.
    ran = _run(runtime, "echo '{\"a\": 1}'\n", {}, tmp_path)
    assert ran.result == '{"a": 1}'


def test_no_output_is_an_empty_string(runtime: BashRuntime, tmp_path: Path) -> None:
    assert _run(runtime, "true\n", {}, tmp_path).outcome.result_json == '""'


def test_result_json_wins_over_the_output(runtime: BashRuntime, tmp_path: Path) -> None:
    code = 'echo \'{"items": [1, 2], "ok": true}\' > result.json\necho "printed"\n'
    ran = _run(runtime, code, {}, tmp_path)
    assert ran.result == {"items": [1, 2], "ok": True}
    assert ran.logs == "printed\n"


def test_invalid_result_json_is_an_error(runtime: BashRuntime, tmp_path: Path) -> None:
    error = _error(_run(runtime, "echo 'not json' > result.json\n", {}, tmp_path))
    assert error["name"] == "ResultError"
    assert "result.json is not valid JSON" in error["message"]


def test_empty_result_json_falls_back_to_the_output(runtime: BashRuntime, tmp_path: Path) -> None:
    assert _run(runtime, ": > result.json\necho out\n", {}, tmp_path).result == "out"


# -- failures and logs ---------------------------------------------------------------------------


def test_non_zero_exit_is_an_execution_error(runtime: BashRuntime, tmp_path: Path) -> None:
    ran = _run(runtime, 'echo working\necho "disk full" >&2\nexit 7\n', {}, tmp_path)
    error = _error(ran)
    assert error["name"] == "ExecutionErr"
    assert error["message"] == "exit code 7; last output:\nworking\ndisk full"
    assert ran.logs == "working\ndisk full\n"


def test_the_script_runs_as_written_without_set_e(runtime: BashRuntime, tmp_path: Path) -> None:
    # Windmill prepends `set -e`; Gristmill runs the script as written.
    ran = _run(runtime, "false\necho still running\n", {}, tmp_path)
    assert ran.result == "still running"
    error = _error(_run(runtime, "set -e\nfalse\necho unreachable\n", {}, tmp_path))
    assert error["message"] == "exit code 1; the script printed nothing"


def test_an_error_object_in_result_json_is_kept(runtime: BashRuntime, tmp_path: Path) -> None:
    code = 'echo \'{"error": {"name": "Quota", "message": "over quota"}}\' > result.json\nexit 1\n'
    error = _error(_run(runtime, code, {}, tmp_path))
    assert error == {"name": "Quota", "message": "over quota"}


def test_failure_message_keeps_the_last_lines(runtime: BashRuntime, tmp_path: Path) -> None:
    code = "for i in $(seq 1 50); do echo line$i; done\nexit 2\n"
    message = _error(_run(runtime, code, {}, tmp_path))["message"]
    assert message.startswith("exit code 2; last output:\nline31\n")
    assert message.endswith("line50")


def test_killed_by_a_signal(runtime: BashRuntime, tmp_path: Path) -> None:
    error = _error(_run(runtime, "echo bye\nkill -9 $$\n", {}, tmp_path))
    assert error["message"] == "killed by signal 9; last output:\nbye"


def test_stderr_reaches_the_logs(runtime: BashRuntime, tmp_path: Path) -> None:
    ran = _run(runtime, "echo to-stdout\necho to-stderr >&2\necho done\n", {}, tmp_path)
    assert ran.logs == "to-stdout\nto-stderr\ndone\n"
    assert ran.result == "done"


def test_a_syntax_error_at_run_time_names_its_line(runtime: BashRuntime, tmp_path: Path) -> None:
    # tree-sitter reads a stray `fi` as a command, so the script is saved; Bash reports it.
    ran = _run(runtime, "echo a\nfi\n", {}, tmp_path)
    error = _error(ran)
    assert "line 2: syntax error near unexpected token `fi'" in error["message"]


def test_timeout_kills_the_script(runtime: BashRuntime, tmp_path: Path) -> None:
    ran = run_job(runtime, "echo start\nsleep 30\n", {}, tmp_path, timeout_s=0.5)
    error = _error(ran)
    assert "timed out" in error["message"]


def test_result_file_is_read_from_the_job_directory(runtime: BashRuntime, tmp_path: Path) -> None:
    code = 'mkdir -p sub && cd sub && echo \'{"where": "sub"}\' > result.json\necho "$PWD"\n'
    ran = _run(runtime, code, {}, tmp_path)
    # Only ./result.json of the job directory counts.
    assert ran.result == str(ran.job_dir / "sub")
    assert json.loads((ran.job_dir / "sub" / "result.json").read_text()) == {"where": "sub"}
