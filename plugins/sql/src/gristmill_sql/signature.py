"""The arguments of a PostgreSQL script, read as Windmill reads them.

* A declaration comment ``-- $1 name (type) = default`` names parameter ``$1``; the type and
  the default are optional.
* A parameter's type is the declared one, else the first cast of it in the code (``$1::int``,
  ``CAST($1 AS int)``), else ``text``.
* Undeclared parameters are named ``$1``, ``$2``...; arguments are sorted by number.
* Without a ``-- database <path>`` line, a first argument ``database`` (a ``postgresql``
  resource: the connection) is added. With one, the script is pinned to that resource.

Differences from Windmill, each to avoid a wrong form: parameters and declarations are only
read in code and in ``--`` comments, never inside strings or dollar-quoted bodies (a ``$1``
in a PL/pgSQL body belongs to that function); ``date`` is a date, not a date-time (the form
asks for a day, PostgreSQL stores a day); ``int8`` is an integer; a default that does not fit
its type (``-- $1 n (int) = ten``), two declarations of one parameter, two arguments with one
name, or ``$0`` are refused with their line instead of being dropped silently.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Final

from gristmill import (
    BOOL,
    BYTES,
    DATE,
    DATETIME,
    FLOAT,
    INT,
    STR,
    Arg,
    ListType,
    ObjectType,
    ResourceType,
    Scalar,
    ScriptError,
    Signature,
    StrType,
    Typ,
)

from gristmill_sql.lexer import Lexed, lex, line_column, read_type_name

__all__ = ["DATABASE_ARG", "PgArg", "PgScript", "parse_script", "pg_typ"]

#: The argument holding the connection when the script names no database resource.
DATABASE_ARG: Final = "database"

_DECLARATION: Final = re.compile(
    r"--\s*\$(\d+)\s+(\w+)"
    # The type, one level of parentheses allowed inside: `(numeric(10,2))`.
    r"(?:\s*\(\s*([^()]*(?:\([^()]*\)[^()]*)*?)\s*\))?"
    r"(?:\s*=\s*(.*?))?\s*"
)
_DATABASE_PIN: Final = re.compile(r"--\s*database\s+(\S+)\s*")

_INT_TYPES: Final = frozenset(
    {"int", "integer", "int4", "bigint", "int8", "smallint", "int2", "serial", "serial4",
     "bigserial", "serial8", "smallserial", "serial2", "oid"}
)  # fmt: skip
_FLOAT_TYPES: Final = frozenset(
    {"real", "float4", "double", "double precision", "float8", "float", "numeric", "decimal"}
)
_STR_TYPES: Final = frozenset(
    {"varchar", "text", "char", "character", "bpchar", "name", "citext", "uuid"}
)
_DATETIME_TYPES: Final = frozenset({"timestamp", "timestamptz", "time", "timetz"})


@dataclass(frozen=True)
class PgArg:
    """One parameter: its number, name, PostgreSQL type and default."""

    index: int
    name: str
    otyp: str
    typ: Typ
    default: Any = None
    has_default: bool = False
    #: No declared type and no cast: ``text`` is only a guess.
    inferred: bool = False


@dataclass(frozen=True)
class PgScript:
    lexed: Lexed
    args: tuple[PgArg, ...]
    #: The resource path of a ``-- database <path>`` line.
    database: str | None

    def signature(self) -> Signature:
        args = [
            Arg(a.name, a.typ, default=a.default, has_default=a.has_default, otyp=a.otyp)
            for a in self.args
        ]
        if self.database is None:
            args.insert(0, Arg(DATABASE_ARG, ResourceType("postgresql")))
        return Signature(args=tuple(args), extra={"database": self.database})


def pg_typ(otyp: str) -> Typ:
    """The signature type of a PostgreSQL type name (lowercase, aliases resolved)."""
    if otyp.endswith("[]"):
        return ListType(pg_typ(otyp[:-2]))
    # `pg_catalog.int4` is `int4`.
    base = otyp.removeprefix("pg_catalog.")
    if base in _INT_TYPES:
        return INT
    if base in _FLOAT_TYPES:
        return FLOAT
    if base in ("bool", "boolean"):
        return BOOL
    if base in ("json", "jsonb"):
        return ObjectType(None, None)
    if base == "date":
        return DATE
    if base in _DATETIME_TYPES:
        return DATETIME
    if base == "bytea":
        return BYTES
    return STR


def parse_script(source: str) -> PgScript:
    """Read a script's arguments; raise :class:`ScriptError` for what PostgreSQL or the form
    could not take."""
    if source.startswith("\ufeff"):
        source = source[1:]
    lexed = lex(source)
    if not lexed.statements:
        raise ScriptError(
            "the script has no SQL statement to run; write one, e.g. SELECT $1::int + 1"
        )
    declarations: dict[int, tuple[int, str, str | None, str | None]] = {}
    database: str | None = None
    for comment in lexed.comments:
        if source[source.rfind("\n", 0, comment.start) + 1 : comment.start].strip():
            continue  # like Windmill, only a comment starting its line declares
        if database is None and (pin := _DATABASE_PIN.fullmatch(comment.text)):
            database = pin.group(1)
            continue
        match = _DECLARATION.fullmatch(comment.text)
        if match is None:
            continue
        index, name, typ, default = match.groups()
        line, _ = line_column(source, comment.start)
        number = int(index)
        if number == 0:
            raise ScriptError(
                "there is no parameter $0: PostgreSQL numbers parameters from $1", line=line
            )
        if number in declarations:
            raise ScriptError(
                f"${number} is declared twice (first on line {declarations[number][0]}); "
                "keep one declaration",
                line=line,
            )
        otyp = _normalize_type(typ) if typ else None
        declarations[number] = (line, name, otyp, default)

    casts: dict[int, str | None] = {}
    for statement in lexed.statements:
        for param in statement.params:
            if param.index == 0:
                line, column = line_column(source, param.start)
                raise ScriptError(
                    "there is no parameter $0: PostgreSQL numbers parameters from $1",
                    line=line,
                    column=column,
                )
            # The first cast of a parameter decides its type.
            if casts.get(param.index) is None:
                casts[param.index] = param.cast

    args = []
    names: dict[str, int] = {DATABASE_ARG: 0} if database is None else {}
    for number in sorted(declarations.keys() | casts.keys()):
        declared = declarations.get(number)
        line = declared[0] if declared else None
        name = declared[1] if declared else f"${number}"
        explicit = (declared[2] if declared else None) or casts.get(number)
        otyp = explicit or "text"
        typ = pg_typ(otyp)
        default: Any = None
        has_default = False
        if declared and declared[3] is not None:
            has_default = True
            default = _parse_default(declared[3], typ, otyp, line)
        if name in names:
            clash = (
                "the connection argument (add a `-- database <path>` line or rename it)"
                if names[name] == 0
                else f"${names[name]}"
            )
            raise ScriptError(
                f'${number} is named "{name}", the name of {clash}; give it another name',
                line=line,
            )
        names[name] = number
        args.append(PgArg(number, name, otyp, typ, default, has_default, explicit is None))
    return PgScript(lexed, tuple(args), database)


def _normalize_type(text: str) -> str:
    """A declared type as the lexer reads a cast: lowercase, aliases resolved."""
    return read_type_name(text) or text.strip().lower()


def _parse_default(text: str, typ: Typ, otyp: str, line: int | None) -> Any:
    """The JSON value of a declared default; ``null`` means optional without a value."""
    if text.lower() == "null":
        return None
    quoted = len(text) >= 2 and text[0] == "'" and text[-1] == "'"
    # A SQL literal: 'it''s' is it's.
    value = text[1:-1].replace("''", "'") if quoted else text

    def refuse(expected: str) -> ScriptError:
        return ScriptError(
            f"the default {text} does not fit the type {otyp}: {expected}", line=line
        )

    match typ:
        case Scalar("int"):
            try:
                return int(value)
            except ValueError:
                raise refuse("write an integer such as 10, or null") from None
        case Scalar("float"):
            try:
                number = float(value)
            except ValueError:
                number = math.nan
            if not math.isfinite(number):
                raise refuse("write a number such as 1.5, or null")
            return number
        case Scalar("bool"):
            if value.lower() not in ("true", "false"):
                raise refuse("write true or false, or null")
            return value.lower() == "true"
        case Scalar("date"):
            try:
                dt.date.fromisoformat(value)
            except ValueError:
                raise refuse("write a date such as '2024-01-31', or null") from None
            return value
        case Scalar("datetime") if otyp.removeprefix("pg_catalog.").startswith("timestamp"):
            try:
                dt.datetime.fromisoformat(value)
            except ValueError:
                raise refuse("write a date-time such as '2024-01-31T12:00:00Z'") from None
            return value
        case ObjectType() | ListType():
            try:
                parsed = json.loads(value)
            except ValueError:
                raise refuse('write it as JSON, such as {"a": 1} or [1, 2]') from None
            if isinstance(typ, ListType) and not isinstance(parsed, list):
                raise refuse("write a JSON list such as [1, 2]")
            return parsed
        case StrType() | Scalar():
            return value
    return value
