"""Direct tests of the Go signature parser.

The conformance kit (``test_contract.py``) checks every ``fixtures/signatures/<case>.go``
against its golden file:
``<case>.json`` (``{"signature": ..., "schema": ...}``) for a script that parses, or
``<case>.error.json`` (``{"line", "column", "message_contains"}``) for one it must refuse. To
regenerate them after an intended change::

    GRISTMILL_UPDATE_GOLDEN=1 uv run pytest plugins/go/tests/test_contract.py

then read every rewritten file against the rules in ``gristmill_go.typemap``.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from gristmill.runtimes import ScriptError
from gristmill.runtimes.schema import signature_to_schema
from gristmill.runtimes.signature import (
    ANY,
    BOOL,
    BYTES,
    DATETIME,
    FLOAT,
    INT,
    STR,
    ListType,
    ObjectType,
    Prop,
)
from gristmill.testing.contract import require_toolchain
from gristmill_go.runtime import GoRuntime
from gristmill_go.signature import parse_script, parse_signature

FIXTURES = Path(__file__).parent / "fixtures" / "signatures"
CASES = sorted(p.stem for p in FIXTURES.glob("*.go"))
# Refused for what they mean, not for their syntax: the Go compiler parses them.
NOT_SYNTAX_ERRORS = {
    "error_package_main",
    "error_no_main",
    "error_unnamed_params",
    "error_blank_param",
    "error_bad_results",
    "error_generic_main",
}


def _read(case: str) -> str:
    return (FIXTURES / f"{case}.go").read_text(encoding="utf-8")


def test_fixtures_agree_with_gofmt() -> None:
    """A fixture refused for its syntax is refused by Go's own parser (``gofmt -e``); every
    other fixture is valid Go syntax."""
    toolchain_go = GoRuntime().go.path
    require_toolchain(GoRuntime())
    assert toolchain_go is not None
    gofmt = Path(toolchain_go).with_name("gofmt")
    if not gofmt.exists():
        pytest.skip(f"no gofmt next to {toolchain_go}")
    for case in CASES:
        is_syntax_case = (FIXTURES / f"{case}.error.json").exists() and (
            case not in NOT_SYNTAX_ERRORS
        )
        done = subprocess.run(
            [str(gofmt), "-e", "-l", str(FIXTURES / f"{case}.go")],
            capture_output=True,
            text=True,
            check=False,
        )
        assert (done.returncode != 0) == is_syntax_case, f"{case}: {done.stderr}"


# -- direct checks of the rules most likely to regress -----------------------------------------


def _typ(go_type: str, prelude: str = "") -> Any:
    source = f"package inner\n{prelude}\nfunc main(x {go_type}) {{}}\n"
    return parse_signature(source).args[0].typ


@pytest.mark.parametrize(
    ("go_type", "expected"),
    [
        ("int64", INT),
        ("uint16", INT),
        ("rune", INT),
        ("float32", FLOAT),
        ("string", STR),
        ("[]byte", BYTES),
        ("[]uint8", BYTES),
        ("[4]byte", ListType(INT)),
        ("[]*string", ListType(STR)),
        ("*[]int", ListType(INT)),
        ("[][]bool", ListType(ListType(BOOL))),
        ("map[string]int", ObjectType(None, None)),
        ("interface{}", ANY),
        ("any", ANY),
        ("interface{ String() string }", ANY),
        ("chan int", ANY),
        ("struct{}", ObjectType(None, None)),
        ("struct{ A int; b int }", ObjectType(None, (Prop("A", INT),))),
        ("(string)", STR),
    ],
)
def test_type_mapping(go_type: str, expected: Any) -> None:
    assert _typ(go_type) == expected


def test_otyp_keeps_the_go_type_text() -> None:
    sig = parse_signature(
        'package inner\nfunc main(a, b map[string][]int, o struct{ N int `json:"n"` }, '
        "rest ...*float64) {}\n"
    )
    assert [(a.name, a.otyp) for a in sig.args] == [
        ("a", "map[string][]int"),
        ("b", "map[string][]int"),
        ("o", 'struct{ N int `json:"n"` }'),
        ("rest", "...*float64"),
    ]
    assert sig.args[3].typ == ListType(FLOAT)
    assert all(not a.has_default for a in sig.args)
    assert signature_to_schema(sig)["required"] == ["a", "b", "o", "rest"]


def test_time_types_follow_the_import_name() -> None:
    prelude = 'import t "time"\nimport time "example.com/nottime"\n'
    source = f"package inner\n{prelude}func main(a t.Time, b time.Time, c t.Duration) {{}}\n"
    assert [a.typ for a in parse_signature(source).args] == [DATETIME, ANY, INT]


def test_generic_types_take_their_arguments() -> None:
    prelude = (
        "type Pair[K comparable, V any] struct {\n"
        '\tKey K `json:"key"`\n\tValues []V `json:"values"`\n}\n'
        "type Wrap[T any] struct{ Inner Pair[string, T] }\n"
    )
    assert _typ("Pair[string, float64]", prelude) == ObjectType(
        None, (Prop("key", STR), Prop("values", ListType(FLOAT)))
    )
    # A type argument is read where it was written; a byte argument makes []V bytes.
    assert _typ("Wrap[byte]", prelude) == ObjectType(
        None, (Prop("Inner", ObjectType(None, (Prop("key", STR), Prop("values", BYTES)))),)
    )
    assert _typ("Pair", prelude) == ObjectType(
        None, (Prop("key", ANY), Prop("values", ListType(ANY)))
    )


def test_embedded_structs_follow_encoding_json() -> None:
    prelude = (
        'type Base struct { ID int `json:"id"`; Note string }\n'
        "type named string\n"
        "type Outer struct {\n"
        "\t*Base\n"
        '\tNote string `json:"note"`\n'
        "\tnamed\n"  # an unexported non-struct: skipped
        '\tTagged Base `json:"tagged"`\n'
        "}\n"
    )
    assert _typ("Outer", prelude) == ObjectType(
        None,
        (
            Prop("id", INT),
            Prop("Note", STR),
            Prop("note", STR),
            Prop("tagged", ObjectType(None, (Prop("id", INT), Prop("Note", STR)))),
        ),
    )


@pytest.mark.parametrize(
    ("results", "shape"),
    [
        ("", "none"),
        ("()", "none"),
        ("error", "error"),
        ("(err error)", "error"),
        ("string", "value"),
        ("(map[string]int)", "value"),
        ("(interface{}, error)", "value_error"),
        ("(out []int, err error)", "value_error"),
    ],
)
def test_result_shapes(results: str, shape: str) -> None:
    assert parse_script(f"package inner\nfunc main() {results} {{ panic(1) }}\n").results == shape


def test_variadic_is_recorded() -> None:
    assert parse_script("package inner\nfunc main(a int, b ...string) {}\n").variadic
    assert not parse_script("package inner\nfunc main(a int, b []string) {}\n").variadic


@pytest.mark.parametrize(
    ("source", "line", "column", "message"),
    [
        # The column counts characters, not UTF-8 bytes.
        ('package inner\nfunc main(é int) { s := "x\n}\n', 2, 25, "string literal not terminated"),
        ("package inner\nfunc main(a int, b int, c) {}\n", 2, 25, "has no name"),
        ("package inner\nfunc main() (a, b, c int) {}\n", 2, 13, "it may return only"),
        ("package  other\nfunc main() {}\n", 1, 10, "must be `package inner`"),
        ("package inner\nfunc main() {\n\tf(1, 2\n\treturn\n}\n", 3, 3, "'(' is never closed"),
        ("package inner\nfunc main() {\n\ts := `x\n}\n", 3, 7, "string literal not terminated"),
    ],
)
def test_error_position(source: str, line: int, column: int, message: str) -> None:
    with pytest.raises(ScriptError) as info:
        parse_signature(source)
    assert (info.value.line, info.value.column) == (line, column), info.value.message
    assert message in info.value.message
    assert f"line {line}, column {column}" in str(info.value)


def test_missing_main_has_no_position() -> None:
    with pytest.raises(ScriptError, match=r"top-level `func main\(\.\.\.\)`") as info:
        parse_signature("package inner\n\nvar main = func() {}\n")
    assert info.value.line is None


def test_struct_limits() -> None:
    fields = "".join(f"\tF{i} int\n" for i in range(250))
    typ = _typ("Big", f"type Big struct {{\n{fields}}}\n")
    assert isinstance(typ, ObjectType) and typ.props is not None
    assert len(typ.props) == 200
    deep = "".join(f"type C{i} struct {{ Child C{i + 1} }}\n" for i in range(15))
    typ = _typ("C0", deep + "type C15 struct { Leaf int }\n")
    depth = 0
    while isinstance(typ, ObjectType) and typ.props:
        typ = typ.props[0].typ
        depth += 1
    assert depth <= 11


def test_a_struct_reused_by_many_fields_stays_small() -> None:
    # 50 fields of the next struct, 12 levels: expanded naively that is 50**10 properties.
    structs = "".join(
        f"type C{i} struct {{\n" + "".join(f"\tF{j} C{i + 1}\n" for j in range(50)) + "}\n"
        for i in range(12)
    )
    sig = parse_signature(
        f"package inner\n{structs}type C12 struct{{ Leaf int }}\nfunc main(c C0) {{}}\n"
    )
    assert json.dumps(signature_to_schema(sig)).count('"description"') < 10_000


def test_deep_nesting_does_not_crash() -> None:
    assert _typ("*" * 3000 + "int") == ANY
    chain = "".join(f"type T{i} T{i + 1}\n" for i in range(3000)) + "type T3000 int\n"
    assert _typ("T0", chain) == ANY
    assert _typ("[]" * 50 + "int") is not None
    embedded = "".join(f"type E{i} struct {{ E{i + 1} }}\n" for i in range(3000))
    assert isinstance(_typ("E0", embedded + "type E3000 struct { Leaf int }\n"), ObjectType)
