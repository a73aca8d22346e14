"""Golden tests for the PostgreSQL argument parser.

The conformance kit (``test_contract.py``) checks every ``fixtures/signatures/<case>.sql``
against its golden file:
``<case>.json`` (``{"signature", "schema"}``) for a script that parses, ``<case>.error.json``
(``{"line", "column", "message_contains"}``) for one that must be refused there.

To regenerate after an intended change::

    GRISTMILL_UPDATE_GOLDEN=1 uv run pytest plugins/sql/tests/test_contract.py

then read the diff of every rewritten file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest
from gristmill.runtimes import ScriptError
from gristmill.runtimes.schema import signature_to_schema
from gristmill.runtimes.signature import (
    DATE,
    DATETIME,
    FLOAT,
    INT,
    STR,
    ListType,
    ObjectType,
    ResourceType,
)
from gristmill_sql.runtime import PostgresRuntime
from gristmill_sql.signature import parse_script, pg_typ

FIXTURES = Path(__file__).parent / "fixtures" / "signatures"
CASES = sorted(p.stem for p in FIXTURES.glob("*.sql"))
# Refused for text that never ends: PostgreSQL itself refuses them.
LEXICAL_ERRORS = {
    "error_unterminated_string",
    "error_unterminated_dollar_quote",
    "error_unterminated_comment",
    "error_unterminated_identifier",
    "error_unicode_column",
}


def _parse(source: str) -> Any:
    return PostgresRuntime().parse_signature(source)


def _read(case: str) -> str:
    # ``utf-8`` and not ``utf-8-sig``: the BOM case checks the parser strips it itself.
    return (FIXTURES / f"{case}.sql").read_text(encoding="utf-8")


@pytest.mark.parametrize("case", sorted(LEXICAL_ERRORS))
def test_postgres_refuses_what_the_lexer_refuses(case: str, sql_database: dict[str, Any]) -> None:
    """The text the lexer refuses is a syntax error for PostgreSQL too, at the same place."""
    expected = json.loads((FIXTURES / f"{case}.error.json").read_text(encoding="utf-8"))
    source = _read(case)
    params = {k: v for k, v in sql_database.items() if v != ""}
    with (
        psycopg.connect(**params, autocommit=True) as conn,
        pytest.raises(psycopg.errors.SyntaxError) as info,
    ):
        conn.execute(source.encode())  # the simple protocol: the whole script at once
    position = info.value.diag.statement_position
    if position is not None and case != "error_unterminated_comment":
        # PostgreSQL reports where the unterminated text starts, as the lexer does.
        offset = int(position) - 1
        line = source.count("\n", 0, offset) + 1
        column = offset - (source.rfind("\n", 0, offset) + 1) + 1
        assert (line, column) == (expected["line"], expected["column"])


# -- the rules, one at a time -------------------------------------------------------------------


def _args(source: str) -> list[tuple[str, Any, Any, bool]]:
    sig = _parse(source)
    return [(a.name, a.otyp, a.default, a.has_default) for a in sig.args]


def test_a_database_argument_comes_first_unless_pinned() -> None:
    sig = _parse("SELECT $1::int")
    assert [(a.name, a.typ, a.has_default) for a in sig.args] == [
        ("database", ResourceType("postgresql"), False),
        ("$1", INT, False),
    ]
    assert sig.extra["database"] is None
    pinned = _parse("-- database f/db/main\nSELECT $1::int")
    assert [a.name for a in pinned.args] == ["$1"]
    assert pinned.extra["database"] == "f/db/main"


def test_pin_and_declarations_must_start_their_line() -> None:
    sig = _parse("SELECT 1; -- database f/db/main\nSELECT $1::int; -- $1 named\n")
    assert [a.name for a in sig.args] == ["database", "$1"]


def test_type_map() -> None:
    assert pg_typ("varchar") == STR and pg_typ("uuid") == STR and pg_typ("mood") == STR
    assert pg_typ("bigint") == INT and pg_typ("int8") == INT and pg_typ("oid") == INT
    assert pg_typ("double precision") == FLOAT and pg_typ("numeric") == FLOAT
    assert pg_typ("jsonb") == ObjectType(None, None)
    assert pg_typ("date") == DATE
    assert pg_typ("timestamptz") == DATETIME and pg_typ("time") == DATETIME
    assert pg_typ("int[]") == ListType(INT)
    assert pg_typ("text[][]") == ListType(ListType(STR))
    assert pg_typ("pg_catalog.int4") == INT


def test_declared_type_beats_the_cast_and_text_is_the_fallback() -> None:
    assert _args("-- $1 n (bigint)\nSELECT $1::int, $2")[1:] == [
        ("n", "bigint", None, False),
        ("$2", "text", None, False),
    ]


def test_null_default_is_optional_without_a_value() -> None:
    assert _args("-- $1 x (int) = null\nSELECT $1")[1] == ("x", "int", None, True)
    schema = signature_to_schema(_parse("-- $1 x (int) = null\nSELECT $1"))
    assert schema["required"] == ["database"]


@pytest.mark.parametrize(
    ("declaration", "message"),
    [
        ("-- $1 n (int) = 1.5", "write an integer"),
        ("-- $1 n (float8) = nan", "write a number"),
        ("-- $1 b (bool) = yes", "write true or false"),
        ("-- $1 d (date) = 31/01/2024", "write a date"),
        ("-- $1 t (timestamptz) = noon", "write a date-time"),
        ("-- $1 j (jsonb) = {a: 1}", "write it as JSON"),
        ("-- $1 l (int[]) = {1,2}", "write it as JSON"),
        ("-- $1 l (int[]) = 3", "write a JSON list"),
    ],
)
def test_defaults_that_do_not_fit_are_refused(declaration: str, message: str) -> None:
    with pytest.raises(ScriptError, match=message) as info:
        _parse(f"\n{declaration}\nSELECT $1")
    assert info.value.line == 2


def test_renumbering_keeps_lengths() -> None:
    from gristmill_sql.plan import build_plan

    script = parse_script("SELECT $12::int, $3;\nSELECT $3, '$12', $12;")
    plan = build_plan(script, timeout_s=10)
    first, second = plan["statements"]
    assert first["sql"] == "SELECT $2 ::int, $1;" and first["params"] == [3, 12]
    assert second["sql"] == "\nSELECT $1, '$12', $2 ;" and second["params"] == [3, 12]
    assert second["offset"] == len("SELECT $12::int, $3;")
