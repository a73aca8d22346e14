"""Variables and secrets through the REST API: real Postgres, real workers, real jobs.

The masking test runs the API behind a real HTTP server (uvicorn on 127.0.0.1) so that a
job can call it with its ``WM_TOKEN``, as ``wmill`` does.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import psycopg
import pytest
import pytest_asyncio
import uvicorn
from cryptography.exceptions import InvalidTag
from gristmill.api.app import create_app
from gristmill.auth.tokens import create_api_token
from gristmill.config import Settings
from gristmill.db.queries import Q
from gristmill.server.platform import Platform, prepare_database
from gristmill.testing.pytest_plugin import SUPERADMIN_SECRET, shared_runtimes
from gristmill.workspace.secrets import Secrets, WrongKey, open_value

BASE = "/w/main/variables"


async def admin_email(database_url: str) -> str:
    """The first admin's email (GRISTMILL_ADMIN_EMAIL or the default)."""
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        row = await (
            await conn.execute("SELECT email FROM app_user WHERE username = 'admin'")
        ).fetchone()
    assert row is not None
    return row[0]


async def add_user(database_url: str, username: str, role: str, workspace: str = "main") -> str:
    """A user who is a ``role`` member of ``workspace``; returns an API token of theirs."""
    email = f"{username}@example.com"
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute(
            Q["insert_user"],
            {"email": email, "username": username, "password_hash": None, "super_admin": False},
        )
        await conn.execute(
            Q["add_member"],
            {"workspace_id": workspace, "email": email, "role": role, "added_by": None},
        )
        return await create_api_token(conn, email=email, label="test", expiration=None)


async def token_of(database_url: str, email: str) -> str:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        return await create_api_token(conn, email=email, label="test", expiration=None)


async def stored_row(database_url: str, path: str, workspace: str) -> tuple[Any, ...]:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        row = await (
            await conn.execute(
                "SELECT value, is_secret FROM variable WHERE workspace_id = %s AND path = %s",
                (workspace, path),
            )
        ).fetchone()
    assert row is not None
    return row


# One platform for the module's tests, each in a workspace of its own (tests/integration/
# conftest.py; users are the platform's, the same in every test): the tests save the same
# paths and list a workspace's variables. The masking test starts its own (`live`: an API
# on a real port, which its jobs call).
@pytest.fixture(scope="module")
def platform(module_platform: Platform) -> Platform:
    return module_platform


@pytest.fixture(scope="module")
def api(module_api: httpx.AsyncClient) -> httpx.AsyncClient:
    return module_api


@pytest.fixture(scope="module")
def db_url(module_settings: Settings) -> str:
    """The module's database (``module_platform``'s)."""
    return module_settings.database_url


def client(platform: Platform, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(platform)),
        base_url="http://gristmill.test/api",
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )


