"""Golden tests for the Python signature parser.

The conformance kit (``test_contract.py``) checks every ``fixtures/signatures/<case>.py``
against its golden file:

* ``<case>.json`` holds ``{"signature": signature_to_json(sig), "schema":
  signature_to_schema(sig)}`` for a script that parses;
* ``<case>.error.json`` holds ``{"line": L, "column": C, "message_contains": "..."}`` for a
  script that must be rejected with a :class:`ScriptError` at that 1-based position.

Golden files are written by hand-checking the parser's output against the rules in
``gristmill_python.signature``. To regenerate them after an intended change, run::

    GRISTMILL_UPDATE_GOLDEN=1 uv run pytest plugins/python/tests/test_contract.py

then review the diff of every rewritten file before committing (an error case keeps its
``message_contains`` when the new message still contains it).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from gristmill.runtimes import ScriptError
from gristmill.runtimes.schema import signature_to_schema
from gristmill.runtimes.signature import (
    ANY,
    FUNCTION_CALL_DEFAULT,
    INT,
    ListType,
    ObjectType,
    Prop,
    StrType,
    signature_to_json,
)
from gristmill_python.signature import parse_signature

FIXTURES = Path(__file__).parent / "fixtures" / "signatures"
CASES = sorted(p.stem for p in FIXTURES.glob("*.py"))
# Fixtures using syntax newer than the interpreter running the tests (PEP 695 needs 3.12):
# tree-sitter parses them, CPython cannot cross-check them.
NEEDS_PY312 = {"modern_syntax"}
# Error cases that are valid Python: the script is rejected for lacking a top-level main.
NOT_SYNTAX_ERRORS = {"error_no_main", "error_main_in_class"}


def _read(case: str) -> str:
    # ``utf-8`` and not ``utf-8-sig``: the BOM case checks the parser strips it itself.
    return (FIXTURES / f"{case}.py").read_text(encoding="utf-8")


# Fixtures in syntax newer than this interpreter cannot be checked by it: they are left out
# (not skipped) where the interpreter is older; the parser itself is still tested on them.
CPYTHON_CASES = [c for c in CASES if c not in NEEDS_PY312 or sys.version_info >= (3, 12)]


@pytest.mark.parametrize("case", CPYTHON_CASES)
def test_fixture_agrees_with_cpython(case: str) -> None:
    """A fixture the parser accepts is valid Python; one it rejects for syntax is not."""
    source = _read(case).removeprefix("\ufeff")
    is_syntax_case = (FIXTURES / f"{case}.error.json").exists() and case not in NOT_SYNTAX_ERRORS
    if is_syntax_case:
        with pytest.raises(SyntaxError):
            compile(source, f"{case}.py", "exec")
    else:
        compile(source, f"{case}.py", "exec")


# -- direct checks of the rules most likely to regress -----------------------------------------


def _args(source: str) -> dict[str, Any]:
    return {a["name"]: a for a in signature_to_json(parse_signature(source))["args"]}


def test_windmill_example() -> None:
    sig = parse_signature(
        "def main(test1: str, name: datetime.datetime = datetime.now(), "
        'byte: bytes = bytes(1), f = "wewe", g = 21, h = [1,2], i = True):\n    pass\n'
    )
    schema = signature_to_schema(sig)
    assert schema["required"] == ["test1"]
    args = {a.name: a for a in sig.args}
    assert args["name"].default == FUNCTION_CALL_DEFAULT
    assert args["byte"].default == FUNCTION_CALL_DEFAULT
    assert args["h"].typ == ListType(INT)
    assert schema["properties"]["h"]["default"] == [1, 2]
    assert schema["properties"]["i"] == {"type": "boolean", "description": "", "default": True}


def test_optional_is_not_required() -> None:
    source = "def main(a: str, b: Optional[str], c: str | None):\n    pass\n"
    assert signature_to_schema(parse_signature(source))["required"] == ["a"]
    args = _args(source)
    assert (args["b"]["has_default"], args["b"]["default"]) == (True, None)


@pytest.mark.parametrize(
    ("source", "line", "column", "message"),
    [
        # The column counts characters, not UTF-8 bytes.
        ("def main(é: int, ö str): pass\n", 1, 18, "invalid syntax near 'ö str'"),
        ("def main(a: int\n    return a\n", 1, 9, "'(' was never closed"),
        ("def main(x)\n    return x\n", 1, 12, "expected ':'"),
        ("def main():\n    pass\n\n\nclass A:\n", 5, 9, "expected an indented block"),
        ("def main(): pass\nx = [1, 2\n", 2, 5, "'[' was never closed"),
        ("def main(): pass\ny = 'abc\n", 2, 5, "unterminated string literal"),
    ],
)
def test_syntax_error_position(source: str, line: int, column: int, message: str) -> None:
    with pytest.raises(ScriptError) as info:
        parse_signature(source)
    assert (info.value.line, info.value.column) == (line, column)
    assert message in info.value.message
    assert f"line {line}, column {column}" in str(info.value)


def test_missing_main_message() -> None:
    with pytest.raises(ScriptError, match=r"top-level `def main\(\.\.\.\)`") as info:
        parse_signature("import os\n")
    assert info.value.line is None


def test_valid_modern_syntax_is_accepted() -> None:
    source = (
        "type Alias = list[int]\n"
        "def f[T](x: T) -> T:\n    return x\n"
        "async def main(x: int = 1):\n"
        "    match x:\n        case 1 | 2: pass\n        case _: pass\n"
        "    if (y := x) > 0:\n        print(f'{y!r:>{x}}', f\"{'nested'}\")\n"
        "    async with ctx() as c, other():\n        await c\n"
        "    return [z async for z in gen()]\n"
    )
    assert _args(source)["x"]["typ"] == "int"


def test_enum_int_values_become_strings() -> None:
    source = (
        "from enum import IntEnum\n"
        "class Level(IntEnum):\n    LOW = 1\n    HIGH = 2\n"
        "def main(level: Level = Level.HIGH):\n    pass\n"
    )
    arg = parse_signature(source).args[0]
    assert arg.typ == StrType(("1", "2"))
    assert arg.default == "2"


def test_model_field_limit() -> None:
    fields = "".join(f"    f{i}: int\n" for i in range(250))
    source = (
        f"from pydantic import BaseModel\nclass Big(BaseModel):\n{fields}def main(b: Big): pass\n"
    )
    typ = parse_signature(source).args[0].typ
    assert isinstance(typ, ObjectType) and typ.props is not None
    assert len(typ.props) == 200
    assert typ.props[0] == Prop("f0", INT)


def test_model_depth_limit() -> None:
    classes = (
        "".join(f"@dataclass\nclass C{i}:\n    child: C{i + 1}\n" for i in range(15))
        + "@dataclass\nclass C15:\n    leaf: int\n"
    )
    typ = parse_signature(f"{classes}def main(c: C0): pass\n").args[0].typ
    depth = 0
    while isinstance(typ, ObjectType) and typ.props:
        typ = typ.props[0].typ
        depth += 1
    assert depth <= 10


def test_deep_nesting_does_not_crash() -> None:
    deep_default = "[" * 3000 + "]" * 3000
    assert parse_signature(f"def main(x = {deep_default}): pass\n").args[0].default == (
        FUNCTION_CALL_DEFAULT
    )
    long_union = " | ".join(["int"] * 3000)
    arg = parse_signature(f"def main(x: {long_union} | None): pass\n").args[0]
    assert (arg.typ, arg.has_default) == (ANY, True)


def test_model_reused_by_many_fields_stays_small() -> None:
    # 50 fields of the next class, 12 levels: expanded naively that is 50**10 properties.
    classes = "".join(
        f"@dataclass\nclass C{i}:\n" + "".join(f"    f{j}: C{i + 1}\n" for j in range(50))
        for i in range(12)
    )
    leaf = "@dataclass\nclass C12:\n    leaf: int\n"
    sig = parse_signature(f"{classes}{leaf}def main(c: C0): pass\n")
    assert json.dumps(signature_to_schema(sig)).count('"description"') < 10_000
