"""Users, sessions, tokens, workspaces, members and invitations through the REST API, on a
real Postgres (Windmill's paths and shapes)."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import os
import statistics
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import psycopg
import pytest
import pytest_asyncio
from gristmill.api.app import create_app
from gristmill.config import Settings
from gristmill.server.platform import Platform, prepare_database
from gristmill.testing.pytest_plugin import SUPERADMIN_SECRET, shared_runtimes

PASSWORD = "correct horse battery"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def make_user(
    api: httpx.AsyncClient, email: str, *, password: str = PASSWORD, **extra: Any
) -> None:
    r = await api.post("/users/create", json={"email": email, "password": password, **extra})
    assert r.status_code == 201, r.text
    assert r.text == email


async def login(api: httpx.AsyncClient, email: str, password: str = PASSWORD) -> str:
    r = await api.post("/auth/login", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    return r.text


async def member(
    api: httpx.AsyncClient, email: str, *, workspace: str = "main", **role: bool
) -> str:
    """A new user, member of ``workspace`` with ``role`` flags; their session token."""
    await make_user(api, email)
    r = await api.post(f"/w/{workspace}/workspaces/add_user", json={"email": email, **role})
    assert r.status_code == 200, r.text
    return await login(api, email)


def db_rows(database_url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(query, params).fetchall()  # type: ignore[arg-type]


# One platform for the module's tests (users, workspaces and paths of their own): a start
# costs seconds. The login limits' tests (`strict_api`) and the workspace creator's
# (settings of its own) start theirs: they count failed logins from one address, or need
# another setting.
@pytest.fixture(scope="module")
def api(module_api: httpx.AsyncClient) -> httpx.AsyncClient:
    return module_api


@pytest.fixture(scope="module")
def db_url(module_settings: Settings) -> str:
    """The module's database (``module_platform``'s)."""
    return module_settings.database_url


@pytest_asyncio.fixture
async def strict_api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A platform with low login limits (3 per account, 5 per address)."""
    settings = settings.with_overrides(
        login_max_failures=3, login_max_failures_per_address=5, login_window_s=60, num_workers=0
    )
    prepared = await asyncio.to_thread(prepare_database, settings.database_url)
    platform = Platform(
        settings=settings,
        conninfo=settings.database_url,
        job_token_secret=prepared.job_token_secret,
        **shared_runtimes(),
    )
    await platform.start()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(platform)),
            base_url="http://gristmill.test/api",
            headers=bearer(SUPERADMIN_SECRET),
            timeout=60,
        ) as client:
            yield client
    finally:
        await platform.stop()


# -- sessions ------------------------------------------------------------------------------------


async def test_login_whoami_and_logout_with_post_and_get(api: httpx.AsyncClient) -> None:
    await make_user(api, "ann@example.com", name="Ann A.")
    r = await api.post("/auth/login", json={"email": "Ann@Example.com ", "password": PASSWORD})
    assert r.status_code == 200, r.text
    token = r.text
    assert r.cookies.get("token") == token
    assert "httponly" in r.headers["set-cookie"].lower()
    me = (await api.get("/users/whoami", headers=bearer(token))).json()
    assert me == {
        "email": "ann@example.com",
        "login_type": "password",
        "super_admin": False,
        "devops": False,
        "verified": True,
        "name": "Ann A.",
        "company": None,
        "username": "ann",
        "operator_only": False,
        "first_time_user": False,
        "job_id": None,
    }
    out = await api.get("/auth/logout", headers=bearer(token))
    assert out.status_code == 200, out.text
    assert (
        'token=""' in out.headers["set-cookie"] or "max-age=0" in out.headers["set-cookie"].lower()
    )
    assert (await api.get("/users/whoami", headers=bearer(token))).status_code == 401
    other = await login(api, "ann@example.com")
    assert (await api.post("/auth/logout", headers=bearer(other))).status_code == 200
    assert (await api.get("/users/whoami", headers=bearer(other))).status_code == 401