async def test_plain_and_secret_variables_crud(
    api: httpx.AsyncClient, db_url: str, workspace: str
) -> None:
    base = f"/w/{workspace}/variables"
    r = await api.post(
        f"{base}/create",
        json={"path": "u/admin/greeting", "value": "hello", "is_secret": False, "description": "d"},
    )
    assert r.status_code == 201 and r.text == "u/admin/greeting"
    r = await api.post(
        f"{base}/create",
        json={"path": "u/admin/db_password", "value": "pa55-word", "is_secret": True},
    )
    assert r.status_code == 201, r.text

    listed = {v["path"]: v for v in (await api.get(f"{base}/list")).json()}
    assert listed["u/admin/greeting"]["value"] == "hello"
    assert listed["u/admin/db_password"]["value"] is None
    assert listed["u/admin/db_password"]["is_secret"] is True
    assert listed["u/admin/greeting"]["extra_perms"] == {}
    assert "pa55-word" not in (await api.get(f"{base}/list")).text
    only = (await api.get(f"{base}/list", params={"path_start": "u/admin/gr"})).json()
    assert [v["path"] for v in only] == ["u/admin/greeting"]
    # A LIKE wildcard in the prefix is literal.
    assert (await api.get(f"{base}/list", params={"path_start": "u/%"})).json() == []

    got = (await api.get(f"{base}/get/u/admin/db_password")).json()
    assert got["value"] is None and got["description"] == ""
    got = (await api.get(f"{base}/get/u/admin/db_password", params={"decrypt_secret": True})).json()
    assert got["value"] == "pa55-word"
    r = await api.get(f"{base}/get_value/u/admin/db_password")
    assert r.headers["content-type"].startswith("application/json") and r.json() == "pa55-word"
    assert (await api.get(f"{base}/get_value/u/admin/greeting")).json() == "hello"
    r = await api.get(f"{base}/exists/u/admin/greeting")
    assert r.headers["content-type"].startswith("application/json") and r.json() is True
    assert (await api.get(f"{base}/exists/u/admin/nope")).json() is False

    # At rest: ciphertext for the secret, which opens only with the workspace's key.
    value, is_secret = await stored_row(db_url, "u/admin/db_password", workspace)
    assert is_secret and "pa55-word" not in value
    assert len(base64.b64decode(value)) == 12 + len("pa55-word") + 16
    assert (await stored_row(db_url, "u/admin/greeting", workspace))[0] == "hello"

    # Rename and flip to plain: stored decrypted.
    r = await api.post(
        f"{base}/update/u/admin/db_password",
        json={"path": "u/admin/db_pw", "is_secret": False, "description": "now plain"},
    )
    assert r.status_code == 200, r.text
    assert (await api.get(f"{base}/get/u/admin/db_password")).status_code == 404
    got = (await api.get(f"{base}/get/u/admin/db_pw")).json()
    assert got["value"] == "pa55-word" and got["description"] == "now plain"
    assert (await stored_row(db_url, "u/admin/db_pw", workspace))[0] == "pa55-word"
    # And back to secret, with a new value: encrypted again.
    r = await api.post(f"{base}/update/u/admin/db_pw", json={"is_secret": True, "value": "n3w!"})
    assert r.status_code == 200, r.text
    assert (await stored_row(db_url, "u/admin/db_pw", workspace))[0] != "n3w!"
    assert (await api.get(f"{base}/get_value/u/admin/db_pw")).json() == "n3w!"
    # Renaming onto a taken path is refused.
    r = await api.post(f"{base}/update/u/admin/db_pw", json={"path": "u/admin/greeting"})
    assert r.status_code == 400 and "already exists" in r.text

    r = await api.delete(f"{base}/delete/u/admin/db_pw")
    assert r.status_code == 200
    assert (await api.get(f"{base}/get_value/u/admin/db_pw")).status_code == 404
    assert (await api.delete(f"{base}/delete/u/admin/db_pw")).status_code == 404

    contextual = {c["name"]: c for c in (await api.get(f"{base}/list_contextual")).json()}
    assert contextual["WM_WORKSPACE"]["value"] == workspace
    assert {"WM_TOKEN", "WM_JOB_ID", "WM_STATE_PATH"} <= set(contextual)
    assert all(c["is_custom"] is False and c["description"] for c in contextual.values())


