"""Who may see, create and edit scripts: roles, u/ and f/ paths, folders, groups, ACLs.

Real users with their own tokens (gristmill.testing.members) against a real Postgres.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import httpx
import pytest
import pytest_asyncio
from gristmill.server.platform import Platform
from gristmill.testing.members import Member, add_member, create_workspace

CODE = "def main():\n    return 1\n"


@dataclass(frozen=True)
class People:
    alice: Member  # developer
    bob: Member  # developer
    oscar: Member  # operator
    olga: Member  # admin (not a super admin)
    mallory: Member  # developer of another workspace only
    ws: str  # the workspace of the others (the test's own: tests share a platform)


# One platform for the module's tests, each in a workspace of its own (tests/integration/
# conftest.py) with its members (users are the platform's, the same in every test): the tests
# save the same paths, folders and groups, and list what a workspace holds.
@pytest.fixture(scope="module")
def platform(module_platform: Platform) -> Platform:
    return module_platform


@pytest.fixture(scope="module")
def api(module_api: httpx.AsyncClient) -> httpx.AsyncClient:
    return module_api


@pytest_asyncio.fixture
async def people(platform: Platform, api: httpx.AsyncClient, workspace: str) -> People:
    other = f"{workspace}-other"
    await create_workspace(platform, other)
    return People(
        alice=await add_member(platform, api, "alice", "developer", workspace),
        bob=await add_member(platform, api, "bob", "developer", workspace),
        oscar=await add_member(platform, api, "oscar", "operator", workspace),
        olga=await add_member(platform, api, "olga", "admin", workspace),
        # Mallory acts in the test's workspace (`save`, `listed`), where she is no member.
        mallory=dataclasses.replace(
            await add_member(platform, api, "mallory", "developer", other), workspace=workspace
        ),
        ws=workspace,
    )


async def save(who: Member, path: str, content: str = CODE, **extra: object) -> httpx.Response:
    body = {"path": path, "content": content, "language": "python3", **extra}
    return await who.post(f"/w/{who.workspace}/scripts/create", json=body)


async def listed(who: Member) -> set[str]:
    r = await who.get(f"/w/{who.workspace}/scripts/list")
    assert r.status_code == 200, r.text
    paths = {s["path"] for s in r.json()}
    r = await who.get(f"/w/{who.workspace}/scripts/list_paths")
    assert r.status_code == 200, r.text
    assert set(r.json()) == paths
    return paths


async def assert_invisible(who: Member, path: str, hash_: str) -> None:
    """Reads of a script the caller may not see answer as if it did not exist."""
    for url in (
        f"/w/{who.workspace}/scripts/get/p/{path}",
        f"/w/{who.workspace}/scripts/raw/p/{path}",
        f"/w/{who.workspace}/scripts/history/p/{path}",
        f"/w/{who.workspace}/scripts/get/h/{hash_}",
        f"/w/{who.workspace}/scripts/raw/h/{hash_}",
        f"/w/{who.workspace}/scripts/deployment_status/h/{hash_}",
    ):
        r = await who.get(url)
        assert r.status_code == 404, (url, r.status_code, r.text)
    assert (await who.get(f"/w/{who.workspace}/scripts/exists/p/{path}")).json() is False
    assert path not in await listed(who)


async def assert_visible(who: Member, path: str, hash_: str) -> None:
    r = await who.get(f"/w/{who.workspace}/scripts/get/p/{path}")
    assert r.status_code == 200, r.text
    assert (await who.get(f"/w/{who.workspace}/scripts/get/h/{hash_}")).status_code == 200
    assert (await who.get(f"/w/{who.workspace}/scripts/history/p/{path}")).status_code == 200
    assert (await who.get(f"/w/{who.workspace}/scripts/exists/p/{path}")).json() is True
    assert path in await listed(who)


async def test_a_developer_owns_their_u_path_and_nobody_else_sees_it(people: People) -> None:
    r = await save(people.alice, "u/alice/mine")
    assert r.status_code == 201, r.text
    hash_ = r.text
    await assert_visible(people.alice, "u/alice/mine", hash_)
    await assert_visible(people.olga, "u/alice/mine", hash_)  # admins see everything
    for other in (people.bob, people.oscar):
        await assert_invisible(other, "u/alice/mine", hash_)
    # Writing it: 403, with or without the parent hash.
    r = await save(people.bob, "u/alice/mine", CODE + "# v2\n", parent_hash=hash_)
    assert r.status_code == 403, r.text
    assert "may not write 'u/alice/mine'" in r.text
    # An admin may write it.
    r = await save(people.olga, "u/alice/mine", CODE + "# olga\n", parent_hash=hash_)
    assert r.status_code == 201, r.text


async def test_nobody_but_admins_creates_at_another_users_path(people: People) -> None:
    ws = people.ws
    r = await save(people.bob, "u/alice/planted")
    assert r.status_code == 403, r.text
    assert (await save(people.olga, "u/alice/by_admin")).status_code == 201
    assert (await people.alice.get(f"/w/{ws}/scripts/exists/p/u/alice/by_admin")).json() is True


async def test_an_operator_never_writes_not_even_their_own_path(people: People) -> None:
    ws = people.ws
    r = await save(people.oscar, "u/oscar/x")
    assert r.status_code == 403, r.text
    assert "operator" in r.text
    # Not even with a write ACL on a script shared with them.
    hash_ = (await save(people.alice, "u/alice/shared")).text
    r = await people.alice.post(
        f"/w/{ws}/acls/add/script/u/alice/shared", json={"owner": "u/oscar", "write": True}
    )
    assert r.status_code == 200, r.text
    await assert_visible(people.oscar, "u/alice/shared", hash_)
    r = await save(people.oscar, "u/alice/shared", CODE + "# x\n", parent_hash=hash_)
    assert r.status_code == 403, r.text


async def test_a_member_of_another_workspace_gets_nothing(people: People) -> None:
    ws = people.ws
    await save(people.alice, "u/alice/mine")
    for url in (f"/w/{ws}/scripts/list", f"/w/{ws}/scripts/get/p/u/alice/mine"):
        r = await people.mallory.get(url)
        assert r.status_code == 403, r.text
    assert (await save(people.mallory, "u/mallory/x")).status_code == 403


async def test_a_folder_path_needs_the_folder(people: People) -> None:
    ws = people.ws
    r = await save(people.alice, "f/nowhere/x")
    assert r.status_code == 400, r.text
    assert "folder nowhere does not exist" in r.text
    assert (await people.alice.post(f"/w/{ws}/folders/create", json={"name": "nowhere"})).is_success
    assert (await save(people.alice, "f/nowhere/x")).status_code == 201


async def test_folder_owners_write_and_folder_acl_readers_read(people: People) -> None:
    ws = people.ws
    alice, bob = people.alice, people.bob
    r = await alice.post(f"/w/{ws}/folders/create", json={"name": "team"})
    assert r.status_code == 201, r.text
    hash_ = (await save(alice, "f/team/job")).text
    # A folder Bob has no part in: invisible, and he may not create in it.
    await assert_invisible(bob, "f/team/job", hash_)
    assert (await save(bob, "f/team/bobs")).status_code == 403
    # Read through the folder's ACL: visible, still not writable.
    r = await alice.post(f"/w/{ws}/acls/add/folder/team", json={"owner": "u/bob"})
    assert r.status_code == 200, r.text
    await assert_visible(bob, "f/team/job", hash_)
    r = await save(bob, "f/team/job", CODE + "# bob\n", parent_hash=hash_)
    assert r.status_code == 403
    assert (await save(bob, "f/team/bobs")).status_code == 403
    # Write through the folder's ACL: he creates and edits there.
    r = await alice.post(f"/w/{ws}/acls/add/folder/team", json={"owner": "u/bob", "write": True})
    assert r.status_code == 200, r.text
    r = await save(bob, "f/team/job", CODE + "# bob\n", parent_hash=hash_)
    assert r.status_code == 201, r.text
    assert (await save(bob, "f/team/bobs")).status_code == 201
    # Taken away: invisible again at once.
    r = await alice.post(f"/w/{ws}/acls/remove/folder/team", json={"owner": "u/bob"})
    assert r.status_code == 200, r.text
    assert "f/team/job" not in await listed(bob)
    assert (await bob.get(f"/w/{ws}/scripts/get/p/f/team/job")).status_code == 404


async def test_a_group_grants_folder_access_to_its_members(people: People) -> None:
    ws = people.ws
    alice, bob, oscar = people.alice, people.bob, people.oscar
    await alice.post(f"/w/{ws}/folders/create", json={"name": "ops"})
    hash_ = (await save(alice, "f/ops/deploy")).text
    assert (await alice.post(f"/w/{ws}/groups/create", json={"name": "devs"})).status_code == 201
    r = await alice.post(f"/w/{ws}/acls/add/folder/ops", json={"owner": "g/devs", "write": True})
    assert r.status_code == 200, r.text
    await assert_invisible(bob, "f/ops/deploy", hash_)
    r = await alice.post(f"/w/{ws}/groups/adduser/devs", json={"username": "bob"})
    assert r.status_code == 200, r.text
    await assert_visible(bob, "f/ops/deploy", hash_)
    assert (await save(bob, "f/ops/bobs")).status_code == 201
    # The group `all` reaches every member, operators included (read only).
    await alice.post(f"/w/{ws}/acls/add/folder/ops", json={"owner": "g/all"})
    await assert_visible(oscar, "f/ops/deploy", hash_)
    r = await save(oscar, "f/ops/deploy", CODE + "# o\n", parent_hash=hash_)
    assert r.status_code == 403
    # Out of the group: Bob loses access.
    r = await alice.post(f"/w/{ws}/groups/removeuser/devs", json={"username": "bob"})
    assert r.status_code == 200, r.text
    assert (await save(bob, "f/ops/bobs2")).status_code == 403


async def test_script_acls_take_effect_at_once_and_new_versions_keep_them(
    people: People,
) -> None:
    ws = people.ws
    alice, bob = people.alice, people.bob
    hash_ = (await save(alice, "u/alice/tool")).text
    r = await alice.post(f"/w/{ws}/acls/add/script/u/alice/tool", json={"owner": "u/bob"})
    assert r.status_code == 200, r.text
    assert (await alice.get(f"/w/{ws}/acls/get/script/u/alice/tool")).json() == {"u/bob": False}
    await assert_visible(bob, "u/alice/tool", hash_)
    r = await save(bob, "u/alice/tool", CODE + "# bob\n", parent_hash=hash_)
    assert r.status_code == 403
    # A reader may not change the ACL.
    r = await bob.post(
        f"/w/{ws}/acls/add/script/u/alice/tool", json={"owner": "u/bob", "write": True}
    )
    assert r.status_code == 403, r.text
    # Alice makes him a writer: he saves a version, which keeps the ACL.
    await alice.post(
        f"/w/{ws}/acls/add/script/u/alice/tool", json={"owner": "u/bob", "write": True}
    )
    r = await save(bob, "u/alice/tool", CODE + "# bob\n", parent_hash=hash_)
    assert r.status_code == 201, r.text
    v2 = r.text
    script = (await bob.get(f"/w/{ws}/scripts/get/h/{v2}")).json()
    assert script["extra_perms"] == {"u/bob": True}
    # A writer may change the ACL; once removed, the script is invisible again.
    r = await bob.post(f"/w/{ws}/acls/remove/script/u/alice/tool", json={"owner": "u/bob"})
    assert r.status_code == 200, r.text
    await assert_invisible(bob, "u/alice/tool", v2)
    await assert_invisible(bob, "u/alice/tool", hash_)  # older versions too


async def test_archive_and_delete_need_write_access(people: People) -> None:
    ws = people.ws
    alice, bob, oscar = people.alice, people.bob, people.oscar
    v1 = (await save(alice, "u/alice/old")).text
    # Invisible to Bob: 404; visible but read-only to Oscar: 403.
    await alice.post(f"/w/{ws}/acls/add/script/u/alice/old", json={"owner": "u/oscar"})
    for url in (
        f"/w/{ws}/scripts/archive/p/u/alice/old",
        f"/w/{ws}/scripts/archive/h/{v1}",
        f"/w/{ws}/scripts/delete/h/{v1}",
        f"/w/{ws}/scripts/delete/p/u/alice/old",
    ):
        assert (await bob.post(url)).status_code == 404, url
        assert (await oscar.post(url)).status_code == 403, url
    # The owner archives it: it no longer runs by path, and is hidden from the list.
    r = await alice.post(f"/w/{ws}/scripts/archive/p/u/alice/old")
    assert r.status_code == 200, r.text
    r = await alice.post(f"/w/{ws}/jobs/run/p/u/alice/old", json={})
    assert r.status_code == 404, r.text
    assert "u/alice/old" not in await listed(alice)
    assert (await alice.get(f"/w/{ws}/scripts/get/h/{v1}")).json()["archived"] is True
    # Deleting a version hides it; deleting the path frees it.
    assert (await alice.post(f"/w/{ws}/scripts/delete/h/{v1}")).status_code == 200
    assert (await alice.get(f"/w/{ws}/scripts/get/h/{v1}")).status_code == 404
    v2 = (await save(alice, "u/alice/gone")).text
    assert (await alice.post(f"/w/{ws}/scripts/delete/p/u/alice/gone")).status_code == 200
    assert (await alice.get(f"/w/{ws}/scripts/get/h/{v2}")).status_code == 404
    assert (await save(alice, "u/alice/gone")).status_code == 201
