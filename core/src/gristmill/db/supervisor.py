"""Watching the embedded Postgres: a postmaster that dies is reaped at once, logged, and
started again on the same data directory, within a budget of restarts.

A thread blocks in ``waitpid`` on the postmaster the process owns, so its death is seen (and
the process reaped: no zombie holds its pid) the moment it happens, whatever the event loop
is doing. When the budget (``GRISTMILL_PG_MAX_RESTARTS`` within
``GRISTMILL_PG_RESTART_WINDOW_S``) is spent, the supervisor gives up and says so: the caller
stops the process with :attr:`PostgresSupervisor.failure`, one line naming what died, how
often, where its log is and what to check.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from gristmill.db.embedded import EmbeddedPostgres, EmbeddedPostgresError

__all__ = ["PostgresSupervisor", "RestartPolicy", "describe_exit"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RestartPolicy:
    #: Restarts allowed within :attr:`window_s`; one more death and the process exits.
    max_restarts: int = 5
    window_s: float = 300.0
    #: The wait before the first restart of a window, doubled for each further one: a
    #: server that dies at once again is not restarted in a tight loop.
    first_delay_s: float = 0.5
    max_delay_s: float = 8.0
    #: How long a restarted server may take to accept connections (crash recovery
    #: replays the WAL written since the last checkpoint).
    ready_timeout_s: float = 120.0


def describe_exit(returncode: int) -> str:
    """``exit code 1`` or ``killed by signal 9 (SIGKILL)``, from a Popen return code."""
    if returncode >= 0:
        return f"exit code {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        return f"killed by signal {-returncode}"
    return f"killed by signal {-returncode} ({name})"


class PostgresSupervisor:
    """Restarts ``server`` (started by this process) whenever its postmaster dies."""

    def __init__(self, server: EmbeddedPostgres, policy: RestartPolicy | None = None) -> None:
        self.server = server
        self.policy = policy or RestartPolicy()
        #: Set when the supervisor gave up: the one line to exit with.
        self.failure: str | None = None
        #: Restarts done so far (over the process's life).
        self.restarts = 0
        self._stopping = threading.Event()
        # Held while a postmaster is spawned and while :meth:`stop` stops it, so a stop
        # never misses a server started at that moment.
        self._lock = threading.Lock()
        self._on_failure: Callable[[], None] | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Watch the server (already started) from now on."""
        self._thread = threading.Thread(
            target=self._watch, name="gristmill-pg-supervisor", daemon=True
        )
        self._thread.start()

    def when_failed(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` (from the supervisor's thread, or now if it already gave up)
        when the supervisor gives up."""
        with self._lock:
            self._on_failure = callback
            failed = self.failure is not None
        if failed:
            callback()

    def stop(self) -> None:
        """Stop watching, then stop the server."""
        with self._lock:
            self._stopping.set()
            self.server.stop()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def _watch(self) -> None:
        attempts: list[float] = []
        while not self._stopping.is_set():
            process = self.server.process
            if process is None:
                return
            # Blocks until the postmaster ends, and reaps it.
            returncode = process.wait()
            if self._stopping.is_set():
                return
            how = describe_exit(returncode)
            log.warning(
                "the embedded Postgres (pid %d) died (%s); its log %s ends with:\n%s",
                process.pid,
                how,
                self.server.log_file,
                self.server.log_tail(),
            )
            if not self._restart(process.pid, how, attempts):
                return

    def _restart(self, dead_pid: int, how: str, attempts: list[float]) -> bool:
        """Start the server again (retrying within the budget); ``False`` when it gave up
        or the process is stopping."""
        policy = self.policy
        while True:
            now = time.monotonic()
            attempts[:] = [t for t in attempts if now - t < policy.window_s]
            if len(attempts) >= policy.max_restarts:
                self._give_up(how, len(attempts))
                return False
            delay = min(policy.first_delay_s * 2 ** len(attempts), policy.max_delay_s)
            attempts.append(now)
            if self._stopping.wait(delay):
                return False
            try:
                with self._lock:
                    if self._stopping.is_set():
                        return False
                    self.server.respawn(dead_pid)
                    assert self.server.process is not None
                    new_pid = self.server.process.pid
                self.server.wait_ready(policy.ready_timeout_s)
            except (EmbeddedPostgresError, OSError) as exc:
                if self._stopping.is_set():
                    return False
                log.warning("restarting the embedded Postgres failed: %s", exc)
                process = self.server.process
                if process is not None:
                    # Reaped here; its pid names the lock files the next attempt clears.
                    process.wait()
                    dead_pid = process.pid
                    how = describe_exit(process.returncode)
                continue
            self.restarts += 1
            log.warning(
                "the embedded Postgres is running again (pid %d; restart %d of at most %d "
                "within %.0f s)",
                new_pid,
                len(attempts),
                policy.max_restarts,
                policy.window_s,
            )
            return True

    def _give_up(self, how: str, restarts: int) -> None:
        policy = self.policy
        if policy.max_restarts == 0:
            budget = "restarts are off (GRISTMILL_PG_MAX_RESTARTS=0)"
        else:
            budget = (
                f"after {restarts} restart(s) within {policy.window_s:.0f} s "
                f"(GRISTMILL_PG_MAX_RESTARTS={policy.max_restarts}, "
                f"GRISTMILL_PG_RESTART_WINDOW_S={policy.window_s:g})"
            )
        message = (
            f"the embedded Postgres in {self.server.pgdata} died ({how}) and is not restarted "
            f"again: {budget}. Its log is {self.server.log_file}; check it, the free disk "
            "space and memory (the kernel's OOM killer: `dmesg`), and what else may signal it."
        )
        log.error("%s", message)
        with self._lock:
            self.failure = message
            callback = self._on_failure
        if callback is not None:
            callback()