async def test_wrong_password_and_unknown_email_are_the_same_refusal(
    api: httpx.AsyncClient, db_url: str
) -> None:
    await make_user(api, "bob@example.com")
    wrong = await api.post("/auth/login", json={"email": "bob@example.com", "password": "x"})
    unknown = await api.post("/auth/login", json={"email": "zed@example.com", "password": "x"})
    assert (wrong.status_code, unknown.status_code) == (400, 400)
    assert wrong.text == unknown.text == "Bad request: Invalid login"
    audit = db_rows(
        db_url,
        "SELECT operation, resource, parameters->>'address' FROM audit "
        "WHERE workspace_id = 'global' AND operation LIKE 'users.login%%'"
        " AND resource IN ('bob@example.com', 'zed@example.com') ORDER BY id",  # this test's
    )
    assert audit == [
        ("users.login_failed", "bob@example.com", "127.0.0.1"),
        ("users.login_failed", "zed@example.com", "127.0.0.1"),
    ]
    await login(api, "bob@example.com")
    last = db_rows(db_url, "SELECT operation, username FROM audit ORDER BY id DESC LIMIT 1")
    assert last == [("users.login", "bob")]


async def test_legacy_scrypt_hash_logs_in_and_is_rehashed_to_argon2(
    api: httpx.AsyncClient, db_url: str
) -> None:
    await make_user(api, "old@example.com")
    salt = os.urandom(16)
    digest = hashlib.scrypt(b"old secret", salt=salt, n=2**14, r=8, p=1)
    legacy = f"scrypt${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "UPDATE app_user SET password_hash = %s WHERE email = 'old@example.com'", (legacy,)
        )
    await login(api, "old@example.com", "old secret")
    [(stored,)] = db_rows(
        db_url, "SELECT password_hash FROM app_user WHERE email = 'old@example.com'"
    )
    assert stored.startswith("$argon2id$")
    # The new hash works, and is not replaced again.
    await login(api, "old@example.com", "old secret")
    [(again,)] = db_rows(
        db_url, "SELECT password_hash FROM app_user WHERE email = 'old@example.com'"
    )
    assert again == stored


async def test_unknown_email_costs_about_as_much_as_a_known_one(api: httpx.AsyncClient) -> None:
    await make_user(api, "timed@example.com")

    async def took(email: str) -> float:
        start = time.perf_counter()
        r = await api.post("/auth/login", json={"email": email, "password": "wrong"})
        assert r.status_code == 400
        return time.perf_counter() - start

    await took("warmup@example.com")  # the dummy hash is made on first use
    known = [await took("timed@example.com") for _ in range(4)]
    unknown = [await took(f"nobody{i}@example.com") for i in range(4)]
    assert statistics.median(unknown) >= 0.5 * statistics.median(known), (known, unknown)


async def test_password_checks_do_not_block_the_event_loop(api: httpx.AsyncClient) -> None:
    """Four login loops run while a ticker measures how long the event loop is held up: a
    password check on the loop would stall it for a whole argon2 verification each time."""
    from gristmill.auth.passwords import hash_password, verify_password

    await make_user(api, "busy@example.com")
    stored = hash_password("x")
    one_check = []
    for _ in range(3):
        start = time.perf_counter()
        verify_password("x", stored)
        one_check.append(time.perf_counter() - start)

    async def logins() -> None:
        for _ in range(2):
            await login(api, "busy@example.com")

    loops = asyncio.gather(*(logins() for _ in range(4)))
    gaps: list[float] = []
    last = time.perf_counter()
    while not loops.done():
        await asyncio.sleep(0.002)
        now = time.perf_counter()
        gaps.append(now - last)
        last = now
    await loops
    assert len(gaps) > 5
    # On the loop, each of the 8 checks would stall it for about one_check; a busy machine
    # may stall it now and then anyway, hence a count rather than the largest gap.
    stalls = [g for g in gaps if g > 0.5 * statistics.median(one_check)]
    assert len(stalls) < 4, (stalls, one_check)
    assert (await api.get("/version")).status_code == 200


async def test_login_throttled_per_account_before_the_password_is_checked(
    strict_api: httpx.AsyncClient, database_url: str
) -> None:
    api = strict_api
    await make_user(api, "tom@example.com")
    await make_user(api, "tina@example.com")
    # A success clears the account's failures.
    for _ in range(1):
        await api.post("/auth/login", json={"email": "tom@example.com", "password": "no"})
    await login(api, "tom@example.com")
    assert (
        db_rows(database_url, "SELECT 1 FROM login_failure WHERE key = 'email:tom@example.com'")
        == []
    )
    for _ in range(3):
        r = await api.post("/auth/login", json={"email": "tom@example.com", "password": "no"})
        assert r.status_code == 400
    blocked = await api.post("/auth/login", json={"email": "tom@example.com", "password": PASSWORD})
    assert blocked.status_code == 429, blocked.text
    assert "too many failed logins for this account" in blocked.text
    assert 1 <= int(blocked.headers["retry-after"]) <= 60
    # Another account from the same address (4 failures so far, limit 5) still logs in.
    await login(api, "tina@example.com")


