"""Trigger kinds as plugins: a kind registered by a test (as a plugin would) gets Windmill's
CRUD routes, its listener held by exactly one server, its errors recorded, and its jobs
started as the trigger's owner with ``trigger_kind``/``trigger`` recorded."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
import pytest_asyncio
from gristmill import BadInput, TriggerKind, TriggerRow, TriggerServices
from gristmill.config import Settings
from gristmill.server.platform import Platform
from gristmill.testing.members import add_member
from gristmill.testing.pytest_plugin import api_client, started_platform
from pydantic import BaseModel, Field

pytestmark = pytest.mark.asyncio(loop_scope="module")


class TickerConfig(BaseModel):
    interval_s: float = Field(default=0.2, gt=0)
    fail: str | None = None


class Ticker(TriggerKind):
    """Starts its runnable every ``interval_s`` while held; ``fail`` makes it raise."""

    name = "ticker"
    title = "ticker"
    config_model = TickerConfig
    listens = True
    lease_s = 3.0

    def __init__(self) -> None:
        #: (server_id, trigger path) of every listener start, in order.
        self.starts: list[tuple[str, str]] = []

    async def check(self, services: TriggerServices, draft: Any, access: Any) -> None:
        if draft.config.interval_s > 3600:
            raise BadInput("interval_s: at most 3600 seconds")

    async def listen(self, services: TriggerServices, trigger: TriggerRow) -> None:
        self.starts.append((services.server_id, trigger.path))
        config = TickerConfig.model_validate(trigger.config)
        if config.fail:
            raise RuntimeError(config.fail)
        await services.report(trigger, None)
        while True:
            await services.start(trigger, {"n": 1})
            await asyncio.sleep(config.interval_s)


NOOP = "def main(n: int = 0):\n    return n\n"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def kind() -> Ticker:
    return Ticker()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def platform(module_settings: Settings, kind: Ticker) -> AsyncIterator[Platform]:
    async with started_platform(module_settings, trigger_kinds=[kind]) as started:
        yield started


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(platform) as client:
        r = await client.post(
            "/w/main/scripts/create",
            json={"path": "u/admin/tick", "content": NOOP, "language": "python3", "summary": ""},
        )
        assert r.status_code == 201, r.text
        yield client


async def until(check: Callable[[], Awaitable[Any]], timeout_s: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


async def jobs_of(platform: Platform, path: str) -> list[tuple[str, str]]:
    async with platform.db.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT trigger_kind, trigger FROM job WHERE trigger = %s AND workspace_id = 'main'",
                (path,),
            )
        ).fetchall()
    return [(r[0], r[1]) for r in rows]


def body(path: str, **config: Any) -> dict[str, Any]:
    return {"path": path, "script_path": "u/admin/tick", "is_flow": False, **config}


async def test_crud_with_the_kinds_fields_flat(api: httpx.AsyncClient) -> None:
    r = await api.post(
        "/w/main/ticker_triggers/create", json=body("u/admin/t1", interval_s=60, enabled=False)
    )
    assert r.status_code == 201, r.text
    assert r.text == "u/admin/t1"
    got = (await api.get("/w/main/ticker_triggers/get/u/admin/t1")).json()
    assert got["interval_s"] == 60 and got["enabled"] is False and got["mode"] == "disabled"
    assert got["script_path"] == "u/admin/tick" and got["edited_by"] == "superadmin_secret"
    assert (await api.get("/w/main/ticker_triggers/exists/u/admin/t1")).json() is True
    assert (await api.get("/w/main/ticker_triggers/exists/u/admin/nope")).json() is False
    r = await api.post(
        "/w/main/ticker_triggers/update/u/admin/t1",
        json=body("u/admin/t1b", interval_s=30, enabled=False),
    )
    assert r.status_code == 200, r.text
    listed = (
        await api.get("/w/main/ticker_triggers/list", params={"path_start": "u/admin/t1"})
    ).json()
    assert [(t["path"], t["interval_s"]) for t in listed] == [("u/admin/t1b", 30)]
    r = await api.delete("/w/main/ticker_triggers/delete/u/admin/t1b")
    assert r.status_code == 200, r.text
    assert (await api.get("/w/main/ticker_triggers/get/u/admin/t1b")).status_code == 404


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (body("u/admin/bad", interval_s=7200), "interval_s: at most 3600"),
        (body("u/admin/bad", interval_s=-1), "interval_s"),
        (body("nopath"), "invalid path"),
        ({**body("u/admin/bad"), "script_path": "u/admin/missing"}, "no script 'u/admin/missing'"),
        ({**body("u/admin/bad"), "is_flow": True}, "no flow 'u/admin/tick'"),
        ({**body("u/admin/bad"), "mode": "suspended"}, "not supported yet"),
        ({**body("u/admin/bad"), "retry": {"constant": {"attempts": 2}}}, "retry is not supported"),
    ],
)
async def test_bad_input_is_a_400_and_saves_nothing(
    api: httpx.AsyncClient, payload: dict[str, Any], message: str
) -> None:
    r = await api.post("/w/main/ticker_triggers/create", json=payload)
    assert r.status_code in (400, 422), r.text
    assert message in r.text
    assert (await api.get("/w/main/ticker_triggers/exists/u/admin/bad")).json() is False


async def test_a_path_taken_is_refused(api: httpx.AsyncClient) -> None:
    payload = body("u/admin/twice", interval_s=60, enabled=False)
    assert (await api.post("/w/main/ticker_triggers/create", json=payload)).status_code == 201
    r = await api.post("/w/main/ticker_triggers/create", json=payload)
    assert r.status_code == 400 and "already exists" in r.text


async def test_listener_starts_jobs_as_the_owner_recording_the_trigger(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    r = await api.post("/w/main/ticker_triggers/create", json=body("u/admin/live", interval_s=0.2))
    assert r.status_code == 201, r.text
    jobs = await until(lambda: _at_least(jobs_of(platform, "u/admin/live"), 3))
    assert set(jobs) == {("ticker", "u/admin/live")}
    # The job lists carry the trigger and filter on it.
    listed = (
        await api.get(
            "/w/main/jobs/list", params={"trigger_kind": "ticker", "trigger_path": "u/admin/live"}
        )
    ).json()
    assert len(listed) >= 3
    assert {(j["trigger_kind"], j["trigger"]) for j in listed} == {("ticker", "u/admin/live")}
    other = await api.get("/w/main/jobs/list", params={"schedule_path": "u/admin/live"})
    assert other.json() == []
    held = (await api.get("/w/main/ticker_triggers/get/u/admin/live")).json()
    assert held["server_id"] == platform.triggers.server_id
    # Disabling stops the listener: no job after it.
    r = await api.post("/w/main/ticker_triggers/setenabled/u/admin/live", json={"enabled": False})
    assert r.status_code == 200, r.text
    await asyncio.sleep(0.3)
    count = len(await jobs_of(platform, "u/admin/live"))
    await asyncio.sleep(0.6)
    assert len(await jobs_of(platform, "u/admin/live")) == count


async def test_a_failing_listener_records_its_error(api: httpx.AsyncClient) -> None:
    r = await api.post(
        "/w/main/ticker_triggers/create", json=body("u/admin/broken", fail="broker unreachable")
    )
    assert r.status_code == 201, r.text

    async def error() -> Any:
        return (await api.get("/w/main/ticker_triggers/get/u/admin/broken")).json()["error"]

    assert await until(error) == "broker unreachable"
    # Fixed by a save: the error is cleared and the listener works.
    r = await api.post(
        "/w/main/ticker_triggers/update/u/admin/broken", json=body("u/admin/broken", interval_s=5)
    )
    assert r.status_code == 200, r.text
    assert (await api.get("/w/main/ticker_triggers/get/u/admin/broken")).json()["error"] is None


async def test_one_listener_across_two_servers_and_failover(
    api: httpx.AsyncClient, platform: Platform, module_settings: Settings, kind: Ticker
) -> None:
    """Two servers on one database: exactly one holds a listener trigger; when it stops
    holding (as at its stop), the other takes the trigger over at once."""
    other_kind = Ticker()
    async with started_platform(
        dataclasses.replace(module_settings, mode="server"), trigger_kinds=[other_kind]
    ) as second:
        r = await api.post(
            "/w/main/ticker_triggers/create", json=body("u/admin/one", interval_s=0.3)
        )
        assert r.status_code == 201, r.text
        await until(lambda: _at_least(jobs_of(platform, "u/admin/one"), 3))
        servers = [(platform, kind), (second, other_kind)]
        holders = [(p, k) for p, k in servers if any(t == "u/admin/one" for _, t in k.starts)]
        assert len(holders) == 1, "one listener, on one server"
        (holder, _), (taker, taker_kind) = (
            holders[0],
            next(pair for pair in servers if pair != holders[0]),
        )
        got = (await api.get("/w/main/ticker_triggers/get/u/admin/one")).json()
        assert got["server_id"] == holder.triggers.server_id
        assert holder.trigger_host is not None
        await holder.trigger_host.stop()
        try:
            await until(lambda: _has(taker_kind.starts, (taker.triggers.server_id, "u/admin/one")))
        finally:
            await holder.trigger_host.start()
        r = await api.post(
            "/w/main/ticker_triggers/setenabled/u/admin/one", json={"enabled": False}
        )
        assert r.status_code == 200


async def _at_least(rows: Awaitable[list[Any]], n: int) -> list[Any] | None:
    got = await rows
    return got if len(got) >= n else None


async def _has(items: list[Any], item: Any) -> bool:
    return item in items


async def test_permissions_as_for_every_item(api: httpx.AsyncClient, platform: Platform) -> None:
    """A developer sees and edits their own triggers only; an operator edits none; the
    script a trigger starts must be readable by the one saving it; the owner's jobs run
    as them."""
    alice = await add_member(platform, api, "tk_alice", "developer")
    bob = await add_member(platform, api, "tk_bob", "developer")
    oscar = await add_member(platform, api, "tk_oscar", "operator")
    r = await alice.post(
        "/w/main/scripts/create",
        json={"path": "u/tk_alice/noop", "content": NOOP, "language": "python3", "summary": ""},
    )
    assert r.status_code == 201, r.text
    mine = {
        "path": "u/tk_alice/t",
        "script_path": "u/tk_alice/noop",
        "interval_s": 60,
        "enabled": False,
    }
    assert (await alice.post("/w/main/ticker_triggers/create", json=mine)).status_code == 201
    # Bob neither sees nor lists it, nor may he save at alice's path or run her script.
    assert (await bob.get("/w/main/ticker_triggers/get/u/tk_alice/t")).status_code == 404
    assert "u/tk_alice/t" not in {
        t["path"] for t in (await bob.get("/w/main/ticker_triggers/list")).json()
    }
    assert (
        await bob.post("/w/main/ticker_triggers/create", json={**mine, "path": "u/tk_alice/b"})
    ).status_code == 403
    r = await bob.post("/w/main/ticker_triggers/create", json={**mine, "path": "u/tk_bob/t"})
    assert r.status_code == 400 and "no script 'u/tk_alice/noop'" in r.text
    assert (await bob.delete("/w/main/ticker_triggers/delete/u/tk_alice/t")).status_code == 404
    r = await oscar.post("/w/main/ticker_triggers/create", json={**mine, "path": "u/tk_oscar/t"})
    assert r.status_code == 403 and "operator" in r.text
    # Enabled, its jobs run as alice.
    r = await alice.post("/w/main/ticker_triggers/setmode/u/tk_alice/t", json={"mode": "enabled"})
    assert r.status_code == 200, r.text

    async def owners() -> set[str] | None:
        async with platform.db.connection() as conn:
            rows = await (
                await conn.execute("SELECT permissioned_as FROM job WHERE trigger = 'u/tk_alice/t'")
            ).fetchall()
        return {row[0] for row in rows} or None

    assert await until(owners) == {"u/tk_alice"}
    assert (await alice.delete("/w/main/ticker_triggers/delete/u/tk_alice/t")).status_code == 200
