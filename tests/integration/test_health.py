"""The health probes: public, answering models, and ready only when the database answers,
the schema has every migration and the workers run and announced themselves.

One platform for the module; the not-ready cases change one fact of its database and put it
back, or use a platform of their own whose pool points at no server at all.
"""

from __future__ import annotations

import contextlib
import socket
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from gristmill import __version__
from gristmill.api.routes.health import health_app
from gristmill.config import Settings
from gristmill.db.migrations import list_migrations
from gristmill.server.platform import Platform
from gristmill.testing.pytest_plugin import api_client, shared_runtimes
from psycopg_pool import AsyncConnectionPool


def _checks(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in body["checks"]}


async def test_live_answers_without_a_token(module_api: httpx.AsyncClient) -> None:
    r = await module_api.get("/health/live", headers={"Authorization": ""})
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "alive", "version": __version__}
    assert r.headers["cache-control"] == "no-store"


async def test_ready_when_every_check_passes(module_api: httpx.AsyncClient) -> None:
    r = await module_api.get("/health/ready", headers={"Authorization": ""})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ready"] is True
    assert body["failed"] == []
    checks = _checks(body)
    assert set(checks) == {"database", "migrations", "workers"}
    assert all(c["ok"] for c in checks.values()), checks
    latest = max(m.version for m in list_migrations())
    assert checks["migrations"]["detail"] == f"schema at version {latest}"


async def test_not_ready_when_a_migration_is_missing(
    module_api: httpx.AsyncClient, module_settings: Settings
) -> None:
    latest = max(list_migrations(), key=lambda m: m.version)
    async with await psycopg.AsyncConnection.connect(
        module_settings.database_url, autocommit=True
    ) as conn:
        await conn.execute("DELETE FROM gristmill_migration WHERE version = %s", [latest.version])
        try:
            r = await module_api.get("/health/ready")
        finally:
            await conn.execute(
                "INSERT INTO gristmill_migration (version, name) VALUES (%s, %s)",
                [latest.version, latest.name],
            )
    assert r.status_code == 503, r.text
    body = r.json()
    assert body["ready"] is False
    assert body["failed"] == ["migrations"]
    assert str(latest.version) in _checks(body)["migrations"]["detail"]


async def test_not_ready_when_the_workers_went_silent(
    module_api: httpx.AsyncClient, module_platform: Platform, module_settings: Settings
) -> None:
    assert module_platform.workers is not None
    instance = module_platform.workers.instance
    async with await psycopg.AsyncConnection.connect(
        module_settings.database_url, autocommit=True
    ) as conn:
        await conn.execute(
            "UPDATE worker_ping SET ping_at = now() - interval '1 hour' WHERE worker_instance = %s",
            [instance],
        )
        try:
            r = await module_api.get("/health/ready")
        finally:
            await conn.execute(
                "UPDATE worker_ping SET ping_at = now() WHERE worker_instance = %s", [instance]
            )
    assert r.status_code == 503, r.text
    body = r.json()
    assert body["failed"] == ["workers"]
    assert "last announced itself" in _checks(body)["workers"]["detail"]


@contextlib.contextmanager
def _silent_server() -> Iterator[int]:
    """A port that accepts connections and never answers (a hung database)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


@pytest.mark.parametrize("server", ["stopped", "silent"])
async def test_not_ready_within_a_second_when_the_database_is_unreachable(
    module_settings: Settings, server: str
) -> None:
    with contextlib.ExitStack() as stack:
        if server == "stopped":
            # What a stopped cluster leaves: a socket directory with no server in it.
            empty = stack.enter_context(tempfile.TemporaryDirectory())
            conninfo = f"host={empty} port=5432 user=postgres dbname=gristmill"
        else:
            port = stack.enter_context(_silent_server())
            conninfo = f"host=127.0.0.1 port={port} user=postgres dbname=gristmill"
        pool: AsyncConnectionPool = AsyncConnectionPool(
            conninfo, min_size=1, max_size=2, open=False, reconnect_timeout=5
        )
        await pool.open(wait=False)
        platform = Platform(
            settings=module_settings.with_overrides(mode="server"),
            conninfo=conninfo,
            job_token_secret=b"",
            pool=pool,
            **shared_runtimes(),
        )
        try:
            async with api_client(platform) as api:
                started = time.monotonic()
                r = await api.get("/health/ready", headers={"Authorization": ""})
                elapsed = time.monotonic() - started
        finally:
            await pool.close(timeout=0.2)
    assert r.status_code == 503, r.text
    # The probe promises an answer within 1 s (the margin is for a busy test machine).
    assert elapsed < 1.5, elapsed
    body = r.json()
    assert body["failed"] == ["database", "migrations"], body
    database = _checks(body)["database"]["detail"]
    assert database.startswith("no answer within") or database.startswith("cannot"), database


async def test_a_worker_only_process_serves_the_probes_alone(module_platform: Platform) -> None:
    """What `gristmill worker` serves on GRISTMILL_HEALTH_PORT: the probes, nothing else."""
    app = health_app(module_platform)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://worker.test/api"
    ) as client:
        assert (await client.get("/health/live")).status_code == 200
        r = await client.get("/health/ready")
        assert r.status_code == 200, r.text
        assert set(_checks(r.json())) == {"database", "migrations", "workers"}
        assert (await client.get("/version")).status_code == 404
        assert (await client.get("/openapi.json")).status_code == 404
