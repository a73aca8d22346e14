"""Waiting in tests for something that happens in another task or process."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["wait_until"]


async def wait_until(
    check: Callable[[], Awaitable[Any]],
    *,
    timeout: float = 20.0,  # noqa: ASYNC109 (the name every test calls it with)
    interval: float = 0.05,
    what: str = "condition",
) -> Any:
    """Await ``check()`` every ``interval`` seconds until it returns something true, and
    return that; fail the test (``AssertionError`` naming ``what``) after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met in {timeout:g} s")
        await asyncio.sleep(interval)
