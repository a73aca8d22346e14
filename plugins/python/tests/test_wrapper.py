"""The Python job wrapper, run by the real interpreter exactly as the runtime runs it.

Each test writes a job directory (``main.py`` through ``PythonRuntime.prepare``, ``args.json``
as the worker does), runs the returned recipe, and reads the outcome with
``PythonRuntime.collect_result``. The schema comes from parsing the script, as for a stored
script, so the wrapper's argument conversions follow the real schema.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from gristmill.runtimes import JobContext, JobOutcome, ProcessExit
from gristmill.runtimes.schema import signature_to_schema
from gristmill.runtimes.signature import FUNCTION_CALL_DEFAULT
from gristmill_python.runtime import INTERPRETER_FLAGS, PythonRuntime, argument_spec
from gristmill_python.signature import parse_signature

RUNTIME = PythonRuntime()


@dataclass
class Run:
    outcome: JobOutcome
    returncode: int
    stdout: str
    stderr: str
    argv: list[str]

    @property
    def result(self) -> Any:
        return json.loads(self.outcome.result_json)

    @property
    def error(self) -> dict[str, Any]:
        return self.result["error"]


def run_job(
    tmp_path: Path,
    code: str,
    args: dict[str, Any] | None = None,
    *,
    schema: dict[str, Any] | str | None = "infer",
) -> Run:
    """Prepare, run and collect one job like a worker (no inherited environment but PATH)."""
    job_dir = tmp_path / f"job-{uuid4().hex[:8]}"
    job_dir.mkdir()
    args = args or {}
    (job_dir / "args.json").write_text(json.dumps(args), encoding="utf-8")
    if schema == "infer":
        schema = signature_to_schema(parse_signature(code))
    ctx = JobContext(
        id=uuid4(),
        workspace_id="main",
        language="python3",
        code=code,
        args=args,
        job_dir=job_dir,
        schema=schema,  # type: ignore[arg-type]
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
    )
    recipe = RUNTIME.prepare(ctx)
    done = subprocess.run(
        list(recipe.argv),
        env=dict(recipe.env),
        cwd=recipe.cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = done.stdout + done.stderr
    lines = [line for line in output.splitlines() if line.strip()]
    exit = ProcessExit(done.returncode, lines[-1] if lines else "", output[-4000:])
    outcome = RUNTIME.collect_result(ctx, exit)
    return Run(outcome, done.returncode, done.stdout, done.stderr, list(recipe.argv))


def ok(run: Run) -> Any:
    """The result of a successful run (failing the test with the output otherwise)."""
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.outcome.success, run.outcome.result_json
    return run.result


# ------------------------------------------------------------------------------ the recipe


def test_recipe_runs_the_wrapper_with_the_flags(tmp_path: Path) -> None:
    """The command is interpreter, -I -S -B -u -X utf8, the wrapper, then the spec if any."""
    run = run_job(tmp_path, "def main(x: int):\n    return x\n", {"x": 1})
    assert run.argv[: 2 + len(INTERPRETER_FLAGS)] == [
        RUNTIME.interpreter,
        *INTERPRETER_FLAGS,
        RUNTIME.wrapper,
    ]
    assert len(run.argv) == 2 + len(INTERPRETER_FLAGS)  # no spec needed for a plain int
    assert ok(run) == 1


def test_prepare_writes_main_and_passes_env(tmp_path: Path) -> None:
    """prepare writes main.py in the job dir and the env is exactly the job's."""
    job_dir = tmp_path / "j"
    job_dir.mkdir()
    code = "def main():\n    return 'é'\n"
    ctx = JobContext(
        id=uuid4(),
        workspace_id="main",
        language="python3",
        code=code,
        args={},
        job_dir=job_dir,
        env={"PATH": "/bin", "WM_JOB_ID": "x"},
    )
    recipe = RUNTIME.prepare(ctx)
    assert (job_dir / "main.py").read_text(encoding="utf-8") == code
    assert dict(recipe.env) == {"PATH": "/bin", "WM_JOB_ID": "x"}
    assert recipe.cwd == job_dir


