"""The parts one Gristmill process runs, started and stopped together.

``MODE`` picks them: ``standalone`` (API, monitor and workers), ``server`` (API and monitor),
``worker`` (workers). The database must already exist and be migrated
(:func:`prepare_database`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pluggy
import psycopg
from psycopg_pool import AsyncConnectionPool

from gristmill.auth.tokens import TokenResolver, job_token_secret
from gristmill.auth.users import NewAdmin, ensure_first_admin
from gristmill.config import Settings
from gristmill.db import open_pool, wait_for_database
from gristmill.db.migrations import apply_migrations
from gristmill.flows.engine import FlowEngine
from gristmill.plugins import build_plugin_manager, load_runtimes, load_trigger_kinds
from gristmill.queue.notify import Notifier
from gristmill.queue.submit import Submitter
from gristmill.queue.waiting import waiters_of
from gristmill.queue.zombies import run_monitor
from gristmill.runtimes import RuntimeRegistry
from gristmill.sandbox import RunPolicy, select_backend
from gristmill.sync.git import GitSyncer
from gristmill.tasks import cancel_and_wait
from gristmill.triggers.host import TriggerHost, new_server_id
from gristmill.triggers.kinds import TriggerKind, TriggerServices
from gristmill.triggers.ticker import Ticker
from gristmill.validation import InputLimits
from gristmill.warm import WarmPool
from gristmill.worker.capabilities import WorkerCapabilities, worker_tags
from gristmill.worker.pool import WorkerPool
from gristmill.workspace.secrets import Secrets

__all__ = ["Platform", "PreparedDatabase", "closing_time", "prepare_database"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreparedDatabase:
    job_token_secret: bytes
    #: Set only on the start that created the first admin account.
    new_admin: NewAdmin | None


def prepare_database(conninfo: str, *, timeout_s: float = 60.0) -> PreparedDatabase:
    """Wait for the database, migrate it, and make sure an admin and the job key exist."""
    wait_for_database(conninfo, timeout_s=timeout_s)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        apply_migrations(conn)
        secret = job_token_secret(conn)
        admin = ensure_first_admin(conn)
    return PreparedDatabase(secret, admin)


@dataclass
class Platform:
    settings: Settings
    conninfo: str
    job_token_secret: bytes
    plugins: pluggy.PluginManager = field(default_factory=build_plugin_manager)
    registry: RuntimeRegistry | None = None
    pool: AsyncConnectionPool | None = None
    notifier: Notifier | None = None
    workers: WorkerPool | None = None
    capabilities: WorkerCapabilities | None = None
    submitter: Submitter | None = None
    tokens: TokenResolver | None = None
    #: Runs flows: submits them and advances them as their steps complete.
    flow_engine: FlowEngine | None = None
    #: Encrypts and decrypts secrets (the instance key: GRISTMILL_INSTANCE_KEY or
    #: ``<data_dir>/instance.key``); the API and the workers' log masking share it.
    secrets: Secrets | None = None
    #: The trigger kinds of the core and the plugins (read by the API to make their routes).
    trigger_kinds: list[TriggerKind] | None = None
    #: What trigger kinds use in this process (set by :meth:`start`).
    trigger_services: TriggerServices | None = None
    #: The trigger kinds' work in a server process: their ``serve`` tasks and listeners.
    trigger_host: TriggerHost | None = None
    _background: list[asyncio.Task[None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.trigger_kinds is None:
            self.trigger_kinds = load_trigger_kinds(self.plugins)

    @property
    def input_limits(self) -> InputLimits:
        """The size limits on input, from the settings."""
        return InputLimits(
            max_script_bytes=self.settings.max_script_size_kb * 1024,
            max_args_bytes=self.settings.max_args_size_mb * 1024 * 1024,
        )

    @property
    def runs_api(self) -> bool:
        return self.settings.mode in ("standalone", "server")

    @property
    def runs_workers(self) -> bool:
        return self.settings.mode in ("standalone", "worker") and self.settings.num_workers > 0

    async def start(self) -> None:
        if self.registry is None:
            self.registry = load_runtimes(self.plugins)
        # Before anything starts: a worker whose sandbox cannot run refuses to start.
        policy = run_policy(self.settings) if self.runs_workers else None
        if self.secrets is None:
            # Before anything starts too: an unreadable key file stops the process.
            self.secrets = Secrets.from_settings(self.settings)
        self.pool = await open_pool(self.conninfo, max_size=self.settings.database_connections)
        self.notifier = Notifier(self.conninfo)
        await self.notifier.start()
        self.capabilities = WorkerCapabilities(self.pool)
        self.flow_engine = FlowEngine(
            pool=self.pool,
            registry=self.registry,
            limits=self.input_limits,
            secrets=self.secrets,
            superadmin_secret_set=bool(self.settings.superadmin_secret),
        )
        if self.runs_api:
            self._background.append(
                asyncio.create_task(
                    run_monitor(self.pool, self.settings, flows=self.flow_engine), name="monitor"
                )
            )
        if self.runs_workers:
            self.workers = WorkerPool(
                settings=self.settings,
                pool=self.pool,
                notifier=self.notifier,
                registry=self.registry,
                plugins=self.plugins,
                job_token_secret=self.job_token_secret,
                tags=worker_tags(self.settings, self.registry),
                policy=policy,
                secrets=self.secrets,
            )
            self.workers.runner.flows = self.flow_engine
            await self.workers.start()
        self.submitter = Submitter(
            pool=self.pool,
            registry=self.registry,
            notifier=self.notifier,
            capabilities=self.capabilities,
            reserve=self.workers.reserve if self.workers is not None else None,
            limits=self.input_limits,
        )
        if self.runs_api:
            # Schedules fire from every server process (gristmill.triggers.ticker).
            ticker = Ticker(self.pool, self.submitter, self.flow_engine)
            self._background.append(asyncio.create_task(ticker.run(), name="schedules"))
            # Git sync commits deployments from every server process too (one at a time per
            # workspace, under a database lock).
            syncer = GitSyncer(self.pool, self.secrets, self.settings.data_dir / "git-sync")
            self._background.append(asyncio.create_task(syncer.run(), name="git sync"))
        self.tokens = TokenResolver(
            self.pool,
            job_token_secret=self.job_token_secret,
            superadmin_secret=self.settings.superadmin_secret,
        )
        self.trigger_services = TriggerServices(
            pool=self.pool,
            notifier=self.notifier,
            submitter=self.submitter,
            flows=self.flow_engine,
            secrets=self.secrets,
            settings=self.settings,
            server_id=new_server_id(),
        )
        if self.runs_api:
            # Triggers are served by the API processes (as Windmill's servers do): each one
            # serves the routes, and listeners are spread over them by leases.
            self.trigger_host = TriggerHost(self.trigger_kinds or [], self.trigger_services)
            await self.trigger_host.start()

    async def stop(
        self,
        *,
        grace_s: float | None = None,
        before_closing: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Stop within ``grace_s`` (default ``GRISTMILL_SHUTDOWN_GRACE_S``; docs/reliability.md,
        "Stopping").

        At once nothing new starts: triggers, schedules and the monitor stop, workers stop
        claiming. Running jobs and waiting callers then get the grace but its closing part
        (:func:`closing_time`); after it, waiting callers are answered
        (:class:`~gristmill.queue.waiting.ServerStopping`), running jobs stopped and put
        back in the queue, ``before_closing`` runs (the API closes), and the database
        connections close: each bounded, so that an unreachable database costs no more."""
        loop = asyncio.get_running_loop()
        grace = self.settings.shutdown_grace_s if grace_s is None else grace_s
        closing = closing_time(grace)
        hard = loop.time() + grace - closing
        # The last tenth of the closing time is left to whoever stops the database next.
        end = hard + closing * 0.9
        stopping_workers: asyncio.Task[None] | None = None
        if self.workers is not None:
            stopping_workers = asyncio.create_task(
                self.workers.stop(
                    grace_s=max(0.0, hard - loop.time()),
                    # The database connections' closing gets the last quarter.
                    closing_s=closing * 0.65,
                ),
                name="stopping workers",
            )
        # Meanwhile, and bounded by the same time (their last statements may hang).
        quieting = [asyncio.create_task(cancel_and_wait(self._background))]
        if self.trigger_host is not None:
            quieting.append(asyncio.create_task(self.trigger_host.stop()))
            self.trigger_host = None
        self._background = []
        # Until the closing: the jobs running here finish, callers get their results.
        quiet: list[asyncio.Task[None]] = [*quieting]
        waiters = waiters_of(self.notifier) if self.notifier is not None else None
        waiters_idle: asyncio.Task[None] | None = None
        if waiters is not None and len(waiters):
            log.info("waiting up to %.1f s for %d callers", hard - loop.time(), len(waiters))
            waiters_idle = asyncio.create_task(waiters.idle())
            quiet.append(waiters_idle)
        if stopping_workers is not None:
            quiet.append(stopping_workers)
        if quiet:
            await asyncio.wait(quiet, timeout=max(0.0, hard - loop.time()))
        if waiters_idle is not None:
            waiters_idle.cancel()
        if waiters is not None:
            waiters.release()
        for task in quieting:
            await _within(task, 0, "triggers, schedules and the monitor")
        if before_closing is not None:
            await _within(before_closing(), end - loop.time(), "closing the API")
        if stopping_workers is not None:
            await _within(stopping_workers, end - loop.time(), "stopping the workers")
        if self.workers is not None:
            if self.workers.policy.warm is not None:
                self.workers.policy.warm.close()
            self.workers.policy.backend.close()
            self.workers = None
        if self.notifier is not None:
            await _within(self.notifier.stop(), end - loop.time(), "the notification connection")
            self.notifier = None
        if self.pool is not None:
            await _within(
                self.pool.close(timeout=max(0.1, end - loop.time())),
                end - loop.time(),
                "the database connections",
            )
            self.pool = None

    def require_registry(self) -> RuntimeRegistry:
        assert self.registry is not None, "the platform is not started"
        return self.registry

    def require_secrets(self) -> Secrets:
        assert self.secrets is not None, "the platform is not started"
        return self.secrets

    # The parts below exist once :meth:`start` has run; the API is served only after it.

    @property
    def db(self) -> AsyncConnectionPool:
        assert self.pool is not None, "the platform is not started"
        return self.pool

    @property
    def runs(self) -> Submitter:
        assert self.submitter is not None, "the platform is not started"
        return self.submitter

    @property
    def triggers(self) -> TriggerServices:
        assert self.trigger_services is not None, "the platform is not started"
        return self.trigger_services

    @property
    def flows(self) -> FlowEngine:
        assert self.flow_engine is not None, "the platform is not started"
        return self.flow_engine


