"""PostgreSQL jobs run for real on the session's Postgres: binding, statements, types, errors."""

from __future__ import annotations

import base64
import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from gristmill.config import Settings
from gristmill.runtimes import Runtime
from gristmill.sandbox import RunPolicy
from gristmill.sandbox.spec import SYSTEM_DIRS, is_under
from gristmill.server.platform import run_policy
from gristmill.testing.contract import require_toolchain
from gristmill.testing.pytest_plugin import PgCluster
from gristmill.testing.runner import RanJob, make_context, run_job
from gristmill_sql.runtime import PostgresRuntime


@pytest.fixture(scope="module")
def runtime() -> PostgresRuntime:
    runtime = PostgresRuntime()
    require_toolchain(runtime)
    return runtime


@pytest.fixture
def db(sql_database: dict[str, Any]) -> dict[str, Any]:
    return dict(sql_database)


def _run(
    runtime: PostgresRuntime,
    code: str,
    db: dict[str, Any] | None,
    root: Path,
    timeout_s: float = 60,
    **args: Any,
) -> RanJob:
    if db is not None:
        args = {"database": db, **args}
    return run_job(runtime, code, args, root, timeout_s=timeout_s)


def _ok(ran: RanJob) -> Any:
    assert ran.outcome.success, f"{ran.outcome.result_json}\nlogs:\n{ran.logs}"
    return ran.result


def _error(ran: RanJob) -> dict[str, Any]:
    assert not ran.outcome.success, ran.outcome.result_json
    return ran.result["error"]


def _query(db: dict[str, Any], sql: str) -> list[tuple[Any, ...]]:
    params = {k: v for k, v in db.items() if v != ""}
    with psycopg.connect(**params, autocommit=True) as conn:
        cursor = conn.execute(sql.encode())
        return cursor.fetchall() if cursor.description else []


def _table() -> str:
    return f"t_{uuid.uuid4().hex[:10]}"


# -- identity and toolchain ---------------------------------------------------------------------


def test_identity() -> None:
    runtime = PostgresRuntime()
    assert isinstance(runtime, Runtime)
    assert (runtime.name, runtime.display_name) == ("postgresql", "PostgreSQL")
    assert runtime.aliases == ("sql", "postgres")
    assert runtime.file_extensions == (".sql", ".pg.sql")


