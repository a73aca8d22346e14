"""Golden tests for the Bash argument parser and its syntax check.

The conformance kit (``test_contract.py``) checks every ``fixtures/signatures/<case>.sh``
against its golden file:
``<case>.json`` (``{"signature", "schema"}``) for a script that parses, ``<case>.error.json``
(``{"line", "column", "message_contains"}``) for one that must be refused there.

To regenerate after an intended change::

    GRISTMILL_UPDATE_GOLDEN=1 uv run pytest plugins/bash/tests/test_contract.py

then read the diff of every rewritten file.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from gristmill.runtimes import ScriptError
from gristmill.runtimes.signature import STR
from gristmill.testing.contract import require_toolchain
from gristmill_bash.runtime import BashRuntime
from gristmill_bash.signature import arg_lines, signature_from_lines

FIXTURES = Path(__file__).parent / "fixtures" / "signatures"
CASES = sorted(p.stem for p in FIXTURES.glob("*.sh"))
# Refused for what they mean, not for their syntax.
NOT_SYNTAX_ERRORS = {"error_duplicate_name"}


def _runtime() -> BashRuntime:
    return BashRuntime()


def _no_bash() -> BashRuntime:
    # Bash is not on every API machine: then tree-sitter alone decides.
    runtime = BashRuntime(bash="/nonexistent/bash")
    assert not runtime.toolchain().available
    return runtime


def _read(case: str) -> str:
    return (FIXTURES / f"{case}.sh").read_text(encoding="utf-8")


@pytest.mark.parametrize("case", CASES)
def test_fixture_agrees_with_bash(case: str) -> None:
    """A fixture accepted is valid Bash; one refused for its syntax is not."""
    runtime = _runtime()
    require_toolchain(runtime)
    done = subprocess.run(
        [runtime.bash or "bash", "-O", "extglob", "-n", str(FIXTURES / f"{case}.sh")],
        capture_output=True,
        env={"LC_ALL": "C"},
    )
    refused = (FIXTURES / f"{case}.error.json").exists() and case not in NOT_SYNTAX_ERRORS
    assert (done.returncode != 0) == refused, done.stderr


# -- the rules, one at a time -------------------------------------------------------------------


def _args(source: str) -> list[tuple[str, Any, bool]]:
    sig = _runtime().parse_signature(source)
    assert all(a.typ == STR for a in sig.args)
    return [(a.name, a.default, a.has_default) for a in sig.args]


def test_the_three_forms_and_defaults() -> None:
    assert _args('a="$1"\nb="${2}"\nc="${3:-x y}"\nd="${4:-}"\n') == [
        ("a", None, False),
        ("b", None, False),
        ("c", "x y", True),
        ("d", "", True),
    ]


def test_arguments_stop_at_the_first_gap() -> None:
    assert _args('a="$1"\nc="$3"\n') == [("a", None, False)]
    assert _args('b="$2"\n') == []


def test_order_is_by_index_not_by_line() -> None:
    assert _args('second="$2"\nfirst="$1"\n') == [("first", None, False), ("second", None, False)]


def test_here_document_lines_are_not_arguments() -> None:
    # Windmill would take `fake`: its rule reads lines, not Bash.
    assert _args('cat <<EOF\nfake="$1"\nEOF\nreal="$1"\n') == [("real", None, False)]


def test_function_body_at_column_zero_counts_like_windmill() -> None:
    assert _args('f() {\ninner="$1"\n}\n') == [("inner", None, False)]


def test_assignment_rows_fall_back_to_lines_when_tree_sitter_fails() -> None:
    # `for x do` is valid Bash that tree-sitter-bash does not parse; the line rule decides.
    source = 'name="$1"\nfor x do echo "$x"; done\n'
    assert [line.name for line in arg_lines(source)] == ["name"]
    assert signature_from_lines(arg_lines(source)).args[0].name == "name"


def test_valid_bash_tree_sitter_misreads_is_accepted() -> None:
    require_toolchain(_runtime())
    # Each is valid Bash (bash -n agrees) on which tree-sitter-bash reports an error.
    for source in (
        'name="$1"\nfor file do\n  echo "$file"\ndone\n',
        "shopt -s extglob\nls *.@(jpg|png)\n",
        "x=abc\necho ${x:${#x}-1:1}\n",
    ):
        assert _runtime().parse_signature(source).args is not None


def test_syntax_error_messages_name_the_construct() -> None:
    cases = [
        ("if true; then\n  echo a\n", 1, 1, "this `if` is never closed: `fi` is missing"),
        ("while true; do\n  echo a\n", 1, 1, "is never closed: `done` is missing"),
        ('echo "a\n', 1, 6, 'the " here has no closing "'),
        ("echo 'a\n", 1, 6, "the ' here has no closing '"),
    ]
    for source, line, column, message in cases:
        with pytest.raises(ScriptError) as info:
            _runtime().parse_signature(source)
        assert (info.value.line, info.value.column) == (line, column), info.value
        assert message in info.value.message


def test_bash_explains_the_error_when_available() -> None:
    require_toolchain(_runtime())
    with pytest.raises(ScriptError) as info:
        _runtime().parse_signature("echo start\nif [ 1 ]; then\n  echo a\n")
    assert info.value.line == 2
    assert "(bash: line 4: syntax error: unexpected end of file)" in info.value.message


def test_unterminated_here_document_is_accepted() -> None:
    # Bash runs it to the end of the file (with a warning).
    assert _args('x="$1"\ncat <<EOF\nno end\n') == [("x", None, False)]


def test_duplicate_names_are_refused() -> None:
    with pytest.raises(ScriptError, match=r'"v" is both \$1 and \$2') as info:
        _runtime().parse_signature('v="$1"\nv="$2"\n')
    assert (info.value.line, info.value.column) == (2, 1)
