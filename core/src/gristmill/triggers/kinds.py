"""What a trigger kind is, and the services the core gives it.

A trigger kind (an HTTP route, the Postgres trigger, a plugin's Kafka or WebSocket listener)
is a :class:`TriggerKind` registered through the ``register_trigger_kinds`` hook, the way
runtimes are registered. The core gives every kind, with no code of its own:

- storage in the ``trigger`` table: the fields every trigger has (Windmill's ``path``,
  ``script_path``, ``is_flow``, ``mode``, ``error``, …) plus the kind's own fields
  (:attr:`TriggerKind.config_model`), flat in the payloads as Windmill has them;
- Windmill's CRUD routes at ``/api/w/{workspace}/{name}_triggers/...``
  (create, update, get, exists, list, delete, setmode, setenabled), permissions as for any
  item of a workspace;
- for a kind that listens (``listens = True``): each enabled trigger held by exactly one
  server process at a time (a lease in the table; another server takes over when its holder
  stops), :meth:`TriggerKind.listen` run for it, restarted with backoff when it fails, its
  error recorded on the trigger (``error``, seen by ``get`` and ``list``);
- a way to start the trigger's script or flow as the trigger's owner
  (:meth:`TriggerServices.start`), recording what triggered the job.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar
from uuid import UUID

from pydantic import BaseModel

if TYPE_CHECKING:
    from fastapi import APIRouter
    from psycopg_pool import AsyncConnectionPool

    from gristmill.auth.permissions import Access
    from gristmill.config import Settings
    from gristmill.flows.engine import FlowEngine
    from gristmill.queue.notify import JobDone, Notifier
    from gristmill.queue.submit import Submitter
    from gristmill.workspace.secrets import Secrets

__all__ = [
    "ChangeFeed",
    "StartedRun",
    "TriggerDraft",
    "TriggerKind",
    "TriggerRow",
    "TriggerServices",
]


@dataclasses.dataclass(frozen=True)
class TriggerDraft:
    """A trigger as a save asks for it, before anything is written."""

    workspace_id: str
    path: str
    script_path: str
    is_flow: bool
    config: BaseModel
    enabled: bool
    #: The trigger's path before this save (an update, which may move it); ``None`` for a
    #: create. A check comparing with other triggers leaves this one out.
    previous_path: str | None = None


@dataclasses.dataclass(frozen=True)
class TriggerRow:
    """A stored trigger."""

    workspace_id: str
    kind: str
    path: str
    script_path: str
    is_flow: bool
    summary: str | None
    description: str | None
    config: dict[str, Any]
    mode: str
    error: str | None
    error_at: dt.datetime | None
    server_id: str | None
    last_server_ping: dt.datetime | None
    edited_by: str
    email: str
    edited_at: dt.datetime
    extra_perms: dict[str, Any]

    @property
    def enabled(self) -> bool:
        return self.mode == "enabled"

    @property
    def owner_username(self) -> str:
        """The user the trigger's jobs run as (``edited_by``: the last one who saved it,
        as Windmill's ``permissioned_as``)."""
        return self.edited_by

    @classmethod
    def from_db(cls, row: Mapping[str, Any]) -> TriggerRow:
        return cls(**{f.name: row[f.name] for f in dataclasses.fields(cls)})


class TriggerKind:
    """A kind of trigger. Subclass it, set the class attributes, override what the kind needs.

    Everything has a default, so a kind that only stores a configuration and serves routes
    (an HTTP route) overrides :meth:`check` and :meth:`routes`; a listener (the Postgres
    trigger) sets ``listens`` and overrides :meth:`listen`.
    """

    #: The kind's name: the routes are ``/api/w/{ws}/{name}_triggers/...`` and a job it
    #: starts has ``trigger_kind = name``. Lowercase letters, digits and ``_``.
    name: ClassVar[str]
    #: A human title for messages and the UI ("HTTP route").
    title: ClassVar[str]
    #: The kind's own fields (Windmill's names), flat beside the common ones in payloads.
    #: Its validation is the first check of a save: a bad value is a 400 naming the field.
    config_model: ClassVar[type[BaseModel]]
    #: A listener: each enabled trigger is held by one server process, which runs
    #: :meth:`listen` for it.
    listens: ClassVar[bool] = False
    #: A listener's lease, in seconds: a server that has not renewed it for this long is
    #: presumed gone and another takes the trigger.
    lease_s: ClassVar[float] = 15.0

    async def check(self, services: TriggerServices, draft: TriggerDraft, access: Access) -> None:
        """Check a trigger about to be saved (created, updated or enabled) beyond its fields'
        validation: raise :class:`~gristmill.errors.BadInput` to refuse it, nothing written.
        """

    async def serve(self, services: TriggerServices) -> None:
        """Run in every server process for its whole life (cancelled at stop): e.g. keep an
        in-memory table of routes current with :meth:`TriggerServices.changes`."""

    async def listen(self, services: TriggerServices, trigger: TriggerRow) -> None:
        """For a listener: run while this process holds ``trigger`` (cancelled when it is
        disabled, changed or deleted, or at stop). Raising records the error on the trigger
        and the listener is started again after a backoff; returning ends it until the
        trigger changes."""

    async def forget(self, services: TriggerServices, trigger: TriggerRow, access: Access) -> None:
        """A trigger was deleted (its row is gone, the deletion committed): release what the
        kind holds for it outside Gristmill's database (e.g. a replication slot), as
        ``access`` (the one deleting). Best effort: an exception is logged, not raised."""

    def routes(self) -> Sequence[APIRouter]:
        """Routers mounted under ``/api`` besides the CRUD ones (e.g. ``/api/r/{route}``)."""
        return ()


