"""Statement splitting and parameter finding, checked against psql's own splitter."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest
from gristmill.runtimes import ScriptError
from gristmill_sql.lexer import lex, read_type_name

# Scripts whose every statement returns one row with one column: psql prints one line per
# statement, so psql's split and the lexer's can be compared.
CORPUS = [
    "SELECT 1",
    "SELECT 1; SELECT 2;",
    "SELECT ';' ; SELECT 'it''s; here'",
    "SELECT E'\\'; still a string' ; SELECT 2",
    'SELECT 1 AS "a;b"; SELECT 2 AS "x""y;"',
    "SELECT 1 -- ; a comment\n; SELECT 2",
    "SELECT /* ; /* nested ; */ still comment ; */ 1; SELECT 2",
    "SELECT $$;$$; SELECT $tag$ $$ ; $tag$; SELECT $a$;$a$",
    "SELECT 1;;; SELECT 2;",
    "SELECT 1 AS a$b; SELECT 2",
    "DO $$ BEGIN PERFORM 1; END $$; SELECT 2",
    "CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE SQL BEGIN ATOMIC SELECT 1; SELECT 2; END;"
    " SELECT pg_temp.f()",
    "CREATE OR REPLACE FUNCTION pg_temp.g(x int) RETURNS int LANGUAGE SQL BEGIN ATOMIC"
    " SELECT CASE WHEN x > 0 THEN 1 ELSE 2 END; END; SELECT pg_temp.g(1)",
    "SELECT length('multi\nline;\nstring'); SELECT 2",
    "SELECT U&'\\0041;' ; SELECT B'101'::int",
]


def _statements(source: str) -> list[str]:
    return [source[s.start : s.end] for s in lex(source).statements]


@pytest.mark.parametrize("source", CORPUS)
def test_split_agrees_with_psql(source: str, sql_database: dict[str, Any]) -> None:
    psql = shutil.which("psql")
    if psql is None:
        pytest.skip("psql is not installed (it only cross-checks the splitter)")
    done = subprocess.run(
        [psql, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"],
        input=source,
        capture_output=True,
        text=True,
        env={
            "PGHOST": sql_database["host"],
            "PGPORT": str(sql_database["port"]),
            "PGUSER": sql_database["user"],
            "PGDATABASE": sql_database["dbname"],
            "LC_ALL": "C.UTF-8",
        },
    )
    assert done.returncode == 0, done.stderr
    # psql prints one line per row (no value is empty); CREATE and DO print nothing (-q).
    selects = [s for s in _statements(source) if "CREATE" not in s and "DO $$" not in s]
    printed = [line for line in done.stdout.splitlines() if line]
    assert len(selects) == len(printed), (_statements(source), done.stdout)


def test_statement_spans_keep_comments_and_drop_empty_statements() -> None:
    source = "-- header\nSELECT 1;\n  ;\n/* only a comment */;\nSELECT 2 -- tail\n"
    assert _statements(source) == ["-- header\nSELECT 1;", "\nSELECT 2 -- tail\n"]


def test_parameters_outside_quoted_text_only() -> None:
    source = "SELECT $1, '$2', \"$3\", $$ $4 $$, a$5, $6::int -- $7\n/* $8 */ , $10"
    (statement,) = lex(source).statements
    assert [(p.index, p.cast) for p in statement.params] == [(1, None), (6, "int"), (10, None)]
    assert [source[p.start : p.end] for p in statement.params] == ["$1", "$6", "$10"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("int", "int"),
        ("  INTEGER", "integer"),
        ("varchar(20)", "varchar"),
        ("character varying(20)[]", "varchar[]"),
        ("double precision", "double precision"),
        ("timestamp(3) with time zone", "timestamptz"),
        ("time without time zone", "time"),
        ("numeric(10, 2)", "numeric"),
        ("int [] []", "int[][]"),
        ("pg_catalog.int8", "pg_catalog.int8"),
        ('public."Mood"', 'public."Mood"'),
        ("double", "double"),
        ("1abc", None),
    ],
)
def test_type_names(text: str, expected: str | None) -> None:
    assert read_type_name(text) == expected


@pytest.mark.parametrize(
    ("source", "line", "column", "message"),
    [
        ("SELECT 'a", 1, 8, "unterminated quoted string"),
        ("SELECT E'a\\'", 1, 8, "unterminated quoted string"),
        ('SELECT 1;\n  SELECT "x', 2, 10, "unterminated quoted identifier"),
        ("SELECT $x$ abc $y$", 1, 8, "$x$ here is never closed"),
        ("SELECT 1 /* /* */", 1, 10, "unterminated /* comment"),
        ("SELECT 'é', 'ü", 1, 13, "unterminated quoted string"),
    ],
)
def test_unterminated_text(source: str, line: int, column: int, message: str) -> None:
    with pytest.raises(ScriptError) as info:
        lex(source)
    assert (info.value.line, info.value.column) == (line, column)
    assert message in info.value.message


def test_no_split_inside_parentheses() -> None:
    # psql's rule (multi-action rules: `CREATE RULE r AS ON INSERT TO t DO (...; ...)`).
    assert (
        len(
            lex("CREATE RULE r AS ON INSERT TO t DO ALSO (NOTIFY a; NOTIFY b); SELECT 1").statements
        )
        == 2
    )


def test_dollar_in_names_and_numbers_is_not_a_quote() -> None:
    # `a$b$` is a name; were it read as a dollar quote, the rest would never close.
    assert len(lex("SELECT 1 AS a$b$; SELECT 2").statements) == 2
