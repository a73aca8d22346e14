"""The audit log API: admins only, newest first, filters as Windmill's."""

from __future__ import annotations

import datetime as dt

import httpx
import psycopg
from gristmill.auth.tokens import create_api_token
from gristmill.db.queries import Q
from gristmill.server.platform import Platform

VARS = "/w/main/variables"


async def member_token(database_url: str, username: str, role: str) -> str:
    email = f"{username}@example.com"
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute(
            Q["insert_user"],
            {"email": email, "username": username, "password_hash": None, "super_admin": False},
        )
        await conn.execute(
            Q["add_member"],
            {"workspace_id": "main", "email": email, "role": role, "added_by": None},
        )
        return await create_api_token(conn, email=email, label="t", expiration=None)


def client(platform: Platform, token: str) -> httpx.AsyncClient:
    from gristmill.api.app import create_app

    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(platform)),
        base_url="http://gristmill.test/api",
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )


async def test_changes_and_secret_reads_are_listed_newest_first(
    platform: Platform, api: httpx.AsyncClient, database_url: str
) -> None:
    bob = await member_token(database_url, "bob", "developer")
    async with client(platform, bob) as as_bob:
        r = await as_bob.post(
            f"{VARS}/create", json={"path": "u/bob/key", "value": "v4lue", "is_secret": True}
        )
        assert r.status_code == 201
        assert (await as_bob.get(f"{VARS}/get_value/u/bob/key")).json() == "v4lue"
        # Reading a plain value is not a secret read.
        await as_bob.post(f"{VARS}/create", json={"path": "u/bob/plain", "value": "p"})
        await as_bob.get(f"{VARS}/get_value/u/bob/plain")
        await as_bob.post(f"{VARS}/update/u/bob/plain", json={"value": "q"})
        await as_bob.delete(f"{VARS}/delete/u/bob/plain")
        # Not an admin: the log is refused.
        r = await as_bob.get("/w/main/audit/list")
        assert r.status_code == 403 and "admin" in r.text

    r = await api.get("/w/main/audit/list", params={"username": "bob"})
    assert r.status_code == 200, r.text
    entries = r.json()
    ops = [e["operation"] for e in entries]
    assert ops == [
        "variables.delete",
        "variables.update",
        "variables.create",
        "variables.decrypt_secret",
        "variables.create",
    ]
    read = entries[3]
    assert read["resource"] == "u/bob/key" and read["action_kind"] == "Execute"
    assert set(read) == {
        "id",
        "timestamp",
        "username",
        "operation",
        "action_kind",
        "resource",
        "parameters",
    }
    # The value never enters the log.
    assert "v4lue" not in r.text and "q" not in str([e["parameters"] for e in entries])

    async def ops_of(**params: object) -> list[str]:
        resp = await api.get("/w/main/audit/list", params={"username": "bob", **params})
        assert resp.status_code == 200, resp.text
        return [e["operation"] for e in resp.json()]

    assert await ops_of(operation="variables.decrypt") == ["variables.decrypt_secret"]
    assert await ops_of(operations="variables.delete, variables.update") == [
        "variables.delete",
        "variables.update",
    ]
    assert "variables.create" not in await ops_of(exclude_operations="variables.create")
    assert await ops_of(resource="u/bob/k") == ["variables.decrypt_secret", "variables.create"]
    assert await ops_of(action_kind="Delete") == ["variables.delete"]
    assert await ops_of(per_page=2, page=2) == ["variables.create", "variables.decrypt_secret"]
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    assert await ops_of(after=future) == []
    assert len(await ops_of(before=future)) == 5
    assert await ops_of(username="nobody") == []

    got = await api.get(f"/w/main/audit/get/{read['id']}")
    assert got.status_code == 200 and got.json() == read
    assert (await api.get("/w/main/audit/get/999999999")).status_code == 404
    assert (await api.get("/w/main/audit/get/0")).status_code in (400, 422)


async def test_bad_filters_are_400(api: httpx.AsyncClient) -> None:
    for params in (
        {"action_kind": "Explode"},
        {"per_page": 0},
        {"page": -1},
        {"before": "yesterday"},
        {"username": "a\u0000b"},
    ):
        r = await api.get("/w/main/audit/list", params=params)
        assert r.status_code == 400, (params, r.status_code, r.text)


async def test_other_workspaces_entries_are_not_listed(
    api: httpx.AsyncClient, database_url: str
) -> None:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute("INSERT INTO workspace (id, name) VALUES ('other', 'Other')")
    r = await api.post(
        "/w/other/variables/create", json={"path": "u/x/s", "value": "v", "is_secret": True}
    )
    assert r.status_code == 201, r.text
    other = (await api.get("/w/other/audit/list")).json()
    assert [e["operation"] for e in other] == ["variables.create"]
    assert (await api.get(f"/w/main/audit/get/{other[0]['id']}")).status_code == 404
    assert all(e["resource"] != "u/x/s" for e in (await api.get("/w/main/audit/list")).json())