# ------------------------------------------------------------------------------ arguments


def test_plain_result(tmp_path: Path) -> None:
    """main's return value is the job's result."""
    code = "def main(name: str, times: int = 2):\n    return {'msg': name * times}\n"
    assert ok(run_job(tmp_path, code, {"name": "ab"})) == {"msg": "abab"}


def test_bytes_argument_from_base64(tmp_path: Path) -> None:
    """A bytes parameter receives the decoded bytes of its base64 argument."""
    code = "def main(data: bytes):\n    return [type(data).__name__, data.decode()]\n"
    assert ok(run_job(tmp_path, code, {"data": "aGVsbG8gd29ybGQ="})) == ["bytes", "hello world"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-31T12:30:00Z", "2024-01-31T12:30:00+00:00"),
        ("2024-01-31T12:30:00+02:00", "2024-01-31T12:30:00+02:00"),
        ("2024-01-31T12:30:00", "2024-01-31T12:30:00"),
    ],
)
def test_datetime_argument_from_iso(tmp_path: Path, text: str, expected: str) -> None:
    """A datetime parameter receives a datetime, a trailing Z meaning UTC."""
    code = (
        "from datetime import datetime\n"
        "def main(when: datetime):\n"
        "    return [type(when).__name__, when.isoformat()]\n"
    )
    assert ok(run_job(tmp_path, code, {"when": text})) == ["datetime", expected]


def test_date_argument(tmp_path: Path) -> None:
    """A date parameter receives a date."""
    code = (
        "import datetime\n"
        "def main(day: datetime.date):\n"
        "    return [type(day).__name__, day.year, day.month, day.day]\n"
    )
    assert ok(run_job(tmp_path, code, {"day": "2024-02-29"})) == ["date", 2024, 2, 29]


def test_null_for_parameter_with_default_uses_default(tmp_path: Path) -> None:
    """null for a parameter whose default is not None means "not given": the default applies."""
    code = "def main(n: int = 7, s: str = 'x'):\n    return [n, s]\n"
    assert ok(run_job(tmp_path, code, {"n": None, "s": None})) == [7, "x"]


def test_null_for_optional_without_default_stays_none(tmp_path: Path) -> None:
    """null for an Optional parameter defaulting to None is passed as None."""
    code = (
        "from typing import Optional\n"
        "def main(a: Optional[int] = None, b: Optional[str] = None):\n"
        "    return [a is None, b]\n"
    )
    assert ok(run_job(tmp_path, code, {"a": None, "b": None})) == [True, None]


def test_null_typed_argument_is_not_converted(tmp_path: Path) -> None:
    """null for an optional datetime stays None (no conversion attempted)."""
    code = (
        "from datetime import datetime\n"
        "from typing import Optional\n"
        "def main(when: Optional[datetime] = None):\n"
        "    return when is None\n"
    )
    assert ok(run_job(tmp_path, code, {"when": None})) is True


def test_function_call_default_is_dropped(tmp_path: Path) -> None:
    """An argument equal to the "<function call>" marker lets the code's default run."""
    code = (
        "import datetime\n"
        "def main(when: datetime.datetime = datetime.datetime(2000, 1, 2), n: int = len('abc')):\n"
        "    return [when.isoformat(), n]\n"
    )
    args = {"when": FUNCTION_CALL_DEFAULT, "n": FUNCTION_CALL_DEFAULT}
    assert ok(run_job(tmp_path, code, args)) == ["2000-01-02T00:00:00", 3]


def test_extra_keyword_reaches_kwargs(tmp_path: Path) -> None:
    """Arguments the signature does not name reach **kwargs."""
    code = "def main(a: int, **kwargs):\n    return {'a': a, 'kw': kwargs}\n"
    assert ok(run_job(tmp_path, code, {"a": 1, "b": [2], "c": "3"})) == {
        "a": 1,
        "kw": {"b": [2], "c": "3"},
    }


