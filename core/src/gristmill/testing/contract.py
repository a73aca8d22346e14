"""The conformance kit every runtime's tests subclass.

```python
from pathlib import Path
from gristmill.testing.contract import RuntimeContract
from ruby_runtime import RubyRuntime  # your plugin's runtime class

class TestRubyContract(RuntimeContract):
    runtime_factory = RubyRuntime
    fixtures = Path(__file__).parent / "fixtures" / "signatures"
    hello_script = "def main(name, count = 2)\\n  { 'name' => name, 'count' => count }\\nend\\n"
    hello_args = {"name": "Ada", "count": 3}
    hello_result = {"name": "Ada", "count": 3}
    failing_script = "def main()\\n  raise 'boom'\\nend\\n"
    failing_message = "boom"
    bad_script = "def main(\\n"
```

Golden fixtures are pairs in ``fixtures``: ``<case><ext>`` (the script) with ``<case>.json``
(``{"signature": ..., "schema": ...}``), or with ``<case>.error.json`` (``{"line": L,
"message_contains": "..."}``, ``column`` optional) for a script the runtime must refuse. Set
``GRISTMILL_UPDATE_GOLDEN=1`` to (re)write the ``.json`` files from the parser's output, then
read every change.

Jobs run for real (:func:`gristmill.testing.runner.run_job`), without a database. A test that
needs the runtime's toolchain is skipped with the toolchain's own message when it is missing,
except when ``CI`` is set: there a missing toolchain fails the test.
"""

from __future__ import annotations

import json
import os
import random
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest

from gristmill.runtimes import DependencyLocking, Recipe, Runtime, ScriptError, Toolchain
from gristmill.runtimes.schema import signature_to_schema
from gristmill.runtimes.signature import signature_from_json, signature_to_json
from gristmill.sandbox import RunPolicy
from gristmill.testing.runner import make_context, run_job

__all__ = ["RuntimeContract", "require_toolchain"]


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def require_toolchain(runtime: Runtime) -> Toolchain:
    """The runtime's toolchain; skip the test without it (fail it in CI)."""
    toolchain = runtime.toolchain()
    if not toolchain.available:
        message = f"{runtime.name} toolchain missing: {toolchain.message}"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI must install it)")
        pytest.skip(message)
    return toolchain


