"""Flows as stored objects through the API (`/api/w/{workspace}/flows`): saving, versions and
history, moves, lists, archive, delete, permissions, bad input, the audit log, and a flow
shaped as Windmill's clients send it coming back unchanged. Flows do not run yet."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest
from gristmill.auth.tokens import create_api_token
from gristmill.server.platform import Platform

F = "/w/main/flows"

#: A flow as `wmill flow push` sends it (the OpenFlow of a `flow.yaml`): every kind of module
#: the engine will run, input transforms, a failure module, options Gristmill keeps as sent.
WINDMILL_FLOW: dict[str, Any] = {
    "summary": "Greet each name, then report",
    "description": "A loop, a branch and a failure handler.",
    "value": {
        "modules": [
            {
                "id": "a",
                "summary": "split",
                "value": {
                    "type": "rawscript",
                    "language": "python3",
                    "content": "def main(names: str):\n    return names.split(',')\n",
                    "input_transforms": {
                        "names": {"type": "javascript", "expr": "flow_input.names"}
                    },
                },
            },
            {
                "id": "b",
                "value": {
                    "type": "forloopflow",
                    "iterator": {"type": "javascript", "expr": "results.a"},
                    "skip_failures": True,
                    "parallel": False,
                    "modules": [
                        {
                            "id": "c",
                            "value": {
                                "type": "script",
                                "path": "f/shared/greet",
                                "input_transforms": {
                                    "name": {"type": "javascript", "expr": "flow_input.iter.value"},
                                    "loud": {"type": "static", "value": False},
                                },
                            },
                        }
                    ],
                },
            },
            {
                "id": "d",
                "value": {
                    "type": "branchone",
                    "branches": [
                        {
                            "summary": "many",
                            "expr": "results.b.length > 2",
                            "modules": [{"id": "e", "value": {"type": "identity"}}],
                        }
                    ],
                    "default": [],
                },
                "stop_after_if": {"expr": "result == null", "skip_if_stopped": True},
                "retry": {"constant": {"attempts": 2, "seconds": 1}},
            },
        ],
        "failure_module": {
            "id": "failure",
            "value": {
                "type": "rawscript",
                "language": "bash",
                "content": 'echo "failed: $1"\n',
                "input_transforms": {"msg": {"type": "javascript", "expr": "error.message"}},
            },
        },
        "same_worker": False,
        "concurrent_limit": None,
        "priority": 1.5,
    },
    "schema": {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "names": {"type": "string", "description": "comma-separated", "default": "a,b"}
        },
        "required": ["names"],
        "order": ["names"],
    },
    "tag": "flows-test",
    "ws_error_handler_muted": True,
    "priority": 3,
    "timeout": 600,
    "dedicated_worker": False,
    "visible_to_runner_only": True,
}

EMPTY = {"modules": []}


# One platform for the module's tests, each in a workspace of its own (tests/integration/
# conftest.py): they create the same users and paths, and list a workspace's flows.
@pytest.fixture(scope="module")
def api(module_api: httpx.AsyncClient) -> httpx.AsyncClient:
    return module_api


@pytest.fixture(scope="module")
def platform(module_platform: Platform) -> Platform:
    return module_platform


async def _member(platform: Platform, workspace: str, username: str, role: str) -> dict[str, str]:
    """A member of ``workspace`` with this role, and the headers of a new token of theirs.
    The user may exist already (the tests share a platform, each in its own workspace): what
    a user may do in a workspace depends on their membership there only."""
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


async def _create(api: httpx.AsyncClient, workspace: str, path: str, value: Any = None, **kw: Any):
    headers = kw.pop("headers", None)
    body = {"path": path, "value": EMPTY if value is None else value, **kw}
    return await api.post(f"/w/{workspace}/flows/create", json=body, headers=headers)


async def test_a_windmill_flow_round_trips_unchanged(
    api: httpx.AsyncClient, workspace: str, platform: Platform
) -> None:
    dev = await _member(platform, workspace, "dev", "developer")
    # The script the flow names must exist when the flow is saved (docs/flows.md).
    assert (
        await api.post(f"/w/{workspace}/folders/create", json={"name": "shared"})
    ).status_code == 201
    greet = "def main(name: str, loud: bool = False):\n    return name\n"
    r = await api.post(
        f"/w/{workspace}/scripts/create",
        json={"path": "f/shared/greet", "content": greet, "language": "python3"},
    )
    assert r.status_code == 201, r.text
    sent = {"path": "u/dev/greet", **copy.deepcopy(WINDMILL_FLOW)}
    r = await api.post(
        f"/w/{workspace}/flows/create", json={**sent, "deployment_message": "first"}, headers=dev
    )
    assert r.status_code == 201 and r.text == "u/dev/greet", r.text

    r = await api.get(f"/w/{workspace}/flows/get/u/dev/greet", headers=dev)
    assert r.status_code == 200, r.text
    flow = r.json()
    # Everything the client sent comes back as sent: `wmill flow push` compares them.
    for key, value in sent.items():
        assert flow[key] == value, key
    assert flow["workspace_id"] == workspace and flow["edited_by"] == "dev"
    assert flow["archived"] is False and flow["extra_perms"] == {}
    assert isinstance(flow["version_id"], int) and flow["edited_at"]
    # Saving what was read (as a client that edits a flow does) keeps it the same.
    echoed = {k: v for k, v in flow.items() if k in sent}
    r = await api.post(f"/w/{workspace}/flows/update/u/dev/greet", json=echoed, headers=dev)
    assert r.status_code == 200 and r.text == "u/dev/greet", r.text
    again = (await api.get(f"/w/{workspace}/flows/get/u/dev/greet", headers=dev)).json()
    assert {k: again[k] for k in sent} == {k: flow[k] for k in sent}
    assert again["version_id"] > flow["version_id"]


async def test_updates_keep_history_and_each_version(
    api: httpx.AsyncClient,
    workspace: str,
) -> None:
    r = await _create(api, workspace, "u/admin/f", summary="one", deployment_message="v1")
    assert r.status_code == 201, r.text
    first = (await api.get(f"/w/{workspace}/flows/get/u/admin/f")).json()
    two = {"modules": [{"id": "a", "value": {"type": "identity"}}]}
    schema = {"type": "object", "properties": {"x": {"type": "integer"}}}
    r = await api.post(
        f"/w/{workspace}/flows/update/u/admin/f",
        json={
            "path": "u/admin/f",
            "summary": "two",
            "value": two,
            "schema": schema,
            "deployment_message": "v2",
        },
    )
    assert r.status_code == 200, r.text
    current = (await api.get(f"/w/{workspace}/flows/get/u/admin/f")).json()
    assert current["summary"] == "two" and current["value"] == two
    assert current["schema"] == schema

    history = (await api.get(f"/w/{workspace}/flows/history/p/u/admin/f")).json()
    assert [h["deployment_msg"] for h in history] == ["v2", "v1"]
    assert [h["id"] for h in history] == [current["version_id"], first["version_id"]]
    assert all(h["created_at"] and h["created_by"] for h in history)

    old = (await api.get(f"/w/{workspace}/flows/get/v/{first['version_id']}/p/u/admin/f")).json()
    assert old["value"] == EMPTY and old["schema"] is None
    assert old["version_id"] == first["version_id"] and old["path"] == "u/admin/f"
    # As Windmill: the version's value and schema, the flow's current summary.
    assert old["summary"] == "two"
    new = (await api.get(f"/w/{workspace}/flows/get/v/{current['version_id']}/p/u/admin/f")).json()
    assert new["value"] == two
    # Newer Windmill clients name the version alone.
    by_id = (await api.get(f"/w/{workspace}/flows/get/v/{first['version_id']}")).json()
    assert by_id == old

    # A version of another flow, or none, is not a version of this one.
    await _create(api, workspace, "u/admin/other")
    other = (await api.get(f"/w/{workspace}/flows/get/u/admin/other")).json()["version_id"]
    r = await api.get(f"/w/{workspace}/flows/get/v/{other}/p/u/admin/f")
    assert r.status_code == 404, r.text
    assert (await api.get(f"/w/{workspace}/flows/get/v/999999/p/u/admin/f")).status_code == 404
    assert (await api.get(f"/w/{workspace}/flows/get/v/999999")).status_code == 404
    r = await api.get(f"/w/{workspace}/flows/get/v/{10**20}")
    assert r.status_code == 400 and "version" in r.text
    r = await api.get(f"/w/{workspace}/flows/get/v/0/p/u/admin/f")
    assert r.status_code == 400 and "version" in r.text
    r = await api.get(f"/w/{workspace}/flows/get/v/{10**20}/p/u/admin/f")
    assert r.status_code == 400 and "version" in r.text


async def test_create_refuses_a_taken_path_and_update_needs_the_flow(
    api: httpx.AsyncClient,
    workspace: str,
) -> None:
    assert (await _create(api, workspace, "u/admin/taken")).status_code == 201
    r = await _create(api, workspace, "u/admin/taken")
    assert r.status_code == 400 and "already exists" in r.text
    r = await api.post(
        f"/w/{workspace}/flows/update/u/admin/missing",
        json={"path": "u/admin/missing", "value": EMPTY},
    )
    assert r.status_code == 404
    assert (await api.get(f"/w/{workspace}/flows/get/u/admin/missing")).status_code == 404
    assert (await api.get(f"/w/{workspace}/flows/history/p/u/admin/missing")).status_code == 404
    assert (await api.get(f"/w/{workspace}/flows/exists/u/admin/missing")).json() is False
    assert (await api.get(f"/w/{workspace}/flows/exists/u/admin/taken")).json() is True


async def test_an_update_to_another_path_moves_the_flow_and_its_history(
    api: httpx.AsyncClient,
    workspace: str,
) -> None:
    await _create(api, workspace, "u/admin/old", deployment_message="made")
    await _create(api, workspace, "u/admin/busy")
    r = await api.post(
        f"/w/{workspace}/flows/update/u/admin/old", json={"path": "u/admin/busy", "value": EMPTY}
    )
    assert r.status_code == 400 and "already exists" in r.text
    r = await api.post(
        f"/w/{workspace}/flows/update/u/admin/old",
        json={"path": "u/admin/new", "value": EMPTY, "deployment_message": "moved"},
    )
    assert r.status_code == 200 and r.text == "u/admin/new", r.text
    assert (await api.get(f"/w/{workspace}/flows/get/u/admin/old")).status_code == 404
    history = (await api.get(f"/w/{workspace}/flows/history/p/u/admin/new")).json()
    assert [h["deployment_msg"] for h in history] == ["moved", "made"]
    r = await api.post(
        f"/w/{workspace}/flows/update/u/admin/new", json={"path": "f/nowhere/x", "value": EMPTY}
    )
    assert r.status_code == 400 and "folder nowhere does not exist" in r.text


async def test_permissions(api: httpx.AsyncClient, workspace: str, platform: Platform) -> None:
    dev = await _member(platform, workspace, "dev", "developer")
    eve = await _member(platform, workspace, "eve", "developer")
    op = await _member(platform, workspace, "op", "operator")
    assert (await _create(api, workspace, "u/dev/mine", headers=dev)).status_code == 201
    # Another user's path: not theirs to create at; an operator creates nothing.
    r = await _create(api, workspace, "u/dev/by-eve", headers=eve)
    assert r.status_code == 403, r.text
    r = await _create(api, workspace, "u/op/own", headers=op)
    assert r.status_code == 403 and "operator" in r.text
    r = await _create(api, workspace, "f/nope/x", headers=dev)
    assert r.status_code == 400 and "folder nope does not exist" in r.text

    # What eve may not read does not exist for her.
    assert (await api.get(f"/w/{workspace}/flows/get/u/dev/mine", headers=eve)).status_code == 404
    assert (await api.get(f"/w/{workspace}/flows/exists/u/dev/mine", headers=eve)).json() is False
    assert (
        await api.get(f"/w/{workspace}/flows/history/p/u/dev/mine", headers=eve)
    ).status_code == 404
    version = (await api.get(f"/w/{workspace}/flows/get/u/dev/mine", headers=dev)).json()[
        "version_id"
    ]
    assert (await api.get(f"/w/{workspace}/flows/get/v/{version}", headers=eve)).status_code == 404
    assert (await api.get(f"/w/{workspace}/flows/get/v/{version}", headers=dev)).status_code == 200
    assert (await api.get(f"/w/{workspace}/flows/list", headers=eve)).json() == []
    assert (await api.get(f"/w/{workspace}/flows/list_paths", headers=eve)).json() == []
    body = {"path": "u/dev/mine", "value": EMPTY}
    assert (
        await api.post(f"/w/{workspace}/flows/update/u/dev/mine", json=body, headers=eve)
    ).status_code == 404
    r = await api.delete(f"/w/{workspace}/flows/delete/u/dev/mine", headers=eve)
    assert r.status_code == 404

    # Read access through the flow's ACL: reads work, writes are 403.
    r = await api.post(
        f"/w/{workspace}/acls/add/flow/u/dev/mine",
        json={"owner": "u/eve", "write": False},
        headers=dev,
    )
    assert r.status_code == 200, r.text
    assert (await api.get(f"/w/{workspace}/acls/get/flow/u/dev/mine", headers=dev)).json() == {
        "u/eve": False
    }
    assert (await api.get(f"/w/{workspace}/flows/get/u/dev/mine", headers=eve)).status_code == 200
    assert [
        f["path"] for f in (await api.get(f"/w/{workspace}/flows/list", headers=eve)).json()
    ] == ["u/dev/mine"]
    assert (await api.get(f"/w/{workspace}/flows/list_paths", headers=eve)).json() == ["u/dev/mine"]
    r = await api.post(f"/w/{workspace}/flows/update/u/dev/mine", json=body, headers=eve)
    assert r.status_code == 403, r.text
    r = await api.post(
        f"/w/{workspace}/flows/archive/u/dev/mine", json={"archived": True}, headers=eve
    )
    assert r.status_code == 403
    assert (
        await api.delete(f"/w/{workspace}/flows/delete/u/dev/mine", headers=eve)
    ).status_code == 403
    # Eve may not change the ACL either (she only reads).
    r = await api.post(
        f"/w/{workspace}/acls/add/flow/u/dev/mine",
        json={"owner": "u/eve", "write": True},
        headers=eve,
    )
    assert r.status_code == 403

    # Write access: eve saves a version, and the ACL stays across it.
    await api.post(
        f"/w/{workspace}/acls/add/flow/u/dev/mine",
        json={"owner": "u/eve", "write": True},
        headers=dev,
    )
    r = await api.post(
        f"/w/{workspace}/flows/update/u/dev/mine", json={**body, "summary": "eve"}, headers=eve
    )
    assert r.status_code == 200, r.text
    flow = (await api.get(f"/w/{workspace}/flows/get/u/dev/mine", headers=dev)).json()
    assert flow["summary"] == "eve" and flow["edited_by"] == "eve"
    assert flow["extra_perms"] == {"u/eve": True}

    # An operator reads what is visible to them (here through the ACL) and writes nothing.
    await api.post(
        f"/w/{workspace}/acls/add/flow/u/dev/mine",
        json={"owner": "u/op", "write": True},
        headers=dev,
    )
    assert (await api.get(f"/w/{workspace}/flows/get/u/dev/mine", headers=op)).status_code == 200
    r = await api.post(f"/w/{workspace}/flows/update/u/dev/mine", json=body, headers=op)
    assert r.status_code == 403 and "operator" in r.text
    assert (
        await api.delete(f"/w/{workspace}/flows/delete/u/dev/mine", headers=op)
    ).status_code == 403


async def test_folder_flows(api: httpx.AsyncClient, workspace: str, platform: Platform) -> None:
    dev = await _member(platform, workspace, "dev", "developer")
    eve = await _member(platform, workspace, "eve", "developer")
    r = await api.post(f"/w/{workspace}/folders/create", json={"name": "team"}, headers=dev)
    assert r.status_code == 201, r.text
    assert (await _create(api, workspace, "f/team/flow", headers=dev)).status_code == 201
    assert (await _create(api, workspace, "f/team/old", headers=dev)).status_code == 201
    await api.post(f"/w/{workspace}/flows/archive/f/team/old", json={"archived": True}, headers=dev)
    # The folder's usage counts its live flows.
    usage = (await api.get(f"/w/{workspace}/folders/getusage/team", headers=dev)).json()
    assert usage["flows"] == 1 and usage["scripts"] == 0
    # Not in the folder: eve neither sees nor creates there.
    assert (await api.get(f"/w/{workspace}/flows/get/f/team/flow", headers=eve)).status_code == 404
    assert (await _create(api, workspace, "f/team/eves", headers=eve)).status_code == 403
    r = await api.post(
        f"/w/{workspace}/folders/update/team",
        json={"extra_perms": {"u/dev": True, "u/eve": False}},
        headers=dev,
    )
    assert r.status_code == 200, r.text
    assert (await api.get(f"/w/{workspace}/flows/get/f/team/flow", headers=eve)).status_code == 200
    r = await api.post(
        f"/w/{workspace}/flows/update/f/team/flow",
        json={"path": "f/team/flow", "value": EMPTY},
        headers=eve,
    )
    assert r.status_code == 403


async def test_list_filters_and_order(
    api: httpx.AsyncClient,
    workspace: str,
) -> None:
    for name in ("alpha", "beta", "a_b", "axb"):
        assert (await _create(api, workspace, f"u/admin/{name}", summary=name)).status_code == 201
    listed = (await api.get(f"/w/{workspace}/flows/list")).json()
    assert [f["path"] for f in listed] == [
        "u/admin/axb", "u/admin/a_b", "u/admin/beta", "u/admin/alpha"
    ]  # fmt: skip
    assert all("value" not in f and "schema" not in f for f in listed)
    assert listed[0]["summary"] == "axb" and listed[0]["edited_by"]
    oldest = (await api.get(f"/w/{workspace}/flows/list", params={"order_desc": False})).json()
    assert [f["path"] for f in oldest] == [
        "u/admin/alpha",
        "u/admin/beta",
        "u/admin/a_b",
        "u/admin/axb",
    ]
    # A literal prefix: `_` is not a wildcard.
    r = await api.get(f"/w/{workspace}/flows/list", params={"path_start": "u/admin/a_"})
    assert [f["path"] for f in r.json()] == ["u/admin/a_b"]
    r = await api.get(f"/w/{workspace}/flows/list", params={"path_exact": "u/admin/beta"})
    assert [f["path"] for f in r.json()] == ["u/admin/beta"]
    r = await api.get(f"/w/{workspace}/flows/list", params={"per_page": 2, "page": 2})
    assert [f["path"] for f in r.json()] == ["u/admin/beta", "u/admin/alpha"]
    r = await api.get(f"/w/{workspace}/flows/list", params={"created_by": "nobody"})
    assert r.json() == []
    assert (await api.get(f"/w/{workspace}/flows/list_paths")).json() == [
        "u/admin/a_b", "u/admin/alpha", "u/admin/axb", "u/admin/beta"
    ]  # fmt: skip


async def test_archive_and_unarchive(
    api: httpx.AsyncClient,
    workspace: str,
) -> None:
    await _create(api, workspace, "u/admin/arch")
    r = await api.post(f"/w/{workspace}/flows/archive/u/admin/arch", json={"archived": True})
    assert r.status_code == 200 and r.text == "Flow u/admin/arch archived"
    assert (await api.get(f"/w/{workspace}/flows/list")).json() == []
    assert (await api.get(f"/w/{workspace}/flows/list_paths")).json() == []
    archived = (await api.get(f"/w/{workspace}/flows/list", params={"show_archived": True})).json()
    assert [f["path"] for f in archived] == ["u/admin/arch"] and archived[0]["archived"] is True
    flow = (await api.get(f"/w/{workspace}/flows/get/u/admin/arch")).json()
    assert flow["archived"] is True
    # A new version of an archived flow stays archived.
    r = await api.post(
        f"/w/{workspace}/flows/update/u/admin/arch", json={"path": "u/admin/arch", "value": EMPTY}
    )
    assert r.status_code == 200
    assert (await api.get(f"/w/{workspace}/flows/get/u/admin/arch")).json()["archived"] is True
    r = await api.post(f"/w/{workspace}/flows/archive/u/admin/arch", json={"archived": False})
    assert r.status_code == 200 and r.text == "Flow u/admin/arch unarchived"
    assert [f["path"] for f in (await api.get(f"/w/{workspace}/flows/list")).json()] == [
        "u/admin/arch"
    ]
    # Windmill's body may leave `archived` out: it archives.
    assert (
        await api.post(f"/w/{workspace}/flows/archive/u/admin/arch", json={})
    ).status_code == 200
    assert (await api.get(f"/w/{workspace}/flows/get/u/admin/arch")).json()["archived"] is True


async def test_delete_removes_the_flow_and_its_history(
    api: httpx.AsyncClient,
    workspace: str,
) -> None:
    await _create(api, workspace, "u/admin/gone", deployment_message="old")
    old_version = (await api.get(f"/w/{workspace}/flows/get/u/admin/gone")).json()["version_id"]
    r = await api.delete(f"/w/{workspace}/flows/delete/u/admin/gone")
    assert r.status_code == 200 and r.text == "Flow u/admin/gone deleted"
    assert (await api.get(f"/w/{workspace}/flows/get/u/admin/gone")).status_code == 404
    assert (await api.get(f"/w/{workspace}/flows/history/p/u/admin/gone")).status_code == 404
    # Deleting it again is no error, as on Windmill (`wmill sync push` of a removed flow
    # folder deletes the flow once per file); a path the caller may not write stays a 404.
    r = await api.delete(f"/w/{workspace}/flows/delete/u/admin/gone")
    assert r.status_code == 200 and r.text == "Flow u/admin/gone deleted"
    # The path can be created anew, with a history of its own.
    assert (
        await _create(api, workspace, "u/admin/gone", deployment_message="new")
    ).status_code == 201
    history = (await api.get(f"/w/{workspace}/flows/history/p/u/admin/gone")).json()
    assert [h["deployment_msg"] for h in history] == ["new"]
    assert (
        await api.get(f"/w/{workspace}/flows/get/v/{old_version}/p/u/admin/gone")
    ).status_code == 404


def _identity(module_id: str) -> dict[str, Any]:
    return {"id": module_id, "value": {"type": "identity"}}


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"x": value}
    return value


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"path": "not-a-path", "value": EMPTY}, "path"),
        ({"path": "u/admin/x\n", "value": EMPTY}, "path"),
        ({"path": "u/admin/x", "value": "modules"}, "value"),
        ({"path": "u/admin/x", "value": {}}, "value.modules"),
        ({"path": "u/admin/x", "value": {"modules": {"a": 1}}}, "value.modules"),
        ({"path": "u/admin/x", "value": {"modules": [1]}}, "value.modules[0]"),
        # The OpenFlow checks (gristmill.flows.checks) guard saves too.
        ({"path": "u/admin/x", "value": {"modules": [{"id": "a"}]}}, "value"),
        (
            {"path": "u/admin/x", "value": {"modules": [_identity("a"), _identity("a")]}},
            '"a"',
        ),
        (
            {
                "path": "u/admin/x",
                "value": {
                    "modules": [
                        {
                            "id": "a",
                            "value": {
                                "type": "forloopflow",
                                "iterator": {"type": "javascript", "expr": "results.x.map((v"},
                                "modules": [],
                            },
                        }
                    ]
                },
            },
            "iterator",
        ),
        ({"path": "u/admin/x", "value": EMPTY, "summary": "a\x00b"}, "summary"),
        ({"path": "u/admin/x", "value": EMPTY, "deployment_message": "\x00"}, "deployment_message"),
        ({"path": "u/admin/x", "value": {"modules": [], "k\x00": 1}}, "a key of value"),
        ({"path": "u/admin/x", "value": {"modules": ["a\x00"]}}, "value.modules[0]"),
        ({"path": "u/admin/x", "value": EMPTY, "schema": {"d": "\x00"}}, "schema.d"),
        ({"path": "u/admin/x", "value": EMPTY, "priority": 10**6}, "priority"),
        ({"path": "u/admin/x", "value": EMPTY, "timeout": 0}, "timeout"),
        ({"path": "u/admin/x", "value": {"modules": [], "deep": _nested(80)}}, "nested"),
        ({"path": "u/admin/x", "value": {"modules": [], "big": 2**70}}, "cannot be stored"),
        ({"value": EMPTY}, "path"),
    ],
)
async def test_bad_input_is_refused_naming_the_field(
    module_api: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    # The cases share the module's platform (a start costs seconds): each refusal leaves
    # `kept` at its one version and `x` absent, so each case still sees what it checks.
    api = module_api
    r = await api.post(f"{F}/create", json=body)
    assert r.status_code == 400 and field in r.text, r.text
    # The same checks guard updates, before anything is written.
    await _create(api, "main", "u/admin/kept")
    r = await api.post(f"{F}/update/u/admin/kept", json=body)
    assert r.status_code == 400 and field in r.text, r.text
    assert (await api.get(f"{F}/exists/u/admin/x")).json() is False
    assert len((await api.get(f"{F}/history/p/u/admin/kept")).json()) == 1
    r = await api.get(f"{F}/get/not-a-path")
    assert r.status_code == 400 and "path" in r.text


async def test_changes_are_audited(api: httpx.AsyncClient, workspace: str) -> None:
    await _create(api, workspace, "u/admin/aud")
    await api.post(
        f"/w/{workspace}/flows/update/u/admin/aud", json={"path": "u/admin/moved", "value": EMPTY}
    )
    await api.post(f"/w/{workspace}/flows/archive/u/admin/moved", json={"archived": True})
    await api.delete(f"/w/{workspace}/flows/delete/u/admin/moved")
    entries = (await api.get(f"/w/{workspace}/audit/list", params={"operation": "flows."})).json()
    seen = [(e["operation"], e["action_kind"], e["resource"]) for e in reversed(entries)]
    assert seen == [
        ("flows.create", "Create", "u/admin/aud"),
        ("flows.update", "Update", "u/admin/aud"),
        ("flows.archive", "Update", "u/admin/moved"),
        ("flows.delete", "Delete", "u/admin/moved"),
    ]
    update = next(e for e in entries if e["operation"] == "flows.update")
    assert update["parameters"]["path"] == "u/admin/moved"
