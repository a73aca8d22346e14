"""Groups, folders and per-item ACLs through the REST API, with real members."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import pytest
import pytest_asyncio
from gristmill.server.platform import Platform
from gristmill.testing.members import Member, add_member

G = "/w/main/groups"
F = "/w/main/folders"
A = "/w/main/acls"


@dataclass(frozen=True)
class People:
    alice: Member  # developer
    bob: Member  # developer
    oscar: Member  # operator


@pytest_asyncio.fixture
async def people(platform: Platform, api: httpx.AsyncClient) -> People:
    return People(
        alice=await add_member(platform, api, "alice", "developer"),
        bob=await add_member(platform, api, "bob", "developer"),
        oscar=await add_member(platform, api, "oscar", "operator"),
    )


async def audit_operations(platform: Platform) -> list[tuple[str, str, str | None]]:
    async with platform.db.connection() as conn:
        rows = await (
            await conn.execute("SELECT username, operation, resource FROM audit ORDER BY id")
        ).fetchall()
    return [(u, o, r) for u, o, r in rows]


# Groups


async def test_the_group_all_lists_every_member_and_cannot_change(
    api: httpx.AsyncClient, people: People
) -> None:
    groups = (await people.oscar.get(f"{G}/list")).json()
    assert groups[0]["name"] == "all"
    assert {"admin", "alice", "bob", "oscar"} <= set(groups[0]["members"])
    assert (await people.bob.get(f"{G}/listnames")).json() == ["all"]
    assert (await api.get(f"{G}/get/all")).json()["name"] == "all"
    for r in (
        await api.delete(f"{G}/delete/all"),
        await api.post(f"{G}/adduser/all", json={"username": "bob"}),
        await api.post(f"{G}/create", json={"name": "all"}),
    ):
        assert r.status_code == 400, r.text


async def test_group_lifecycle_and_who_may_manage_it(platform: Platform, people: People) -> None:
    alice, bob, oscar = people.alice, people.bob, people.oscar
    assert (await oscar.post(f"{G}/create", json={"name": "ops"})).status_code == 403
    r = await alice.post(f"{G}/create", json={"name": "devs", "summary": "the devs"})
    assert r.status_code == 201, r.text
    assert (await alice.post(f"{G}/create", json={"name": "devs"})).status_code == 400
    group = (await bob.get(f"{G}/get/devs")).json()
    assert group == {
        "name": "devs",
        "summary": "the devs",
        "members": [],
        "extra_perms": {"u/alice": True},
    }
    # Bob, not a writer of the group, may not manage it.
    for r in (
        await bob.post(f"{G}/adduser/devs", json={"username": "bob"}),
        await bob.post(f"{G}/update/devs", json={"summary": "mine"}),
        await bob.delete(f"{G}/delete/devs"),
    ):
        assert r.status_code == 403, r.text
    # Alice (its creator) manages it; only members of the workspace can join.
    assert (await alice.post(f"{G}/adduser/devs", json={"username": "bob"})).status_code == 200
    assert (await alice.post(f"{G}/adduser/devs", json={"username": "oscar"})).status_code == 200
    r = await alice.post(f"{G}/adduser/devs", json={"username": "stranger"})
    assert r.status_code == 400 and "not a member of workspace" in r.text
    assert (await alice.post(f"{G}/update/devs", json={"summary": "ours"})).status_code == 200
    group = (await bob.get(f"{G}/get/devs")).json()
    assert group["members"] == ["bob", "oscar"] and group["summary"] == "ours"
    assert (await alice.post(f"{G}/removeuser/devs", json={"username": "oscar"})).is_success
    r = await alice.post(f"{G}/removeuser/devs", json={"username": "oscar"})
    assert r.status_code == 400
    # A group ACL writer manages it too.
    r = await alice.post(f"{A}/add/group_/devs", json={"owner": "u/bob", "write": True})
    assert r.status_code == 200, r.text
    assert (await bob.post(f"{G}/update/devs", json={"summary": "bob's"})).status_code == 200
    assert (await bob.delete(f"{G}/delete/devs")).status_code == 200
    assert (await alice.get(f"{G}/get/devs")).status_code == 404
    ops = [(u, o) for u, o, r in await audit_operations(platform) if r == "devs"]
    assert ("alice", "group.create") in ops
    assert ("alice", "group.adduser") in ops
    assert ("alice", "group.removeuser") in ops
    assert ("bob", "group.delete") in ops


@pytest.mark.parametrize("name", ["a b", "x/y", "", "a\x00b", "é"])
async def test_bad_group_names_are_refused(module_api: httpx.AsyncClient, name: str) -> None:
    # Refusals write nothing: every case shares the module's platform (a start costs seconds).
    api = module_api
    r = await api.post(f"{G}/create", json={"name": name})
    assert r.status_code == 400, r.text


# Folders


async def test_folders_are_visible_to_owners_acl_members_and_admins(
    api: httpx.AsyncClient, people: People
) -> None:
    alice, bob = people.alice, people.bob
    assert (await people.oscar.post(f"{F}/create", json={"name": "x"})).status_code == 403
    r = await alice.post(f"{F}/create", json={"name": "team", "summary": "team things"})
    assert r.status_code == 201, r.text
    assert (await alice.post(f"{F}/create", json={"name": "team"})).status_code == 400
    folder = (await alice.get(f"{F}/get/team")).json()
    assert folder["owners"] == ["u/alice"]
    assert folder["extra_perms"] == {"u/alice": True}
    assert folder["summary"] == "team things" and folder["created_by"] == "alice"
    # Bob sees neither the folder nor its name; the name is taken all the same.
    assert (await bob.get(f"{F}/list")).json() == []
    assert (await bob.get(f"{F}/listnames")).json() == []
    assert (await bob.get(f"{F}/get/team")).status_code == 404
    assert (await bob.get(f"{F}/exists/team")).json() is True
    assert (await bob.get(f"{F}/exists/nope")).json() is False
    assert [f["name"] for f in (await api.get(f"{F}/list")).json()] == ["team"]
    # Named by the folder's ACL: he sees it, may not change it.
    await alice.post(f"{A}/add/folder/team", json={"owner": "u/bob", "write": True})
    assert (await bob.get(f"{F}/listnames")).json() == ["team"]
    assert (await bob.get(f"{F}/is_owner/team")).json() is False
    assert (await alice.get(f"{F}/is_owner/f/team/x")).json() is True
    for r in (
        await bob.post(f"{F}/update/team", json={"summary": "bob's"}),
        await bob.post(f"{F}/addowner/team", json={"owner": "u/bob"}),
        await bob.post(f"{A}/add/folder/team", json={"owner": "u/oscar"}),
        await bob.delete(f"{F}/delete/team"),
    ):
        assert r.status_code == 403, r.text


async def test_folder_owners_manage_it(platform: Platform, people: People) -> None:
    alice, bob = people.alice, people.bob
    await alice.post(f"{F}/create", json={"name": "team"})
    r = await alice.post(f"{F}/addowner/team", json={"owner": "u/bob"})
    assert r.status_code == 200, r.text
    assert (await bob.get(f"{F}/is_owner/team")).json() is True
    r = await bob.post(f"{F}/update/team", json={"summary": "s", "extra_perms": {"g/all": False}})
    assert r.status_code == 200, r.text
    folder = (await people.oscar.get(f"{F}/get/team")).json()  # g/all: everyone reads it
    assert folder["summary"] == "s" and folder["extra_perms"] == {"g/all": False}
    assert folder["owners"] == ["u/alice", "u/bob"]
    assert (await bob.post(f"{F}/removeowner/team", json={"owner": "u/alice"})).is_success
    assert (await alice.post(f"{F}/update/team", json={"summary": "x"})).status_code == 403
    r = await bob.post(f"{F}/removeowner/team", json={"owner": "u/alice"})
    assert r.status_code == 400  # not an owner any more
    r = await bob.post(f"{F}/addowner/team", json={"owner": "bob"})
    assert r.status_code == 400 and "u/<username> or g/<group>" in r.text
    # Usage counts the items in the folder; deleting it keeps them (as Windmill).
    r = await bob.post(
        "/w/main/scripts/create",
        json={"path": "f/team/s", "content": "def main():\n    return 1\n", "language": "python3"},
    )
    assert r.status_code == 201, r.text
    usage = (await bob.get(f"{F}/getusage/team")).json()
    assert usage == {
        "scripts": 1,
        "flows": 0,
        "apps": 0,
        "resources": 0,
        "variables": 0,
        "schedules": 0,
    }
    assert (await bob.delete(f"{F}/delete/team")).status_code == 200
    assert (await bob.get(f"{F}/get/team")).status_code == 404
    assert (await bob.get("/w/main/scripts/exists/p/f/team/s")).json() is False
    ops = [(u, o) for u, o, r in await audit_operations(platform) if r == "team"]
    assert ops == [
        ("alice", "folder.create"),
        ("alice", "folder.add_owner"),
        ("bob", "folder.update"),
        ("bob", "folder.remove_owner"),
        ("bob", "folder.delete"),
    ]


async def test_folder_input_is_checked(api: httpx.AsyncClient) -> None:
    for body in (
        {"name": "a/b"},
        {"name": "ok", "owners": ["alice"]},
        {"name": "ok", "extra_perms": {"everyone": True}},
        {"name": "ok", "summary": "a\x00b"},
    ):
        r = await api.post(f"{F}/create", json=body)
        assert r.status_code == 400, (body, r.text)
    assert (await api.get(f"{F}/exists/ok")).json() is False


# ACLs


async def test_acl_kinds_and_owners_are_checked(api: httpx.AsyncClient) -> None:
    r = await api.get(f"{A}/get/app/u/admin/x")
    assert r.status_code == 400 and "not supported yet" in r.text
    r = await api.get(f"{A}/get/schedule/u/admin/x")
    assert r.status_code == 404
    # Flows are stored now: a missing one is 404, like any item.
    r = await api.get(f"{A}/get/flow/u/admin/x")
    assert r.status_code == 404
    r = await api.post(f"{A}/add/table/u/admin/x", json={"owner": "u/bob"})
    assert r.status_code == 400 and "unknown kind" in r.text
    r = await api.get(f"{A}/get/script/not-a-path")
    assert r.status_code == 400
    r = await api.get(f"{A}/get/script/u/admin/missing")
    assert r.status_code == 404
    await api.post(
        "/w/main/scripts/create",
        json={"path": "u/admin/s", "content": "def main():\n    return 1\n", "language": "python3"},
    )
    r = await api.post(f"{A}/add/script/u/admin/s", json={"owner": "everyone"})
    assert r.status_code == 400, r.text
    assert (await api.get(f"{A}/get/script/u/admin/s")).json() == {}


async def test_acl_changes_are_audited_and_need_a_writer(
    platform: Platform, people: People
) -> None:
    alice, bob, oscar = people.alice, people.bob, people.oscar
    r = await alice.post(
        "/w/main/scripts/create",
        json={"path": "u/alice/s", "content": "def main():\n    return 1\n", "language": "python3"},
    )
    assert r.status_code == 201, r.text
    # Invisible to Bob: 404, whether he reads or changes the ACL.
    assert (await bob.get(f"{A}/get/script/u/alice/s")).status_code == 404
    r = await bob.post(f"{A}/add/script/u/alice/s", json={"owner": "u/bob", "write": True})
    assert r.status_code == 404
    r = await alice.post(f"{A}/add/script/u/alice/s", json={"owner": "u/oscar", "write": True})
    assert r.status_code == 200, r.text
    # An operator, even named a writer, changes no ACL.
    r = await oscar.post(f"{A}/add/script/u/alice/s", json={"owner": "u/bob"})
    assert r.status_code == 403
    r = await alice.post(f"{A}/remove/script/u/alice/s", json={"owner": "u/oscar"})
    assert r.status_code == 200, r.text
    assert (await alice.get(f"{A}/get/script/u/alice/s")).json() == {}
    entries = [e for e in await audit_operations(platform) if e[1].startswith("acls.")]
    assert entries == [
        ("alice", "acls.add", "script/u/alice/s"),
        ("alice", "acls.remove", "script/u/alice/s"),
    ]


async def test_schedule_and_trigger_acls_share_them(
    platform: Platform, people: People, api: httpx.AsyncClient
) -> None:
    """Schedules and HTTP routes have ACLs as every item: a reader added sees the item, and
    no longer once removed."""
    r = await api.post(
        "/w/main/scripts/create",
        json={
            "path": "u/admin/acl_s",
            "language": "python3",
            "content": "def main():\n    return 1\n",
        },
    )
    assert r.status_code == 201, r.text
    r = await api.post(
        "/w/main/schedules/create",
        json={
            "path": "u/admin/acl_sched",
            "schedule": "0 0 12 * * *",
            "script_path": "u/admin/acl_s",
        },
    )
    assert r.status_code == 201, r.text
    r = await api.post(
        "/w/main/http_triggers/create",
        json={
            "path": "u/admin/acl_route",
            "script_path": "u/admin/acl_s",
            "route_path": "acl_route",
            "http_method": "post",
        },
    )
    assert r.status_code == 201, r.text
    for kind, url in [
        ("schedule", "/w/main/schedules/get/u/admin/acl_sched"),
        ("http_trigger", "/w/main/http_triggers/get/u/admin/acl_route"),
    ]:
        path = url.rsplit("/get/", 1)[1]
        assert (await people.bob.get(url)).status_code == 404
        r = await api.post(f"{A}/add/{kind}/{path}", json={"owner": "u/bob", "write": False})
        assert r.status_code == 200, r.text
        assert (await api.get(f"{A}/get/{kind}/{path}")).json() == {"u/bob": False}
        assert (await people.bob.get(url)).status_code == 200
        r = await api.post(f"{A}/remove/{kind}/{path}", json={"owner": "u/bob"})
        assert r.status_code == 200, r.text
        assert (await people.bob.get(url)).status_code == 404