def test_async_main(tmp_path: Path) -> None:
    """An async main is awaited."""
    code = "import asyncio\nasync def main(x: int):\n    await asyncio.sleep(0)\n    return x + 1\n"
    assert ok(run_job(tmp_path, code, {"x": 41})) == 42


def test_no_schema_no_conversion(tmp_path: Path) -> None:
    """Without a schema, arguments are passed as JSON gives them."""
    code = "def main(data: bytes = b''):\n    return type(data).__name__\n"
    run = run_job(tmp_path, code, {"data": "aGk="}, schema=None)
    assert ok(run) == "str"


# ------------------------------------------------------------------------------ results


def test_result_conversions(tmp_path: Path) -> None:
    """Values JSON cannot hold are converted: bytes, dates, sets, tuples, dataclasses, ..."""
    code = """\
import dataclasses
import datetime
import decimal


@dataclasses.dataclass
class Point:
    x: int
    y: float


class Opaque:
    def __str__(self):
        return "opaque!"


def main():
    return {
        "bytes": b"hi",
        "datetime": datetime.datetime(2024, 1, 31, 12, 0, tzinfo=datetime.timezone.utc),
        "date": datetime.date(2024, 1, 31),
        "set": {3},
        "frozenset": frozenset(["a"]),
        "tuple": (1, "two"),
        "dataclass": Point(1, 2.5),
        "decimal": decimal.Decimal("1.25"),
        "opaque": Opaque(),
    }
"""
    assert ok(run_job(tmp_path, code)) == {
        "bytes": "aGk=",
        "datetime": "2024-01-31T12:00:00+00:00",
        "date": "2024-01-31",
        "set": [3],
        "frozenset": ["a"],
        "tuple": [1, "two"],
        "dataclass": {"x": 1, "y": 2.5},
        "decimal": 1.25,
        "opaque": "opaque!",
    }


def test_non_finite_floats_become_null(tmp_path: Path) -> None:
    """NaN and infinities (not JSON) become null, wherever they are."""
    code = (
        "def main():\n"
        "    nan, inf = float('nan'), float('inf')\n"
        "    return {'nan': nan, 'inf': inf, 'neg': -inf, 'ok': 1.5, 'nested': [nan, (inf, 2)]}\n"
    )
    run = run_job(tmp_path, code)
    assert ok(run) == {
        "nan": None,
        "inf": None,
        "neg": None,
        "ok": 1.5,
        "nested": [None, [None, 2]],
    }
    # The stored text is strict JSON.
    assert "NaN" not in run.outcome.result_json
    assert "Infinity" not in run.outcome.result_json


def test_top_level_nan_is_null(tmp_path: Path) -> None:
    """A NaN result is null."""
    assert ok(run_job(tmp_path, "def main():\n    return float('nan')\n")) is None


def test_none_result_is_null(tmp_path: Path) -> None:
    """A main returning nothing has the JSON result null."""
    run = run_job(tmp_path, "def main():\n    pass\n")
    assert ok(run) is None
    assert run.outcome.result_json == "null"


def test_nul_character_is_stored_without_escape(tmp_path: Path) -> None:
    """A NUL in the result (which jsonb refuses) is replaced, leaving no \\u0000 escape."""
    run = run_job(tmp_path, "def main():\n    return {'s': 'a\\x00b'}\n")
    assert "\\u0000" not in run.outcome.result_json
    assert ok(run) == {"s": "a\ufffdb"}


def test_backslash_u0000_text_is_kept(tmp_path: Path) -> None:
    """The six characters backslash-u-0-0-0-0 (no NUL at all) come back unchanged."""
    code = "def main():\n    return 'C:\\\\u0000dir'\n"
    assert ok(run_job(tmp_path, code)) == "C:\\u0000dir"