class RuntimeContract:
    """Conformance tests for one runtime; set the class attributes in a subclass."""

    #: Makes the runtime under test (a class or a function taking no argument). Typed
    #: loosely: a function stored on a class would otherwise read as a method.
    runtime_factory: ClassVar[Any]
    #: The folder of golden signature fixtures.
    fixtures: ClassVar[Path]
    #: At least this many fixtures (a runtime's rules deserve cases).
    min_fixtures: ClassVar[int] = 6
    #: A script whose result is ``hello_result`` when run with ``hello_args``.
    hello_script: ClassVar[str]
    hello_args: ClassVar[dict[str, Any]]
    hello_result: ClassVar[Any]
    #: A script that fails; its error message contains ``failing_message``.
    failing_script: ClassVar[str]
    failing_message: ClassVar[str]
    #: A script the runtime must refuse with a position (a syntax error).
    bad_script: ClassVar[str]
    #: What is inserted at random into the fixtures to make broken scripts: the language's
    #: brackets, quotes and keywords.
    mangle_pieces: ClassVar[tuple[str, ...]] = tuple("()[]{}\"'\n\t ")
    mangle_rounds: ClassVar[int] = 300
    #: A refusal of a mangled script must give a line and a column.
    mangle_position_required: ClassVar[bool] = False
    #: A refusal that gives a line must give a column too.
    mangle_column_with_line: ClassVar[bool] = True
    #: For a runtime with dependencies (:class:`DependencyLocking`): a script that imports a
    #: package. ``None`` for a runtime whose scripts use the standard library only.
    dependency_script: ClassVar[str | None] = None

    def make_runtime(self) -> Runtime:
        factory: Callable[[], Runtime] = type(self).runtime_factory
        return factory()

    # -- identity and registration ---------------------------------------------------

    def test_contract_identity(self) -> None:
        runtime = self.make_runtime()
        assert isinstance(runtime, Runtime)
        assert runtime.name and runtime.name.strip() == runtime.name and " " not in runtime.name
        assert runtime.display_name
        assert all(isinstance(a, str) and a for a in runtime.aliases)
        assert runtime.file_extensions
        assert all(e.startswith(".") for e in runtime.file_extensions)

    def test_contract_toolchain_is_reported(self) -> None:
        toolchain = self.make_runtime().toolchain()
        assert isinstance(toolchain, Toolchain)
        if not toolchain.available:
            assert toolchain.message, "an unavailable toolchain must say what is missing"

    # -- signatures -------------------------------------------------------------------

    def _cases(self) -> list[Path]:
        return [
            p
            for p in sorted(self.fixtures.iterdir())
            if p.is_file() and not p.name.endswith(".json")
        ]

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        # One test per fixture: a failure names its case.
        if "golden_case" in metafunc.fixturenames:
            cases = self._cases()
            metafunc.parametrize("golden_case", cases, ids=[p.name for p in cases])

    def test_contract_enough_fixtures_each_with_one_golden_file(self) -> None:
        cases = self._cases()
        assert len(cases) >= self.min_fixtures, (
            f"{len(cases)} fixtures in {self.fixtures}, at least {self.min_fixtures} expected"
        )
        for script in cases:
            stem = script.name.removesuffix(script.suffix)
            goldens = [script.with_name(f"{stem}{end}") for end in (".json", ".error.json")]
            assert sum(g.exists() for g in goldens) == 1, (
                f"{script.name}: needs exactly one of {stem}.json and {stem}.error.json"
            )

    def test_contract_golden_signature(self, golden_case: Path) -> None:
        """The fixture parses to its golden signature and schema, or is refused as its
        ``.error.json`` says."""
        runtime = self.make_runtime()
        update = bool(os.environ.get("GRISTMILL_UPDATE_GOLDEN"))
        stem = golden_case.name.removesuffix(golden_case.suffix)
        source = golden_case.read_text(encoding="utf-8")
        error_file = golden_case.with_name(f"{stem}.error.json")
        golden_file = golden_case.with_name(f"{stem}.json")
        if error_file.exists():
            expected = json.loads(error_file.read_text(encoding="utf-8"))
            with pytest.raises(ScriptError) as caught:
                runtime.parse_signature(source)
            error = caught.value
            if update:
                kept = expected.get("message_contains", "")
                _write_json(
                    error_file,
                    {
                        "line": error.line,
                        "column": error.column,
                        "message_contains": kept if kept and kept in str(error) else error.message,
                    },
                )
                return
            assert error.line == expected["line"], str(error)
            if "column" in expected:
                assert error.column == expected["column"], str(error)
            assert expected["message_contains"] in str(error)
            return
        signature = runtime.parse_signature(source)
        actual = {
            "signature": signature_to_json(signature),
            "schema": signature_to_schema(signature),
        }
        if update:
            _write_json(golden_file, actual)
            return
        assert golden_file.exists(), f"no {golden_file.name}: run with GRISTMILL_UPDATE_GOLDEN=1"
        expected = json.loads(golden_file.read_text(encoding="utf-8"))
        assert actual["signature"] == expected["signature"]
        assert actual["schema"] == expected["schema"]
        # The two halves of a golden file cannot drift apart.
        assert signature_to_schema(signature_from_json(expected["signature"])) == expected["schema"]

    def make_parsing_runtime(self) -> Runtime:
        """The runtime the parser checks use (one that needs no process to parse, say)."""
        return self.make_runtime()

    def test_contract_parser_is_safe_across_threads(self) -> None:
        """The API parses in several threads at once: one shared parser must not mix them."""
        runtime = self.make_parsing_runtime()
        accepted = [
            p
            for p in self._cases()
            if not p.with_name(p.name.removesuffix(p.suffix) + ".error.json").exists()
        ]
        source = accepted[0].read_text(encoding="utf-8")
        expected = runtime.parse_signature(source)
        results: list[bool] = []

        def work() -> None:
            results.extend(runtime.parse_signature(source) == expected for _ in range(50))

        threads = [threading.Thread(target=work) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert results == [True] * 200

    def test_contract_mangled_scripts_only_raise_script_error(self) -> None:
        """Whatever a user types, the parser answers with a signature or a ScriptError."""
        runtime = self.make_parsing_runtime()
        rnd = random.Random(20240611)
        sources = [p.read_text(encoding="utf-8") for p in self._cases()]
        for _ in range(self.mangle_rounds):
            source = rnd.choice(sources)
            for _ in range(rnd.randint(1, 3)):
                at = rnd.randrange(len(source) + 1)
                if rnd.random() < 0.5:
                    source = source[:at] + rnd.choice(self.mangle_pieces) + source[at:]
                else:
                    source = source[:at] + source[at + rnd.randint(1, 5) :]
            try:
                runtime.parse_signature(source)
            except ScriptError as err:
                if self.mangle_position_required:
                    assert err.line is not None and err.column is not None, err
                if err.line is not None:
                    assert err.line >= 1, err
                    if self.mangle_column_with_line:
                        assert (err.column or 0) >= 1, err
                assert err.column is None or err.column >= 1, err

    def test_contract_template_parses(self) -> None:
        runtime = self.make_runtime()
        runtime.parse_signature(runtime.template())

    def test_contract_bad_script_is_refused_with_a_position(self) -> None:
        with pytest.raises(ScriptError) as caught:
            self.make_runtime().parse_signature(self.bad_script)
        assert caught.value.line is not None and caught.value.line >= 1
        assert caught.value.message

    # -- recipes and jobs ---------------------------------------------------------------

    def test_contract_recipes_are_valid(self, tmp_path: Path) -> None:
        runtime = self.make_runtime()
        ctx = make_context(runtime, self.hello_script, self.hello_args, tmp_path)
        prepared = runtime.prepare(ctx)
        steps = [prepared] if isinstance(prepared, Recipe) else list(prepared)
        assert steps, "prepare returned no recipe"
        phases = [step.phase for step in steps]
        assert len(set(phases)) == len(phases), f"phases repeat: {phases}"
        assert phases[-1] == "run", "the last step is the run"
        for step in steps:
            assert step.argv and all(isinstance(a, str) for a in step.argv)
            assert all(isinstance(k, str) and isinstance(v, str) for k, v in step.env.items())
            for key, value in ctx.env.items():
                assert step.env.get(key) == value, f"{step.phase} drops job variable {key}"
            assert Path(step.cwd).is_dir()
        if runtime.toolchain().available:
            # Only the first step's program must exist now: a later one may run what an
            # earlier step builds (a compiled binary).
            program = steps[0].argv[0]
            assert os.path.isabs(program) and os.access(program, os.X_OK), (
                f"{steps[0].phase}: {program!r} must be an absolute path to an executable"
            )
            for step in steps[1:]:
                assert os.path.isabs(step.argv[0]), f"{step.phase}: argv[0] must be absolute"

    def test_contract_hello_world_runs(self, tmp_path: Path) -> None:
        runtime = self.make_runtime()
        require_toolchain(runtime)
        ran = run_job(runtime, self.hello_script, self.hello_args, tmp_path)
        assert ran.outcome.success, f"{ran.outcome.result_json}\nlogs:\n{ran.logs}"
        assert ran.result == self.hello_result

    def test_contract_lock_inputs_are_deterministic(self) -> None:
        """A runtime with dependencies reports the same inputs for the same script (they key
        the resolution cache), and none for a script without package imports."""
        runtime = self.make_runtime()
        if not isinstance(runtime, DependencyLocking):
            assert self.dependency_script is None, (
                "dependency_script is set but the runtime does not implement DependencyLocking"
            )
            return
        assert self.dependency_script is not None, "set dependency_script for this runtime"
        assert runtime.lock_inputs(self.hello_script) is None
        first = runtime.lock_inputs(self.dependency_script)
        assert isinstance(first, str) and first.strip()
        assert all(runtime.lock_inputs(self.dependency_script) == first for _ in range(3))

    def test_contract_hello_world_runs_in_the_sandbox(
        self, sandbox_policy: RunPolicy, sandbox_root: Path
    ) -> None:
        """The runtime's recipes declare every mount they need: the hello world runs in the
        sandbox as a worker runs it, once under each backend (bwrap, nsjail)."""
        runtime = self.make_runtime()
        require_toolchain(runtime)
        ran = run_job(
            runtime, self.hello_script, self.hello_args, sandbox_root, policy=sandbox_policy
        )
        assert ran.outcome.success, f"{ran.outcome.result_json}\nlogs:\n{ran.logs}"
        assert ran.result == self.hello_result

    def test_contract_errors_come_back_in_the_error_shape(self, tmp_path: Path) -> None:
        runtime = self.make_runtime()
        require_toolchain(runtime)
        ran = run_job(runtime, self.failing_script, {}, tmp_path)
        assert not ran.outcome.success
        error = ran.result["error"]
        assert isinstance(error["name"], str) and error["name"]
        assert self.failing_message in error["message"], error
        assert isinstance(error.get("stack", ""), str)
