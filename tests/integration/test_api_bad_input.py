"""Bad input is a precise 4xx, decided before anything is written.

Each case once answered 500 (or did the wrong thing): a NUL character anywhere text reaches
Postgres, integers beyond their columns, paths Python accepted and the database refused,
arguments nested deeper than the serializers recurse, bodies of any size, unescaped LIKE
prefixes, and 400 instead of 401 for an anonymous malformed request. Each test checks the
status, that the message names the field or the limit, and that no row was written.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from gristmill.api.app import create_app
from gristmill.config import Settings
from gristmill.scripts import versions
from gristmill.server.platform import Platform, prepare_database
from gristmill.testing.pytest_plugin import SUPERADMIN_SECRET, shared_runtimes

pytestmark = pytest.mark.slow

ECHO = "def main(x=None):\n    return x\n"
HUGE = 10**20


async def count(platform: Platform, table: str, workspace: str) -> int:
    """The rows of ``table`` in ``workspace`` (the module's tests share a platform)."""
    assert platform.pool is not None
    async with platform.pool.connection() as conn:
        row = await (
            await conn.execute(
                f"SELECT count(*) FROM {table} WHERE workspace_id = %s",  # type: ignore[arg-type]
                (workspace,),
            )
        ).fetchone()
    assert row is not None
    return row[0]


async def save(
    api: httpx.AsyncClient, workspace: str, path: str, content: str = ECHO, **extra: object
) -> str:
    r = await api.post(
        f"/w/{workspace}/scripts/create",
        json={"path": path, "content": content, "language": "python3", **extra},
    )
    assert r.status_code == 201, r.text
    return r.text


def refused(r: httpx.Response, status: int, *words: str) -> None:
    assert r.status_code == status, (r.status_code, r.text)
    for word in words:
        assert word in r.text, (word, r.text)


# One platform for the module's tests, each in a workspace of its own (tests/integration/
# conftest.py): they save the same paths and count a workspace's scripts and jobs. The size
# limits' test starts its own (settings of its own).
@pytest.fixture(scope="module")
def platform(module_platform: Platform) -> Platform:
    return module_platform


@pytest.fixture(scope="module")
def api(module_api: httpx.AsyncClient) -> httpx.AsyncClient:
    return module_api


@asynccontextmanager
async def started(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Platform]]:
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
            headers={"Authorization": f"Bearer {SUPERADMIN_SECRET}"},
            timeout=60,
        ) as client:
            yield client, platform
    finally:
        await platform.stop()


# -- NUL characters ----------------------------------------------------------------------


async def test_nul_in_a_script_is_refused_and_nothing_saved(
    api: httpx.AsyncClient, platform: Platform, workspace: str
) -> None:
    for field, body in [
        ("path", {"path": "u/admin/a\x00b", "content": ECHO}),
        ("content", {"path": "u/admin/nul", "content": "def main():\n    return '\x00'\n"}),
        ("summary", {"path": "u/admin/nul", "content": ECHO, "summary": "a\x00"}),
        ("tag", {"path": "u/admin/nul", "content": ECHO, "tag": "a\x00"}),
    ]:
        r = await api.post(f"/w/{workspace}/scripts/create", json={"language": "python3", **body})
        refused(r, 400, field, "NUL")
    assert await count(platform, "script", workspace) == 0


async def test_nul_in_a_url_is_refused(api: httpx.AsyncClient, workspace: str) -> None:
    refused(await api.get(f"/w/{workspace}/scripts/get/p/u/admin/a%00b"), 400, "path", "NUL")
    refused(await api.get(f"/w/{workspace}/scripts/list?created_by=a%00"), 400, "created_by", "NUL")
    refused(await api.get(f"/w/{workspace}/jobs/list?tag=a%00"), 400, "tag", "NUL")
    refused(await api.get("/w/ma%00in/scripts/list"), 400, "workspace id")


async def test_nul_in_a_run_is_refused_and_no_job_written(
    api: httpx.AsyncClient, platform: Platform, workspace: str
) -> None:
    await save(api, workspace, "u/admin/echo")
    refused(await api.post(f"/w/{workspace}/jobs/run/p/u/admin/echo?tag=a%00", json={}), 400, "tag")
    r = await api.post(f"/w/{workspace}/jobs/run/p/u/admin/echo", json={"x": "a\x00b"})
    refused(r, 400, "args.x", "NUL")
    r = await api.post(f"/w/{workspace}/jobs/run/p/u/admin/echo", json={"x": {"k\x00": 1}})
    refused(r, 400, "key", "NUL")
    r = await api.post(
        f"/w/{workspace}/jobs/run/preview",
        json={"content": "def main():\n    return '\x00'\n", "language": "python3"},
    )
    refused(r, 400, "content", "NUL")
    r = await api.post(
        f"/w/{workspace}/jobs_u/queue/cancel/00000000-0000-0000-0000-000000000000",
        json={"reason": "\x00"},
    )
    refused(r, 400, "reason", "NUL")
    # Only the script's dependency-free save; no job of any kind.
    assert await count(platform, "job", workspace) == 0