def test_result_written_in_job_dir_after_chdir(tmp_path: Path) -> None:
    """A script that changes directory still delivers its result."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = f"import os\ndef main():\n    os.chdir({str(elsewhere)!r})\n    return 42\n"
    run = run_job(tmp_path, code)
    assert ok(run) == 42
    assert not (elsewhere / "result.json").exists()


def test_unicode_result(tmp_path: Path) -> None:
    """Non-ASCII text survives the round trip."""
    assert ok(run_job(tmp_path, "def main():\n    return 'héllo ✓ 日本'\n")) == "héllo ✓ 日本"


# ------------------------------------------------------------------------------ errors


def test_exception_is_error_object(tmp_path: Path) -> None:
    """An exception: exit 1 and {"error": {name, message, stack}}; the stack starts in main.py."""
    code = "def helper():\n    raise ValueError('bad value 42')\n\ndef main():\n    helper()\n"
    run = run_job(tmp_path, code)
    assert run.returncode == 1
    assert run.outcome.success is False
    error = run.error
    assert set(error) == {"name", "message", "stack"}
    assert error["name"] == "ValueError"
    assert error["message"] == "bad value 42"
    stack = error["stack"]
    first_frame = next(line for line in stack.splitlines() if line.strip().startswith("File "))
    assert "main.py" in first_frame
    assert "wrapper.py" not in stack
    assert "in helper" in stack
    assert stack.rstrip().endswith("ValueError: bad value 42")


def test_exception_at_import_time(tmp_path: Path) -> None:
    """An exception raised while main.py is imported is reported the same way."""
    code = "raise RuntimeError('broken at import')\n\ndef main():\n    return 1\n"
    run = run_job(tmp_path, code)
    assert run.returncode == 1
    assert run.error["name"] == "RuntimeError"
    assert run.error["message"] == "broken at import"
    assert "main.py" in run.error["stack"]
    assert "wrapper.py" not in run.error["stack"]


def test_sys_exit_inside_main(tmp_path: Path) -> None:
    """sys.exit(3) inside main is a failed job whose message gives the status."""
    run = run_job(tmp_path, "import sys\ndef main():\n    sys.exit(3)\n")
    assert run.returncode == 1
    assert run.error["name"] == "SystemExit"
    assert run.error["message"] == "the script exited with status 3"


def test_sys_exit_zero_is_a_normal_end(tmp_path: Path) -> None:
    """sys.exit() and sys.exit(0) end the job successfully, without a result."""
    for code in (
        "import sys\ndef main():\n    print('x')\n    sys.exit(0)\n",
        "import sys\ndef main():\n    sys.exit()\n",
    ):
        run = run_job(tmp_path, code)
        assert run.returncode == 0 and run.outcome.success
        assert run.result is None


def test_exit_builtin_is_installed(tmp_path: Path) -> None:
    """exit() works although jobs run without the site module (-S): it is not a NameError."""
    run = run_job(tmp_path, "def main():\n    exit(4)\n")
    assert run.returncode == 1
    assert run.error["name"] == "SystemExit"
    assert run.error["message"] == "the script exited with status 4"
    run = run_job(tmp_path, "def main():\n    quit(2)\n")
    assert run.error["name"] == "SystemExit"


def test_stdout_and_stderr_are_output(tmp_path: Path) -> None:
    """What main prints on stdout and stderr is the process's output."""
    code = (
        "import sys\n"
        "def main():\n"
        "    print('to stdout')\n"
        "    print('to stderr', file=sys.stderr)\n"
        "    return 1\n"
    )
    run = run_job(tmp_path, code)
    assert ok(run) == 1
    assert "to stdout" in run.stdout
    assert "to stderr" in run.stderr


