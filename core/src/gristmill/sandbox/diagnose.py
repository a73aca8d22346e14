"""Saying which limit a failed step ran into, when it can be told.

Limits are rlimits (see :mod:`gristmill.sandbox.spec`), and the kernel does not say when one
ended a process: a failed allocation under ``RLIMIT_AS`` is an error the program reports its
own way (Python's MemoryError, Bash's "xmalloc: cannot allocate", Go's "out of memory") or a
crash (SIGSEGV when a stack cannot grow, SIGABRT from an allocator, SIGKILL from the kernel's
OOM killer); a file grown past ``RLIMIT_FSIZE`` ends with SIGXFSZ. So a step that failed that
way while it had such a limit gets a line naming the limit, added to its output (and so to
the error message of runtimes that quote the end of it).
"""

from __future__ import annotations

import re
import signal

from gristmill.sandbox.spec import Limits

__all__ = ["limit_message"]

_OUT_OF_MEMORY = re.compile(
    r"MemoryError|cannot allocate|Cannot allocate memory|out of memory|Out of memory|"
    r"std::bad_alloc|memory allocation .*failed|failed to allocate|allocation failed",
)
_MEMORY_SIGNALS = {signal.SIGKILL, signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS}


def limit_message(
    limits: Limits, returncode: int, output_tail: str, *, sandboxed: bool
) -> str | None:
    """A line naming the limit a step that ended with ``returncode`` probably hit, or
    ``None``. Only sandboxed steps have limits (the ``none`` backend applies none)."""
    if not sandboxed or returncode == 0:
        return None
    if returncode == -signal.SIGXFSZ and limits.file_size_mb is not None:
        return f"killed: a file grew over the file size limit of {limits.file_size_mb} MB (SIGXFSZ)"
    if limits.memory_mb is None:
        return None
    if returncode < 0 and -returncode in _MEMORY_SIGNALS:
        name = signal.Signals(-returncode).name
        return (
            f"killed: over its memory limit of {limits.memory_mb} MB ({name} while the job "
            f"was limited to {limits.memory_mb} MB of address space)"
        )
    if _OUT_OF_MEMORY.search(output_tail):
        return (
            f"out of memory: the job is limited to {limits.memory_mb} MB of memory (address "
            "space) and an allocation failed"
        )
    return None
