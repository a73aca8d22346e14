"""Running a job's process from its recipe, streaming its output, enforcing time and cancel.

This is the ``none`` backend: the process runs directly on the worker's machine, in its own
session (process group) so that a timeout or a cancel kills everything it started.

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

from gristmill.runtime import Recipe

__all__ = ["ProcessResult", "run_recipe"]

_READ_SIZE = 65536
_TAIL_CHARS = 4000
_MAX_LINE = 1 << 20


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
    """Reads a pipe from the event loop, decoding UTF-8 as it comes."""

    def __init__(self, fd: int, on_output: Callable[[str], None]) -> None:
        self.fd = fd
        self.on_output = on_output
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
        self.on_output(text)

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
        while True:
            try:
                chunk = os.read(self.fd, _READ_SIZE)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:
                self.finish()
                return
            self.emit(self.decoder.decode(chunk))

    def finish(self) -> None:
        if not self.closed.done():
            self.emit(self.decoder.decode(b"", final=True))
            self.closed.set_result(None)


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


async def run_recipe(
    recipe: Recipe,
    *,
    timeout_s: float,
    on_output: Callable[[str], None],
    cancel: asyncio.Event,
) -> ProcessResult:
    """Run ``recipe`` to its end, its timeout, or ``cancel``; stdout and stderr are merged.

    Output is decoded as UTF-8 (invalid bytes replaced) and passed to ``on_output`` as it
    arrives. When the main process exits, whatever it left running is killed.
    """
    loop = asyncio.get_running_loop()
    # Popen blocks only for the vfork+exec (about 0.3 ms); see the module docstring.
    process = subprocess.Popen(  # noqa: ASYNC220
        list(recipe.argv),
        cwd=recipe.cwd,
        env=dict(recipe.env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    assert process.stdout is not None
    output = _Output(process.stdout.fileno(), on_output)
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
    return ProcessResult(
        returncode=returncode,
        timed_out=timed_out,
        canceled=canceled,
        last_line=output.final_line(),
        output_tail=output.tail,
    )
