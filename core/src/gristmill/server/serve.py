"""Running a Gristmill process: the database first, then the API and workers, until a signal.

Used by ``gristmill up``, ``gristmill server`` and ``gristmill worker``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Generator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import psycopg
import uvicorn
from starlette.types import ASGIApp

from gristmill.auth.users import cli_token_for_first_admin
from gristmill.config import Settings
from gristmill.db.embedded import EmbeddedPostgres, EmbeddedPostgresError
from gristmill.db.supervisor import PostgresSupervisor, RestartPolicy
from gristmill.errors import GristmillError
from gristmill.runtimes import RuntimeRegistry
from gristmill.server.draining import Draining
from gristmill.server.platform import Platform, prepare_database
from gristmill.server.webui import prepare_webui
from gristmill.tasks import cancel_within

__all__ = ["cli_token_path", "configure_logging", "runtime_report", "serve"]

log = logging.getLogger("gristmill")


def configure_logging(settings: Settings) -> None:
    level = os.environ.get("GRISTMILL_LOG_LEVEL", "INFO").upper()
    handler = logging.StreamHandler(sys.stderr)
    if settings.json_fmt:
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "timestamp": self.formatTime(record),
            "level": record.levelname,
            "target": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def cli_token_path(settings: Settings) -> Path:
    """A token of the first admin kept for the local ``gristmill`` commands (mode 0600)."""
    return settings.data_dir / "cli-token"


def _ensure_cli_token(settings: Settings, conninfo: str) -> None:
    path = cli_token_path(settings)
    current = path.read_text().strip() if path.exists() else None
    with psycopg.connect(conninfo, autocommit=True) as conn:
        token = cli_token_for_first_admin(conn, current)
    if token is None:
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(token)


class _Server(uvicorn.Server):
    """Uvicorn without its own signal handling: the process's handler stops everything."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def serve(settings: Settings, *, announce: bool = True) -> None:
    """Start every part ``settings.mode`` asks for and run until SIGINT or SIGTERM."""
    configure_logging(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    supervisor: PostgresSupervisor | None = None
    conninfo = settings.database_url
    if settings.mode != "worker":
        _check_port_free(settings)
        # Before the database: a UI that cannot be built stops the start with its reason.
        settings = replace(settings, webui_dist=prepare_webui(settings.webui))
    try:
        if not conninfo and settings.mode == "worker":
            conninfo = EmbeddedPostgres(settings.data_dir).attach(
                timeout_s=settings.database_wait_s
            )
        elif not conninfo:
            embedded = EmbeddedPostgres(settings.data_dir)
            conninfo = embedded.start()
            log.info("embedded Postgres ready in %s", embedded.pgdata)
            # Watched from now on: restarted if it dies, or the process stops saying why.
            supervisor = PostgresSupervisor(
                embedded,
                RestartPolicy(
                    max_restarts=settings.pg_max_restarts,
                    window_s=settings.pg_restart_window_s,
                ),
            )
            supervisor.start()
        prepared = prepare_database(conninfo, timeout_s=settings.database_wait_s)
        if prepared.new_admin is not None:
            print(
                "\nFirst start: an admin account was created. Log in with\n"
                f"  email:    {prepared.new_admin.email}\n"
                f"  password: {prepared.new_admin.password}\n"
                "This password is shown only once.\n",
                flush=True,
            )
        if settings.mode != "worker":
            _ensure_cli_token(settings, conninfo)
        platform = Platform(
            settings=settings, conninfo=conninfo, job_token_secret=prepared.job_token_secret
        )
        _run_loop(_serve(platform, announce=announce, supervisor=supervisor))
    finally:
        if supervisor is not None:
            supervisor.stop()
    if supervisor is not None and supervisor.failure is not None:
        raise EmbeddedPostgresError(supervisor.failure)


class PortInUseError(GristmillError, RuntimeError):
    """The API's port is taken."""


def _port_message(settings: Settings, port: int | None = None) -> str:
    if port is not None and port != settings.port:
        return (
            f"port {port} is already in use on {settings.host}; stop what uses it or "
            "choose another port with GRISTMILL_HEALTH_PORT"
        )
    return (
        f"port {settings.port} is already in use on {settings.host}; stop what uses it or "
        "choose another port with PORT (or --port)"
    )


def _check_port_free(settings: Settings) -> None:
    """Fail before starting anything when the API could not listen."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((settings.host, settings.port))
        except OSError:
            raise PortInUseError(_port_message(settings)) from None


#: How long tasks left running after the stop (cancelled, their cleanup perhaps waiting for
#: a database that does not answer) may delay the exit.
_LEFT_BEHIND_S = 0.5


def _run_loop(coro: Coroutine[Any, Any, None]) -> None:
    """Run ``coro`` in a new event loop (uvloop's when installed), as ``asyncio.run`` does
    but for its end: tasks still running then are cancelled and waited for a moment only,
    not for as long as their cleanup takes (psycopg's cancellation of a query on a database
    that does not answer waits 10 s)."""
    try:
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(coro)
    except _Forced as forced:
        # Raised out here, not in the loop: the loop's end still runs, bounded.
        raise SystemExit(forced.code) from None
    finally:
        try:
            left = asyncio.all_tasks(loop)
            if left:
                left = loop.run_until_complete(cancel_within(left, _LEFT_BEHIND_S))
            if left:
                log.warning("exiting with %d tasks still waiting (for the database)", len(left))
                loop.set_exception_handler(_quiet_about(left))
            else:
                loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
            # What remains (the embedded Postgres's stop) ends at the next signal too.
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, _exit_now)


def _exit_now(signum: int, frame: object) -> None:
    print(f"gristmill: {signal.Signals(signum).name}: exiting now", file=sys.stderr, flush=True)
    os._exit(128 + signum)


def _quiet_about(
    left: set[asyncio.Task[Any]],
) -> Callable[[asyncio.AbstractEventLoop, dict[str, Any]], None]:
    """An exception handler that says nothing of ``left``, tasks abandoned on purpose (their
    destruction while pending is reported otherwise)."""

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("task") in left:
            return
        loop.default_exception_handler(context)

    return handle


#: After a second signal, the process ends at most this long after (os._exit if need be).
_FORCE_EXIT_S = 3.0


class _Forced(GristmillError):
    """A second signal: the process exits at once with 128 + the signal (carried out of the
    event loop, see :func:`_run_loop`)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class _Signals:
    """SIGINT and SIGTERM: the first stops the process within the grace; the second forces
    the exit at once."""

    def __init__(self, main: asyncio.Task[None]) -> None:
        self.main = main
        self.stop = asyncio.Event()
        self.forced: int | None = None

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._received, sig)

    def _received(self, sig: signal.Signals) -> None:
        if not self.stop.is_set():
            self.stop.set()
            return
        if self.forced is not None:
            return
        self.forced = sig
        print(
            f"gristmill: second {sig.name}: exiting now without waiting; jobs still running "
            "stay in the queue and are restarted by the zombie monitor",
            file=sys.stderr,
            flush=True,
        )
        # The event loop may be stuck (a blocking call): the process ends anyway. An
        # embedded Postgres then finishes the stop it was asked for, or, not asked yet,
        # stays up, and the next start on this data directory uses it.
        watchdog = threading.Timer(_FORCE_EXIT_S, os._exit, args=(128 + sig,))
        watchdog.daemon = True
        watchdog.start()
        self.main.cancel()


async def _serve(
    platform: Platform, *, announce: bool, supervisor: PostgresSupervisor | None = None
) -> None:
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None
    signals = _Signals(main)
    signals.install(loop)
    if supervisor is not None:
        # The embedded Postgres died once too often: stop as a first signal would (serve()
        # then exits with the supervisor's message).
        supervisor.when_failed(lambda: _call_soon(loop, signals.stop.set))
    try:
        await _serve_until_stopped(platform, signals, announce=announce)
    except asyncio.CancelledError:
        if signals.forced is None:
            raise
        # Whatever still runs (workers, requests) is cancelled now; their jobs stay running
        # in the queue. A cleanup that waits again is cancelled again, for a moment only.
        await cancel_within(asyncio.all_tasks() - {main}, 1.0)
        raise _Forced(128 + signals.forced) from None
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _serve_until_stopped(platform: Platform, signals: _Signals, *, announce: bool) -> None:
    settings = platform.settings
    await platform.start()
    if announce and platform.runs_workers:
        # Once per process that runs workers, before it serves: what its jobs can run, and
        # for each runtime that cannot, what is missing and the command that fixes it.
        print("\n".join(runtime_report(platform.require_registry())), flush=True)
    server: _Server | None = None
    server_task: asyncio.Task[None] | None = None
    draining: Draining | None = None
    try:
        if platform.runs_api:
            from gristmill.api.app import create_app

            draining = Draining(create_app(platform))
            server, server_task = await _start_server(
                settings,
                draining,
                settings.port,
                # A backstop: requests still in flight were answered before (Draining).
                graceful_s=1,
            )
            if announce:
                print(f"Gristmill is ready at {settings.public_url}", flush=True)
                if settings.webui_dist is not None:
                    print(f"  web UI: {settings.public_url}/ (log in there)", flush=True)
                print(f"  API:    {settings.public_url}/api (docs at /api/docs)", flush=True)
        else:
            if settings.health_port is not None:
                server, server_task = await _serve_health(platform)
            if announce:
                print(f"Gristmill worker ready ({settings.num_workers} workers)", flush=True)
        waiters = [asyncio.create_task(signals.stop.wait())]
        if server_task is not None:
            waiters.append(server_task)  # type: ignore[arg-type]
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        waiters[0].cancel()
        log.info("stopping (within %g s; a second signal exits at once)", settings.shutdown_grace_s)
    finally:
        if draining is not None:
            draining.refuse()

        async def close_api() -> None:
            if draining is not None:
                # Callers just released write their answers; what is left is cut.
                await draining.close(timeout_s=0.2)
            if server is not None and server_task is not None:
                server.should_exit = True
                # Its end, whatever it is (a failed start ends it with SystemExit, already
                # reported): asyncio.wait never raises the task's outcome.
                await asyncio.wait({server_task})
                if not server_task.cancelled():
                    server_task.exception()

        await platform.stop(before_closing=close_api)


async def _serve_health(platform: Platform) -> tuple[_Server, asyncio.Task[None]]:
    """A worker process's health probes, alone on ``GRISTMILL_HEALTH_PORT`` (it serves no
    API): what Kubernetes and load balancers check on every other process."""
    from gristmill.api.routes.health import health_app

    settings = platform.settings
    assert settings.health_port is not None
    return await _start_server(
        settings, health_app(platform), settings.health_port, probe_path="/api/health/live"
    )


async def _start_server(
    settings: Settings,
    app: ASGIApp,
    port: int,
    *,
    probe_path: str = "/api/version",
    graceful_s: int | None = None,
) -> tuple[_Server, asyncio.Task[None]]:
    """Serve ``app`` on ``port`` (uvicorn, no access log, no lifespan) and return once
    ``probe_path`` answers there."""
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=port,
        lifespan="off",
        log_config=None,
        access_log=False,
        http="httptools",
        timeout_graceful_shutdown=graceful_s,
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve())
    await _wait_until_answering(settings, task, port=port, path=probe_path)
    return server, task


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[[], object]) -> None:
    """``callback`` on ``loop`` from another thread (nothing once the loop has closed)."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(callback)


def runtime_report(registry: RuntimeRegistry) -> list[str]:
    """One line per runtime: ``ready`` with its toolchain's version, or ``not available``
    with the runtime's own message (what is missing, and how to install it)."""
    lines = []
    for runtime in registry:
        toolchain = runtime.toolchain()  # probed once per process, and already by the workers
        if toolchain.available:
            version = f" ({toolchain.version})" if toolchain.version else ""
            lines.append(f"runtime {runtime.name}: ready{version}")
        else:
            lines.append(f"runtime {runtime.name}: not available: {toolchain.message}")
    return lines


async def _wait_until_answering(
    settings: Settings,
    server_task: asyncio.Task[None],
    *,
    port: int,
    path: str,
) -> None:
    """Return once ``GET {path}`` answers on ``port`` (fail if the server died trying)."""
    url = f"http://127.0.0.1:{port}{path}"
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline:
            if server_task.done():
                # Uvicorn reports a failed start as SystemExit, having logged the reason.
                with contextlib.suppress(SystemExit):
                    server_task.result()
                raise PortInUseError(_port_message(settings, port))
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.05)
    raise SystemExit(f"the API did not answer on {url} within 30 s")
