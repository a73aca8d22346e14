"""A script's state (`get_state`/`set_state`): a resource of type `state` at the job's
`WM_STATE_PATH`, written by the job with its own token. The jobs are real Python processes
calling a real HTTP server, with the requests `wmill` 1.850 makes (client-calls.md)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import httpx
import uvicorn
from gristmill.api.app import create_app
from gristmill.auth.tokens import create_api_token
from gristmill.config import Settings
from gristmill.server.platform import Platform, prepare_database
from gristmill.testing.pytest_plugin import SUPERADMIN_SECRET, shared_runtimes

# wmill's get_state / set_state, request for request: get_value_interpolated (404 -> None);
# set: GET resources/get/{path}, then create (on 404) or update_value.
COUNTER = """\
import json, os, urllib.error, urllib.request

def _call(method, path, body=None):
    url = f"{os.environ['BASE_INTERNAL_URL']}/api/w/{os.environ['WM_WORKSPACE']}/{path}"
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"Authorization": "Bearer " + os.environ["WM_TOKEN"],
                 "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request) as response:
            text = response.read().decode()
            status = response.status
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text

def get_state():
    status, body = _call("GET", "resources/get_value_interpolated/" + os.environ["WM_STATE_PATH"])
    return body if status == 200 else None

def set_state(value, path=None):
    path = path or os.environ["WM_STATE_PATH"]
    status, _ = _call("GET", "resources/get/" + path)
    if status == 404:
        status, _ = _call("POST", "resources/create",
                          {"path": path, "value": value, "resource_type": "state"})
    else:
        status, _ = _call("POST", "resources/update_value/" + path, {"value": value})
    return status

def main(target: str = ""):
    before = get_state()
    written = set_state({"count": (before or {"count": 0})["count"] + 1})
    other = set_state({"count": 99}, target) if target else None
    return {"before": before, "written": written, "other": other,
            "path": os.environ["WM_STATE_PATH"]}
"""


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A platform whose API listens on 127.0.0.1 (jobs call it at BASE_INTERNAL_URL)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    settings = replace(settings, port=sock.getsockname()[1])
    prepared = await asyncio.to_thread(prepare_database, settings.database_url)
    platform = Platform(
        settings=settings,
        conninfo=settings.database_url,
        job_token_secret=prepared.job_token_secret,
        **shared_runtimes(),
    )
    await platform.start()
    app = create_app(platform)
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started and not task.done():  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        async with httpx.AsyncClient(
            base_url=f"{settings.internal_url}/api",
            headers={"Authorization": f"Bearer {SUPERADMIN_SECRET}"},
            timeout=60,
        ) as client:
            client.platform = platform  # type: ignore[attr-defined]
            yield client
    finally:
        server.should_exit = True
        await task
        await platform.stop()
        sock.close()


async def _operator(platform: Platform, username: str) -> dict[str, str]:
    email = f"{username}@example.com"
    async with platform.db.connection() as conn:
        await conn.execute(
            "INSERT INTO app_user (email, username) VALUES (%s, %s)", (email, username)
        )
        await conn.execute(
            "INSERT INTO workspace_member (workspace_id, email, role) "
            "VALUES ('main', %s, 'operator')",
            (email,),
        )
        # The operator may see (so run) the admin's script.
        await conn.execute(
            "UPDATE script SET extra_perms = jsonb_build_object('u/' || %s::text, false) "
            "WHERE path = 'u/admin/counter'",
            (username,),
        )
        token = await create_api_token(conn, email=email, label="test", expiration=None)
    return {"Authorization": f"Bearer {token}"}


async def _run(api: httpx.AsyncClient, args: dict[str, Any], **kw: Any) -> Any:
    r = await api.post("/w/main/jobs/run_wait_result/p/u/admin/counter", json=args, **kw)
    assert r.status_code == 200, r.text
    return r.json()


async def test_state_survives_between_runs_and_an_operator_writes_only_its_own(
    settings: Settings,
) -> None:
    async with serving(settings) as api:
        r = await api.post(
            "/w/main/scripts/create",
            json={"path": "u/admin/counter", "content": COUNTER, "language": "python3"},
        )
        assert r.status_code == 201, r.text
        first = await _run(api, {})
        mine = "u/admin/counter/superadmin_secret"
        assert first == {"before": None, "written": 201, "other": None, "path": mine}
        second = await _run(api, {})
        assert second["before"] == {"count": 1} and second["written"] == 200
        state = (await api.get(f"/w/main/resources/get/{mine}")).json()
        assert state["resource_type"] == "state" and state["value"] == {"count": 2}

        # An operator's job keeps its own state (under the admin's script path), and cannot
        # write another's.
        platform: Platform = api.platform  # type: ignore[attr-defined]
        opal = await _operator(platform, "opal")
        ran = await _run(api, {"target": mine}, headers=opal)
        assert ran["path"] == "u/admin/counter/opal"
        assert ran["before"] is None and ran["written"] == 201
        assert ran["other"] == 403
        again = await _run(api, {}, headers=opal)
        assert again["before"] == {"count": 1} and again["written"] == 200
        assert (await api.get(f"/w/main/resources/get_value/{mine}")).json() == {"count": 2}
        # Outside a job, the operator's token writes no state.
        r = await api.post(
            "/w/main/resources/update_value/u/admin/counter/opal",
            json={"value": {"count": 50}},
            headers=opal,
        )
        assert r.status_code in (403, 404)