async def test_login_throttled_per_address(strict_api: httpx.AsyncClient) -> None:
    api = strict_api
    await make_user(api, "victim@example.com")
    for i in range(5):
        r = await api.post("/auth/login", json={"email": f"spray{i}@example.com", "password": "x"})
        assert r.status_code == 400
    blocked = await api.post(
        "/auth/login", json={"email": "victim@example.com", "password": PASSWORD}
    )
    assert blocked.status_code == 429
    assert "your address" in blocked.text and "Retry-After".lower() in blocked.headers


async def test_old_failures_are_pruned_and_stop_counting(
    strict_api: httpx.AsyncClient, database_url: str
) -> None:
    api = strict_api
    await make_user(api, "pat@example.com")
    for _ in range(3):
        await api.post("/auth/login", json={"email": "pat@example.com", "password": "no"})
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE login_failure SET failed_at = now() - interval '2 minutes'")
    await login(api, "pat@example.com")
    await api.post("/auth/login", json={"email": "other@example.com", "password": "no"})
    rows = db_rows(database_url, "SELECT key FROM login_failure ORDER BY key")
    assert rows == [("addr:127.0.0.1",), ("email:other@example.com",)]


# -- tokens --------------------------------------------------------------------------------------


async def test_token_create_list_use_and_delete(api: httpx.AsyncClient) -> None:
    session = await member(api, "tok@example.com")
    expiration = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    r = await api.post(
        "/users/tokens/create",
        json={"label": "ci", "expiration": expiration, "scopes": ["users:read", "scripts:read"]},
        headers=bearer(session),
    )
    assert r.status_code == 201, r.text
    assert r.headers["content-type"].startswith("text/plain")
    token = r.text
    listed = (await api.get("/users/tokens/list", headers=bearer(session))).json()
    assert token not in str(listed)
    [ci] = [t for t in listed if t["label"] == "ci"]
    assert ci["token_prefix"] == token[:10]
    assert ci["scopes"] == ["users:read", "scripts:read"] and ci["workspace_id"] is None
    assert ci["expiration"].startswith(expiration[:16])
    assert set(ci) == {
        "token_prefix",
        "label",
        "expiration",
        "created_at",
        "last_used_at",
        "scopes",
        "workspace_id",
    }
    # The token works within its scopes only.
    assert (await api.get("/users/whoami", headers=bearer(token))).json()[
        "email"
    ] == "tok@example.com"
    more = await api.post("/users/tokens/create", json={}, headers=bearer(token))
    assert more.status_code == 403, more.text
    gone = await api.delete(f"/users/tokens/delete/{token[:10]}", headers=bearer(session))
    assert gone.status_code == 200, gone.text
    assert (await api.get("/users/whoami", headers=bearer(token))).status_code == 401
    again = await api.delete(f"/users/tokens/delete/{token[:10]}", headers=bearer(session))
    assert again.status_code == 404


async def test_a_revoked_token_stops_at_once_in_every_server_process(
    api: httpx.AsyncClient, module_settings: Settings
) -> None:
    """Two API processes on one database (here two platforms in one test): a token logged
    out on one is refused by the other on its very next request (tokens are not cached)."""
    session = await member(api, "twice@example.com")
    settings = module_settings  # the second server is on the module platform's database
    other = Platform(
        settings=settings.with_overrides(num_workers=0),
        conninfo=settings.database_url,
        job_token_secret=(
            await asyncio.to_thread(prepare_database, settings.database_url)
        ).job_token_secret,
    )
    await other.start()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(other)),
            base_url="http://second.test/api",
            timeout=60,
        ) as second:
            assert (await second.get("/users/whoami", headers=bearer(session))).status_code == 200
            out = await api.post("/auth/logout", headers=bearer(session))
            assert out.status_code == 200, out.text
            refused = await second.get("/users/whoami", headers=bearer(session))
            assert refused.status_code == 401, refused.text
    finally:
        await other.stop()