def test_output_before_error_is_kept(tmp_path: Path) -> None:
    """Output printed before an exception is still in the output."""
    run = run_job(tmp_path, "def main():\n    print('step 1')\n    1 / 0\n")
    assert "step 1" in run.stdout
    assert run.error["name"] == "ZeroDivisionError"


def test_only_standard_library(tmp_path: Path) -> None:
    """Jobs see the standard library only (-I -S): pluggy, installed here, is not importable."""
    run = run_job(tmp_path, "import pluggy\n\ndef main():\n    return 1\n")
    assert run.returncode == 1
    assert run.error["name"] == "ModuleNotFoundError"
    assert "pluggy" in run.error["message"]


def test_environment_is_the_recipe_env(tmp_path: Path) -> None:
    """The job sees only the environment of its recipe."""
    code = "import os\ndef main():\n    return sorted(os.environ)\n"
    env = ok(run_job(tmp_path, code))
    assert "PATH" in env
    assert "VIRTUAL_ENV" not in env
    assert "GRISTMILL_DATA_DIR" not in env


def test_missing_main(tmp_path: Path) -> None:
    """A script without main fails with an AttributeError error object."""
    run = run_job(tmp_path, "x = 1\n", schema=None)
    assert run.returncode == 1
    assert run.error["name"] == "AttributeError"
    assert "main" in run.error["message"]


def test_wrong_argument_is_type_error(tmp_path: Path) -> None:
    """An argument main does not take is a TypeError from the call."""
    run = run_job(tmp_path, "def main(a):\n    return a\n", {"a": 1, "b": 2}, schema=None)
    assert run.error["name"] == "TypeError"
    assert "'b'" in run.error["message"]


# ------------------------------------------------------------------------------ the spec


SPEC_SCRIPT = """\
import datetime
from typing import Optional


def main(
    data: bytes,
    when: datetime.datetime,
    day: datetime.date,
    n: int = 3,
    label: str = "x",
    maybe: Optional[int] = None,
    flag: bool = False,
    blob: bytes = b"",
    plain: str = None,
):
    return 1
"""


def test_argument_spec_from_parsed_schema() -> None:
    """argument_spec of a real script's schema: conversions, and dropping null for defaults."""
    schema = signature_to_schema(parse_signature(SPEC_SCRIPT))
    assert argument_spec(schema) == {
        "data": ["bytes", False],
        "when": ["datetime", False],
        "day": ["date", False],
        "n": [None, True],
        "label": [None, True],
        "flag": [None, True],
        "blob": ["bytes", True],
    }


def test_argument_spec_of_nothing() -> None:
    """No schema, no properties, or odd properties: an empty spec."""
    assert argument_spec(None) == {}
    assert argument_spec({}) == {}
    assert argument_spec({"properties": None}) == {}
    assert argument_spec({"properties": {"x": "not a dict", "y": {"type": "integer"}}}) == {}


def test_spec_script_runs(tmp_path: Path) -> None:
    """The spec script runs with every conversion applied and defaults for nulls."""
    code = SPEC_SCRIPT.replace(
        "    return 1\n",
        "    return [type(data).__name__, when.tzinfo is not None, day.isoformat(), n, label,\n"
        "            maybe, flag, blob, plain]\n",
    )
    args = {
        "data": "AAE=",
        "when": "2024-01-31T00:00:00Z",
        "day": "2024-01-31",
        "n": None,
        "label": None,
        "maybe": None,
        "flag": None,
        "blob": None,
        "plain": None,
    }
    result = ok(run_job(tmp_path, code, args))
    assert result == ["bytes", True, "2024-01-31", 3, "x", None, False, "", None]


def test_large_integers_and_floats_exact(tmp_path: Path) -> None:
    """Big integers and floats pass through exactly."""
    code = "def main(a: int, b: float):\n    return [a * 2, b]\n"
    result = ok(run_job(tmp_path, code, {"a": 2**60, "b": 0.1}))
    assert result[0] == 2**61
    assert math.isclose(result[1], 0.1) and result[1] == 0.1
