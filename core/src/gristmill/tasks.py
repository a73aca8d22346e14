"""Stopping asyncio tasks without swallowing the caller's own cancellation.

``task.cancel(); with suppress(CancelledError): await task`` is wrong when the caller is
itself being cancelled while it waits: the caller's ``CancelledError`` is suppressed too,
and the caller runs on (a stop that awaits it then hangs forever). :func:`cancel_and_wait`
waits with :func:`asyncio.wait`, which never raises the awaited task's outcome but does
raise the caller's own cancellation.

This module imports nothing of Gristmill: every other module may import it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

__all__ = ["cancel_and_wait", "cancel_within"]


async def cancel_and_wait(tasks: asyncio.Task[object] | Iterable[asyncio.Task[object]]) -> None:
    """Cancel ``tasks`` and wait until each has ended, whatever its outcome; a task's
    exception is retrieved (so it is not reported as never retrieved) and dropped."""
    pending = [tasks] if isinstance(tasks, asyncio.Task) else list(tasks)
    if not pending:
        return
    for task in pending:
        task.cancel()
    await asyncio.wait(pending)
    for task in pending:
        if not task.cancelled():
            task.exception()


async def cancel_within(
    tasks: Iterable[asyncio.Task[Any]], timeout_s: float
) -> set[asyncio.Task[Any]]:
    """Cancel ``tasks`` and wait at most ``timeout_s`` for them to end; a task whose cleanup
    awaits again (a last write to a database that does not answer) is cancelled again,
    until the time is up. Return those still running then."""
    loop = asyncio.get_running_loop()
    until = loop.time() + timeout_s
    pending = {t for t in tasks if not t.done()}
    ended: set[asyncio.Task[Any]] = {t for t in tasks if t.done()}
    while pending:
        for task in pending:
            task.cancel()
        remaining = until - loop.time()
        if remaining <= 0:
            break
        done, pending = await asyncio.wait(pending, timeout=min(remaining, 0.1))
        ended |= done
    for task in ended:
        if not task.cancelled():
            task.exception()
    return pending
