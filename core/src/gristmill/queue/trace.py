"""Where one job's time goes: an opt-in tracer of the phases of a job's path.

With ``GRISTMILL_TRACE_JOBS=1`` in the environment of a process, each phase of a job (the
request received, its arguments validated, the job inserted, handed to a worker, ...) records
``time.perf_counter_ns()`` under the job's id, in this process's memory. The API server and
the workers of a standalone process (``gristmill up``) share it, so one job's marks come
from both sides; ``benchmarks/breakdown.py`` reads them back through a debug route
(``GET /api/w/{workspace}/jobs/trace``) and prints a table.

Off (the default), a mark costs one attribute test at its call site (``if TRACE.enabled``):
nothing is recorded, nothing allocated. The switch is read once, when this module is
imported: a debug switch of the process, like Python's own ``PYTHON*`` variables, not a
setting of the platform (:mod:`gristmill.config`).

``perf_counter_ns`` is ``CLOCK_MONOTONIC`` on Linux, shared by every process of the machine:
a client on the same machine can put its own send and receive times on the same axis.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict

__all__ = ["PHASES", "TRACE", "Tracer"]

#: The phases, in the order a job of ``run_wait_result`` passes them. Not all are marked for
#: every job (a job claimed from the queue has no hand-over, a job without a runtime prepare
#: step no ``prepare``); the benchmark names the gaps between consecutive marks.
PHASES = (
    "received",  # the route's handler entered (before authentication)
    "validated",  # the script found and the arguments checked against its schema
    "inserted",  # the job's rows written (one statement)
    "handed",  # given to a reserved idle worker in memory (else: notified at commit)
    "claimed",  # a worker starts on it
    "prepared",  # job directory, arguments file, environment, dependency lookup
    "prepare",  # the runtime's recipe built (the process starts right after)
    # The process (or a warm child) started: not marked yet; the place is the sandbox's
    # spawn in gristmill.worker.processes (``TRACE.mark(job_id, "started")``).
    "started",
    "run",  # the job's process ended
    "collected",  # its result read
    "recorded",  # its result and the end of its log written (one statement)
    # The waiter's future resolved: by the worker once its statement returned, or by the
    # database's notification at commit, whichever comes first (then before "recorded").
    "notified",
    "woken",  # the waiting request handler has the result
    "responded",  # the response sent (a background task of the response)
)

#: Jobs kept at most: the oldest go first (the tracer is for a benchmark, not a log).
_MAX_JOBS = 20_000


class Tracer:
    """``perf_counter_ns`` marks per job id and phase."""

    def __init__(self, *, enabled: bool) -> None:
        #: Tested at each call site before :meth:`mark` is called.
        self.enabled = enabled
        self._jobs: OrderedDict[str, list[tuple[str, int]]] = OrderedDict()

    def mark(self, job_id: object, phase: str, at_ns: int | None = None) -> None:
        """Record ``phase`` of ``job_id`` now (or at ``at_ns``)."""
        key = str(job_id)
        marks = self._jobs.get(key)
        if marks is None:
            marks = self._jobs[key] = []
            if len(self._jobs) > _MAX_JOBS:
                self._jobs.popitem(last=False)
        marks.append((phase, time.perf_counter_ns() if at_ns is None else at_ns))

    def take(self) -> dict[str, list[tuple[str, int]]]:
        """Every job's marks so far (in the order they were made); forgets them."""
        jobs = dict(self._jobs)
        self._jobs.clear()
        return jobs


#: The process's tracer.
TRACE = Tracer(enabled=os.environ.get("GRISTMILL_TRACE_JOBS") == "1")
