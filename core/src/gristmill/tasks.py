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

__all__ = ["cancel_and_wait"]


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