async def test_wmill_set_variable_flow(api: httpx.AsyncClient, workspace: str) -> None:
    base = f"/w/{workspace}/variables"
    """wmill's set_variable: GET get/{path} → 404 → create; then → 200 → update {value}."""
    assert (await api.get(f"{base}/get/u/admin/counter")).status_code == 404
    body = {"path": "u/admin/counter", "value": "1", "is_secret": False, "description": ""}
    assert (await api.post(f"{base}/create", json=body)).status_code == 201
    assert (await api.get(f"{base}/get/u/admin/counter")).status_code == 200
    r = await api.post(f"{base}/update/u/admin/counter", json={"value": "2"})
    assert r.status_code == 200
    assert (await api.get(f"{base}/get_value/u/admin/counter")).json() == "2"


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"path": "u/admin/x", "value": "a\u0000b"}, 400, "NUL"),
        ({"path": "u/admin/x", "value": "v", "description": "\u0000"}, 400, "NUL"),
        ({"path": "u/admin/x", "value": "a\ud800", "is_secret": True}, 400, "surrogate"),
        ({"path": "u/admin/x", "value": "v", "description": "\udfff"}, 400, "surrogate"),
        ({"path": "x/admin/x", "value": "v"}, 400, "invalid path"),
        ({"path": "u/admin", "value": "v"}, 400, "invalid path"),
        ({"path": "u/admin/é", "value": "v"}, 400, "invalid path"),
        ({"path": "u/admin/x", "value": 5}, 400, "value"),
        ({"path": "u/admin/x", "value": "x" * (1024 * 1024 + 1)}, 413, "limit"),
        ({"path": "u/admin/x", "value": "v", "account": 2**40}, 400, "account"),
    ],
)
async def test_bad_input_is_refused_before_anything_is_written(
    module_api: httpx.AsyncClient, body: dict[str, Any], status: int, fragment: str
) -> None:
    # A refusal writes nothing: every case shares the module's platform (a start costs
    # seconds); the checks that nothing was written see only the other refusals.
    api = module_api
    # json.dumps escapes a lone surrogate as JSON allows ("\\ud800"); httpx's json= cannot.
    r = await api.post(
        f"{BASE}/create",
        content=json.dumps(body),
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == status, r.text
    assert fragment in r.text
    assert (await api.get(f"{BASE}/list")).json() == []


async def test_duplicate_and_bad_paths_on_reads(api: httpx.AsyncClient, workspace: str) -> None:
    base = f"/w/{workspace}/variables"
    body = {"path": "u/admin/dup", "value": "v"}
    assert (await api.post(f"{base}/create", json=body)).status_code == 201
    r = await api.post(f"{base}/create", json=body)
    assert r.status_code == 400 and "already exists" in r.text
    assert (await api.get(f"{base}/get/not-a-path")).status_code == 400
    assert (await api.get(f"{base}/get_value/u/admin/a%00b")).status_code == 400
    r = await api.post(f"{base}/update/u/admin/dup", json={"value": "a\u0000"})
    assert r.status_code == 400
    assert (await api.get(f"{base}/get_value/u/admin/dup")).json() == "v"


async def test_permissions_hide_and_protect_variables(
    platform: Platform, api: httpx.AsyncClient, db_url: str, workspace: str
) -> None:
    base = f"/w/{workspace}/variables"
    bob = await add_user(db_url, "bob", "developer", workspace)
    olga = await add_user(db_url, "olga", "operator", workspace)
    for path in ("u/admin/private", "u/admin/shared"):
        r = await api.post(
            f"{base}/create", json={"path": path, "value": "s3cret", "is_secret": True}
        )
        assert r.status_code == 201
    async with client(platform, bob) as as_bob, client(platform, olga) as as_olga:
        # Invisible items answer as absent, everywhere.
        assert (await as_bob.get(f"{base}/get_value/u/admin/private")).status_code == 404
        assert (await as_bob.get(f"{base}/get/u/admin/private")).status_code == 404
        assert (await as_bob.get(f"{base}/exists/u/admin/private")).json() is False
        assert (await as_bob.get(f"{base}/list")).json() == []
        r = await as_bob.post(f"{base}/update/u/admin/private", json={"value": "x"})
        assert r.status_code == 404
        assert (await as_bob.delete(f"{base}/delete/u/admin/private")).status_code == 404
        # Creating under someone else's path is forbidden; under one's own, fine.
        r = await as_bob.post(f"{base}/create", json={"path": "u/admin/mine", "value": "v"})
        assert r.status_code == 403
        r = await as_bob.post(f"{base}/create", json={"path": "u/bob/mine", "value": "v"})
        assert r.status_code == 201
        # Operators read what they see but never write.
        r = await as_olga.post(f"{base}/create", json={"path": "u/olga/mine", "value": "v"})
        assert r.status_code == 403 and "operator" in r.text
        assert (await as_olga.post(f"{base}/encrypt", json="v")).status_code == 403

    # Read access through the item's ACL (a viewer): read yes, write no.
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        await conn.execute(
            "UPDATE variable SET extra_perms = '{\"u/bob\": false}' WHERE path = 'u/admin/shared'"
            " AND workspace_id = %s",
            (workspace,),
        )
    async with client(platform, bob) as as_bob:
        assert (await as_bob.get(f"{base}/get_value/u/admin/shared")).json() == "s3cret"
        listed = [v["path"] for v in (await as_bob.get(f"{base}/list")).json()]
        assert listed == ["u/admin/shared", "u/bob/mine"]
        r = await as_bob.post(f"{base}/update/u/admin/shared", json={"value": "x"})
        assert r.status_code == 403
    assert (await api.get(f"{base}/get_value/u/admin/shared")).json() == "s3cret"


async def test_encrypt_then_create_already_encrypted(
    api: httpx.AsyncClient, workspace: str
) -> None:
    base = f"/w/{workspace}/variables"
    r = await api.post(f"{base}/encrypt", json="precious")
    assert r.status_code == 200 and "precious" not in r.text
    body = {"path": "u/admin/pre", "value": r.text, "is_secret": True}
    r2 = await api.post(f"{base}/create", params={"already_encrypted": True}, json=body)
    assert r2.status_code == 201, r2.text
    assert (await api.get(f"{base}/get_value/u/admin/pre")).json() == "precious"
    bad = {"path": "u/admin/pre2", "value": "bm90IGEgc2VjcmV0", "is_secret": True}
    r3 = await api.post(f"{base}/create", params={"already_encrypted": True}, json=bad)
    assert r3.status_code == 400 and "encrypt" in r3.text


async def test_workspaces_have_their_own_keys_and_a_wrong_instance_key_fails_clearly(
    platform: Platform,
    api: httpx.AsyncClient,
    module_settings: Settings,
    db_url: str,
    workspace: str,
) -> None:
    base = f"/w/{workspace}/variables"
    settings = module_settings
    other = f"{workspace}-other"
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        await conn.execute("INSERT INTO workspace (id, name) VALUES (%s, 'Other')", (other,))
        await conn.execute(
            Q["add_member"],
            {
                "workspace_id": other,
                "email": await admin_email(db_url),
                "role": "admin",
                "added_by": None,
            },
        )
    for ws in (workspace, other):
        r = await api.post(
            f"/w/{ws}/variables/create",
            json={"path": "u/admin/k", "value": "same value", "is_secret": True},
        )
        assert r.status_code == 201, r.text
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        keys = dict(
            await (
                await conn.execute("SELECT workspace_id, wrapped_key FROM workspace_key")
            ).fetchall()
        )
        values = dict(
            await (
                await conn.execute(
                    "SELECT workspace_id, value FROM variable WHERE path = 'u/admin/k'"
                )
            ).fetchall()
        )
        instance_key = (settings.data_dir / "instance.key").read_text().strip()
        main_key = open_value(bytes.fromhex(instance_key), workspace, keys[workspace])
        other_key = open_value(bytes.fromhex(instance_key), other, keys[other])
        assert main_key != other_key and len(main_key) == 32
        assert open_value(main_key, workspace, values[workspace]) == b"same value"
        # One workspace's ciphertext does not open with the other's key.
        with pytest.raises(InvalidTag):
            open_value(other_key, other, values[workspace])
        # A second first use does not make another key.
        again = Secrets(bytes.fromhex(instance_key))
        assert await again.workspace_key(conn, workspace) == main_key

        wrong = Secrets(os.urandom(32))
        with pytest.raises(WrongKey, match="GRISTMILL_INSTANCE_KEY"):
            await wrong.decrypt(conn, workspace, values[workspace])

    # A process started with another key answers a clear 503, not a stack trace.
    other = Platform(
        settings=settings.with_overrides(instance_key=os.urandom(32), num_workers=0),
        conninfo=db_url,
        job_token_secret=platform.job_token_secret,
        **shared_runtimes(),
    )
    await other.start()
    try:
        async with client(other, SUPERADMIN_SECRET) as wrong_api:
            r = await wrong_api.get(f"{base}/get_value/u/admin/k")
            assert r.status_code == 503 and "GRISTMILL_INSTANCE_KEY" in r.text
            # Plain variables keep working.
            await api.post(f"{base}/create", json={"path": "u/admin/plain", "value": "p"})
            assert (await wrong_api.get(f"{base}/get_value/u/admin/plain")).json() == "p"
    finally:
        await other.stop()


async def test_concurrent_first_use_makes_one_workspace_key(
    platform: Platform, db_url: str, workspace: str
) -> None:
    secrets = platform.require_secrets()

    async def first_use() -> bytes:
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
            return await Secrets(secrets._instance_key).workspace_key(conn, workspace)

    keys = await asyncio.gather(*(first_use() for _ in range(8)))
    assert len(set(keys)) == 1


# -- masking in job logs -------------------------------------------------------------------


@pytest_asyncio.fixture
async def live(settings: Settings) -> AsyncIterator[tuple[Platform, str]]:
    """A platform whose API listens on 127.0.0.1 (jobs call it with their WM_TOKEN)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    settings = settings.with_overrides(port=port, base_internal_url=url, base_url=url)
    prepared = await asyncio.to_thread(prepare_database, settings.database_url)
    platform = Platform(
        settings=settings,
        conninfo=settings.database_url,
        job_token_secret=prepared.job_token_secret,
        **shared_runtimes(),
    )
    await platform.start()
    server = uvicorn.Server(
        uvicorn.Config(create_app(platform), log_level="warning", lifespan="off", access_log=False)
    )
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not serving.done():  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    try:
        yield platform, url
    finally:
        server.should_exit = True
        await serving
        await platform.stop()
        sock.close()


READ_AND_PRINT = """
import json, os, sys, time, urllib.request

def get(path):
    req = urllib.request.Request(
        os.environ["BASE_INTERNAL_URL"] + "/api/w/" + os.environ["WM_WORKSPACE"] + path,
        headers={"Authorization": "Bearer " + os.environ["WM_TOKEN"]},
    )
    return json.loads(urllib.request.urlopen(req).read())

def main(path: str):
    value = get("/variables/get_value/" + path)
    print("the secret is", value, flush=True)
    # Split across two writes of the worker's log flusher.
    sys.stdout.write("split: " + value[:4])
    sys.stdout.flush()
    time.sleep(0.4)
    sys.stdout.write(value[4:] + " end\\n")
    sys.stdout.flush()
    time.sleep(0.3)
    print("plain:", get("/variables/get_value/u/admin/plain_one"))
    listing = get("/variables/list")
    print("listed values:", [v["value"] for v in listing])
    return {"length": len(value)}
"""


READ_AND_PRINT_AT_ONCE = (
    READ_AND_PRINT.split("def main")[0]
    + """
def main(path: str):
    print("at once:", get("/variables/get_value/" + path))
"""
)


async def test_a_jobs_secret_reads_are_masked_in_its_logs(
    live: tuple[Platform, str], database_url: str
) -> None:
    platform, _url = live
    token = await token_of(database_url, await admin_email(database_url))
    secret = "correct-horse-battery-staple"
    async with client(platform, token) as api:
        r = await api.post(
            f"{BASE}/create",
            json={"path": "u/admin/db_password", "value": secret, "is_secret": True},
        )
        assert r.status_code == 201
        r = await api.post(f"{BASE}/create", json={"path": "u/admin/plain_one", "value": "visible"})
        assert r.status_code == 201
        since = time.time()
        r = await api.post(
            "/w/main/jobs/run/preview",
            json={
                "content": READ_AND_PRINT,
                "language": "python3",
                "args": {"path": "u/admin/db_password"},
            },
        )
        assert r.status_code == 201, r.text
        job_id = str(uuid.UUID(r.text))
        deadline = time.monotonic() + 90
        while True:
            outcome = (await api.get(f"/w/main/jobs_u/completed/get_result_maybe/{job_id}")).json()
            if outcome["completed"]:
                break
            assert time.monotonic() < deadline, "job did not complete"
            await asyncio.sleep(0.1)
        assert outcome["success"] is True, outcome
        assert outcome["result"] == {"length": len(secret)}
        logs = (await api.get(f"/w/main/jobs_u/get_logs/{job_id}")).text
        assert secret not in logs and secret[:4] + secret[4:] not in logs
        assert "the secret is *****" in logs
        assert "split: ***** end" in logs
        assert "plain: visible" in logs
        assert "listed values: [None, 'visible']" in logs
        # A job that prints what it read and ends before any periodic write (none while it
        # runs): its whole log goes with the completion, masked all the same (the completion
        # finds the secret read, and the worker masks the log before completing again).
        assert platform.workers is not None
        runner = platform.workers.runner
        runner.settings = runner.settings.with_overrides(log_flush_ms=600_000)
        r = await api.post(
            "/w/main/jobs/run_wait_result/preview",
            json={
                "content": READ_AND_PRINT_AT_ONCE,
                "language": "python3",
                "args": {"path": "u/admin/db_password"},
            },
        )
        assert r.status_code == 200, r.text
        quick = (await api.get(f"/w/main/jobs_u/get_logs/{r.headers['x-job-id']}")).text
        assert secret not in quick and "at once: *****" in quick
        # The chunks as stored never held the value either.
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            rows = await (
                await conn.execute("SELECT content FROM job_log WHERE job_id = %s", (job_id,))
            ).fetchall()
        assert rows and all(secret not in content for (content,) in rows)
        # The read is audited as the job's user.
        audit = (
            await api.get("/w/main/audit/list", params={"operation": "variables.decrypt_secret"})
        ).json()
        mine = [e for e in audit if e["parameters"] and e["parameters"].get("job_id") == job_id]
        assert len(mine) == 1
        assert mine[0]["username"] == "admin" and mine[0]["resource"] == "u/admin/db_password"
        assert mine[0]["action_kind"] == "Execute"
        assert dt_after(mine[0]["timestamp"], since)


def dt_after(timestamp: str, since: float) -> bool:
    import datetime as dt

    return dt.datetime.fromisoformat(timestamp).timestamp() >= since - 5