async def test_token_input_is_checked(api: httpx.AsyncClient) -> None:
    session = await member(api, "chk@example.com")
    past = await api.post(
        "/users/tokens/create", json={"expiration": "2020-01-01T00:00:00Z"}, headers=bearer(session)
    )
    assert past.status_code == 400 and "in the past" in past.text
    bad_scope = await api.post(
        "/users/tokens/create", json={"scopes": ["everything"]}, headers=bearer(session)
    )
    assert bad_scope.status_code == 400 and "invalid scope 'everything'" in bad_scope.text
    bad_date = await api.post(
        "/users/tokens/create", json={"expiration": "tomorrow"}, headers=bearer(session)
    )
    assert bad_date.status_code == 400
    nul = await api.post("/users/tokens/create", json={"label": "a\x00"}, headers=bearer(session))
    assert nul.status_code == 400 and "NUL" in nul.text
    no_ws = await api.post(
        "/users/tokens/create", json={"workspace_id": "nope"}, headers=bearer(session)
    )
    assert no_ws.status_code == 404
    secret = await api.post("/users/tokens/create", json={})
    assert secret.status_code == 400 and "log in as a user" in secret.text


async def test_a_workspace_token_makes_only_tokens_of_its_workspace(api: httpx.AsyncClient) -> None:
    session = await member(api, "wst@example.com")
    limited = (
        await api.post(
            "/users/tokens/create", json={"workspace_id": "main"}, headers=bearer(session)
        )
    ).text
    elsewhere = await api.post(
        "/users/tokens/create", json={"workspace_id": "other"}, headers=bearer(limited)
    )
    assert elsewhere.status_code == 403
    child = await api.post("/users/tokens/create", json={"label": "c"}, headers=bearer(limited))
    assert child.status_code == 201
    listed = (await api.get("/users/tokens/list", headers=bearer(session))).json()
    assert [t["workspace_id"] for t in listed if t["label"] == "c"] == ["main"]


async def test_a_jobs_token_makes_a_token_that_does_not_outlive_the_job(
    api: httpx.AsyncClient, module_settings: Settings
) -> None:
    session = await member(api, "jobber@example.com")
    code = (
        "import os, time\n"
        "def main():\n"
        "    print(os.environ['WM_TOKEN'], flush=True)\n"
        "    time.sleep(20)\n"
    )
    job_id = (
        await api.post(
            "/w/main/jobs/run/preview",
            json={"content": code, "language": "python3"},
            headers=bearer(session),
        )
    ).text
    deadline = time.monotonic() + 30
    wm_token = ""
    while not wm_token and time.monotonic() < deadline:
        wm_token = (await api.get(f"/w/main/jobs_u/get_logs/{job_id}")).text.strip()
        await asyncio.sleep(0.1)
    assert wm_token, "the job printed no token"
    try:
        wanted = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        r = await api.post(
            "/users/tokens/create",
            json={"label": "refresh", "expiration": wanted},
            headers=bearer(wm_token),
        )
        assert r.status_code == 201, r.text
        listed = (await api.get("/users/tokens/list", headers=bearer(session))).json()
        [made] = [t for t in listed if t["label"] == "refresh"]
        assert made["workspace_id"] == "main"
        expires = dt.datetime.fromisoformat(made["expiration"])
        latest = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=module_settings.job_timeout_s + 5)
        assert expires <= latest
        assert (await api.get("/users/whoami", headers=bearer(r.text))).status_code == 200
    finally:
        await api.post(f"/w/main/jobs_u/queue/cancel/{job_id}", json={"reason": "done"})


# -- users ---------------------------------------------------------------------------------------