# -- integers beyond their columns -------------------------------------------------------


async def test_integers_beyond_their_columns(
    api: httpx.AsyncClient, platform: Platform, workspace: str
) -> None:
    refused(await api.get(f"/w/{workspace}/scripts/list?page={HUGE}"), 400, "page", "2147483647")
    refused(await api.get(f"/w/{workspace}/jobs/list?page={HUGE}"), 400, "page", "2147483647")
    refused(await api.get(f"/w/{workspace}/jobs/list?per_page=5000"), 400, "per_page", "1000")
    await save(api, workspace, "u/admin/echo")
    for query, words in [
        ("timeout=1000000000000", ("timeout", "2147483647")),
        ("timeout=0", ("timeout", "1")),
        ("scheduled_in_secs=1000000000000", ("scheduled_in_secs", "2147483647")),
        ("scheduled_in_secs=-1", ("scheduled_in_secs", "0")),
    ]:
        r = await api.post(f"/w/{workspace}/jobs/run/p/u/admin/echo?{query}", json={})
        refused(r, 400, *words)
    assert await count(platform, "job", workspace) == 0
    for extra, field in [({"priority": 100000}, "priority"), ({"timeout": -5}, "timeout")]:
        r = await api.post(
            f"/w/{workspace}/scripts/create",
            json={"path": "u/admin/other", "content": ECHO, "language": "python3", **extra},
        )
        refused(r, 400, field, "between")
    assert await count(platform, "script", workspace) == 1
    job = (
        await api.post(f"/w/{workspace}/jobs/run/p/u/admin/echo?scheduled_in_secs=3600", json={})
    ).text
    r = await api.get(f"/w/{workspace}/jobs_u/getupdate/{job}?log_offset={HUGE}")
    refused(r, 400, "log_offset")


# -- paths -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["u/admin/héllo", "u/admin/hello\n", "u/admin", "x/admin/a", "u/admin/a b"]
)
async def test_paths_the_database_would_refuse(
    module_api: httpx.AsyncClient, module_platform: Platform, path: str
) -> None:
    # A refusal writes nothing: every case shares the module's platform (a start costs
    # seconds); the checks that nothing was written see only the other refusals.
    api, platform = module_api, module_platform
    r = await api.post(
        "/w/main/scripts/create", json={"path": path, "content": ECHO, "language": "python3"}
    )
    refused(r, 400, "invalid path", "ASCII letters")
    assert await count(platform, "script", "main") == 0


# -- nesting and sizes -------------------------------------------------------------------


