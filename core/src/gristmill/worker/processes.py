"""Running a job's process from its recipe, streaming its output, enforcing time and cancel.

The worker's sandbox backend (:mod:`gristmill.sandbox`) turns the recipe into the process to
start; with ``none`` that is the recipe's own command. The process runs in its own session
(process group) so that a timeout or a cancel kills everything it started; in a sandbox,
killing the group kills bwrap, and with it the job's PID namespace and every process in it.

The process is started with :class:`subprocess.Popen` (which uses ``vfork``: about 1 ms from
a large server process, where uvloop's subprocess support forks in about 6 ms) and watched
through the event loop: its output pipe and, on Linux, a pidfd that becomes readable when it
exits.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from gristmill.runtimes import Recipe
from gristmill.sandbox.diagnose import limit_message
from gristmill.sandbox.policy import RunPolicy

__all__ = ["OutputReader", "ProcessResult", "run_recipe"]

_READ_SIZE = 65536
# Reads per wake-up: a job printing as fast as it can must not keep the event loop (and the
# other jobs, heartbeats and API requests of this process) waiting.
_READS_PER_WAKE = 16
_TAIL_CHARS = 4000
_MAX_LINE = 1 << 20
_DEFAULT_POLICY = RunPolicy()


@dataclass(frozen=True)
class ProcessResult:
    returncode: int
    timed_out: bool
    canceled: bool
    last_line: str
    output_tail: str


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


class _Output:
    """Reads a pipe from the event loop, decoding UTF-8 as it comes.

    Past ``max_bytes`` of output the log gets one marker line and nothing more; the pipe is
    still read to its end (the process keeps running, never blocked on a full pipe) and the
    end of the output is still tracked (the last line is a shell job's result, the tail goes
    into error messages), in bounded memory.
    """

    def __init__(
        self, fd: int, on_output: Callable[[str], None], max_bytes: int | None = None
    ) -> None:
        self.fd = fd
        self.on_output = on_output
        self.max_bytes = max_bytes
        self.read_bytes = 0
        self.truncated = False
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.tail = ""
        self.last_line = ""
        self.current = ""
        self.closed = asyncio.get_running_loop().create_future()
        os.set_blocking(fd, False)

    def emit(self, text: str) -> None:
        if not text:
            return
        # NUL cannot be stored in a Postgres text column.
        text = text.replace("\x00", "\ufffd")
        self.tail = (self.tail + text)[-_TAIL_CHARS:]
        self._track_last_line(text)
        if not self.truncated:
            self.on_output(text)

    def note(self, line: str) -> None:
        """A line of Gristmill's own, in the log (even a truncated one) and the tail."""
        text = ("\n" if self.tail and not self.tail.endswith("\n") else "") + line + "\n"
        self.tail = (self.tail + text)[-_TAIL_CHARS:]
        self.on_output(text)

    def _count(self, chunk: bytes) -> bytes:
        """The part of ``chunk`` that still fits in the log (all of it once truncated: the
        caller then drops it)."""
        if self.max_bytes is None or self.truncated:
            self.read_bytes += len(chunk)
            return chunk
        room = self.max_bytes - self.read_bytes
        self.read_bytes += len(chunk)
        if len(chunk) <= room:
            return chunk
        return chunk[:room]

    def _track_last_line(self, text: str) -> None:
        # The last non-empty line is a result for shell-like runtimes: kept whole (up to
        # _MAX_LINE), however long, not cut to the tail.
        *complete, partial = (self.current + text).split("\n")
        for line in reversed(complete):
            if line.strip():
                self.last_line = line[-_MAX_LINE:]
                break
        self.current = partial[-_MAX_LINE:]

    def final_line(self) -> str:
        return self.current if self.current.strip() else self.last_line

    def on_readable(self) -> None:
        for _ in range(_READS_PER_WAKE):
            try:
                chunk = os.read(self.fd, _READ_SIZE)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:
                self.finish()
                return
            if self.truncated:
                self.read_bytes += len(chunk)
                self.emit(self.decoder.decode(chunk))
                continue
            kept = self._count(chunk)
            self.emit(self.decoder.decode(kept))
            if len(kept) < len(chunk):
                assert self.max_bytes is not None
                self.note(
                    f"[gristmill] log truncated: this job printed more than "
                    f"{_size(self.max_bytes)} (GRISTMILL_MAX_LOG_SIZE_MB); the rest of its "
                    "output is not kept"
                )
                self.truncated = True
                self.emit(self.decoder.decode(chunk[len(kept) :]))

    def finish(self) -> None:
        if not self.closed.done():
            self.emit(self.decoder.decode(b"", final=True))
            self.closed.set_result(None)


