"""A running job's output: kept in memory as it comes and written to ``job_log`` in batches
(every ``GRISTMILL_LOG_FLUSH_MS``), so that a job printing fast costs a write per batch,
not per line. What is not written yet goes with the job's completion.

Secrets the job read (``job_secret_read``, recorded by the API before it returned the
value) are masked in every chunk before it is stored: each occurrence of a value of at
least :data:`MIN_MASKED_LENGTH` characters becomes :data:`MASK`. Which secrets were read is
looked up at each write, *after* the chunk's output was received: a job can only print a
value it has already read, so the lookup always knows the values its chunk may hold. While
the job runs, the end of the output that could be the start of a secret is held back until
the next write, so that a value split between two writes is still masked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from uuid import UUID

import psycopg
from psycopg_pool import AsyncConnectionPool

from gristmill.db.pool import DatabaseDown
from gristmill.db.queries import Q
from gristmill.errors import Unavailable
from gristmill.queue.rows import append_log
from gristmill.worker.retry import TRANSIENT
from gristmill.workspace.secrets import Secrets

__all__ = [
    "MASK",
    "MIN_MASKED_LENGTH",
    "JobLog",
    "LogChunk",
    "SecretMask",
    "flush_periodically",
]

log = logging.getLogger(__name__)

#: What a secret's value becomes in a job's logs (Windmill's mask).
MASK = "*****"
#: Shorter values are not masked: masking "a" or "10" would garble every log.
MIN_MASKED_LENGTH = 4

#: Stored instead of a chunk that could not be masked (the worker cannot decrypt the secrets
#: the job read): logs are withheld rather than written in clear.
WITHHELD = (
    "\n[gristmill] output withheld: this worker cannot decrypt the secrets the job read, so "
    "it cannot mask them (its GRISTMILL_INSTANCE_KEY differs from the API's)\n"
)


class SecretMask:
    """The values of the secrets one job read, and their replacement in its output."""

    def __init__(self, secrets: Secrets, job_id: UUID, workspace_id: str) -> None:
        self.secrets = secrets
        self.job_id = job_id
        self.workspace_id = workspace_id
        #: Decrypted values by path and ciphertext (a secret changed meanwhile is decrypted
        #: again; the old value stays masked too).
        self._values: dict[tuple[str, str], str] = {}
        self._pattern: re.Pattern[str] | None = None
        self._longest = 0

    async def refresh(self, conn: psycopg.AsyncConnection) -> None:
        """Learn the secrets the job read until now. :class:`Unavailable` when one cannot be
        decrypted here."""
        rows = await (
            await conn.execute(
                Q["job_secrets_read"], {"job_id": self.job_id, "workspace_id": self.workspace_id}
            )
        ).fetchall()
        changed = False
        for path, stored in rows:
            if (path, stored) not in self._values:
                self._values[(path, stored)] = await self.secrets.decrypt(
                    conn, self.workspace_id, stored
                )
                changed = True
        if changed:
            self._compile()

    @property
    def knows_none(self) -> bool:
        """No secret value is known (to this job's knowledge, it has read none)."""
        return not self._values

    def learn(self, values: Iterable[str]) -> None:
        """Mask these values too (secrets known otherwise than by :meth:`refresh`)."""
        for value in values:
            self._values[("", value)] = value
        self._compile()

    def _compile(self) -> None:
        values = sorted(
            {v for v in self._values.values() if len(v) >= MIN_MASKED_LENGTH},
            key=len,
            reverse=True,
        )
        # Longest first: a secret containing another is masked whole.
        self._pattern = re.compile("|".join(map(re.escape, values))) if values else None
        self._longest = len(values[0]) if values else 0

    def mask(self, text: str) -> str:
        return self._pattern.sub(MASK, text) if self._pattern is not None else text

    def split(self, text: str, *, final: bool) -> tuple[str, str]:
        """``(masked text to store now, text to keep for the next write)``. The kept tail is
        what could be the beginning of a secret not printed whole yet."""
        if self._pattern is None or final:
            return self.mask(text), ""
        cut = max(0, len(text) - (self._longest - 1))
        for match in self._pattern.finditer(text):
            if match.start() < cut < match.end():
                cut = match.start()
                break
        return self.mask(text[:cut]), text[cut:]


@dataclass(frozen=True)
class LogChunk:
    """What one write stores: the first ``count`` pending pieces became ``text`` (masked),
    except ``keep``, which goes back to the front of the pending output."""

    count: int
    text: str
    keep: str = ""


@dataclass
class JobLog:
    """A job's output: ``flushed`` characters are in the database, ``pending`` are not yet."""

    flushed: int
    pending: list[str] = field(default_factory=list)
    #: Masks the secrets the job read; ``None``: nothing is masked.
    secret_mask: SecretMask | None = None

    def write(self, text: str) -> None:
        self.pending.append(text)

    async def chunk(self, conn: psycopg.AsyncConnection, *, final: bool) -> LogChunk:
        """The pending output as it is to be stored (secrets masked). ``final``: the job
        ended, nothing is held back."""
        # Counted before the lookup of the secrets read: output arriving during the lookup
        # may hold a secret read after it, and waits for the next write.
        count = len(self.pending)
        raw = "".join(self.pending[:count])
        if self.secret_mask is None or not raw:
            return LogChunk(count, raw)
        try:
            await self.secret_mask.refresh(conn)
        except Unavailable as exc:
            log.error(
                "job %s: output withheld, its secrets cannot be masked: %s",
                self.secret_mask.job_id,
                exc,
            )
            return LogChunk(count, WITHHELD)
        text, keep = self.secret_mask.split(raw, final=final)
        return LogChunk(count, text, keep)

    def final_unmasked(self) -> LogChunk | None:
        """The whole pending output as it is, when masking it is to be left to a check at
        the completion: there is output to mask and no secret the job read is known yet.
        The completion then writes it only if the job read no secret at all (else it masks,
        :meth:`chunk`, and completes again), which saves the look-up for the many jobs that
        read none. ``None`` otherwise: use :meth:`chunk`."""
        if self.secret_mask is None or not self.secret_mask.knows_none or not self.pending:
            return None
        count = len(self.pending)
        return LogChunk(count, "".join(self.pending[:count]))

    def stored(self, chunk: LogChunk) -> None:
        """``chunk`` is in the database: drop it from the pending output."""
        del self.pending[: chunk.count]
        if chunk.keep:
            self.pending.insert(0, chunk.keep)
        self.flushed += len(chunk.text)


async def flush_periodically(
    pool: AsyncConnectionPool,
    job_id: UUID,
    job_log: JobLog,
    interval_s: float,
    stop: asyncio.Event,
) -> None:
    """Write the pending output every ``interval_s`` until ``stop`` is set; a write the
    database refuses for now is tried again at the next turn (nothing is lost or written
    twice).

    Stopped by the event, never cancelled, so that a write is never interrupted between its
    commit and :meth:`JobLog.stored`: interrupted there, the chunk would be in the database
    while still pending, and the job's last write, at the same offset, would be refused as a
    duplicate (losing its tail).
    """
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_s)
        if stop.is_set() or not job_log.pending:
            continue
        try:
            async with pool.connection() as conn:
                chunk = await job_log.chunk(conn, final=False)
                if chunk.text:
                    await append_log(conn, job_id, job_log.flushed, chunk.text)
        except DatabaseDown:
            continue  # the pool logged the outage once; the output waits in memory
        except TRANSIENT as exc:
            log.warning("could not write logs of job %s yet (%s)", job_id, exc)
            continue
        job_log.stored(chunk)