def test_interpreter_is_the_workers_own_unresolved(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SQL_PYTHON_PATH", raising=False)
    # A venv's python is a symlink; resolved, it would lose the venv's site-packages.
    assert PostgresRuntime().interpreter == os.path.abspath(sys.executable)
    monkeypatch.setenv("SQL_PYTHON_PATH", "/opt/py/bin/python3")
    assert PostgresRuntime().interpreter == "/opt/py/bin/python3"


def test_toolchain_reports_psycopg(runtime: PostgresRuntime) -> None:
    assert (runtime.toolchain().version or "").startswith("psycopg 3.")


def test_toolchain_without_psycopg_says_how_to_install(tmp_path: Path) -> None:
    missing = PostgresRuntime(interpreter="/nonexistent/python").toolchain()
    assert not missing.available
    assert "/nonexistent/python" in missing.message and "SQL_PYTHON_PATH" in missing.message
    # The base interpreter behind a venv has no psycopg.
    bare = tmp_path / "python"
    bare.write_text(
        "#!/bin/sh\necho \"ModuleNotFoundError: No module named 'psycopg'\" >&2\nexit 1\n"
    )
    bare.chmod(0o755)
    toolchain = PostgresRuntime(interpreter=str(bare)).toolchain()
    assert not toolchain.available
    assert "psycopg does not import" in toolchain.message
    assert "No module named 'psycopg'" in toolchain.message
    assert "pip install 'psycopg[binary]'" in toolchain.message


def test_recipe(runtime: PostgresRuntime, tmp_path: Path) -> None:
    ctx = make_context(runtime, "SELECT 1", {"database": {}}, tmp_path)
    recipe = runtime.prepare(ctx)
    assert list(recipe.argv) == [runtime.interpreter, "-I", "-B", "-u", runtime.wrapper]
    assert dict(recipe.env) == dict(ctx.env)
    assert (ctx.job_dir / "plan.json").is_file()


def test_recipe_declares_what_the_sandbox_must_show(
    runtime: PostgresRuntime, tmp_path: Path
) -> None:
    """Read-only: the interpreter and its standard library, the site-packages psycopg is
    imported from, the wrapper; the network (the database); a memory limit."""
    recipe = runtime.prepare(make_context(runtime, "SELECT 1", {"database": {}}, tmp_path))
    recipe.validate()
    assert not any(m.writable for m in recipe.mounts)
    sources = [m.source for m in recipe.mounts]

    def visible(path: str) -> bool:
        # Declared, or in a system directory every step sees (a system Python's is /usr).
        return any(is_under(path, s) for s in [*sources, *SYSTEM_DIRS])

    site_packages = os.path.dirname(os.path.dirname(psycopg.__file__))
    for path in (runtime.interpreter, runtime.wrapper, site_packages, sys.base_prefix):
        assert visible(path), (path, sources)
    if sys.prefix != sys.base_prefix:
        assert os.path.join(sys.prefix, "pyvenv.cfg") in sources
    assert recipe.network is True
    assert recipe.limits.memory_mb == 4096


def test_sandboxed_job_reaches_its_database_over_the_network(
    runtime: PostgresRuntime,
    tcp_database: dict[str, Any],
    sandbox_policy: RunPolicy,
    sandbox_backend: str,
    sandbox_data_dir: Path,
    sandbox_root: Path,
) -> None:
    """Sandboxed (bwrap, nsjail), a job reaches a database over TCP, unless the worker
    group's jobs have no network (GRISTMILL_JOB_NETWORK=off): the recipe asks for it, the
    policy wins."""
    code = "SELECT current_database() AS db;"
    ran = run_job(runtime, code, {"database": tcp_database}, sandbox_root, policy=sandbox_policy)
    assert _ok(ran) == [{"db": tcp_database["dbname"]}]
    offline = run_policy(
        Settings(data_dir=sandbox_data_dir, sandbox=sandbox_backend, job_network=False)
    )
    ran = run_job(runtime, code, {"database": tcp_database}, sandbox_root, policy=offline)
    assert _error(ran)["name"] == "ConnectionError"


def test_sandboxed_job_cannot_reach_a_unix_socket(
    runtime: PostgresRuntime, db: dict[str, Any], sandbox_policy: RunPolicy, sandbox_root: Path
) -> None:
    """A unix-socket host is not visible in the sandbox: the runtime mounts no directory an
    argument names (any directory of the host, local databases' sockets among them)."""
    assert str(db["host"]).startswith("/")
    ran = run_job(
        runtime, "SELECT 1 AS one;", {"database": db}, sandbox_root, policy=sandbox_policy
    )
    error = _error(ran)
    assert error["name"] == "ConnectionError", error


def test_template_runs(runtime: PostgresRuntime, db: dict[str, Any], tmp_path: Path) -> None:
    ran = _run(runtime, runtime.template(), db, tmp_path)
    assert _ok(ran) == [{"greeting": "Hello, world!", "times": 1}]
    ran = _run(runtime, runtime.template(), db, tmp_path, name="Ada", times=3)
    assert _ok(ran) == [{"greeting": "Hello, Ada!", "times": 3}]


# -- parameters ---------------------------------------------------------------------------------


def test_parameters_are_bound_never_interpolated(
    runtime: PostgresRuntime, db: dict[str, Any], tmp_path: Path
) -> None:
    table = _table()
    _query(db, f"CREATE TABLE {table} (v text)")
    hostile = "'; DROP TABLE " + table + "; --"
    code = f"-- $1 value (text)\nINSERT INTO {table} VALUES ($1) RETURNING v;"
    assert _ok(_run(runtime, code, db, tmp_path, value=hostile)) == [{"v": hostile}]
    assert _query(db, f"SELECT v FROM {table}") == [(hostile,)]


def test_untyped_text_takes_the_type_the_statement_needs(
    runtime: PostgresRuntime, db: dict[str, Any], tmp_path: Path
) -> None:
    code = "SELECT n FROM generate_series(1, 5) AS g(n) WHERE n = $1;"
    assert _ok(run_job(runtime, code, {"database": db, "$1": "4"}, tmp_path)) == [{"n": 4}]


def test_values_in(runtime: PostgresRuntime, db: dict[str, Any], tmp_path: Path) -> None:
    code = """\
-- $1 i (int)
-- $2 big (bigint)
-- $3 amount (numeric)
-- $4 flag (bool)
-- $5 doc (jsonb)
-- $6 day (date)
-- $7 moment (timestamptz)
-- $8 at (time)
-- $9 blob (bytea)
-- $10 ids (int[])
-- $11 tags (text[])
-- $12 id (uuid)
-- $13 ratio (float8)
SELECT pg_typeof($1)::text AS i_type, $1 + 1 AS i,
       $2 * 2 AS big,
       $3 + 0.2 AS amount,
       NOT $4 AS flag,
       $5 -> 'k' AS doc,
       $6 + 1 AS day,
       $7 AT TIME ZONE 'UTC' AS moment,
       $8 AS at,
       length($9) AS blob_length,
       array_length($10, 1) AS ids,
       $11[2] AS tag,
       $12 AS id,
       $13 / 4 AS ratio
"""
    args = {
        "i": 41,
        "big": 2**40,
        "amount": 0.1,
        "flag": False,
        "doc": {"k": [1, "two"]},
        "day": "2024-01-31",
        "moment": "2024-01-31T12:30:00+02:00",
        "at": "2024-01-31T08:15:00Z",
        "blob": base64.b64encode(b"\x00\x01\x02").decode(),
        "ids": [1, 2, 3],
        "tags": ["a", "b,c"],
        "id": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "ratio": 1.0,
    }
    assert _ok(_run(runtime, code, db, tmp_path, **args)) == [
        {
            "i_type": "integer",
            "i": 42,
            "big": 2**41,
            "amount": 0.3,  # numeric arithmetic: exact
            "flag": True,
            "doc": [1, "two"],
            "day": "2024-02-01",
            "moment": "2024-01-31T10:30:00",
            "at": "08:15:00",
            "blob_length": 3,
            "ids": 3,
            "tag": "b,c",
            "id": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "ratio": 0.25,
        }
    ]


def test_defaults_and_nulls(runtime: PostgresRuntime, db: dict[str, Any], tmp_path: Path) -> None:
    code = (
        "-- $1 n (int) = 7\n-- $2 label (text) = 'none'\n-- $3 maybe (int) = null\n"
        "SELECT $1 AS n, $2 AS label, $3 AS maybe;"
    )
    assert _ok(_run(runtime, code, db, tmp_path)) == [{"n": 7, "label": "none", "maybe": None}]
    # The form sends null for a field left empty: the default applies.
    ran = _run(runtime, code, db, tmp_path, n=None, label="x", maybe=5)
    assert _ok(ran) == [{"n": 7, "label": "x", "maybe": 5}]


def test_each_statement_gets_only_its_parameters(
    runtime: PostgresRuntime, db: dict[str, Any], tmp_path: Path
) -> None:
    code = "-- $1 a (int)\n-- $2 b (text)\nSELECT $2 AS b;\nSELECT $1 + 1 AS a, $2 AS b2;\nSELECT 3 AS c"
    ran = _run(runtime, code, db, tmp_path, a=1, b="x")
    assert _ok(ran) == [[{"b": "x"}], [{"a": 2, "b2": "x"}], [{"c": 3}]]


# -- statements and transactions -----------------------------------------------------------------


def test_statements_split_like_psql(
    runtime: PostgresRuntime, db: dict[str, Any], tmp_path: Path
) -> None:
    code = """\
CREATE FUNCTION pg_temp.add_one(x int) RETURNS int LANGUAGE SQL
BEGIN ATOMIC
  SELECT x + 1;
END;
CREATE FUNCTION pg_temp.semi() RETURNS text AS $f$ SELECT ';'::text; $f$ LANGUAGE sql;
SELECT pg_temp.add_one(1) AS two, pg_temp.semi() AS semi, 'a;b' AS text, "?column?" FROM (SELECT 1) AS s;
/* a ; in a /* nested */ comment */ SELECT E'it\\'s; fine' AS escaped -- ; here too
"""
    ran = _run(runtime, code, db, tmp_path)
    assert _ok(ran) == [
        [],
        [],
        [{"two": 2, "semi": ";", "text": "a;b", "?column?": 1}],
        [{"escaped": "it's; fine"}],
    ]


def test_several_statements_are_one_transaction(
    runtime: PostgresRuntime, db: dict[str, Any], tmp_path: Path
) -> None:
    table = _table()
    code = f"CREATE TABLE {table} (id int);\nINSERT INTO {table} VALUES (1);\nSELECT 1 / 0;"
    error = _error(_run(runtime, code, db, tmp_path))
    assert "division by zero" in error["message"] and "statement 3 of 3" in error["message"]
    # Nothing of the failed script stayed.
    assert _query(db, f"SELECT to_regclass('{table}')") == [(None,)]
    code = f"CREATE TABLE {table} (id int);\nINSERT INTO {table} VALUES (1), (2) RETURNING id;"
    assert _ok(_run(runtime, code, db, tmp_path)) == [[], [{"id": 1}, {"id": 2}]]
    assert _query(db, f"SELECT count(*) FROM {table}") == [(2,)]


def test_a_single_statement_runs_outside_a_transaction_block(
    runtime: PostgresRuntime, db: dict[str, Any], tmp_path: Path
) -> None:
    table = _table()
    _query(db, f"CREATE TABLE {table} (id int)")
    # VACUUM refuses to run inside a transaction block.
    assert _ok(_run(runtime, f"VACUUM {table};", db, tmp_path)) == []
    # A script may end the transaction itself before such a statement.
    code = f"INSERT INTO {table} VALUES (1);\nCOMMIT;\nVACUUM {table};\nSELECT count(*) AS n FROM {table}"
    assert _ok(_run(runtime, code, db, tmp_path)) == [[], [], [], [{"n": 1}]]


def test_notices_reach_the_logs(
    runtime: PostgresRuntime, db: dict[str, Any], tmp_path: Path
) -> None:
    ran = _run(runtime, "DO $$ BEGIN RAISE NOTICE 'hello %', 42; END $$;", db, tmp_path)
    assert _ok(ran) == []
    assert ran.logs == "NOTICE: hello 42\n"


# -- values out ---------------------------------------------------------------------------------


def test_values_out(runtime: PostgresRuntime, db: dict[str, Any], tmp_path: Path) -> None:
    code = """\
SELECT 1::int2 AS small, 9007199254740993::int8 AS big, 1.50::numeric AS dec,
       sum(x) AS numeric_sum, 12345678901234567890::numeric AS huge, 'NaN'::numeric AS nan_dec,
       0.5::float4 AS real, 'Infinity'::float8 AS inf, 'NaN'::float8 AS nan,
       true AS flag, NULL::text AS nothing, 'é'::text AS unicode,
       '{"a": [1, null]}'::jsonb AS doc, '[1, 2]'::json AS list,
       '2024-01-31'::date AS day, 'infinity'::date AS forever,
       '2024-01-31 12:30:00+02'::timestamptz AT TIME ZONE 'UTC' AS naive,
       '2024-01-31 12:30:00+00'::timestamptz AS aware,
       '13:14:15.5'::time AS at, '1 day 02:00:00'::interval AS span,
       '\\x00ff'::bytea AS blob, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS id,
       ARRAY[1, 2] AS ints, ARRAY['a', NULL] AS texts, ARRAY['2024-01-01'::date] AS days,
       ARRAY[1.5, 2]::numeric[] AS decs, '192.168.0.1'::inet AS ip, 'happy'::text::name AS nm
FROM (VALUES (1::bigint), (2)) AS v(x)
"""
    (row,) = _ok(_run(runtime, code, db, tmp_path))
    assert _query(db, "SELECT current_setting('TimeZone')")[0][0] in ("Etc/UTC", "UTC")
    assert row == {
        "small": 1,
        "big": 9007199254740993,
        "dec": 1.5,
        "numeric_sum": 3,
        "huge": 12345678901234567890,
        "nan_dec": "NaN",
        "real": 0.5,
        "inf": "Infinity",
        "nan": "NaN",
        "flag": True,
        "nothing": None,
        "unicode": "é",
        "doc": {"a": [1, None]},
        "list": [1, 2],
        "day": "2024-01-31",
        "forever": "infinity",
        "naive": "2024-01-31T10:30:00",
        "aware": "2024-01-31T12:30:00+00:00",
        "at": "13:14:15.500000",
        "span": "1 day 02:00:00",
        "blob": base64.b64encode(b"\x00\xff").decode(),
        "id": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "ints": [1, 2],
        "texts": ["a", None],
        "days": ["2024-01-01"],
        "decs": [1.5, 2],
        "ip": "192.168.0.1",
        "nm": "happy",
    }


def test_a_statement_without_rows_gives_an_empty_list(
    runtime: PostgresRuntime, db: dict[str, Any], tmp_path: Path
) -> None:
    assert _ok(_run(runtime, "SELECT 1 WHERE false", db, tmp_path)) == []
    assert _ok(_run(runtime, "CREATE TEMP TABLE x (id int)", db, tmp_path)) == []


# -- errors ---------------------------------------------------------------------------------


def test_server_errors_carry_sqlstate_and_position(
    runtime: PostgresRuntime, db: dict[str, Any], tmp_path: Path
) -> None:
    code = "-- $1 x (int)\nSELECT $1 AS ok;\n\nSELECT missing_column\n  FROM pg_class;"
    error = _error(_run(runtime, code, db, tmp_path, x=1))
    assert error["name"] == "PostgresError" and error["stack"] == ""
    assert error["message"] == (
        'column "missing_column" does not exist (SQLSTATE 42703) at line 4, column 8 '
        "(statement 2 of 2)\n4 | SELECT missing_column\n           ^"
    )


def test_syntax_error_position_in_a_single_statement(
    runtime: PostgresRuntime, db: dict[str, Any], tmp_path: Path
) -> None:
    message = _error(_run(runtime, "-- comment\nSELEC 1", db, tmp_path))["message"]
    assert message.startswith(
        'syntax error at or near "SELEC" (SQLSTATE 42601) at line 2, column 1'
    )


def test_bad_parameter_value_names_the_argument(
    runtime: PostgresRuntime, db: dict[str, Any], tmp_path: Path
) -> None:
    code = "-- $2 day\nSELECT 1;\nSELECT $2::date AS d"
    message = _error(_run(runtime, code, db, tmp_path, day="not a date"))["message"]
    assert 'invalid input syntax for type date: "not a date" (SQLSTATE 22007)' in message
    assert "parameter $2 (day)" in message


def test_connection_errors(runtime: PostgresRuntime, db: dict[str, Any], tmp_path: Path) -> None:
    refused = {**db, "host": "127.0.0.1", "port": 1}
    error = _error(_run(runtime, "SELECT 1", refused, tmp_path))
    assert error["name"] == "ConnectionError"
    assert error["message"].startswith(
        f"could not connect to PostgreSQL at 127.0.0.1:1 as postgres (database {db['dbname']}):"
    )
    assert "refused" in error["message"]
    no_database = {**db, "dbname": "no_such_database"}
    error = _error(_run(runtime, "SELECT 1", no_database, tmp_path))
    assert 'database "no_such_database" does not exist' in error["message"]


def test_database_argument_problems(
    runtime: PostgresRuntime, db: dict[str, Any], tmp_path: Path
) -> None:
    error = _error(_run(runtime, "SELECT 1", None, tmp_path))
    assert error["name"] == "ArgumentError" and "got nothing" in error["message"]
    error = _error(_run(runtime, "SELECT 1", None, tmp_path, database="f/db/main"))
    assert "must be the connection, an object {host, port" in error["message"]
    error = _error(_run(runtime, "SELECT 1", {"host": db["host"]}, tmp_path))
    assert "lacks dbname" in error["message"]
    error = _error(_run(runtime, "-- database f/db/main\nSELECT 1", None, tmp_path))
    # Without a worker nobody read the pinned resource: the job says so.
    assert error["name"] == "ResourceError"
    assert "the database resource f/db/main" in error["message"]
    assert "must be a postgresql resource" in error["message"] and "got nothing" in error["message"]


def test_bad_base64_is_an_argument_error(
    runtime: PostgresRuntime, db: dict[str, Any], tmp_path: Path
) -> None:
    # The API checks base64 against the schema; a job run another way is checked here.
    error = _error(_run(runtime, "-- $1 b (bytea)\nSELECT $1", db, tmp_path, b="@@@"))
    assert error == {
        "name": "ArgumentError",
        "message": "argument 'b' must be base64-encoded bytes",
        "stack": "",
    }


def test_a_query_is_canceled_on_the_server_before_the_timeout(
    runtime: PostgresRuntime, db: dict[str, Any], tmp_path: Path
) -> None:
    marker = uuid.uuid4().hex
    started = time.monotonic()
    ran = _run(runtime, f"SELECT pg_sleep(30), '{marker}'", db, tmp_path, timeout_s=2.5)
    assert time.monotonic() - started < 10
    error = _error(ran)
    assert "(SQLSTATE 57014); canceled because the job reached its timeout" in error["message"]
    running = _query(
        db,
        f"SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%{marker}%' AND pid <> pg_backend_pid()",
    )
    assert running == [(0,)]


# -- passwords ------------------------------------------------------------------------------


@pytest.fixture
def password_role(pg_cluster: PgCluster, db: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """A role that must give its password: the session's Postgres trusts every local
    connection, so one pg_hba.conf line, for this role only, asks it for a password."""
    role = f"gm_pw_{uuid.uuid4().hex[:8]}"
    password = uuid.uuid4().hex
    hba = pg_cluster.server.pgdata / "pg_hba.conf"
    original = hba.read_text()
    _query(db, f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    hba.write_text(f"local all {role} scram-sha-256\n{original}")
    _query(db, "SELECT pg_reload_conf()")
    try:
        yield role, password
    finally:
        hba.write_text(original)
        _query(db, "SELECT pg_reload_conf()")
        _query(db, f"DROP ROLE {role}")


def test_bad_password(
    runtime: PostgresRuntime, db: dict[str, Any], tmp_path: Path, password_role: tuple[str, str]
) -> None:
    role, password = password_role
    wrong = {**db, "user": role, "password": "not-" + password}
    error = _error(_run(runtime, "SELECT current_user AS who", wrong, tmp_path))
    assert error["name"] == "ConnectionError"
    assert f'password authentication failed for user "{role}"' in error["message"]
    assert password not in error["message"]
    right = {**db, "user": role, "password": password}
    assert _ok(_run(runtime, "SELECT current_user AS who", right, tmp_path)) == [{"who": role}]
