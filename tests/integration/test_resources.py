"""Resources and resource types through the API: built-in types, schemas checked, values
validated, permissions, `$var:`/`$res:` references (in values and in job arguments)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from gristmill.auth.tokens import create_api_token
from gristmill.server.platform import Platform


# One platform for the module's tests, each in a workspace of its own (tests/integration/
# conftest.py): they create the same paths and list a workspace's resources.
@pytest.fixture(scope="module")
def platform(module_platform: Platform) -> Platform:
    return module_platform


@pytest.fixture(scope="module")
def api(module_api: httpx.AsyncClient) -> httpx.AsyncClient:
    return module_api


PG = {"host": "db.example", "port": 5432, "user": "app", "dbname": "app", "password": "pw"}


async def _member(platform: Platform, workspace: str, username: str, role: str) -> dict[str, str]:
    """A user of ``workspace`` with this role, and the headers of a token of theirs (users
    are the platform's: another test's workspace may have the same one)."""
    email = f"{username}@example.com"
    async with platform.db.connection() as conn:
        await conn.execute(
            "INSERT INTO app_user (email, username) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (email, username),
        )
        await conn.execute(
            "INSERT INTO workspace_member (workspace_id, email, role) VALUES (%s, %s, %s)",
            (workspace, email, role),
        )
        token = await create_api_token(conn, email=email, label="test", expiration=None)
    return {"Authorization": f"Bearer {token}"}


async def _plain_variable(platform: Platform, workspace: str, path: str, value: str) -> None:
    # Variables have their own API (another part of the workspace model); a row is enough.
    async with platform.db.connection() as conn:
        await conn.execute(
            "INSERT INTO variable (workspace_id, path, value) VALUES (%s, %s, %s)",
            (workspace, path, value),
        )


async def _create(
    api: httpx.AsyncClient, workspace: str, path: str, value: Any, rtype: str = "any", **kw: Any
):
    return await api.post(
        f"/w/{workspace}/resources/create",
        json={"path": path, "value": value, "resource_type": rtype},
        **kw,
    )


async def test_builtin_and_workspace_resource_types(
    api: httpx.AsyncClient, platform: Platform, workspace: str
) -> None:
    types = (await api.get(f"/w/{workspace}/resources/type/list")).json()
    by_name = {t["name"]: t for t in types}
    assert {"postgresql", "mysql", "s3", "smtp", "state", "any"} <= set(by_name)
    pg = by_name["postgresql"]
    assert pg["builtin"] is True and pg["workspace_id"] == workspace
    assert set(pg["schema"]["properties"]) == {
        "host", "port", "user", "dbname", "sslmode", "password", "root_certificate_pem"
    }  # fmt: skip
    assert set(by_name["s3"]["schema"]["properties"]) == {
        "bucket", "region", "endPoint", "useSSL", "accessKey", "secretKey", "pathStyle"
    }  # fmt: skip
    assert by_name["state"]["schema"] is None and by_name["any"]["schema"] is None
    names = (await api.get(f"/w/{workspace}/resources/type/listnames")).json()
    assert "postgresql" in names and "state" in names
    assert (await api.get(f"/w/{workspace}/resources/type/exists/postgresql")).json() is True
    assert (await api.get(f"/w/{workspace}/resources/type/exists/nope")).json() is False
    r = await api.get(f"/w/{workspace}/resources/type/get/s3")
    assert r.status_code == 200 and r.json()["schema"]["properties"]["useSSL"]["type"] == "boolean"
    assert (await api.get(f"/w/{workspace}/resources/type/get/nope")).status_code == 404

    # A schema that is not a JSON schema is refused with the validator's message.
    bad = {"name": "weather", "schema": {"type": "object", "properties": {"x": {"type": 7}}}}
    r = await api.post(f"/w/{workspace}/resources/type/create", json=bad)
    assert r.status_code == 400 and "not a valid JSON schema" in r.text and "7" in r.text
    bad_regex = {"type": "object", "properties": {"x": {"type": "string", "pattern": "("}}}
    r = await api.post(
        f"/w/{workspace}/resources/type/create", json={"name": "w", "schema": bad_regex}
    )
    assert r.status_code == 400 and "is not a 'regex'" in r.text
    schema = {
        "type": "object",
        "properties": {"key": {"type": "string"}, "units": {"type": "string"}},
        "required": ["key"],
    }
    body = {"name": "weather", "schema": schema, "description": "a weather API"}
    r = await api.post(f"/w/{workspace}/resources/type/create", json=body)
    assert r.status_code == 201, r.text
    assert (await api.post(f"/w/{workspace}/resources/type/create", json=body)).status_code == 400
    r = await api.post(f"/w/{workspace}/resources/type/create", json={**body, "name": "postgresql"})
    assert r.status_code == 400 and "already exists" in r.text
    r = await api.post(f"/w/{workspace}/resources/type/create", json={**body, "name": "bad name"})
    assert r.status_code == 400 and "invalid resource type name" in r.text
    got = (await api.get(f"/w/{workspace}/resources/type/get/weather")).json()
    assert got["schema"] == schema and got["builtin"] is False and got["created_by"]

    # Built-ins are read-only; the workspace's own types change and go.
    r = await api.post(
        f"/w/{workspace}/resources/type/update/postgresql", json={"description": "x"}
    )
    assert r.status_code == 400 and "built-in" in r.text
    assert (await api.delete(f"/w/{workspace}/resources/type/delete/state")).status_code == 400
    r = await api.post(f"/w/{workspace}/resources/type/update/weather", json={"description": "new"})
    assert r.status_code == 200
    got = (await api.get(f"/w/{workspace}/resources/type/get/weather")).json()
    assert got["description"] == "new" and got["schema"] == schema
    assert (
        await api.get(f"/w/{workspace}/resources/file_resource_type_to_file_ext_map")
    ).json() == {}
    r = await api.post(
        f"/w/{workspace}/resources/type/create",
        json={"name": "config_file", "schema": None, "format_extension": "yaml"},
    )
    assert r.status_code == 201
    ext = (await api.get(f"/w/{workspace}/resources/file_resource_type_to_file_ext_map")).json()
    assert ext == {"config_file": "yaml"}
    assert (await api.delete(f"/w/{workspace}/resources/type/delete/weather")).status_code == 200
    assert (await api.get(f"/w/{workspace}/resources/type/get/weather")).status_code == 404
    assert (await api.delete(f"/w/{workspace}/resources/type/delete/weather")).status_code == 404

    # An operator creates no type; a developer does.
    operator = await _member(platform, workspace, "opal", "operator")
    r = await api.post(f"/w/{workspace}/resources/type/create", json=body, headers=operator)
    assert r.status_code == 403 and "operator" in r.text
    developer = await _member(platform, workspace, "dev", "developer")
    r = await api.post(f"/w/{workspace}/resources/type/create", json=body, headers=developer)
    assert r.status_code == 201


async def test_resource_lifecycle_and_validation(api: httpx.AsyncClient, workspace: str) -> None:
    r = await _create(api, workspace, "u/admin/db", {**PG, "port": "five"}, "postgresql")
    assert r.status_code == 400 and "port" in r.text and "integer" in r.text
    r = await _create(api, workspace, "u/admin/db", {"dbname": "x"}, "postgresql")
    assert r.status_code == 400 and "'host' is a required property" in r.text
    r = await _create(api, workspace, "u/admin/db", PG, "no_such_type")
    assert r.status_code == 400 and "unknown resource_type" in r.text
    assert (await _create(api, workspace, "admin/db", PG, "postgresql")).status_code == 400
    assert (await _create(api, workspace, "u/admin/d\u00e9", PG)).status_code == 400
    r = await _create(api, workspace, "u/admin/db", {"x": "a\u0000b"})
    assert r.status_code == 400 and "NUL" in r.text
    r = await _create(api, workspace, "u/admin/db", {"n": 2**70})
    assert r.status_code == 400 and "64-bit" in r.text
    r = await _create(api, workspace, "u/admin/" + "x" * 2000, 1)
    assert r.status_code == 400 and "over 1000" in r.text
    # A reference stands for a value known only when read: it passes the schema.
    r = await _create(
        api, workspace, "u/admin/db", {**PG, "port": "$var:u/admin/port"}, "postgresql"
    )
    assert r.status_code == 201, r.text
    assert r.text == "u/admin/db"
    assert (await _create(api, workspace, "u/admin/db", PG, "postgresql")).status_code == 400
    assert (
        await _create(api, workspace, "f/shared/s3x", {"anything": [1]}, "any")
    ).status_code == 201

    got = (await api.get(f"/w/{workspace}/resources/get/u/admin/db")).json()
    assert got["resource_type"] == "postgresql" and got["value"]["port"] == "$var:u/admin/port"
    assert got["path"] == "u/admin/db" and got["extra_perms"] == {}
    assert (await api.get(f"/w/{workspace}/resources/exists/u/admin/db")).json() is True
    assert (await api.get(f"/w/{workspace}/resources/exists/u/admin/nope")).json() is False
    assert (await api.get(f"/w/{workspace}/resources/get/u/admin/nope")).status_code == 404

    listed = (await api.get(f"/w/{workspace}/resources/list")).json()
    assert [x["path"] for x in listed] == ["f/shared/s3x", "u/admin/db"]
    only_pg = await api.get(
        f"/w/{workspace}/resources/list", params={"resource_type": "postgresql"}
    )
    assert [x["path"] for x in only_pg.json()] == ["u/admin/db"]
    under_f = await api.get(f"/w/{workspace}/resources/list", params={"path_start": "f/"})
    assert [x["path"] for x in under_f.json()] == ["f/shared/s3x"]

    r = await api.post(f"/w/{workspace}/resources/update_value/u/admin/db", json={"value": PG})
    assert r.status_code == 200
    assert (await api.get(f"/w/{workspace}/resources/get_value/u/admin/db")).json() == PG
    r = await api.post(
        f"/w/{workspace}/resources/update_value/u/admin/db", json={"value": {**PG, "port": []}}
    )
    assert r.status_code == 400 and "port" in r.text
    r = await api.post(
        f"/w/{workspace}/resources/update/u/admin/db",
        json={"path": "u/admin/db2", "description": "the main one"},
    )
    assert r.status_code == 200, r.text
    assert (await api.get(f"/w/{workspace}/resources/get/u/admin/db")).status_code == 404
    moved = (await api.get(f"/w/{workspace}/resources/get/u/admin/db2")).json()
    assert moved["description"] == "the main one" and moved["value"] == PG
    # create with update_if_exists (Windmill's query flag) overwrites.
    r = await _create(api, workspace, "u/admin/db2", {**PG, "dbname": "other"}, "postgresql",
                      params={"update_if_exists": "true"})  # fmt: skip
    assert r.status_code == 201
    assert (await api.get(f"/w/{workspace}/resources/get_value/u/admin/db2")).json()[
        "dbname"
    ] == "other"
    assert (await api.delete(f"/w/{workspace}/resources/delete/u/admin/db2")).status_code == 200
    assert (await api.delete(f"/w/{workspace}/resources/delete/u/admin/db2")).status_code == 404
    audit = (await api.get(f"/w/{workspace}/resources/list")).json()
    assert [x["path"] for x in audit] == ["f/shared/s3x"]


async def test_interpolation_expands_references_recursively(
    api: httpx.AsyncClient, platform: Platform, workspace: str
) -> None:
    await _plain_variable(platform, workspace, "u/admin/pw", "s3cret")
    assert (
        await _create(api, workspace, "u/admin/inner", {"token": "$var:u/admin/pw"})
    ).status_code == 201
    value = {
        "password": "$var:u/admin/pw",
        "nested": [{"r": "$res:u/admin/inner"}, "plain", 3],
        "not_a_ref": "prefix $var:u/admin/pw",
    }
    assert (await _create(api, workspace, "u/admin/outer", value)).status_code == 201
    raw = (await api.get(f"/w/{workspace}/resources/get_value/u/admin/outer")).json()
    assert raw == value
    r = await api.get(f"/w/{workspace}/resources/get_value_interpolated/u/admin/outer")
    assert r.status_code == 200
    assert r.json() == {
        "password": "s3cret",
        "nested": [{"r": {"token": "s3cret"}}, "plain", 3],
        "not_a_ref": "prefix $var:u/admin/pw",
    }
    # A missing reference: 404 naming it.
    assert (
        await _create(api, workspace, "u/admin/dangling", {"x": "$res:u/admin/gone"})
    ).status_code == 201
    r = await api.get(f"/w/{workspace}/resources/get_value_interpolated/u/admin/dangling")
    assert r.status_code == 404 and "u/admin/gone" in r.text
    assert (
        await _create(api, workspace, "u/admin/novar", ["$var:u/admin/novar"])
    ).status_code == 201
    r = await api.get(f"/w/{workspace}/resources/get_value_interpolated/u/admin/novar")
    assert r.status_code == 404 and "variable 'u/admin/novar'" in r.text
    # A cycle ends with a clear 400.
    assert (await _create(api, workspace, "u/admin/a", {"b": "$res:u/admin/b"})).status_code == 201
    assert (await _create(api, workspace, "u/admin/b", {"a": "$res:u/admin/a"})).status_code == 201
    r = await api.get(f"/w/{workspace}/resources/get_value_interpolated/u/admin/a")
    assert r.status_code == 400 and "nest more than" in r.text


async def test_permissions_on_resources(
    api: httpx.AsyncClient, platform: Platform, workspace: str
) -> None:
    bob = await _member(platform, workspace, "bob", "developer")
    opal = await _member(platform, workspace, "opal", "operator")
    assert (await _create(api, workspace, "u/admin/private", {"k": 1})).status_code == 201
    # Invisible is missing.
    assert (
        await api.get(f"/w/{workspace}/resources/get/u/admin/private", headers=bob)
    ).status_code == 404
    r = await api.get(f"/w/{workspace}/resources/exists/u/admin/private", headers=bob)
    assert r.json() is False
    assert (await api.get(f"/w/{workspace}/resources/list", headers=bob)).json() == []
    r = await api.post(
        f"/w/{workspace}/resources/update_value/u/admin/private", json={"value": 2}, headers=bob
    )
    assert r.status_code == 404
    # Bob writes his own, not the admin's.
    assert (await _create(api, workspace, "u/bob/mine", {"k": 1}, headers=bob)).status_code == 201
    r = await _create(api, workspace, "u/admin/planted", {"k": 1}, headers=bob)
    assert r.status_code == 403
    # A reference is read with the caller's permissions.
    assert (await _create(api, workspace, "u/bob/sneaky", {"x": "$res:u/admin/private"}, headers=bob)).status_code == 201  # fmt: skip
    r = await api.get(f"/w/{workspace}/resources/get_value_interpolated/u/bob/sneaky", headers=bob)
    assert r.status_code == 404 and "u/admin/private" in r.text
    r = await api.get(f"/w/{workspace}/resources/get_value_interpolated/u/bob/sneaky")
    assert r.status_code == 200 and r.json() == {"x": {"k": 1}}
    # An operator writes nothing, not even under their own user.
    r = await _create(api, workspace, "u/opal/mine", {"k": 1}, headers=opal)
    assert r.status_code == 403 and "operator" in r.text
    r = await _create(api, workspace, "u/opal/counter/opal", 1, "state", headers=opal)
    assert r.status_code == 403


ECHO_ARGS = "def main(db: dict, pw: str = ''):\n    return {'db': db, 'pw': pw}\n"


async def test_job_arguments_resolve_references_in_the_worker(
    api: httpx.AsyncClient, platform: Platform, workspace: str
) -> None:
    await _plain_variable(platform, workspace, "u/admin/pw", "s3cret")
    assert (await _create(api, workspace, "u/admin/pg", {**PG, "password": "$var:u/admin/pw"}, "postgresql")).status_code == 201  # fmt: skip
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "db": {"type": "object", "format": "resource-postgresql"},
            "pw": {"type": "string", "default": ""},
        },
        "required": ["db"],
    }
    r = await api.post(
        f"/w/{workspace}/scripts/create",
        json={"path": "u/admin/echo", "content": ECHO_ARGS, "language": "python3",
              "schema": schema},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    args = {"db": "$res:u/admin/pg", "pw": "$var:u/admin/pw"}
    r = await api.post(f"/w/{workspace}/jobs/run_wait_result/p/u/admin/echo", json=args)
    assert r.status_code == 200, r.text
    assert r.json() == {"db": {**PG, "password": "s3cret"}, "pw": "s3cret"}
    # The stored arguments keep the references: no secret in the job's row.
    job_id = (await api.post(f"/w/{workspace}/jobs/run/p/u/admin/echo", json=args)).text
    await _wait(api, workspace, job_id)
    job = (await api.get(f"/w/{workspace}/jobs_u/get/{job_id}")).json()
    assert job["args"] == args
    # Nested references too.
    r = await api.post(
        f"/w/{workspace}/jobs/run_wait_result/p/u/admin/echo",
        json={"db": {"list": ["$var:u/admin/pw"]}},
    )
    assert r.status_code == 200 and r.json()["db"] == {"list": ["s3cret"]}
    # A missing reference fails the job, naming it.
    r = await api.post(f"/w/{workspace}/jobs/run_wait_result/p/u/admin/echo", json={"db": "$res:u/admin/gone"})  # fmt: skip
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["name"] == "ResourceError" and "u/admin/gone" in error["message"]

    # A job reads as its user: bob's preview cannot reach the admin's resource.
    bob = await _member(platform, workspace, "bob", "developer")
    preview = {"content": ECHO_ARGS, "language": "python3", "args": {"db": "$res:u/admin/pg"}}
    r = await api.post(f"/w/{workspace}/jobs/run_wait_result/preview", json=preview, headers=bob)
    assert r.status_code == 422
    assert r.json()["error"]["name"] == "ResourceError" and "u/admin/pg" in r.text


async def _wait(api: httpx.AsyncClient, workspace: str, job_id: str) -> dict[str, Any]:
    import asyncio

    for _ in range(400):
        r = (await api.get(f"/w/{workspace}/jobs_u/completed/get_result_maybe/{job_id}")).json()
        if r["completed"]:
            return r
        await asyncio.sleep(0.05)
    pytest.fail("job did not complete")