async def test_only_super_admins_manage_users(api: httpx.AsyncClient, db_url: str) -> None:
    session = await member(api, "plain@example.com", is_admin=True)
    r = await api.post(
        "/users/create", json={"email": "x@example.com", "password": "p"}, headers=bearer(session)
    )
    assert r.status_code == 403
    assert (await api.get("/users/list_as_super_admin", headers=bearer(session))).status_code == 403
    assert (
        await api.delete("/users/delete/plain@example.com", headers=bearer(session))
    ).status_code == 403
    dup = await api.post("/users/create", json={"email": "plain@example.com", "password": "p"})
    assert dup.status_code == 400 and "already exists" in dup.text
    bad_name = await api.post(
        "/users/create", json={"email": "y@example.com", "password": "p", "username": "a b"}
    )
    assert bad_name.status_code == 400 and "invalid username" in bad_name.text
    await make_user(api, "plain@other.org")  # the same local part: another username
    users = (await api.get("/users/list_as_super_admin")).json()
    by_email = {u["email"]: u["username"] for u in users}
    assert by_email["plain@example.com"] == "plain" and by_email["plain@other.org"] == "plain2"
    assert (await api.delete("/users/delete/plain@other.org")).status_code == 200
    assert (await api.delete("/users/delete/plain@other.org")).status_code == 404
    assert db_rows(db_url, "SELECT 1 FROM app_user WHERE email = 'plain@other.org'") == []


async def test_setpassword_changes_it_and_ends_other_sessions(api: httpx.AsyncClient) -> None:
    await make_user(api, "pw@example.com")
    first = await login(api, "pw@example.com")
    second = await login(api, "pw@example.com")
    r = await api.post(
        "/users/setpassword", json={"password": "new password"}, headers=bearer(second)
    )
    assert r.status_code == 200, r.text
    assert (await api.get("/users/whoami", headers=bearer(first))).status_code == 401
    assert (await api.get("/users/whoami", headers=bearer(second))).status_code == 200
    old = await api.post("/auth/login", json={"email": "pw@example.com", "password": PASSWORD})
    assert old.status_code == 400
    await login(api, "pw@example.com", "new password")
    empty = await api.post("/users/setpassword", json={"password": ""}, headers=bearer(second))
    assert empty.status_code == 400


# -- workspaces ----------------------------------------------------------------------------------


async def test_create_workspace_needs_a_super_admin_by_default(api: httpx.AsyncClient) -> None:
    session = await member(api, "dev@example.com")
    r = await api.post(
        "/workspaces/create", json={"id": "devs", "name": "Devs"}, headers=bearer(session)
    )
    assert r.status_code == 403 and "CREATE_WORKSPACE_REQUIRE_SUPERADMIN" in r.text
    assert (await api.get("/workspaces/create_workspace_require_superadmin")).text == "true"


async def test_workspace_lifecycle(api: httpx.AsyncClient, db_url: str) -> None:
    await make_user(api, "boss@example.com", super_admin=True)
    boss = await login(api, "boss@example.com")
    r = await api.post(
        "/workspaces/create", json={"id": "team-a", "name": "Team A"}, headers=bearer(boss)
    )
    assert r.status_code == 201 and r.text == "team-a"
    assert r.headers["content-type"].startswith("text/plain")
    dup = await api.post("/workspaces/create", json={"id": "team-a", "name": "again"})
    assert dup.status_code == 400 and "already exists" in dup.text
    bad = await api.post("/workspaces/create", json={"id": "team a", "name": "x"})
    assert bad.status_code == 400 and "invalid workspace id" in bad.text
    yes = await api.post("/workspaces/exists", json={"id": "team-a"})
    assert yes.json() is True and yes.headers["content-type"] == "application/json"
    assert (await api.post("/workspaces/exists", json={"id": "nope"})).json() is False
    assert (await api.post("/workspaces/exists", json={"id": "a\x00"})).json() is False
    mine = (await api.get("/workspaces/list", headers=bearer(boss))).json()
    assert {"id": "team-a", "name": "Team A", "owner": "boss@example.com"}.items() <= next(
        w for w in mine if w["id"] == "team-a"
    ).items()
    me = (await api.get("/w/team-a/users/whoami", headers=bearer(boss))).json()
    assert me["is_admin"] is True and me["operator"] is False and me["role"] == "admin"
    assert (await api.get("/w/team-a/workspaces/get_workspace_name")).text == "Team A"
    assert (await api.get("/w/team-a/workspaces/list_ws_specific")).json() == []

    # A developer cannot delete it; main cannot be deleted.
    dev = await member(api, "dev2@example.com", workspace="team-a")
    assert (await api.delete("/w/team-a/workspaces/delete", headers=bearer(dev))).status_code == 403
    assert (await api.delete("/w/main/workspaces/delete")).status_code == 400
    gone = await api.delete("/w/team-a/workspaces/delete", headers=bearer(boss))
    assert gone.status_code == 200, gone.text
    # Deleted: no longer served, not listed, the id is not reused.
    assert (await api.get("/w/team-a/users/whoami", headers=bearer(boss))).status_code == 404
    assert (await api.post("/workspaces/exists", json={"id": "team-a"})).json() is False
    assert "team-a" not in [w["id"] for w in (await api.get("/workspaces/list")).json()]
    everything = (await api.get("/workspaces/list_as_superadmin")).json()
    assert {"id": "team-a", "deleted": True}.items() <= next(
        w for w in everything if w["id"] == "team-a"
    ).items()
    reuse = await api.post("/workspaces/create", json={"id": "team-a", "name": "x"})
    assert reuse.status_code == 400
    ops = [r[0] for r in db_rows(db_url, "SELECT operation FROM audit ORDER BY id")]
    assert "workspaces.create" in ops and "workspaces.delete" in ops


