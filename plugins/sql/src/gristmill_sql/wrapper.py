"""Runs a PostgreSQL job: ``python -I -B -u wrapper.py`` in the job's directory.

Reads ``plan.json`` (the statements, from the runtime) and ``args.json`` (the arguments),
connects with the ``database`` argument, runs each statement with its parameters bound by
PostgreSQL (never interpolated into the text), and writes ``result.json``: the rows of a
single statement, or one list of rows per statement. Several statements run in one
transaction, committed at the end. A failure writes ``{"error": {...}}`` and exits 1.

Only the standard library and psycopg are imported: the interpreter runs isolated (``-I``),
so nothing of Gristmill is on its path.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import math
import re
import sys
import threading
import traceback
import uuid
from pathlib import Path
from typing import Any

import psycopg
from psycopg import pq
from psycopg.adapt import Loader
from psycopg.types.json import Json, Jsonb
from psycopg.types.numeric import Float4, Float8, Int2, Int4, Int8, Oid
from psycopg.types.string import StrDumper, TextLoader

PLAN_FILE = "plan.json"
ARGS_FILE = "args.json"
RESULT_FILE = "result.json"

CONNECT_TIMEOUT_S = 20
# Cancel the running statement this long before the job's timeout kills the process, so
# the server stops it too (a killed client leaves its query running).
CANCEL_MARGIN_S = 1.0

_INT_WRAPPERS: dict[str, type] = {
    "int": Int4,
    "integer": Int4,
    "int4": Int4,
    "serial": Int4,
    "serial4": Int4,
    "smallint": Int2,
    "int2": Int2,
    "smallserial": Int2,
    "serial2": Int2,
    "bigint": Int8,
    "int8": Int8,
    "bigserial": Int8,
    "serial8": Int8,
    "oid": Oid,
}
_FLOAT_WRAPPERS: dict[str, type] = {
    "real": Float4,
    "float4": Float4,
    "double": Float8,
    "double precision": Float8,
    "float8": Float8,
    "float": Float8,
}
_TEXT_TYPES = frozenset({"text", "varchar", "char", "character", "bpchar", "name", "citext"})
_CONTEXT_PARAM = re.compile(r"\$(\d+)")


class JobError(Exception):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name
        self.message = message


def main() -> int:
    plan = json.loads(Path(PLAN_FILE).read_text(encoding="utf-8"))
    args = json.loads(Path(ARGS_FILE).read_text(encoding="utf-8"))
    try:
        result = run(plan, args)
    except JobError as exc:
        _write({"error": {"name": exc.name, "message": exc.message, "stack": ""}})
        return 1
    except Exception as exc:
        stack = traceback.format_exc()
        _write({"error": {"name": type(exc).__name__, "message": str(exc), "stack": stack}})
        return 1
    _write(result)
    return 0


def _write(value: Any) -> None:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    Path(RESULT_FILE).write_text(text, encoding="utf-8")


# -- connection -------------------------------------------------------------------------------


def connection_params(plan: dict[str, Any], args: dict[str, Any]) -> dict[str, Any]:
    path = plan.get("database_path")
    if path is not None:
        # The resource of the `-- database <path>` line, read by the worker.
        database = plan.get("database")
        label = f"the database resource {path}"
        if not isinstance(database, dict):
            got = "nothing" if database is None else f"a {type(database).__name__}"
            raise JobError(
                "ResourceError",
                f"the database resource {path} (the script's `-- database {path}` line) must "
                "be a postgresql resource, an object {host, port, user, password, dbname, "
                f"sslmode}}; got {got}",
            )
    else:
        name = plan["database_arg"]
        label = f"the `{name}` argument"
        database = args.get(name)
    if not isinstance(database, dict):
        got = "nothing" if database is None else f"a {type(database).__name__}"
        raise JobError(
            "ArgumentError",
            f"{label} must be the connection, an object {{host, port, user, "
            f"password, dbname, sslmode}} (host may be a unix socket directory); got {got}",
        )
    missing = [key for key in ("host", "dbname") if not database.get(key)]
    if missing:
        raise JobError(
            "ArgumentError",
            f"{label} lacks {' and '.join(missing)}; it needs at least "
            "{host, dbname} (user defaults to postgres, port to 5432)",
        )
    params: dict[str, Any] = {
        "host": str(database["host"]),
        "dbname": str(database["dbname"]),
        # Windmill's defaults for a postgresql resource.
        "user": str(database.get("user") or "postgres"),
        "port": int(database.get("port") or 5432),
        "sslmode": str(database.get("sslmode") or "prefer"),
        "connect_timeout": CONNECT_TIMEOUT_S,
        "application_name": "gristmill",
    }
    if database.get("password"):
        params["password"] = str(database["password"])
    certificate = database.get("root_certificate_pem")
    if certificate:
        Path("root.crt").write_text(str(certificate), encoding="utf-8")
        params["sslrootcert"] = str(Path("root.crt").resolve())
    return params


def connect(params: dict[str, Any]) -> psycopg.Connection[Any]:
    try:
        conn = psycopg.connect(autocommit=True, **params)
    except psycopg.Error as exc:
        where = f"{params['host']}:{params['port']}"
        raise JobError(
            "ConnectionError",
            f"could not connect to PostgreSQL at {where} as {params['user']} (database "
            f"{params['dbname']}): {_first_lines(str(exc))}",
        ) from None
    conn.add_notice_handler(_print_notice)
    _register_loaders(conn)
    return conn


def _print_notice(diag: psycopg.errors.Diagnostic) -> None:
    print(f"{diag.severity}: {diag.message_primary}", flush=True)


def _first_lines(text: str) -> str:
    return " ".join(line.strip() for line in text.strip().splitlines() if line.strip())


# -- values out -------------------------------------------------------------------------------


def _register_loaders(conn: psycopg.Connection[Any]) -> None:
    """Dates PostgreSQL has and Python lacks (``infinity``, year 10000, BC) come back as
    PostgreSQL writes them instead of failing the job; intervals always do."""
    adapters = conn.adapters
    for name in ("date", "timestamp", "timestamptz", "time", "timetz"):
        oid = adapters.types[name].oid
        base = adapters.get_loader(oid, pq.Format.TEXT)
        if base is not None:
            adapters.register_loader(name, _lenient(base))
    adapters.register_loader("interval", TextLoader)


def _lenient(base: type[Any]) -> type[Loader]:
    # psycopg's C loaders cannot be subclassed: wrap one.
    class Lenient(Loader):
        def __init__(self, oid: int, context: Any = None) -> None:
            super().__init__(oid, context)
            self._inner = base(oid, context)

        def load(self, data: Any) -> Any:
            try:
                return self._inner.load(data)
            except psycopg.DataError:
                return bytes(data).decode("utf-8", "replace")

    return Lenient


def jsonable(value: Any) -> Any:
    """A row value as JSON: numbers stay numbers, dates ISO 8601, bytes base64."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else _special_float(value)
    if isinstance(value, decimal.Decimal):
        return _decimal(value)
    if isinstance(value, dt.date | dt.time):  # datetime is a date
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, uuid.UUID):
        return str(value)
    return str(value)