#: The reader of a job's output, shared with warm runs (:mod:`gristmill.warm.pool`).
OutputReader = _Output


async def _wait_exit(process: subprocess.Popen[bytes]) -> int:
    """The exit code, awaited without a thread where the kernel offers a pidfd."""
    loop = asyncio.get_running_loop()
    try:
        pidfd = os.pidfd_open(process.pid)
    except (AttributeError, OSError):
        return await asyncio.to_thread(process.wait)
    exited = loop.create_future()
    loop.add_reader(pidfd, lambda: exited.done() or exited.set_result(None))
    try:
        await exited
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)
    return process.wait()


def _size(n: int) -> str:
    mb = n / (1024 * 1024)
    return f"{mb:g} MB" if mb >= 1 else f"{n} bytes"


async def run_recipe(
    recipe: Recipe,
    *,
    timeout_s: float,
    on_output: Callable[[str], None],
    cancel: asyncio.Event,
    policy: RunPolicy | None = None,
) -> ProcessResult:
    """Run ``recipe`` to its end, its timeout, or ``cancel``; stdout and stderr are merged.

    Output is decoded as UTF-8 (invalid bytes replaced) and passed to ``on_output`` as it
    arrives, up to the policy's log cap. When the main process exits, whatever it left
    running is killed. Raises :class:`~gristmill.runtimes.RecipeError` for an invalid recipe,
    :class:`~gristmill.sandbox.SandboxError` when the sandbox cannot start it as asked, and
    :class:`OSError` when the program cannot be started at all.
    """
    policy = policy or _DEFAULT_POLICY
    backend = policy.backend
    recipe.validate()
    limits = policy.limits_for(recipe)
    launch = backend.launch(recipe, network=policy.network_for(recipe), limits=limits)
    if launch.handover:
        await asyncio.to_thread(backend.handover, launch.handover)
    loop = asyncio.get_running_loop()
    try:
        # Popen blocks only for the vfork+exec (about 0.3 ms); see the module docstring.
        process = subprocess.Popen(  # noqa: ASYNC220
            launch.argv,
            cwd=launch.cwd,
            env=launch.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            pass_fds=launch.pass_fds,
        )
    finally:
        launch.close()
    assert process.stdout is not None
    output = _Output(process.stdout.fileno(), on_output, policy.max_log_bytes)
    loop.add_reader(output.fd, output.on_readable)
    exit_task = asyncio.ensure_future(_wait_exit(process))
    cancel_task = asyncio.ensure_future(cancel.wait())
    timed_out = canceled = False
    try:
        done, _ = await asyncio.wait(
            {exit_task, cancel_task}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        if exit_task not in done:
            canceled = cancel_task in done
            timed_out = not canceled
        # Kill the whole group: on timeout or cancel, and on a normal exit too, so that
        # nothing the job started in the background outlives it or holds its output open.
        _kill_group(process.pid)
        returncode = await exit_task
        try:
            await asyncio.wait_for(asyncio.shield(output.closed), 5.0)
        except TimeoutError:
            # A process that left the group still holds the pipe; stop reading from it.
            output.finish()
    finally:
        cancel_task.cancel()
        if not exit_task.done():
            _kill_group(process.pid)
            exit_task.cancel()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(5)  # reap it: killed, it ends at once
        loop.remove_reader(output.fd)
        process.stdout.close()
    returncode = backend.exit_status(returncode)
    if returncode != 0 and not (timed_out or canceled):
        why = backend.explain(recipe, returncode, output.tail) or limit_message(
            limits, returncode, output.tail, sandboxed=backend.isolates
        )
        if why:
            output.note(f"[gristmill] {why}")
    return ProcessResult(
        returncode=returncode,
        timed_out=timed_out,
        canceled=canceled,
        last_line=output.final_line(),
        output_tail=output.tail,
    )
