"""Golden tests for the TypeScript signature parser (shared by the Bun and Deno runtimes).

The conformance kit (``test_contract.py``) checks every ``fixtures/signatures/<case>.ts``
against its golden file:

* ``<case>.json`` holds ``{"signature": signature_to_json(sig), "schema":
  signature_to_schema(sig)}`` for a script that parses;
* ``<case>.error.json`` holds ``{"line": L, "column": C, "message_contains": "..."}`` for a
  script that must be rejected with a :class:`ScriptError` at that 1-based position.

To regenerate them after an intended change, run::

    GRISTMILL_UPDATE_GOLDEN=1 uv run pytest plugins/typescript/tests/test_contract.py

then review the diff of every rewritten file before committing (an error case keeps its
``message_contains`` when the new message still contains it).
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
    DATETIME,
    FLOAT,
    FUNCTION_CALL_DEFAULT,
    INT,
    STR,
    ListType,
    ObjectType,
    Prop,
    ResourceType,
    StrType,
    signature_to_json,
)
from gristmill.testing.contract import require_toolchain
from gristmill_typescript.bun import BunRuntime
from gristmill_typescript.imports import without_npm_prefixes
from gristmill_typescript.signature import ParamRuntime, parse_main, parse_signature
from gristmill_typescript.types import snake_case

FIXTURES = Path(__file__).parent / "fixtures" / "signatures"
CASES = sorted(p.stem for p in FIXTURES.glob("*.ts"))
# Error cases that are valid TypeScript: refused for how main is declared, not for syntax.
NOT_SYNTAX_ERRORS = {
    "error_no_main",
    "error_not_exported",
    "error_default_export",
    "error_arrow_main",
    "error_rest_param",
}


def _read(case: str) -> str:
    # ``utf-8`` and not ``utf-8-sig``: the BOM case checks the parser strips it itself.
    return (FIXTURES / f"{case}.ts").read_text(encoding="utf-8")


# Bun's transpiler checks syntax without types (FooBar need not exist): one process for all
# fixtures, so the cross-check costs one Bun start.
_TRANSPILE_ALL = """
const results = {};
for (const path of process.argv.slice(2)) {
  try {
    new Bun.Transpiler({ loader: "ts" }).transformSync(await Bun.file(path).text());
    results[path] = null;
  } catch (error) {
    results[path] = String(error?.message ?? error);
  }
}
console.log(JSON.stringify(results));
"""


def test_fixtures_agree_with_bun(tmp_path: Path) -> None:
    """A fixture the parser accepts is valid TypeScript; one it rejects for syntax is not."""
    bun = BunRuntime()
    require_toolchain(bun)
    checker = tmp_path / "check.mjs"
    checker.write_text(_TRANSPILE_ALL, encoding="utf-8")
    paths = [str(FIXTURES / f"{case}.ts") for case in CASES]
    done = subprocess.run(
        [bun.bun, str(checker), *paths], capture_output=True, text=True, timeout=60, check=True
    )
    verdicts = json.loads(done.stdout)
    for case, path in zip(CASES, paths, strict=True):
        is_syntax_case = case.startswith("error_") and case not in NOT_SYNTAX_ERRORS
        if is_syntax_case:
            assert verdicts[path] is not None, f"{case}: Bun accepts it"
        else:
            assert verdicts[path] is None, f"{case}: {verdicts[path]}"


# -- direct checks of the rules most likely to regress -----------------------------------------


def _args(source: str) -> dict[str, Any]:
    return {a["name"]: a for a in signature_to_json(parse_signature(source))["args"]}


def test_windmill_wasm_example_schema() -> None:
    sig = parse_signature(_read("windmill_example"))
    schema = signature_to_schema(sig)
    assert schema["required"] == [
        "test3",
        "b64",
        "ls",
        "email",
        "literal",
        "literal_union",
        "min_object",
    ]
    props = schema["properties"]
    assert props["test3"] == {
        "type": "object",
        "format": "resource-postgres",
        "description": "",
        "default": None,
    }
    assert props["ls"]["items"] == {"type": "string", "contentEncoding": "base64"}
    assert props["literals_with_undefined"]["enum"] == ["foo", "bar"]


def test_optional_without_default_is_not_required() -> None:
    args = _args("export function main(a: string, b?: string, c: string | null) {}")
    assert (args["a"]["has_default"], args["b"]["has_default"], args["c"]["has_default"]) == (
        False,
        True,
        True,
    )
    assert args["b"]["default"] is None and args["b"]["typ"] == {"str": None}


@pytest.mark.parametrize(
    ("default", "value", "typ"),
    [
        ("42", 42, INT),
        ("4.2", 4.2, FLOAT),
        ("4.0", 4, INT),
        ("-3", -3, INT),
        ("0x10", 16, INT),
        ("10n", 10, INT),
        ('"s"', "s", STR),
        ("`t`", "t", STR),
        ("[1, 2]", [1, 2], ListType(INT)),
        ("[]", [], ListType(ANY)),
        ('{a: "x", "b c": 2}', {"a": "x", "b c": 2}, None),
        ("null", None, ANY),
        ("new Date()", FUNCTION_CALL_DEFAULT, ANY),
        ("`${x}`", FUNCTION_CALL_DEFAULT, ANY),
        ("[1, f()]", FUNCTION_CALL_DEFAULT, ANY),
    ],
)
def test_default_values(default: str, value: Any, typ: Any) -> None:
    arg = parse_signature(f"export function main(x = {default}) {{}}").args[0]
    assert (arg.default, arg.has_default) == (value, True)
    if typ is not None:
        assert arg.typ == typ


def test_annotation_wins_over_the_default() -> None:
    arg = parse_signature("export function main(x: number = 3) {}").args[0]
    assert (arg.typ, arg.default) == (FLOAT, 3)


@pytest.mark.parametrize(
    ("name", "snake"),
    [
        ("FooBar", "foo_bar"),
        ("S3Object", "s3_object"),
        ("HTTPServer", "http_server"),
        ("postgresql", "postgresql"),
        ("Oauth2Token", "oauth2_token"),
        ("MyAPIKey", "my_api_key"),
        ("already_snake", "already_snake"),
        ("V2", "v2"),
    ],
)
def test_snake_case(name: str, snake: str) -> None:
    assert snake_case(name) == snake


def test_types_inside_objects_and_lists() -> None:
    typ = (
        parse_signature(
            "export function main(x: {when: Date, db: Pg, list: Array<{a: string}>}) {}"
        )
        .args[0]
        .typ
    )
    assert typ == ObjectType(
        None,
        (
            Prop("when", DATETIME),
            Prop("db", ResourceType("pg")),
            Prop("list", ListType(ObjectType(None, (Prop("a", STR),)))),
        ),
    )


def test_long_union_and_deep_types_do_not_crash() -> None:
    members = " | ".join(f'"v{i}"' for i in range(3000))
    arg = parse_signature(f"export function main(x: {members} | undefined) {{}}").args[0]
    assert isinstance(arg.typ, StrType) and arg.typ.enum is not None
    assert len(arg.typ.enum) == 3000 and arg.has_default
    deep = "string" + "[]" * 500
    typ = parse_signature(f"export function main(x: {deep}) {{}}").args[0].typ
    depth = 0
    while isinstance(typ, ListType):
        typ = typ.item
        depth += 1
    assert depth <= 12 and typ == ANY
    deep_default = "[" * 3000 + "]" * 3000
    assert parse_signature(f"export function main(x = {deep_default}) {{}}").args[0].default == (
        FUNCTION_CALL_DEFAULT
    )


# -- what the wrapper is told about each argument ---------------------------------------------


def test_runtime_params() -> None:
    parsed = parse_main(
        "export function main(a: string, b = 'x', c?: Date, d: Date | null, e: bigint,"
        " f = 5n, g: number | undefined, h = null, i = new Date(), {x}: T) {}"
    )
    assert parsed.params == (
        ParamRuntime("a", None, False),
        ParamRuntime("b", None, True),
        ParamRuntime("c", "date", True),
        ParamRuntime("d", "date", False),
        ParamRuntime("e", "bigint", False),
        ParamRuntime("f", "bigint", True),
        ParamRuntime("g", None, True),
        ParamRuntime("h", None, False),
        ParamRuntime("i", None, True),
        ParamRuntime("anon1", None, False),
    )


# -- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "line", "column", "message"),
    [
        # The column counts characters, not UTF-8 bytes.
        ("export function main(é: string, ö number) {}\n", 1, 33, "invalid syntax near 'ö number'"),
        ("export function main(a: string {\n  return a\n}\n", 1, 31, "missing ')'"),
        (
            "export function main() {\n  let x = [1, 2\n  return x\n}\n",
            2,
            11,
            "'[' was never closed",
        ),
        ("export function main() {\n  return 'abc\n}\n", 2, 10, "unterminated string literal"),
        ("export function main() {\n  return `abc\n}\n", 2, 10, "unterminated template literal"),
        ("export function main() {\n  if (x) {\n    return 1\n}\n", 1, 24, "'{' was never closed"),
        # Of brackets left open, the innermost, as CPython does.
        ("export function main() {}\nfunction f( {\n", 2, 13, "'{' was never closed"),
        ("export function main() {}\nconst x = (1 + 2\n", 2, 11, "'(' was never closed"),
    ],
)
def test_syntax_error_position(source: str, line: int, column: int, message: str) -> None:
    with pytest.raises(ScriptError) as info:
        parse_signature(source)
    assert (info.value.line, info.value.column) == (line, column), info.value.message
    assert message in info.value.message
    assert f"line {line}, column {column}" in str(info.value)


def test_missing_main_message() -> None:
    with pytest.raises(ScriptError, match=r"must export a function `main`") as info:
        parse_signature("const x = 1;\n")
    assert info.value.line is None
    assert "export async function main" in info.value.message


# -- npm: specifiers for Bun ------------------------------------------------------------------


def test_npm_prefixes_are_dropped_from_imports_only() -> None:
    source = (
        'import * as a from "npm:a@1";\n'
        "import b from 'npm:b';\n"
        'export * from "npm:c";\n'
        'const d = await import("npm:d");\n'
        'const s = "npm:not-an-import";\n'
        'import e from "https://x/npm:e";\n'
    )
    assert without_npm_prefixes(source) == (
        'import * as a from "a@1";\n'
        "import b from 'b';\n"
        'export * from "c";\n'
        'const d = await import("d");\n'
        'const s = "npm:not-an-import";\n'
        'import e from "https://x/npm:e";\n'
    )
    plain = "export function main() {}\n"
    assert without_npm_prefixes(plain) is plain