def _special_float(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def _decimal(value: decimal.Decimal) -> Any:
    # numeric: an integer when it is one (sum(bigint) is numeric), else the nearest float;
    # cast to text in the query to keep more than 15 significant digits.
    if not value.is_finite():
        return "NaN" if value.is_nan() else ("Infinity" if value > 0 else "-Infinity")
    if value == value.to_integral_value():
        return int(value)
    number = float(value)
    return number if math.isfinite(number) else str(value)


# -- values in --------------------------------------------------------------------------------

# SQL spellings of the types whose values are sent as text with their type declared: a
# string of such a type goes typed, so `$1[2]` or `pg_typeof($1)` see the declared type.
_TYPED_TEXT = {
    "text": "text",
    "varchar": "varchar",
    "char": "bpchar",
    "character": "bpchar",
    "bpchar": "bpchar",
    "name": "name",
    "uuid": "uuid",
    "date": "date",
    "timestamp": "timestamp",
    "timestamptz": "timestamptz",
    "time": "time",
    "timetz": "timetz",
    "interval": "interval",
    "inet": "inet",
    "cidr": "cidr",
    "macaddr": "macaddr",
    "xml": "xml",
}


class Binder:
    """Turns arguments into parameters as the declared PostgreSQL type takes them.

    A parameter whose type is only the default guess (no declaration, no cast) gets a
    string of no declared type, so PostgreSQL reads it as what the statement needs (an int
    column, a date); declared types go typed: numbers, booleans, JSON, bytes, and strings
    of the types above.
    """

    def __init__(self, cursor: psycopg.RawCursor[Any]) -> None:
        # The cursor's own map: it copied the connection's when it was made.
        self._adapters = cursor.adapters
        self._text_classes: dict[int, type[str]] = {}

    def bind(self, value: Any, otyp: str, name: str, *, inferred: bool = False) -> Any:
        if value is None:
            return None
        if otyp.endswith("[]"):
            if isinstance(value, list):
                return [self.bind(item, otyp[:-2], name) for item in value]
            return value if isinstance(value, str) else Jsonb(value)
        base = otyp.removeprefix("pg_catalog.")
        if base in ("json", "jsonb"):
            return Json(value) if base == "json" else Jsonb(value)
        if isinstance(value, bool):
            return value if base not in _TEXT_TYPES else ("true" if value else "false")
        if isinstance(value, int | float):
            if base in _INT_WRAPPERS and isinstance(value, int):
                return _INT_WRAPPERS[base](value)
            if base in _FLOAT_WRAPPERS:
                return _FLOAT_WRAPPERS[base](value)
            if base in ("numeric", "decimal"):
                return decimal.Decimal(str(value))
            return str(value) if base in _TEXT_TYPES else value
        if isinstance(value, str):
            if base == "bytea":
                try:
                    return base64.b64decode(value, validate=True)
                except ValueError:
                    raise JobError(
                        "ArgumentError", f"argument {name!r} must be base64-encoded bytes"
                    ) from None
            if base in ("time", "timetz"):
                value = _time_part(value, with_zone=base == "timetz")
            if inferred or base not in _TYPED_TEXT:
                return value
            return self._typed_text(value, _TYPED_TEXT[base])
        if isinstance(value, dict):
            return Jsonb(value)
        if isinstance(value, list):
            return [self.bind(item, base, name) for item in value]
        return value

    def _typed_text(self, value: str, type_name: str) -> str:
        info = self._adapters.types.get(type_name)
        if info is None:
            return value
        cls = self._text_classes.get(info.oid)
        if cls is None:
            # psycopg picks a dumper by class: one str subclass per declared type.
            cls = type(f"Text{info.oid}", (str,), {})
            dumper = type(f"Text{info.oid}Dumper", (StrDumper,), {"oid": info.oid})
            self._adapters.register_dumper(cls, dumper)
            self._text_classes[info.oid] = cls
        return cls(value)


def _time_part(value: str, *, with_zone: bool) -> str:
    """A time from the form's date-time (``2024-01-31T12:30:00Z``); a time stays as it is."""
    if "T" not in value and " " not in value.strip():
        return value
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return value
    return (moment.timetz() if with_zone else moment.time()).isoformat()


def argument_value(arg: dict[str, Any], args: dict[str, Any]) -> Any:
    # An absent or null argument takes its declared default (the form sends null for an
    # empty field); without one it is NULL.
    value = args.get(arg["name"])
    if value is None and arg["has_default"]:
        value = arg["default"]
    return value


# -- running ----------------------------------------------------------------------------------


def run(plan: dict[str, Any], args: dict[str, Any]) -> Any:
    conn = connect(connection_params(plan, args))
    by_index = {arg["index"]: arg for arg in plan["args"]}
    statements = plan["statements"]
    several = len(statements) > 1
    timer = _cancel_before_timeout(conn, float(plan.get("timeout_s") or 0))
    results = []
    try:
        cursor = psycopg.RawCursor(conn)
        binder = Binder(cursor)
        if several:
            conn.execute("BEGIN")
        for number, statement in enumerate(statements, start=1):
            used = [by_index[index] for index in statement["params"]]
            values = [
                binder.bind(argument_value(a, args), a["otyp"], a["name"], inferred=a["inferred"])
                for a in used
            ]
            try:
                cursor.execute(statement["sql"], values, prepare=False)
                results.append(_rows(cursor))
            except psycopg.Error as exc:
                raise JobError(
                    "PostgresError",
                    describe_error(exc, plan, statement, number, used, timer.fired),
                ) from None
        # The script may have ended its transaction itself (COMMIT; VACUUM ...).
        if several and conn.info.transaction_status == pq.TransactionStatus.INTRANS:
            conn.execute("COMMIT")
    finally:
        timer.cancel()
        conn.close()
    return results if several else results[0]


def _rows(cursor: psycopg.RawCursor[Any]) -> list[dict[str, Any]]:
    if cursor.description is None:
        return []
    names = [column.name for column in cursor.description]
    return [
        {name: jsonable(value) for name, value in zip(names, row, strict=True)}
        for row in cursor.fetchall()
    ]


class _CancelTimer:
    def __init__(self, conn: psycopg.Connection[Any], delay: float) -> None:
        self.fired = False
        self._conn = conn
        self._timer = threading.Timer(delay, self._fire) if delay > 0 else None
        if self._timer is not None:
            self._timer.daemon = True
            self._timer.start()

    def _fire(self) -> None:
        self.fired = True
        self._conn.cancel_safe()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


def _cancel_before_timeout(conn: psycopg.Connection[Any], timeout_s: float) -> _CancelTimer:
    delay = timeout_s - CANCEL_MARGIN_S if timeout_s > 2 * CANCEL_MARGIN_S else 0
    return _CancelTimer(conn, delay)


def describe_error(
    exc: psycopg.Error,
    plan: dict[str, Any],
    statement: dict[str, Any],
    number: int,
    used: list[dict[str, Any]],
    timed_out: bool,
) -> str:
    """The server's message, its SQLSTATE, and where in the script, psql-style."""
    diag = exc.diag
    message = diag.message_primary or _first_lines(str(exc))
    parts = [message]
    sqlstate = exc.sqlstate
    if sqlstate:
        parts[0] += f" (SQLSTATE {sqlstate})"
    if timed_out and sqlstate == "57014":
        parts[0] += "; canceled because the job reached its timeout"
    count = len(plan["statements"])
    source = plan["source"]
    position = diag.statement_position
    if position and position.isdigit():
        offset = statement["offset"] + int(position) - 1
        line_start = source.rfind("\n", 0, offset) + 1
        line_end = source.find("\n", offset)
        line_end = len(source) if line_end < 0 else line_end
        line = source.count("\n", 0, offset) + 1
        column = offset - line_start + 1
        where = f"at line {line}, column {column}"
        if count > 1:
            where += f" (statement {number} of {count})"
        parts[0] += " " + where
        text = source[line_start:line_end]
        gutter = f"{line} | "
        parts.append(gutter + text)
        parts.append(" " * (len(gutter) + column - 1) + "^")
    elif count > 1:
        parts[0] += f" in statement {number} of {count}"
    if diag.message_detail:
        parts.append(f"DETAIL: {diag.message_detail}")
    if diag.message_hint:
        parts.append(f"HINT: {diag.message_hint}")
    if diag.context:
        parts.append(f"CONTEXT: {_script_params(diag.context, used)}")
    return "\n".join(parts)


def _script_params(text: str, used: list[dict[str, Any]]) -> str:
    """``$k`` of a renumbered statement as the script's own parameter."""

    def original(match: re.Match[str]) -> str:
        k = int(match.group(1))
        if 1 <= k <= len(used):
            arg = used[k - 1]
            label = f"${arg['index']}"
            return label if arg["name"] == label else f"{label} ({arg['name']})"
        return match.group(0)

    return _CONTEXT_PARAM.sub(original, text)


if __name__ == "__main__":
    sys.exit(main())
