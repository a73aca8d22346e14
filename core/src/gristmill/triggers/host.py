"""Running trigger kinds in a server process: each kind's ``serve``, and for listener kinds
a supervisor that holds triggers through leases and runs one ``listen`` task per trigger held.

Exactly one server holds a listener trigger at a time: it claims the trigger in the table
(``server_id``, ``last_server_ping``), renews the claim every third of the lease, and stops
its listener when a renewal no longer returns the trigger (disabled, changed, deleted, or
taken by another server after this one stalled past the lease). A change anywhere is
notified on ``gristmill_triggers``, so a server reacts at once rather than at its next
renewal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Sequence
from typing import Any

from psycopg.rows import dict_row

from gristmill.db.queries import Q
from gristmill.tasks import cancel_and_wait
from gristmill.triggers.kinds import TriggerKind, TriggerRow, TriggerServices
from gristmill.triggers.store import set_trigger_error
from gristmill.worker.retry import TRANSIENT

__all__ = ["TriggerHost", "new_server_id"]

log = logging.getLogger(__name__)

#: A failing listener is started again after this many seconds, doubling up to the maximum.
FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 60.0
#: How long a stopping server tries to hand its listener triggers back.
RELEASE_TIMEOUT_S = 1.0


def new_server_id() -> str:
    return f"srv-{uuid.uuid4().hex[:12]}"


class TriggerHost:
    """The trigger kinds of one server process, started and stopped with it."""

    def __init__(self, kinds: Sequence[TriggerKind], services: TriggerServices) -> None:
        self.kinds = list(kinds)
        self.services = services
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self.services.notifier.on_triggers(self.services.changed)
        # Notifications missed while the connection was down: every kind reloads.
        self.services.notifier.on_reconnect(lambda: self.services.changed("*"))
        for kind in self.kinds:
            self._tasks.append(
                asyncio.create_task(self._guarded(kind.serve(self.services), kind), name=kind.name)
            )
            if kind.listens:
                supervisor = _Supervisor(kind, self.services)
                self._tasks.append(asyncio.create_task(supervisor.run(), name=f"{kind.name}-hold"))

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks.clear()

    async def _guarded(self, coro: Any, kind: TriggerKind) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("trigger kind %s stopped serving", kind.name)


class _Supervisor:
    """Holds the triggers of one listener kind that this server may take."""

    def __init__(self, kind: TriggerKind, services: TriggerServices) -> None:
        self.kind = kind
        self.services = services
        self.running: dict[tuple[str, str], tuple[TriggerRow, asyncio.Task[None]]] = {}

    async def run(self) -> None:
        feed = self.services.changes(self.kind.name)
        try:
            while True:
                try:
                    await self._reconcile()
                except TRANSIENT as exc:
                    log.warning("%s triggers: database unreachable (%s)", self.kind.name, exc)
                await feed.wait(self.kind.lease_s / 3)
        finally:
            await self._stop_all()

    async def _reconcile(self) -> None:
        async with self.services.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                Q["trig_claim"],
                {
                    "kind": self.kind.name,
                    "server_id": self.services.server_id,
                    "lease_s": self.kind.lease_s,
                },
            )
            held = {
                (r["workspace_id"], r["path"]): TriggerRow.from_db(r) for r in await cur.fetchall()
            }
        for key, (row, task) in list(self.running.items()):
            now = held.get(key)
            # No longer held, or changed (edited_at moves on every save): stop its listener.
            # A listener that returned stays stopped until its trigger changes.
            if now is None or now.edited_at != row.edited_at:
                # Not ``suppress(CancelledError)``: that would also swallow this
                # supervisor's own cancellation arriving meanwhile (a stop then hangs).
                await cancel_and_wait(task)
                del self.running[key]
        for key, row in held.items():
            if key not in self.running:
                task = asyncio.create_task(
                    self._listen(row), name=f"{self.kind.name}:{row.workspace_id}/{row.path}"
                )
                self.running[key] = (row, task)

    async def _listen(self, trigger: TriggerRow) -> None:
        """Run the kind's listener for ``trigger``, again after each failure (with backoff),
        recording each failure on the trigger (the listener clears it with
        :meth:`TriggerServices.report` once it works)."""
        backoff = FIRST_BACKOFF_S
        while True:
            try:
                await self.kind.listen(self.services, trigger)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                message = str(exc) or type(exc).__name__
                log.warning(
                    "%s trigger %s/%s failed: %s; retrying in %.0f s",
                    self.kind.name,
                    trigger.workspace_id,
                    trigger.path,
                    message,
                    backoff,
                )
                with contextlib.suppress(*TRANSIENT):
                    await set_trigger_error(self.services, trigger, message)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)

    async def _stop_all(self) -> None:
        await cancel_and_wait([task for _row, task in self.running.values()])
        self.running.clear()
        # Let another server take them at once rather than after the lease; briefly: with
        # the database gone a stop must not wait for it (the lease then expires by itself).
        with contextlib.suppress(Exception):
            async with asyncio.timeout(RELEASE_TIMEOUT_S), self.services.pool.connection() as conn:
                await conn.execute(
                    Q["trig_release"],
                    {"kind": self.kind.name, "server_id": self.services.server_id},
                )
