"""cancel_and_wait: the tasks end, their failures are dropped, and a cancellation of the
caller itself still reaches the caller (the bug that hung a server's stop)."""

from __future__ import annotations

import asyncio

import pytest
from gristmill.tasks import cancel_and_wait


async def test_cancels_and_waits_for_every_task() -> None:
    async def forever() -> None:
        await asyncio.sleep(3600)

    async def fails() -> None:
        raise RuntimeError("boom")

    tasks = [asyncio.create_task(forever()), asyncio.create_task(fails())]
    await asyncio.sleep(0)
    await cancel_and_wait(tasks)
    assert all(t.done() for t in tasks)
    assert tasks[0].cancelled()


async def test_the_callers_own_cancellation_is_not_swallowed() -> None:
    release = asyncio.Event()

    async def slow_to_stop() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            await release.wait()  # cleanup that takes a while

    child = asyncio.create_task(slow_to_stop())
    await asyncio.sleep(0)
    ran_on = False

    async def supervisor() -> None:
        nonlocal ran_on
        await cancel_and_wait(child)
        ran_on = True

    outer = asyncio.create_task(supervisor())
    await asyncio.sleep(0.01)
    outer.cancel()  # the stop arrives while the supervisor waits for its child
    await asyncio.sleep(0.01)
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await outer
    assert not ran_on
