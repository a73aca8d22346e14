"""PostgreSQL scripts end to end: saved through the API, run by real workers, against the
session's Postgres with the connection passed inline as the `database` argument. Jobs run
sandboxed, as in the product: they reach the database over TCP (``tcp_database``)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from gristmill.testing.contract import require_toolchain
from gristmill_sql.runtime import PostgresRuntime

pytestmark = pytest.mark.slow

SCRIPT = """\
-- $1 name (text)
-- $2 qty (int) = 1
CREATE TEMP TABLE orders (name text, qty int);
INSERT INTO orders VALUES ($1, $2), ('other', 5);
SELECT name, qty FROM orders WHERE name = $1;
"""


@pytest.fixture(autouse=True)
def _psycopg() -> None:
    require_toolchain(PostgresRuntime())


async def _save(
    api: httpx.AsyncClient, path: str, content: str, language: str = "postgresql"
) -> httpx.Response:
    return await api.post(
        "/w/main/scripts/create", json={"path": path, "content": content, "language": language}
    )


async def test_a_sql_script_runs_through_the_api(
    api: httpx.AsyncClient, tcp_database: dict[str, Any]
) -> None:
    saved = await _save(api, "u/admin/orders", SCRIPT)
    assert saved.status_code == 201, saved.text
    script = (await api.get("/w/main/scripts/get/p/u/admin/orders")).json()
    assert script["language"] == "postgresql"
    schema = script["schema"]
    assert schema["required"] == ["database", "name"]
    assert schema["properties"]["database"]["format"] == "resource-postgresql"
    assert schema["properties"]["qty"] == {"type": "integer", "description": "", "default": 1}

    hostile = "x'); DROP TABLE orders; --"
    args = {"database": tcp_database, "name": hostile}
    r = await api.post("/w/main/jobs/run_wait_result/p/u/admin/orders", json=args)
    assert r.status_code == 200, r.text
    assert r.json() == [[], [], [{"name": hostile, "qty": 1}]]

    # An alias of the language is accepted and stored as its name.
    r = await _save(api, "u/admin/one", "SELECT $1::int * 2 AS doubled", language="sql")
    assert r.status_code == 201, r.text
    r = await api.post(
        "/w/main/jobs/run_wait_result/p/u/admin/one", json={"database": tcp_database, "$1": 21}
    )
    assert r.status_code == 200 and r.json() == [{"doubled": 42}]


async def test_sql_failures_and_refusals(
    api: httpx.AsyncClient, tcp_database: dict[str, Any]
) -> None:
    assert (await _save(api, "u/admin/bad", "SELECT 1;\nSELECT nope;")).status_code == 201
    r = await api.post(
        "/w/main/jobs/run_wait_result/p/u/admin/bad", json={"database": tcp_database}
    )
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["name"] == "PostgresError"
    assert error["message"].startswith(
        'column "nope" does not exist (SQLSTATE 42703) at line 2, column 8 (statement 2 of 2)'
    )
    # The connection is required by the schema.
    r = await api.post("/w/main/jobs/run_wait_result/p/u/admin/bad", json={})
    assert r.status_code == 400 and "database" in r.text
    r = await _save(api, "u/admin/broken", "-- $1 x (int)\nSELECT 'oops FROM t")
    assert r.status_code == 400
    assert "line 2, column 8" in r.text and "unterminated quoted string" in r.text


async def test_the_database_as_a_resource(
    api: httpx.AsyncClient, tcp_database: dict[str, Any]
) -> None:
    """Windmill's two ways: a `-- database <path>` line, and `"$res:<path>"` as the
    `database` argument; both read by the worker with the job's permissions."""
    r = await api.post(
        "/w/main/resources/create",
        json={"path": "u/admin/db", "value": tcp_database, "resource_type": "postgresql"},
    )
    assert r.status_code == 201, r.text
    pinned = "-- database u/admin/db\n-- $1 n (int)\nSELECT $1 * 2 AS doubled, current_database() AS db;\n"
    assert (await _save(api, "u/admin/pinned", pinned)).status_code == 201
    schema = (await api.get("/w/main/scripts/get/p/u/admin/pinned")).json()["schema"]
    assert list(schema["properties"]) == ["n"]
    r = await api.post("/w/main/jobs/run_wait_result/p/u/admin/pinned", json={"n": 21})
    assert r.status_code == 200, r.text
    assert r.json() == [{"doubled": 42, "db": tcp_database["dbname"]}]

    assert (await _save(api, "u/admin/one", "SELECT 7 AS seven")).status_code == 201
    r = await api.post(
        "/w/main/jobs/run_wait_result/p/u/admin/one", json={"database": "$res:u/admin/db"}
    )
    assert r.status_code == 200, r.text
    assert r.json() == [{"seven": 7}]

    # A pinned resource that does not exist fails the job before it starts, naming it.
    assert (await _save(api, "u/admin/lost", "-- database u/admin/nope\nSELECT 1")).status_code == 201  # fmt: skip
    r = await api.post("/w/main/jobs/run_wait_result/p/u/admin/lost", json={})
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["name"] == "ResourceError" and "u/admin/nope" in error["message"]