@dataclasses.dataclass
class TriggerServices:
    """What the core lends trigger kinds in one process."""

    pool: AsyncConnectionPool
    notifier: Notifier
    submitter: Submitter
    flows: FlowEngine
    secrets: Secrets
    settings: Settings
    #: This process, as listener leases name it.
    server_id: str
    _watchers: dict[str, list[ChangeFeed]] = dataclasses.field(default_factory=dict)

    async def start(
        self,
        trigger: TriggerRow,
        args: Mapping[str, Any],
        *,
        wait: bool = False,
        timeout_s: float | None = None,
        job_id: UUID | None = None,
        owner: Access | None = None,
        idempotency_key: str | None = None,
    ) -> StartedRun:
        """Start the trigger's script or flow with ``args`` as the trigger's owner; with
        ``wait``, wait for its outcome (up to ``timeout_s``, TIMEOUT_WAIT_RESULT by default).
        ``job_id`` (a new one by default) or ``idempotency_key`` (an HTTP route's
        ``Idempotency-Key`` header) lets a kind make its starts idempotent: a start repeating
        one answers with that job, and one naming a job it does not match is refused with
        :class:`~gristmill.errors.RepeatMismatch` (a :class:`~gristmill.errors.BadInput`).
        Raises :class:`~gristmill.errors.BadInput` when the args do not fit the schema and
        :class:`~gristmill.errors.NotFound` when the runnable is gone. ``owner``: the owner's
        access when the kind has just read it (:func:`~gristmill.triggers.runs.owner_access`),
        so that a start does not read it again."""
        from gristmill.triggers.runs import start_run

        return await start_run(
            self,
            trigger,
            args,
            wait=wait,
            timeout_s=timeout_s,
            job_id=job_id,
            owner=owner,
            idempotency_key=idempotency_key,
        )

    async def report(self, trigger: TriggerRow, error: str | None) -> None:
        """Record the error a trigger met (``get`` and ``list`` show it), or clear it with
        ``None`` once the trigger works again."""
        from gristmill.triggers.store import set_trigger_error

        await set_trigger_error(self, trigger, error)

    def changes(self, kind: str) -> ChangeFeed:
        """A feed that is set whenever a trigger of ``kind`` changes in any process (and after
        the notification connection was lost, when changes may have been missed)."""
        feed = ChangeFeed()
        self._watchers.setdefault(kind, []).append(feed)
        return feed

    def changed(self, kind: str) -> None:
        for feed in self._watchers.get(kind, ()):
            feed.set()
        if kind == "*":
            for feeds in self._watchers.values():
                for feed in feeds:
                    feed.set()


class ChangeFeed:
    """Set when triggers of a kind changed; :meth:`wait` clears it."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        self._event.set()

    async def wait(self, timeout_s: float | None = None) -> bool:
        """Wait for a change (``False`` after ``timeout_s`` without one); clears the flag."""
        # asyncio.timeout rather than wait_for: Python 3.11's wait_for loses a cancellation
        # that arrives as the event is set, and a stopping server then waits forever.
        try:
            async with asyncio.timeout(timeout_s):
                await self._event.wait()
        except TimeoutError:
            return False
        self._event.clear()
        return True


@dataclasses.dataclass(frozen=True)
class StartedRun:
    """A job a trigger started; ``done`` is its outcome when the start waited for it."""

    job_id: UUID
    done: JobDone | None = None
