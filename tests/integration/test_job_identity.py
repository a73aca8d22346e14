"""Jobs run as whoever started them: identity and scopes recorded on the job, the job token
(WM_TOKEN) limited to its job's life, workspace and scopes, who sees which jobs, the job
environment, and the job routes added with them (root job, approval links, progress)."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from gristmill.api.app import create_app
from gristmill.auth.actor import Actor
from gristmill.auth.tokens import create_api_token, mint_job_token
from gristmill.db.queries import Q
from gristmill.queue.enqueue import NewJob, push_job
from gristmill.queue.states import JobKind
from gristmill.queue.submit import Preview, RunOptions
from gristmill.server.platform import Platform

ENV_SCRIPT = """\
import os

def main():
    return {k: v for k, v in os.environ.items() if k.startswith("WM_") and k != "WM_TOKEN"}
"""
LATER = {"scheduled_in_secs": 3600}


# One platform for the module's tests, each in a workspace of its own (tests/integration/
# conftest.py) with its members (users are the platform's, the same in every test): the tests
# save the same paths and list, count and audit a workspace's jobs.
@pytest.fixture(scope="module")
def platform(module_platform: Platform) -> Platform:
    return module_platform


@pytest.fixture(scope="module")
def api(module_api: httpx.AsyncClient) -> httpx.AsyncClient:
    return module_api


def client(platform: Platform, token: str | None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(platform)),
        base_url="http://gristmill.test/api",
        headers=headers,
        timeout=60,
    )


async def add_user(
    platform: Platform,
    workspace: str,
    name: str,
    role: str = "developer",
    scopes: list[str] | None = None,
) -> str:
    """A member of ``workspace`` with ``role`` (a user of the platform's, made by the first
    call); returns a new API token of theirs."""
    email = f"{name}@example.com"
    async with platform.db.connection() as conn:
        await conn.execute(
            Q["insert_user"],
            {"email": email, "username": name, "password_hash": None, "super_admin": False},
        )
        await conn.execute(
            Q["add_member"],
            {"workspace_id": workspace, "email": email, "role": role, "added_by": "test"},
        )
        return await create_api_token(
            conn, email=email, label="test", expiration=None, scopes=scopes
        )


async def save(
    api: httpx.AsyncClient, workspace: str, path: str, content: str = "def main():\n    return 1\n"
) -> str:
    if path.startswith("f/"):
        # A folder must exist before anything is saved in it.
        folder = path.split("/")[1]
        r = await api.post(f"/w/{workspace}/folders/create", json={"name": folder})
        assert r.status_code == 201 or "already exists" in r.text, r.text
    r = await api.post(
        f"/w/{workspace}/scripts/create",
        json={"path": path, "content": content, "language": "python3"},
    )
    assert r.status_code == 201, r.text
    return r.text


async def job_row(platform: Platform, job_id: str) -> tuple[Any, ...]:
    async with platform.db.connection() as conn:
        row = await (
            await conn.execute(
                "SELECT permissioned_as, email, created_by, permissioned_scopes, parent_job"
                " FROM job WHERE id = %s",
                (uuid.UUID(job_id),),
            )
        ).fetchone()
    assert row is not None
    return tuple(row)


def job_token(platform: Platform, job_id: str, name: str) -> str:
    """The WM_TOKEN the worker would give this job."""
    return mint_job_token(
        platform.job_token_secret,
        job_id=uuid.UUID(job_id),
        email=f"{name}@example.com",
        username=name,
    )


async def wait_for(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value is not None:
            return value
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def result_of(api: httpx.AsyncClient, workspace: str, job_id: str) -> Any:
    async def check() -> Any:
        r = await api.get(f"/w/{workspace}/jobs_u/completed/get_result_maybe/{job_id}")
        assert r.status_code == 200, r.text
        body = r.json()
        return body if body["completed"] else None

    body = await wait_for(check)
    assert body["success"], body
    return body["result"]


# -- jobs run as their caller; the job token never exceeds it ------------------------------


async def test_job_runs_as_its_caller_with_the_callers_scopes(
    platform: Platform, api: httpx.AsyncClient, workspace: str
) -> None:
    await save(api, workspace, "f/shared/x")
    await save(api, workspace, "u/alice/mine")
    token = await add_user(platform, workspace, "alice", scopes=["jobs:run", "variables:read"])
    async with client(platform, token) as alice:
        r = await alice.post(f"/w/{workspace}/jobs/run/p/u/alice/mine", params=LATER, json={})
        assert r.status_code == 201, r.text
        job_id = r.text
    permissioned_as, email, created_by, scopes, _ = await job_row(platform, job_id)
    assert (permissioned_as, email, created_by) == ("u/alice", "alice@example.com", "alice")
    assert scopes == ["jobs:run", "variables:read"]

    async with client(platform, job_token(platform, job_id, "alice")) as job:
        # Writing anything is outside the scopes the job inherited.
        r = await job.post(
            f"/w/{workspace}/scripts/create",
            json={"path": "u/alice/evil", "content": "def main(): pass", "language": "python3"},
        )
        assert r.status_code == 403, r.text
        assert "scopes" in r.text
        # Starting a child passes the same scopes on.
        r = await job.post(
            f"/w/{workspace}/jobs/run/p/u/alice/mine",
            params={**LATER, "parent_job": job_id},
            json={},
        )
        assert r.status_code == 201, r.text
        child = r.text
    _, _, _, child_scopes, parent = await job_row(platform, child)
    assert child_scopes == ["jobs:run", "variables:read"]
    assert str(parent) == job_id

    # An unrestricted caller's jobs have no scope limit.
    r = await api.post(f"/w/{workspace}/jobs/run/p/f/shared/x", params=LATER, json={})
    assert (await job_row(platform, r.text))[3] is None


async def test_job_token_only_while_the_job_lives_and_in_its_workspace(
    platform: Platform, api: httpx.AsyncClient, workspace: str
) -> None:
    await save(api, workspace, "u/alice/mine")
    token = await add_user(platform, workspace, "alice")
    other = f"{workspace}-other"
    async with platform.db.connection() as conn:
        await conn.execute("INSERT INTO workspace (id, name) VALUES (%s, 'Other')", (other,))
        await conn.execute(
            Q["add_member"],
            {
                "workspace_id": other,
                "email": "alice@example.com",
                "role": "developer",
                "added_by": "test",
            },
        )
    async with client(platform, token) as alice:
        job_id = (await alice.post(f"/w/{workspace}/jobs/run/p/u/alice/mine", params=LATER)).text
        # Alice herself may use workspace "other"; her job's token may not.
        assert (await alice.get(f"/w/{other}/jobs/list")).status_code == 200
    async with client(platform, job_token(platform, job_id, "alice")) as job:
        assert (await job.get(f"/w/{workspace}/jobs_u/get/{job_id}")).status_code == 200
        r = await job.get(f"/w/{other}/jobs/list")
        assert r.status_code == 403, r.text
        assert f"limited to workspace '{workspace}'" in r.text
        # Once the job is over, its token is worthless.
        r = await api.post(f"/w/{workspace}/jobs_u/queue/cancel/{job_id}", json={"reason": "done"})
        assert r.status_code == 200, r.text
        r = await job.get(f"/w/{workspace}/jobs_u/get/{job_id}")
        assert r.status_code == 401, r.text
    # A forged token (wrong signature) is refused too.
    forged = job_token(platform, job_id, "alice")[:-2] + "00"
    async with client(platform, forged) as job:
        assert (await job.get(f"/w/{workspace}/jobs/list")).status_code == 401


async def test_a_removed_member_s_running_job_loses_access(
    platform: Platform, api: httpx.AsyncClient, workspace: str
) -> None:
    await save(api, workspace, "u/alice/mine")
    token = await add_user(platform, workspace, "alice")
    async with client(platform, token) as alice:
        job_id = (await alice.post(f"/w/{workspace}/jobs/run/p/u/alice/mine", params=LATER)).text
    async with client(platform, job_token(platform, job_id, "alice")) as job:
        assert (await job.get(f"/w/{workspace}/jobs_u/get/{job_id}")).status_code == 200
        async with platform.db.connection() as conn:
            await conn.execute(
                "DELETE FROM workspace_member WHERE email = 'alice@example.com'"
                " AND workspace_id = %s",
                (workspace,),
            )
        r = await job.get(f"/w/{workspace}/jobs_u/get/{job_id}")
        assert r.status_code == 403, r.text


# -- who may run what, who sees which jobs ---------------------------------------------------


async def test_running_needs_read_access_to_the_script(
    platform: Platform, api: httpx.AsyncClient, workspace: str
) -> None:
    hash_ = await save(api, workspace, "u/alice/private")
    bob_token = await add_user(platform, workspace, "bob")
    alice_token = await add_user(platform, workspace, "alice")
    async with client(platform, bob_token) as bob:
        r = await bob.post(f"/w/{workspace}/jobs/run/p/u/alice/private", json={})
        assert r.status_code == 404, r.text
        assert "Script not found" in r.text
        r = await bob.post(f"/w/{workspace}/jobs/run/h/{hash_}", json={})
        assert r.status_code == 404, r.text
        r = await bob.post(f"/w/{workspace}/jobs/run_wait_result/p/u/alice/private", json={})
        assert r.status_code == 404, r.text
    async with client(platform, alice_token) as alice:
        r = await alice.post(f"/w/{workspace}/jobs/run/p/u/alice/private", params=LATER, json={})
        assert r.status_code == 201, r.text
    # Shared with bob through the script's permissions: now he may run it (the cached copy
    # of the script, without the grant, is not what decides).
    async with platform.db.connection() as conn:
        await conn.execute(
            """UPDATE script SET extra_perms = '{"u/bob": false}' WHERE path = 'u/alice/private'"""
            " AND workspace_id = %s",
            (workspace,),
        )
    async with client(platform, bob_token) as bob:
        r = await bob.post(f"/w/{workspace}/jobs/run/p/u/alice/private", params=LATER, json={})
        assert r.status_code == 201, r.text


async def test_operators_run_saved_scripts_but_no_previews(
    platform: Platform, api: httpx.AsyncClient, workspace: str
) -> None:
    await save(api, workspace, "f/shared/x")
    token = await add_user(platform, workspace, "olga", role="operator")
    r = await api.post(
        f"/w/{workspace}/acls/add/folder/shared", json={"owner": "u/olga", "write": False}
    )
    assert r.status_code == 200, r.text
    preview = {"content": "def main():\n    return 1\n", "language": "python3", "args": {}}
    async with client(platform, token) as olga:
        for route in ("run/preview", "run_wait_result/preview", "run_inline/preview"):
            r = await olga.post(f"/w/{workspace}/jobs/{route}", json=preview)
            assert r.status_code == 403, (route, r.text)
            assert "operator" in r.text
        r = await olga.post(f"/w/{workspace}/jobs/run/p/f/shared/x", params=LATER, json={})
        assert r.status_code == 201, r.text
        job_id = r.text
        # Operators may cancel the jobs they see.
        r = await olga.post(f"/w/{workspace}/jobs_u/queue/cancel/{job_id}", json={"reason": "no"})
        assert r.status_code == 200, r.text


async def test_jobs_are_visible_to_their_runner_readers_of_their_script_and_admins(
    platform: Platform, api: httpx.AsyncClient, workspace: str
) -> None:
    await save(api, workspace, "u/alice/private")
    await save(api, workspace, "u/bob/shared")
    alice_token = await add_user(platform, workspace, "alice")
    bob_token = await add_user(platform, workspace, "bob")
    carol_token = await add_user(platform, workspace, "carol")
    async with platform.db.connection() as conn:
        await conn.execute(
            """UPDATE script SET extra_perms = '{"u/alice": false}' WHERE path = 'u/bob/shared'"""
            " AND workspace_id = %s",
            (workspace,),
        )
    async with client(platform, alice_token) as alice:
        private = (
            await alice.post(f"/w/{workspace}/jobs/run/p/u/alice/private", params=LATER)
        ).text
        shared = (await alice.post(f"/w/{workspace}/jobs/run/p/u/bob/shared", params=LATER)).text
        listed = {j["id"] for j in (await alice.get(f"/w/{workspace}/jobs/list")).json()}
        assert {private, shared} <= listed

    async def visible(c: httpx.AsyncClient, job_id: str) -> bool:
        codes = {
            (await c.get(f"/w/{workspace}/jobs_u/get/{job_id}")).status_code,
            (await c.get(f"/w/{workspace}/jobs_u/getupdate/{job_id}")).status_code,
            (await c.get(f"/w/{workspace}/jobs_u/get_logs/{job_id}")).status_code,
            (await c.get(f"/w/{workspace}/jobs_u/completed/get_result_maybe/{job_id}")).status_code,
            (await c.get(f"/w/{workspace}/jobs_u/get_root_job_id/{job_id}")).status_code,
            (await c.get(f"/w/{workspace}/job_metrics/get_progress/{job_id}")).status_code,
        }
        assert len(codes) == 1, codes
        return codes == {200}

    async with client(platform, bob_token) as bob:
        # Bob reads u/bob/shared: he sees its run, not alice's private one.
        assert await visible(bob, shared)
        assert not await visible(bob, private)
        listed = {j["id"] for j in (await bob.get(f"/w/{workspace}/jobs/list")).json()}
        assert shared in listed and private not in listed
        listed = {j["id"] for j in (await bob.get(f"/w/{workspace}/jobs/queue/list")).json()}
        assert shared in listed and private not in listed
        r = await bob.post(f"/w/{workspace}/jobs_u/queue/cancel/{private}", json={})
        assert r.status_code == 404, r.text
        r = await bob.post(
            f"/w/{workspace}/jobs/run/p/u/bob/shared", params={"parent_job": private}
        )
        assert r.status_code == 404, r.text
    async with client(platform, carol_token) as carol:
        assert not await visible(carol, shared)
        assert (await carol.get(f"/w/{workspace}/jobs/list")).json() == []
    # Admins see everything.
    assert await visible(api, private)
    listed = {j["id"] for j in (await api.get(f"/w/{workspace}/jobs/list")).json()}
    assert {private, shared} <= listed
    # A finished job stays invisible to those who may not see it.
    await api.post(f"/w/{workspace}/jobs_u/queue/cancel/{private}", json={})
    async with client(platform, bob_token) as bob:
        assert (
            await bob.get(f"/w/{workspace}/jobs_u/completed/get_result/{private}")
        ).status_code == 404
        assert (await bob.get(f"/w/{workspace}/jobs_u/completed/get/{private}")).status_code == 404
        assert private not in {j["id"] for j in (await bob.get(f"/w/{workspace}/jobs/list")).json()}


async def test_runs_are_audited(platform: Platform, api: httpx.AsyncClient, workspace: str) -> None:
    await save(api, workspace, "f/shared/x")
    job_id = (await api.post(f"/w/{workspace}/jobs/run/p/f/shared/x", params=LATER)).text
    preview = {"content": "def main():\n    return 1\n", "language": "python3"}
    preview_id = (await api.post(f"/w/{workspace}/jobs/run/preview", json=preview)).text
    async with platform.db.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT operation, action_kind, resource, parameters->>'job_id', username"
                " FROM audit WHERE operation LIKE 'jobs.run.%%' AND workspace_id = %s ORDER BY id",
                (workspace,),
            )
        ).fetchall()
    assert [tuple(r) for r in rows] == [
        ("jobs.run.script", "Execute", "f/shared/x", job_id, "superadmin_secret"),
        ("jobs.run.preview", "Execute", preview_id, preview_id, "superadmin_secret"),
    ]


# -- the job environment ------------------------------------------------------------------------


async def test_environment_of_a_plain_run(
    platform: Platform, api: httpx.AsyncClient, workspace: str
) -> None:
    hash_ = await save(api, workspace, "f/shared/env", ENV_SCRIPT)
    job_id = (await api.post(f"/w/{workspace}/jobs/run/p/f/shared/env", json={})).text
    env = await result_of(api, workspace, job_id)
    assert env["WM_JOB_ID"] == job_id
    assert env["WM_JOB_PATH"] == "f/shared/env"
    assert env["WM_PERMISSIONED_AS"] == "u/superadmin_secret"
    assert env["WM_USERNAME"] == "superadmin_secret"
    assert env["WM_STATE_PATH"] == env["WM_STATE_PATH_NEW"] == "f/shared/env/superadmin_secret"
    assert env["WM_FLOW_JOB_ID"] == env["WM_FLOW_PATH"] == env["WM_FLOW_STEP_ID"] == ""
    assert env["WM_SCHEDULE_PATH"] == ""
    assert env["WM_RUNNABLE_ID"] == hash_
    assert re.fullmatch(rf"f_shared_env/manual/\d+_{job_id}", env["WM_OBJECT_PATH"])
    assert "WM_ROOT_FLOW_JOB_ID" not in env
    # A preview has a temporary state of its user's.
    r = await api.post(
        f"/w/{workspace}/jobs/run_wait_result/preview",
        json={"content": ENV_SCRIPT, "language": "python3"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["WM_STATE_PATH"] == "u/superadmin_secret/tmp_state"


async def test_environment_of_a_scheduled_flow_step(
    platform: Platform, api: httpx.AsyncClient, workspace: str
) -> None:
    """Flows and schedules come later; their jobs' context is ready: a step of a flow run,
    started by a schedule, knows its flow, step, schedule, state and object paths."""
    await add_user(platform, workspace, "alice")
    alice = Actor("alice@example.com", "alice")
    flow = NewJob(
        workspace_id=workspace,
        kind=JobKind.FLOW,
        tag="flow",
        args={},
        created_by="alice",
        permissioned_as="u/alice",
        email="alice@example.com",
        runnable_path="f/shared/my_flow",
        scheduled_for=None,
    )
    async with platform.db.connection() as conn:
        await conn.execute(
            "INSERT INTO folder (workspace_id, name, display_name, owners)"
            " VALUES (%s, 'shared', 'shared', '{u/alice}')",
            (workspace,),
        )
        await push_job(conn, flow)
    options = RunOptions(
        parent_job=flow.id,
        root_job=flow.id,
        trigger_kind="schedule",
        trigger="f/shared/nightly",
        flow_step_id="b",
    )
    step = await platform.runs.run_preview(
        workspace, alice, Preview(ENV_SCRIPT, "python3", {}), options
    )
    env = await result_of(api, workspace, str(step))
    assert env["WM_FLOW_JOB_ID"] == str(flow.id)
    assert env["WM_ROOT_FLOW_JOB_ID"] == str(flow.id)
    assert env["WM_FLOW_PATH"] == "f/shared/my_flow"
    assert env["WM_FLOW_STEP_ID"] == "b"
    assert env["WM_SCHEDULE_PATH"] == "f/shared/nightly"
    assert env["WM_STATE_PATH"] == "f/shared/my_flow/b_f_shared_nightly"
    assert re.fullmatch(rf"f_shared_my_flow/f_shared_nightly/b/\d+_{step}", env["WM_OBJECT_PATH"])
    assert env["WM_EMAIL"] == "alice@example.com"
    assert env["WM_PERMISSIONED_AS"] == "u/alice"
    job = (await api.get(f"/w/{workspace}/jobs_u/get/{step}")).json()
    assert (job["schedule_path"], job["is_flow_step"]) == ("f/shared/nightly", True)
    assert job["parent_job"] == str(flow.id)

    # The job token of such a step may write exactly that state path (same computation).
    later = await platform.runs.run_preview(
        workspace,
        alice,
        Preview(ENV_SCRIPT, "python3", {}),
        RunOptions(
            parent_job=flow.id,
            trigger_kind="schedule",
            trigger="f/shared/nightly",
            flow_step_id="b",
            scheduled_for=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
        ),
    )
    assert platform.tokens is not None
    actor = await platform.tokens.resolve(job_token(platform, str(later), "alice"))
    assert actor.state_path == env["WM_STATE_PATH"]
    assert actor.job_id == later


# -- root job, approval links, inline previews, progress ----------------------------------


async def test_root_job_id_follows_the_parent_chain(api: httpx.AsyncClient, workspace: str) -> None:
    await save(api, workspace, "f/shared/x")
    root = (await api.post(f"/w/{workspace}/jobs/run/p/f/shared/x", params=LATER)).text
    mid = (
        await api.post(
            f"/w/{workspace}/jobs/run/p/f/shared/x", params={**LATER, "parent_job": root}
        )
    ).text
    leaf = (
        await api.post(f"/w/{workspace}/jobs/run/p/f/shared/x", params={**LATER, "parent_job": mid})
    ).text
    for job_id in (root, mid, leaf):
        r = await api.get(f"/w/{workspace}/jobs_u/get_root_job_id/{job_id}")
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("application/json")
        assert r.json() == root
    r = await api.get(f"/w/{workspace}/jobs_u/get_root_job_id/{uuid.uuid4()}")
    assert r.status_code == 404
    r = await api.post(
        f"/w/{workspace}/jobs/run/p/f/shared/x", params={**LATER, "parent_job": str(uuid.uuid4())}
    )
    assert r.status_code == 404, r.text


async def test_resume_urls_are_signed(
    platform: Platform, api: httpx.AsyncClient, workspace: str
) -> None:
    await save(api, workspace, "f/shared/x")
    job_id = (await api.post(f"/w/{workspace}/jobs/run/p/f/shared/x", params=LATER)).text
    r = await api.get(f"/w/{workspace}/jobs/resume_urls/{job_id}/12345", params={"approver": "ann"})
    assert r.status_code == 200, r.text
    urls = r.json()
    assert set(urls) == {"approvalPage", "resume", "cancel"}
    resume = urls["resume"]
    assert re.search(
        rf"/api/w/{workspace}/jobs_u/resume/{job_id}/12345/[0-9a-f]{{64}}\?approver=ann$", resume
    )
    assert urls["cancel"] == resume.replace("/jobs_u/resume/", "/jobs_u/cancel/")
    assert f"/approve/{workspace}/{job_id}/12345/" in urls["approvalPage"]
    path = resume.split("/api", 1)[1]
    async with client(platform, None) as anonymous:
        # Well signed: the link works without a token; no job is a suspended step yet.
        for method in ("GET", "POST"):
            for p in (path, path.replace("/resume/", "/cancel/")):
                r = await anonymous.request(method, p)
                assert r.status_code == 400, r.text
                assert "not a suspended flow step" in r.text
        # The signature covers the approver, the resume id and the job.
        r = await anonymous.get(path.replace("approver=ann", "approver=bob"))
        assert r.status_code == 403, r.text
        r = await anonymous.get(path.replace("/12345/", "/12346/"))
        assert r.status_code == 403, r.text
        r = await anonymous.get(path.replace(job_id, str(uuid.uuid4())))
        assert r.status_code == 403, r.text
        r = await anonymous.get(path.replace(f"/w/{workspace}/", "/w/other/"))
        assert r.status_code == 403, r.text
    # Without an approver (the Python client sends `approver=`), the links have none.
    r = await api.get(f"/w/{workspace}/jobs/resume_urls/{job_id}/7", params={"approver": ""})
    assert "?" not in r.json()["resume"]
    r = await api.get(f"/w/{workspace}/jobs/resume_urls/{job_id}/{2**32}")
    assert r.status_code == 400, r.text
    r = await api.get(f"/w/{workspace}/jobs/resume_urls/{uuid.uuid4()}/1")
    assert r.status_code == 404, r.text


async def test_run_inline_preview_answers_the_result(
    api: httpx.AsyncClient, workspace: str
) -> None:
    body = {
        "content": "def main(x: int):\n    return x + 1\n",
        "language": "python3",
        "args": {"x": 41},
    }
    r = await api.post(f"/w/{workspace}/jobs/run_inline/preview", json=body)
    assert r.status_code == 200, r.text
    assert r.json() == 42
    failing = {"content": "def main():\n    raise ValueError('no')\n", "language": "python3"}
    r = await api.post(f"/w/{workspace}/jobs/run_inline/preview", json=failing)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["name"] == "ValueError"


async def test_progress_is_set_by_the_job_and_read_by_those_who_see_it(
    platform: Platform, api: httpx.AsyncClient, workspace: str
) -> None:
    await save(api, workspace, "u/alice/mine")
    alice_token = await add_user(platform, workspace, "alice")
    bob_token = await add_user(platform, workspace, "bob")
    async with client(platform, alice_token) as alice:
        job_id = (await alice.post(f"/w/{workspace}/jobs/run/p/u/alice/mine", params=LATER)).text
        assert (await alice.get(f"/w/{workspace}/job_metrics/get_progress/{job_id}")).json() is None
    async with client(platform, job_token(platform, job_id, "alice")) as job:
        r = await job.post(
            f"/w/{workspace}/job_metrics/set_progress/{job_id}",
            json={"percent": 42, "flow_job_id": None},
        )
        assert r.status_code == 200, r.text
        for bad in (101, -1, 42.5, "x", None):
            r = await job.post(
                f"/w/{workspace}/job_metrics/set_progress/{job_id}", json={"percent": bad}
            )
            assert r.status_code == 400, (bad, r.text)
    r = await api.get(f"/w/{workspace}/job_metrics/get_progress/{job_id}")
    assert r.status_code == 200 and r.json() == 42
    async with client(platform, bob_token) as bob:
        r = await bob.post(f"/w/{workspace}/job_metrics/set_progress/{job_id}", json={"percent": 1})
        assert r.status_code == 404, r.text
    # Another job of alice's may not set it; alice herself may.
    async with client(platform, alice_token) as alice:
        other = (await alice.post(f"/w/{workspace}/jobs/run/p/u/alice/mine", params=LATER)).text
        r = await alice.post(
            f"/w/{workspace}/job_metrics/set_progress/{job_id}", json={"percent": 50}
        )
        assert r.status_code == 200, r.text
    async with client(platform, job_token(platform, other, "alice")) as job:
        r = await job.post(
            f"/w/{workspace}/job_metrics/set_progress/{job_id}", json={"percent": 60}
        )
        assert r.status_code == 403, r.text
    assert (await api.get(f"/w/{workspace}/job_metrics/get_progress/{job_id}")).json() == 50
    # A finished job's progress is final.
    await api.post(f"/w/{workspace}/jobs_u/queue/cancel/{job_id}", json={})
    r = await api.post(f"/w/{workspace}/job_metrics/set_progress/{job_id}", json={"percent": 70})
    assert r.status_code == 400, r.text


@pytest.mark.parametrize("percent", [0, 100])
async def test_progress_bounds_are_accepted(
    platform: Platform, api: httpx.AsyncClient, percent: int, workspace: str
) -> None:
    await save(api, workspace, "f/shared/x")
    job_id = (await api.post(f"/w/{workspace}/jobs/run/p/f/shared/x", params=LATER)).text
    r = await api.post(
        f"/w/{workspace}/job_metrics/set_progress/{job_id}", json={"percent": percent}
    )
    assert r.status_code == 200, r.text
    assert (await api.get(f"/w/{workspace}/job_metrics/get_progress/{job_id}")).json() == percent
