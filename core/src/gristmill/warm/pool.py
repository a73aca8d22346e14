"""Warm processes of one worker: a parent per environment, kept in a bounded LRU pool, and
the run of one job in a child the parent prepared ahead of it.

A parent is the core's fork server (:mod:`gristmill.warm.forkserver`) started by the
worker's sandbox backend like any step, as the sandbox's unprivileged user, with the
environment's interpreter, dependencies and the runtime's entry module. It prepares
children before their jobs come; :meth:`WarmPool.run` takes one, sends it the job, streams
its output, reads its result from a socket (no file round trip), and kills it through a
pidfd on timeout or cancel. See docs/architecture.md ("Warm runners") for the isolation
argument.

The pool is bounded per worker (``GRISTMILL_WARM_MAX_PROCESSES`` parents and
``GRISTMILL_WARM_MAX_MEMORY_MB`` of their resident memory): a new environment evicts the
least recently used idle parent. An environment is keyed by everything its parent was
started with (interpreter, entry, dependencies directory, mounts, limits, network): a new
lock, a reinstalled runtime or a changed setting starts a new parent and the old one ages
out. A parent that dies is dropped (the next job starts a new one); the job that was
running in one of its children is reported as ``crashed`` for the caller to run again once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gristmill.errors import GristmillError
from gristmill.runtimes import Recipe
from gristmill.runtimes.contract import WarmSpec
from gristmill.sandbox.base import Backend, SandboxError
from gristmill.sandbox.spec import Limits, Mount
from gristmill.sandbox.toolchain import toolchain_mounts
from gristmill.worker.processes import OutputReader

__all__ = ["FORKSERVER", "WarmPool", "WarmRun", "WarmUnavailable"]

log = logging.getLogger(__name__)

#: The fork server each parent runs, with the environment's own interpreter.
FORKSERVER = str(Path(__file__).with_name("forkserver.py"))

#: How long a parent may take to start and preload (an environment with heavy packages).
START_TIMEOUT_S = 60.0
#: An environment whose parent could not start runs cold for this long before a new try.
RETRY_AFTER_S = 60.0
_KILL_WAIT_S = 5.0


class WarmUnavailable(GristmillError):
    """This environment cannot be kept warm now (its parent failed to start or died before
    the job began): the caller runs the job cold. The message says why."""


@dataclass(frozen=True)
class WarmRun:
    """How a job run in a warm child ended. ``crashed``: its parent (and so the child) died
    under it, and no status came back; the caller may run the job again once."""

    returncode: int
    timed_out: bool
    canceled: bool
    crashed: bool
    last_line: str
    output_tail: str
    #: The result's bytes (what a cold run writes to ``result.json``); ``None`` if none came.
    result: bytes | None
    #: The result went past the cap: ``result`` holds only its first bytes.
    result_too_big: bool = False
    result_size: int = 0


@dataclass
class _Child:
    job: socket.socket
    status: socket.socket
    output: int

    def close(self) -> None:
        self.job.close()
        self.status.close()
        with contextlib.suppress(OSError):
            os.close(self.output)


@dataclass(eq=False)
class _Parent:
    key: str
    directory: Path
    process: subprocess.Popen[bytes]
    control: socket.socket
    ready: asyncio.Future[dict[str, Any]]
    spares: asyncio.Queue[_Child] = field(default_factory=asyncio.Queue)
    in_use: int = 0
    #: Children asked for and not yet received; jobs waiting for one.
    requested: int = 0
    waiting: int = 0
    rss_kb: int = 0
    dead: bool = False
    log_tail: str = ""
    #: The event loop that watches it (a stop may come from outside it).
    loop: asyncio.AbstractEventLoop | None = None


def _reader_future(fd: int) -> asyncio.Future[None]:
    """A future set when ``fd`` is readable (once)."""
    loop = asyncio.get_running_loop()
    readable: asyncio.Future[None] = loop.create_future()

    def on_readable() -> None:
        loop.remove_reader(fd)
        if not readable.done():
            readable.set_result(None)

    loop.add_reader(fd, on_readable)
    readable.add_done_callback(lambda _f: loop.remove_reader(fd))
    return readable


async def _recv_message(sock: socket.socket, maxfds: int = 1) -> tuple[bytes, list[int]]:
    """One datagram (and the descriptors it carries) from a non-blocking socket."""
    while True:
        try:
            data, fds, _flags, _addr = socket.recv_fds(sock, 65536, maxfds)
            return data, fds
        except BlockingIOError:
            await _reader_future(sock.fileno())


class WarmPool:
    """The warm parents of one worker process. Used from its event loop only."""

    def __init__(
        self,
        backend: Backend,
        directory: Path,
        *,
        max_processes: int = 8,
        max_memory_mb: int = 2048,
        spares: int = 2,
    ) -> None:
        self.backend = backend
        self.directory = directory
        self.max_processes = max_processes
        self.max_memory_mb = max_memory_mb
        self.spares = spares
        self._parents: OrderedDict[str, _Parent] = OrderedDict()
        self._starting: dict[str, asyncio.Task[_Parent]] = {}
        self._failed: dict[str, tuple[float, str]] = {}
        # A new fork server (an upgrade of Gristmill) starts new parents; read once, not for
        # every job's key.
        self._forkserver_version = os.stat(FORKSERVER).st_mtime_ns

    @property
    def isolates(self) -> bool:
        return self.backend.isolates

    # -- parents -------------------------------------------------------------------------------

    def key(self, spec: WarmSpec, limits: Limits, network: bool) -> str:
        described = {
            "spec": asdict(spec),
            "limits": asdict(limits),
            "network": network,
            "backend": self.backend.name,
            "forkserver": self._forkserver_version,
        }
        text = json.dumps(described, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    async def _parent(self, spec: WarmSpec, limits: Limits, network: bool) -> _Parent:
        key = self.key(spec, limits, network)
        parent = self._parents.get(key)
        if parent is not None and not parent.dead:
            self._parents.move_to_end(key)
            return parent
        failed = self._failed.get(key)
        if failed is not None and time.monotonic() - failed[0] < RETRY_AFTER_S:
            raise WarmUnavailable(failed[1])
        starting = self._starting.get(key)
        if starting is None:
            starting = asyncio.ensure_future(self._start(key, spec, limits, network))
            self._starting[key] = starting
            starting.add_done_callback(lambda _t: self._starting.pop(key, None))
        try:
            return await asyncio.shield(starting)
        except WarmUnavailable as exc:
            self._failed[key] = (time.monotonic(), str(exc))
            raise

    async def _start(self, key: str, spec: WarmSpec, limits: Limits, network: bool) -> _Parent:
        self._make_room()
        directory = self.directory / f"warm-{key[:12]}-{uuid.uuid4().hex[:6]}"
        directory.mkdir(parents=True, mode=0o755)
        config = {
            "cwd": str(directory),
            "isolate": self.backend.isolates,
            "network": network,
            "limits": asdict(limits) if self.backend.isolates else {},
            "entry": spec.entry,
            "function": spec.function,
            "preload": list(spec.preload),
            "deps": spec.deps_dir,
            "exec": list(spec.exec_argv) if spec.exec_argv else None,
            "env": dict(spec.env),
        }
        interpreter, interpreter_mounts = (list(spec.argv), []) if spec.argv else _own_interpreter()
        recipe = Recipe(
            argv=[*interpreter, FORKSERVER, json.dumps(config, separators=(",", ":"))],
            env=dict(spec.env),
            cwd=directory,
            phase="warm",
            mounts=[*spec.mounts, *interpreter_mounts, Mount(str(Path(FORKSERVER).parent))],
            # The parent itself has no job limits: each child applies them to itself (a
            # process limit on the parent would count every child's processes too).
            limits=Limits(processes=None, open_files=None, file_size_mb=None, tmp_mb=limits.tmp_mb),
            network=network,
        )
        recipe.validate()
        try:
            launch = self.backend.launch(
                recipe, network=network, limits=recipe.limits, nested_namespaces=True
            )
        except SandboxError as exc:
            raise WarmUnavailable(f"the sandbox cannot start the warm parent: {exc}") from None
        if launch.handover:
            await asyncio.to_thread(self.backend.handover, launch.handover)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            process = subprocess.Popen(  # noqa: ASYNC220 - vfork+exec, ~1 ms
                launch.argv,
                cwd=launch.cwd,
                env=launch.env,
                stdin=theirs.fileno(),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                pass_fds=launch.pass_fds,
            )
        except OSError as exc:
            ours.close()
            raise WarmUnavailable(f"could not start the warm parent: {exc}") from None
        finally:
            theirs.close()
            launch.close()
        ours.setblocking(False)
        loop = asyncio.get_running_loop()
        parent = _Parent(key, directory, process, ours, loop.create_future())
        self._watch(parent)
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                ready = await asyncio.shield(parent.ready)
        except (TimeoutError, WarmUnavailable) as exc:
            self._kill(parent)
            if isinstance(exc, TimeoutError):
                raise WarmUnavailable(
                    f"the warm parent did not start within {START_TIMEOUT_S:g} s"
                ) from None
            raise
        except BaseException:
            self._kill(parent)
            raise
        parent.rss_kb = int(ready.get("rss_kb") or 0)
        if ready.get("failed"):
            log.info("warm parent %s could not preload %s", key, ready["failed"])
        self._parents[key] = parent
        await self._ask(parent, self.spares)
        return parent

    def _watch(self, parent: _Parent) -> None:
        """Read the parent's control socket and its log, for as long as it lives."""
        loop = asyncio.get_running_loop()
        parent.loop = loop
        assert parent.process.stdout is not None
        log_fd = parent.process.stdout.fileno()
        os.set_blocking(log_fd, False)

        def on_log() -> None:
            try:
                chunk = os.read(log_fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:
                loop.remove_reader(log_fd)
                return
            text = chunk.decode(errors="replace")
            parent.log_tail = (parent.log_tail + text)[-4000:]
            log.debug("warm parent %s: %s", parent.key, text.rstrip())

        def on_control() -> None:
            try:
                data, fds, _flags, _addr = socket.recv_fds(parent.control, 65536, 3)
            except BlockingIOError:
                return
            except OSError:
                data, fds = b"", []
            if not data:
                self._died(parent, "its warm parent exited")
                return
            message = json.loads(data)
            if "child" in message and len(fds) == 3:
                job, status = socket.socket(fileno=fds[0]), socket.socket(fileno=fds[1])
                job.setblocking(False)
                status.setblocking(False)
                parent.rss_kb = int(message.get("rss_kb") or parent.rss_kb)
                parent.requested = max(0, parent.requested - 1)
                parent.spares.put_nowait(_Child(job, status, fds[2]))
                return
            for fd in fds:
                os.close(fd)
            if message.get("ready"):
                if not parent.ready.done():
                    parent.ready.set_result(message)
            elif "fatal" in message:
                self._died(parent, f"the warm parent could not start: {message['fatal']}")

        loop.add_reader(log_fd, on_log)
        loop.add_reader(parent.control.fileno(), on_control)

    def _died(self, parent: _Parent, why: str) -> None:
        if parent.dead:
            return
        tail = parent.log_tail.strip()
        if tail:
            why += f" ({tail[-500:]})"
        if not parent.ready.done():
            parent.ready.set_exception(WarmUnavailable(why))
        else:
            log.warning("warm parent %s died: %s", parent.key, why)
        self._kill(parent)

    async def _ask(self, parent: _Parent, n: int) -> None:
        if n <= 0 or parent.dead:
            return
        data = json.dumps({"op": "prepare", "n": n}).encode()
        parent.requested += n
        loop = asyncio.get_running_loop()
        try:
            await loop.sock_sendall(parent.control, data)
        except OSError as exc:
            self._died(parent, f"its control socket failed: {exc}")

    def _make_room(self) -> None:
        """Evict least recently used idle parents while the pool is at a bound."""
        while self._parents:
            if len(self._parents) < self.max_processes and self._rss_mb() < self.max_memory_mb:
                return
            idle = [p for p in self._parents.values() if p.in_use == 0]
            if not idle:
                return  # every parent runs a job: over the bound until one is idle
            self._kill(idle[0])  # OrderedDict order: least recently used first

    def _rss_mb(self) -> int:
        return sum(p.rss_kb for p in self._parents.values()) // 1024

    def _kill(self, parent: _Parent) -> None:
        """Stop ``parent`` (and so every child it has) and forget it."""
        parent.dead = True
        if self._parents.get(parent.key) is parent:
            del self._parents[parent.key]
        loop = parent.loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(Exception):
                loop.remove_reader(parent.control.fileno())
            if parent.process.stdout is not None:
                with contextlib.suppress(Exception):
                    loop.remove_reader(parent.process.stdout.fileno())
        with contextlib.suppress(OSError):
            parent.control.close()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(parent.process.pid, signal.SIGKILL)
        while not parent.spares.empty():
            parent.spares.get_nowait().close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            parent.process.wait(2)
        if parent.process.stdout is not None:
            parent.process.stdout.close()
        _remove_tree(parent.directory)

    def close(self) -> None:
        """Stop every parent (the worker's stop): their running children die with them."""
        for parent in list(self._parents.values()):
            self._kill(parent)
        for task in self._starting.values():
            task.cancel()

    def stats(self) -> dict[str, int]:
        return {
            "parents": len(self._parents),
            "rss_mb": self._rss_mb(),
        }

    # -- one job -------------------------------------------------------------------------------

    async def run(
        self,
        spec: WarmSpec,
        *,
        limits: Limits,
        network: bool,
        env: Mapping[str, str],
        payload: Mapping[str, Any],
        timeout_s: float,
        on_output: Callable[[str], None],
        cancel: asyncio.Event,
        max_log_bytes: int | None,
        max_result_bytes: int | None,
    ) -> WarmRun:
        """Run one job in a child of the environment's parent (started now if needed).
        Raises :class:`WarmUnavailable` when no child could be had (the job has not begun)."""
        parent = await self._parent(spec, limits, network)
        parent.in_use += 1
        try:
            child, pidfd, pid = await self._take(parent)
            try:
                return await self._run_child(
                    parent,
                    child,
                    pidfd,
                    pid,
                    json.dumps({"env": dict(env), "payload": dict(payload)}).encode(),
                    timeout_s=timeout_s,
                    on_output=on_output,
                    cancel=cancel,
                    max_log_bytes=max_log_bytes,
                    max_result_bytes=max_result_bytes,
                )
            finally:
                # Whatever ended this run (even this task's cancellation), nothing of the
                # job outlives it: a no-op when it has ended already.
                self._kill_job(pidfd, pid)
                os.close(pidfd)
                child.close()
        finally:
            parent.in_use -= 1
            # The replacement is prepared now, after the job, not while it runs: a fork of
            # the parent competes for the CPU with the job (two cores here). With two spares
            # a job that follows at once still finds one ready.
            if parent.spares.qsize() + parent.requested < self.spares:
                await self._ask(parent, 1)

    async def _take(self, parent: _Parent) -> tuple[_Child, int, int]:
        """A prepared child, its init's pidfd and pid (as the parent sees it)."""
        for _attempt in range(3):
            if parent.dead:
                raise WarmUnavailable("the environment's warm parent died")
            parent.waiting += 1
            short = parent.waiting - parent.spares.qsize() - parent.requested
            if short > 0:
                # More jobs of this environment at once than spares: more, now.
                await self._ask(parent, short)
            get = asyncio.ensure_future(parent.spares.get())
            try:
                async with asyncio.timeout(START_TIMEOUT_S):
                    while not get.done():
                        await asyncio.wait({get}, timeout=0.5)
                        if parent.dead and not get.done():
                            raise WarmUnavailable("the environment's warm parent died")
            finally:
                parent.waiting -= 1
                if not get.done():
                    get.cancel()
            child = get.result()
            data, fds = await _recv_message(child.status)
            message = json.loads(data) if data else {}
            if "pid" in message and fds:
                return child, fds[0], int(message["pid"])
            for fd in fds:
                os.close(fd)
            child.close()
            why = message.get("error") or "the child ended before it was ready"
            if "error" in message:
                # The same cause will fail every child: this environment runs cold.
                raise WarmUnavailable(f"a warm child could not be prepared: {why}")
        raise WarmUnavailable("no warm child could be prepared")

    async def _run_child(
        self,
        parent: _Parent,
        child: _Child,
        pidfd: int,
        pid: int,
        job: bytes,
        *,
        timeout_s: float,
        on_output: Callable[[str], None],
        cancel: asyncio.Event,
        max_log_bytes: int | None,
        max_result_bytes: int | None,
    ) -> WarmRun:
        loop = asyncio.get_running_loop()
        output = OutputReader(child.output, on_output, max_log_bytes)
        loop.add_reader(output.fd, output.on_readable)
        result = _ResultReader(child.job, max_result_bytes)
        try:
            await loop.sock_sendall(child.job, struct.pack(">I", len(job)) + job)
            result_task = asyncio.ensure_future(result.read())
            status_task = asyncio.ensure_future(_recv_message(child.status))
            cancel_task = asyncio.ensure_future(cancel.wait())
            timed_out = canceled = False
            try:
                # The end: the job's own status after its result (no wait for its exit),
                # or the init's report (a job that died, or a runtime that sends none).
                ended = {result_task, status_task}
                deadline = loop.time() + timeout_s
                while True:
                    done, _ = await asyncio.wait(
                        {*ended, cancel_task},
                        timeout=max(0.0, deadline - loop.time()),
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                    if status_task in done or (result_task in done and result.status is not None):
                        break
                    if not done:
                        timed_out = True
                        break
                    if cancel_task in done:
                        canceled = True
                        break
                    ended.discard(result_task)  # a result without a status: wait for the init
                # Everything the job left running ends now, as when a cold job's main
                # process exits; the init's own exit and the teardown happen off the path.
                self._kill_job(pidfd, pid)
                if timed_out or canceled:
                    await asyncio.wait({status_task}, timeout=_KILL_WAIT_S)
            finally:
                cancel_task.cancel()
            returncode: int | None = result.status
            if returncode is None and status_task.done() and not status_task.cancelled():
                data, _fds = status_task.result()
                if data:
                    returncode = int(json.loads(data).get("status", 1))
            if not status_task.done():
                status_task.cancel()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(output.closed), _KILL_WAIT_S)
            if not output.closed.done():
                output.finish()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(result_task), _KILL_WAIT_S)
            if not result_task.done():
                result_task.cancel()
        finally:
            loop.remove_reader(output.fd)
        crashed = returncode is None and not (timed_out or canceled)
        return WarmRun(
            returncode=returncode if returncode is not None else -int(signal.SIGKILL),
            timed_out=timed_out,
            canceled=canceled,
            crashed=crashed,
            last_line=output.final_line(),
            output_tail=output.tail,
            result=result.data() if result.complete else None,
            result_too_big=result.too_big,
            result_size=result.size,
        )

    def _kill_job(self, pidfd: int, pid: int) -> None:
        """Kill the job's init: with it its namespace and every process of the job. Without
        a sandbox no namespace dies with the init: its process group does (the parent runs
        unsandboxed, so its PIDs are this machine's)."""
        if not self.backend.isolates:
            try:
                # The init not yet reaped (alive or not): the group's id is still its own.
                signal.pidfd_send_signal(pidfd, 0)
            except OSError:
                pass  # it ended and killed its group itself
            else:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, OSError):
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)