async def test_arguments_nested_too_deep(
    api: httpx.AsyncClient, platform: Platform, workspace: str
) -> None:
    await save(api, workspace, "u/admin/echo")
    nested = "[" * 500 + "]" * 500
    r = await api.post(
        f"/w/{workspace}/jobs/run/p/u/admin/echo",
        content=f'{{"x": {nested}}}',
        headers={"content-type": "application/json"},
    )
    refused(r, 400, "args.x", "nested more than 64 levels")
    r = await api.post(
        f"/w/{workspace}/jobs/run/preview",
        content=f'{{"content": {json.dumps(ECHO)}, "language": "python3", "args": {{"x": {nested}}}}}',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400, r.text
    assert await count(platform, "job", workspace) == 0


async def test_size_limits(settings: Settings) -> None:
    limited = settings.with_overrides(max_body_size_mb=2, max_args_size_mb=1, max_script_size_kb=4)
    async with started(limited) as (api, platform):
        await save(api, "main", "u/admin/echo")
        big = {"x": "a" * (3 * 1024 * 1024)}
        refused(
            await api.post("/w/main/jobs/run/p/u/admin/echo", json=big),
            413,
            "GRISTMILL_MAX_BODY_SIZE_MB=2",
        )

        async def chunks() -> AsyncIterator[bytes]:
            # No Content-Length: the limit is applied while the body arrives.
            yield b'{"x": "'
            for _ in range(3 * 1024):
                yield b"a" * 1024
            yield b'"}'

        r = await api.post(
            "/w/main/jobs/run/p/u/admin/echo",
            content=chunks(),
            headers={"content-type": "application/json"},
        )
        refused(r, 413, "GRISTMILL_MAX_BODY_SIZE_MB=2")
        r = await api.post("/w/main/jobs/run/p/u/admin/echo", json={"x": "a" * (1024 * 1024 + 10)})
        refused(r, 413, "GRISTMILL_MAX_ARGS_SIZE_MB=1")
        r = await api.post(
            "/w/main/scripts/create",
            json={
                "path": "u/admin/big",
                "content": ECHO + "#" * 5000,
                "language": "python3",
            },
        )
        refused(r, 413, "content", "GRISTMILL_MAX_SCRIPT_SIZE_KB=4")
        assert await count(platform, "job", "main") == 0
        assert await count(platform, "script", "main") == 1


async def test_arguments_too_long_for_a_command_line(
    api: httpx.AsyncClient, platform: Platform, workspace: str
) -> None:
    """Bash receives its arguments as words on the command line (E2BIG over 128 KiB)."""
    r = await api.post(
        f"/w/{workspace}/scripts/create",
        json={"path": "u/admin/sh", "content": 'x="$1"\necho "$x"\n', "language": "bash"},
    )
    assert r.status_code == 201, r.text
    r = await api.post(f"/w/{workspace}/jobs/run/p/u/admin/sh", json={"x": "a" * (200 * 1024)})
    refused(r, 413, "bash jobs", "command line")
    assert await count(platform, "job", workspace) == 0


# -- lists -------------------------------------------------------------------------------


async def test_path_start_is_a_prefix_not_a_pattern(api: httpx.AsyncClient, workspace: str) -> None:
    await save(api, workspace, "u/admin/abc")
    for prefix in ["%25", "u/admin/a_c", "u/admin/%25c", "_"]:
        r = await api.get(f"/w/{workspace}/scripts/list?path_start={prefix}")
        assert r.status_code == 200 and r.json() == [], (prefix, r.text)
    r = await api.get(f"/w/{workspace}/scripts/list?path_start=u/admin/ab")
    assert [s["path"] for s in r.json()] == ["u/admin/abc"]
    job = (
        await api.post(f"/w/{workspace}/jobs/run/p/u/admin/abc?scheduled_in_secs=3600", json={})
    ).text
    for prefix in ["%25", "u/admin/a_c"]:
        r = await api.get(f"/w/{workspace}/jobs/list?script_path_start={prefix}")
        assert r.status_code == 200 and r.json() == [], (prefix, r.text)
    r = await api.get(f"/w/{workspace}/jobs/list?script_path_start=u/admin/ab")
    assert [j["id"] for j in r.json()] == [job]


async def test_script_list_does_not_read_contents(
    api: httpx.AsyncClient, platform: Platform, workspace: str
) -> None:
    await save(api, workspace, "u/admin/abc")
    assert platform.pool is not None
    rows = await versions.list_versions(platform.pool, workspace, versions.ScriptQuery())
    assert [r["path"] for r in rows] == ["u/admin/abc"]
    assert "content" not in rows[0]
    assert "schema" not in rows[0]


# -- authentication comes first ----------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/w/main/scripts/create",
        "/w/main/jobs/run/p/u/admin/echo",
        "/w/main/jobs/run/preview",
        "/w/main/jobs/run_wait_result/preview",
        "/w/main/jobs_u/queue/cancel/00000000-0000-0000-0000-000000000000",
    ],
)
async def test_no_token_and_a_malformed_body_is_401(
    module_api: httpx.AsyncClient, url: str
) -> None:
    # Refusals write nothing: every case shares the module's platform (a start costs seconds).
    api = module_api
    r = await api.post(
        url,
        content=b"{not json",
        headers={"content-type": "application/json", "authorization": ""},
    )
    refused(r, 401, "Not authorized")


# -- found by the fuzz test (tests/integration/test_api_fuzz.py) ----------------------------


async def test_a_synchronous_run_scheduled_after_its_wait(
    api: httpx.AsyncClient, platform: Platform, workspace: str
) -> None:
    """It could only time out (a 500, as Windmill): refused before the job is queued."""
    await save(api, workspace, "u/admin/echo")
    r = await api.post(
        f"/w/{workspace}/jobs/run_wait_result/p/u/admin/echo?scheduled_in_secs=3600", json={}
    )
    refused(r, 400, "TIMEOUT_WAIT_RESULT", "jobs/run/")
    assert await count(platform, "job", workspace) == 0


async def test_method_not_allowed_names_every_method_of_the_path(
    api: httpx.AsyncClient, workspace: str
) -> None:
    """GET and POST of run_wait_result/p are two routes; Starlette's Allow named one."""
    r = await api.request("PUT", f"/w/{workspace}/jobs/run_wait_result/p/u/admin/echo")
    assert r.status_code == 405, r.text
    assert {m.strip() for m in r.headers["allow"].split(",")} >= {"GET", "POST"}
    assert "allowed: " in r.text
