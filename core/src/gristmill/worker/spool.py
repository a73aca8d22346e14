"""Results a worker could not record yet, kept on local disk until it can.

A job that ends while the database is unreachable keeps its outcome in memory (its worker
retries) and here, in ``<data_dir>/spool/<job id>.json``, written whole and fsynced before
the worker waits: if the worker process stops or dies before the database returns, the
next worker process started on this data directory records it (before it claims anything).
An entry names the attempt that produced it (worker and start time): the database applies
it only if that attempt still holds the job, so a result is never recorded twice, even if
the job was given to another worker meanwhile.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson

from gristmill.queue.states import JobStatus

__all__ = ["Spool", "SpooledResult"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpooledResult:
    """One job's outcome as its completion records it."""

    job_id: UUID
    workspace_id: str
    #: The attempt: the worker that ran it and when its claim started it.
    worker: str
    started_at: dt.datetime | None
    status: JobStatus
    result_json: str
    #: Where the end of the log goes, and the end itself.
    log_offset: int
    logs: str
    #: ``logs`` may hold secrets the job read (not masked against the database's list of
    #: them): the completion checks, and masks them first when the job read any.
    unmasked: bool
    flow_job_id: UUID | None = None

    def to_json(self) -> bytes:
        data: dict[str, Any] = asdict(self)
        data["status"] = str(self.status)
        return orjson.dumps(data)

    @classmethod
    def from_json(cls, raw: bytes) -> SpooledResult:
        data = orjson.loads(raw)
        return cls(
            job_id=UUID(data["job_id"]),
            workspace_id=data["workspace_id"],
            worker=data["worker"],
            started_at=(
                dt.datetime.fromisoformat(data["started_at"]) if data["started_at"] else None
            ),
            status=JobStatus(data["status"]),
            result_json=data["result_json"],
            log_offset=int(data["log_offset"]),
            logs=data["logs"],
            unmasked=bool(data["unmasked"]),
            flow_job_id=UUID(data["flow_job_id"]) if data["flow_job_id"] else None,
        )


class Spool:
    """The directory of results waiting to be recorded (blocking calls: run them in a
    thread from the event loop)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _file(self, job_id: UUID) -> Path:
        return self.path / f"{job_id}.json"

    def put(self, entry: SpooledResult) -> Path:
        """Write ``entry`` durably: whole or not at all (a temporary file renamed), and
        fsynced with its directory, so that a crash right after keeps it."""
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        final = self._file(entry.job_id)
        scratch = final.with_suffix(f".tmp-{os.getpid()}")
        # Private: the end of a job's log may hold what it printed of its secrets.
        fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, entry.to_json())
            os.fsync(fd)
        finally:
            os.close(fd)
        scratch.rename(final)
        self._sync_dir()
        return final

    def remove(self, job_id: UUID) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._file(job_id).unlink()
            self._sync_dir()

    def entries(self) -> list[SpooledResult]:
        """Every entry, oldest first; an unreadable one is set aside (renamed ``.bad``)
        with a log line rather than blocking the others."""
        if not self.path.is_dir():
            return []
        files = sorted(self.path.glob("*.json"), key=lambda p: p.stat().st_mtime)
        found: list[SpooledResult] = []
        for file in files:
            try:
                found.append(SpooledResult.from_json(file.read_bytes()))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.error("spooled result %s is unreadable (%s); set aside", file, exc)
                with contextlib.suppress(OSError):
                    file.rename(file.with_suffix(".bad"))
        return found

    def _sync_dir(self) -> None:
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