class _ResultReader:
    """Reads a child's result to its end, keeping at most the cap (and draining the rest, so
    the child never blocks on a full socket); splits off the exit status that may follow a
    NUL (see :mod:`gristmill.warm.forkserver`)."""

    def __init__(self, sock: socket.socket, cap: int | None) -> None:
        self.sock = sock
        self.cap = cap
        self.chunks: list[bytes] = []
        self.size = 0
        self.too_big = False
        self.complete = False
        self.status: int | None = None
        self._tail = b""

    async def read(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                chunk = await loop.sock_recv(self.sock, 1 << 20)
            except OSError:
                return
            if not chunk:
                self._split_status()
                self.complete = True
                return
            # The status is at most a few bytes after the last NUL: keep the last bytes
            # apart from the cap's count.
            self._tail += chunk
            keep, self._tail = self._tail[:-16], self._tail[-16:]
            self._count(keep)

    def _count(self, data: bytes) -> None:
        if not data:
            return
        self.size += len(data)
        if self.cap is not None and self.size > self.cap:
            self.too_big = True
            return
        self.chunks.append(data)

    def _split_status(self) -> None:
        head, nul, status = self._tail.rpartition(b"\0")
        if nul and status.isdigit():
            self.status = int(status)
            self._count(head)
        else:
            self._count(self._tail)
        self._tail = b""

    def data(self) -> bytes:
        return b"".join(self.chunks)


def _own_interpreter() -> tuple[list[str], list[Mount]]:
    """The worker's own Python, for a parent that only launches a runtime's program
    (``WarmSpec.exec_argv``): resolved (never a launcher shim), isolated flags, and mounts
    for its binary and standard library."""
    executable = os.path.realpath(sys.executable)
    return (
        [executable, "-I", "-S", "-B", "-u", "-X", "utf8"],
        toolchain_mounts(executable, prefixes=[sys.base_prefix]),
    )


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