async def test_non_super_admin_creator_becomes_admin(settings: Settings) -> None:
    relaxed = settings.with_overrides(create_workspace_require_superadmin=False, num_workers=0)
    prepared = await asyncio.to_thread(prepare_database, relaxed.database_url)
    platform = Platform(
        settings=relaxed, conninfo=relaxed.database_url, job_token_secret=prepared.job_token_secret
    )
    await platform.start()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(platform)),
            base_url="http://gristmill.test/api",
            headers=bearer(SUPERADMIN_SECRET),
        ) as api:
            await make_user(api, "maker@example.com")
            session = await login(api, "maker@example.com")
            r = await api.post(
                "/workspaces/create", json={"id": "mine", "name": "Mine"}, headers=bearer(session)
            )
            assert r.status_code == 201, r.text
            listing = (await api.get("/workspaces/users", headers=bearer(session))).json()
            assert listing["email"] == "maker@example.com"
            assert [(w["id"], w["username"], w["disabled"]) for w in listing["workspaces"]] == [
                ("mine", "maker", False)
            ]
            me = (await api.get("/w/mine/users/whoami", headers=bearer(session))).json()
            assert me["is_admin"] is True
            # Not a member of main.
            assert (
                await api.get("/w/main/users/whoami", headers=bearer(session))
            ).status_code == 403
    finally:
        await platform.stop()


# -- members -------------------------------------------------------------------------------------


async def test_members_roles_and_admin_only_management(api: httpx.AsyncClient, db_url: str) -> None:
    admin = await member(api, "adm@example.com", is_admin=True)
    op = await member(api, "op@example.com", operator=True)
    dev = await member(api, "dv@example.com")
    await make_user(api, "new@example.com")

    me = (await api.get("/w/main/users/whoami", headers=bearer(op))).json()
    assert (me["is_admin"], me["operator"], me["role"], me["disabled"]) == (
        False,
        True,
        "operator",
        False,
    )
    assert "all" in me["groups"] and me["email"] == "op@example.com"
    assert set(me) >= {
        "email",
        "username",
        "is_admin",
        "is_super_admin",
        "operator",
        "disabled",
        "groups",
        "folders",
        "folders_owners",
        "created_at",
    }

    # Operators and developers manage nobody.
    for token in (op, dev):
        for method, path, body in [
            ("POST", "/w/main/workspaces/add_user", {"email": "new@example.com"}),
            ("POST", "/w/main/workspaces/invite_user", {"email": "z@example.com"}),
            ("POST", "/w/main/users/update/dv", {"is_admin": True}),
            ("DELETE", "/w/main/users/delete/dv", None),
            ("GET", "/w/main/workspaces/list_pending_invites", None),
            ("POST", "/w/main/workspaces/delete_invite", {"email": "z@example.com"}),
        ]:
            r = await api.request(method, path, json=body, headers=bearer(token))
            assert r.status_code == 403, (method, path, r.text)

    # An admin does.
    r = await api.post(
        "/w/main/workspaces/add_user",
        json={"email": "new@example.com", "is_admin": False, "operator": True},
        headers=bearer(admin),
    )
    assert r.status_code == 200, r.text
    again = await api.post(
        "/w/main/workspaces/add_user", json={"email": "new@example.com"}, headers=bearer(admin)
    )
    assert again.status_code == 400 and "already a member" in again.text
    ghost = await api.post(
        "/w/main/workspaces/add_user", json={"email": "ghost@example.com"}, headers=bearer(admin)
    )
    assert ghost.status_code == 404
    names = (await api.get("/w/main/users/list_usernames", headers=bearer(dev))).json()
    assert {"adm", "op", "dv", "new"} <= set(names)
    listed = (await api.get("/w/main/users/list", headers=bearer(dev))).json()
    assert next(u for u in listed if u["username"] == "new")["operator"] is True
    who = (await api.get("/w/main/users/whois/new", headers=bearer(dev))).json()
    assert who["email"] == "new@example.com" and who["operator"] is True
    assert (await api.get("/w/main/users/whois/nobody", headers=bearer(dev))).status_code == 404
    email = await api.get("/w/main/users/username_to_email/new", headers=bearer(dev))
    assert email.text == "new@example.com" and email.headers["content-type"].startswith(
        "text/plain"
    )

    promoted = await api.post(
        "/w/main/users/update/dv", json={"is_admin": True}, headers=bearer(admin)
    )
    assert promoted.status_code == 200, promoted.text
    assert (await api.get("/w/main/users/whoami", headers=bearer(dev))).json()["is_admin"] is True
    disabled = await api.post(
        "/w/main/users/update/op", json={"disabled": True}, headers=bearer(admin)
    )
    assert disabled.status_code == 200
    assert (await api.get("/w/main/users/whoami", headers=bearer(op))).status_code == 403

    removed = await api.delete("/w/main/users/delete/new", headers=bearer(admin))
    assert removed.status_code == 200
    assert (await api.get("/w/main/users/whois/new", headers=bearer(admin))).status_code == 404
    ops = [
        r[0]
        for r in db_rows(
            db_url, "SELECT operation FROM audit WHERE workspace_id = 'main' ORDER BY id"
        )
    ]
    for op_name in ("workspaces.add_user", "users.update", "users.delete"):
        assert op_name in ops