def closing_time(grace_s: float) -> float:
    """The part of a stop's grace kept for closing: stopping and requeueing jobs still
    running, answering callers still waiting, closing connections (2 s, or half a grace
    shorter than 4 s)."""
    return min(2.0, grace_s / 2)


async def _within(work: Awaitable[object], timeout_s: float, what: str) -> None:
    """Await ``work`` for at most ``timeout_s`` (a moment at least); past it, cancel it and
    go on: a stop does not wait for a database that does not answer."""
    task = work if isinstance(work, asyncio.Task) else asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task}, timeout=max(0.05, timeout_s))
    if not done:
        log.warning("stopping: gave up waiting for %s", what)
        task.cancel()
        # Its cleanup may wait for the database again: a moment, not more.
        await asyncio.wait({task}, timeout=0.1)
    elif not task.cancelled() and task.exception() is not None:
        log.warning("stopping: %s failed: %s", what, task.exception())


def run_policy(settings: Settings) -> RunPolicy:
    """What this process's workers apply to every job step: the sandbox ``GRISTMILL_SANDBOX``
    chooses (checked now: :class:`~gristmill.sandbox.SandboxUnavailable` says what to do
    when it cannot run), the network policy and the caps."""
    mb = 1024 * 1024
    backend = select_backend(settings)
    warm = None
    # nsjail has no way to let a warm parent create its children's namespaces: cold there.
    # KEEP_JOB_DIR asks for each job's files, which a warm run does not write: cold too.
    if settings.warm and not settings.keep_job_dir and backend.name in ("bwrap", "none"):
        warm = WarmPool(
            backend,
            settings.jobs_dir,
            max_processes=settings.warm_max_processes,
            max_memory_mb=settings.warm_max_memory_mb,
        )
    return RunPolicy(
        backend=backend,
        network=settings.job_network,
        max_memory_mb=settings.job_max_memory_mb,
        max_log_bytes=settings.max_log_size_mb * mb,
        max_result_bytes=settings.max_result_size_mb * mb,
        warm=warm,
    )
