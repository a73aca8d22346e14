"""A stop's answers to callers: waiters released (queue.waiting.Waiters) and the API's
requests refused or cut (server.draining.Draining). The processes: tests/e2e/test_shutdown.py."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from gristmill.queue.waiting import ServerStopping, Waiters
from gristmill.server.draining import Draining
from starlette.types import Receive, Scope, Send


async def _wait_in(waiters: Waiters, job_id: uuid.UUID) -> None:
    with waiters.waiting("main", job_id):
        await asyncio.sleep(60)


async def test_a_released_waiter_is_told_its_job() -> None:
    waiters = Waiters()
    job_id = uuid.uuid4()
    task = asyncio.create_task(_wait_in(waiters, job_id))
    await asyncio.sleep(0)
    assert len(waiters) == 1
    idle = asyncio.create_task(waiters.idle())
    waiters.release()
    with pytest.raises(ServerStopping) as info:
        await task
    assert info.value.job_id == job_id
    assert str(job_id) in str(info.value) and "get_result_maybe" in str(info.value)
    await asyncio.wait_for(idle, 1)
    # A wait that would start now is refused at once.
    with pytest.raises(ServerStopping):
        await _wait_in(waiters, job_id)


async def test_a_cancellation_from_elsewhere_stays_one() -> None:
    waiters = Waiters()
    task = asyncio.create_task(_wait_in(waiters, uuid.uuid4()))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(waiters) == 0


async def _app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["path"] == "/slow":
        await asyncio.sleep(60)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def test_a_draining_api_refuses_new_requests_and_answers_those_in_flight() -> None:
    draining = Draining(_app)
    transport = httpx.ASGITransport(app=draining)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        assert (await client.get("/fast")).status_code == 200
        slow = asyncio.create_task(client.get("/slow"))
        while not len(draining):  # noqa: ASYNC110 (the request starting, no event to wait on)
            await asyncio.sleep(0.01)

        draining.refuse()
        refused = await client.get("/fast")
        assert refused.status_code == 503
        assert refused.headers["retry-after"].isdigit()
        assert refused.headers["connection"] == "close"
        assert "stopping" in refused.text
        # A running job's request is served: the job may finish within the grace. The
        # answer closes its connection all the same.
        job = await client.get("/fast", headers={"Authorization": "Bearer jt.payload.sig"})
        assert job.status_code == 200
        assert job.headers["connection"] == "close"

        await draining.close(timeout_s=0.05)
        cut = await asyncio.wait_for(slow, 2)
        assert cut.status_code == 503 and "stopping" in cut.text
        assert len(draining) == 0