async def test_a_workspace_keeps_its_last_admin(api: httpx.AsyncClient) -> None:
    await make_user(api, "solo@example.com", super_admin=True)
    solo = await login(api, "solo@example.com")
    await api.post("/workspaces/create", json={"id": "solo", "name": "Solo"}, headers=bearer(solo))
    demote = await api.post(
        "/w/solo/users/update/solo", json={"is_admin": False}, headers=bearer(solo)
    )
    assert demote.status_code == 400 and "last admin" in demote.text
    assert (await api.post("/w/solo/workspaces/leave", headers=bearer(solo))).status_code == 400
    other = await member(api, "second@example.com", workspace="solo", is_admin=True)
    assert (await api.post("/w/solo/workspaces/leave", headers=bearer(solo))).status_code == 200
    assert (await api.get("/w/solo/users/whois/solo", headers=bearer(other))).status_code == 404


async def test_invitations(api: httpx.AsyncClient) -> None:
    admin = await member(api, "inviter@example.com", is_admin=True)
    await make_user(api, "guest@example.com")
    guest = await login(api, "guest@example.com")
    r = await api.post(
        "/w/main/workspaces/invite_user",
        json={"email": "Guest@example.com", "is_admin": False, "operator": True},
        headers=bearer(admin),
    )
    assert r.status_code == 200, r.text
    await api.post(
        "/w/main/workspaces/invite_user",
        json={"email": "later@example.com", "is_admin": True, "operator": False},
        headers=bearer(admin),
    )
    pending = (
        await api.get("/w/main/workspaces/list_pending_invites", headers=bearer(admin))
    ).json()
    assert {
        "workspace_id": "main",
        "email": "guest@example.com",
        "is_admin": False,
        "operator": True,
    } in pending
    mine = (await api.get("/users/list_invites", headers=bearer(guest))).json()
    assert mine == [
        {"workspace_id": "main", "email": "guest@example.com", "is_admin": False, "operator": True}
    ]
    assert (await api.get("/w/main/users/whoami", headers=bearer(guest))).status_code == 403
    ok = await api.post(
        "/users/accept_invite", json={"workspace_id": "main"}, headers=bearer(guest)
    )
    assert ok.status_code == 200, ok.text
    me = (await api.get("/w/main/users/whoami", headers=bearer(guest))).json()
    assert me["operator"] is True and me["is_admin"] is False
    assert (await api.get("/users/list_invites", headers=bearer(guest))).json() == []
    twice = await api.post(
        "/users/accept_invite", json={"workspace_id": "main"}, headers=bearer(guest)
    )
    assert twice.status_code == 404
    gone = await api.post(
        "/w/main/workspaces/delete_invite",
        json={"email": "later@example.com", "is_admin": True, "operator": False},
        headers=bearer(admin),
    )
    assert gone.status_code == 200
    assert (
        await api.post(
            "/w/main/workspaces/delete_invite",
            json={"email": "later@example.com"},
            headers=bearer(admin),
        )
    ).status_code == 404
    member_again = await api.post(
        "/w/main/workspaces/invite_user", json={"email": "guest@example.com"}, headers=bearer(admin)
    )
    assert member_again.status_code == 400

    await make_user(api, "decliner@example.com")
    decliner = await login(api, "decliner@example.com")
    await api.post(
        "/w/main/workspaces/invite_user",
        json={"email": "decliner@example.com"},
        headers=bearer(admin),
    )
    no = await api.post(
        "/users/decline_invite", json={"workspace_id": "main"}, headers=bearer(decliner)
    )
    assert no.status_code == 200
    assert (await api.get("/users/list_invites", headers=bearer(decliner))).json() == []
    assert (await api.get("/w/main/users/whoami", headers=bearer(decliner))).status_code == 403


async def test_workspace_routes_need_membership(api: httpx.AsyncClient) -> None:
    await make_user(api, "outsider@example.com")
    outsider = await login(api, "outsider@example.com")
    for path in ("/w/main/users/list", "/w/main/workspaces/get_workspace_name"):
        assert (await api.get(path, headers=bearer(outsider))).status_code == 403
    assert (await api.get("/w/nowhere/users/list")).status_code == 404
    assert (await api.get("/workspaces/list", headers=bearer(outsider))).json() == []


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/users/create", {"email": "a\x00@x.org", "password": "p"}),
        ("/users/create", {"email": "noat", "password": "p"}),
        ("/users/create", {"email": "a@x.org", "password": 5}),
        ("/workspaces/create", {"id": "x" * 51, "name": "n"}),
        ("/workspaces/create", {"id": "ok", "name": "\x00"}),
        ("/workspaces/create", {"id": "ok", "name": " "}),
        ("/w/main/workspaces/add_user", {"email": ["a"]}),
        ("/w/main/workspaces/invite_user", {"email": "nope"}),
        ("/users/accept_invite", {"workspace_id": "a\x00"}),
    ],
)
async def test_bad_input_is_a_clear_400(
    module_api: httpx.AsyncClient, path: str, body: dict[str, Any]
) -> None:
    # Refusals write nothing: every case shares the module's platform (a start costs seconds).
    api = module_api
    r = await api.post(path, json=body)
    assert r.status_code == 400, r.text
    assert r.text.startswith("Bad request: ")


async def test_is_owner(api: httpx.AsyncClient, db_url: str) -> None:
    dev = await member(api, "own@example.com")
    with psycopg.connect(db_url) as conn:
        conn.execute("INSERT INTO group_ (workspace_id, name) VALUES ('main', 'crew')")
        conn.execute(
            "INSERT INTO group_member (workspace_id, group_name, username) "
            "VALUES ('main', 'crew', 'own')"
        )
        conn.execute(
            "INSERT INTO folder (workspace_id, name, display_name, owners) "
            "VALUES ('main', 'mine', 'Mine', '{u/own}'), ('main', 'theirs', 'T', '{u/x}')"
        )

    async def owns(path: str, token: str = dev) -> Any:
        r = await api.get(f"/w/main/users/is_owner/{path}", headers=bearer(token))
        assert r.status_code == 200, r.text
        return r.json()

    assert await owns("u/own/script") is True
    assert await owns("u/other/script") is False
    assert await owns("g/crew/x") is True and await owns("g/other/x") is False
    assert await owns("f/mine/a/b") is True and await owns("f/theirs/a") is False
    assert await owns("u/other/script", SUPERADMIN_SECRET) is True
    bad = await api.get("/w/main/users/is_owner/x/y", headers=bearer(dev))
    assert bad.status_code == 400

    # Deleting the user drops their group memberships (kept by username).
    assert (await api.delete("/users/delete/own@example.com")).status_code == 200
    assert db_rows(db_url, "SELECT 1 FROM group_member WHERE username = 'own'") == []
