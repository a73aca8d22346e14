"""Worker processes, as they announce themselves."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel

__all__ = ["WorkerInfo"]


class WorkerInfo(BaseModel):
    worker_instance: str
    worker_group: str
    hostname: str
    pid: int
    num_workers: int
    #: The tags its workers take.
    custom_tags: list[str]
    #: Runtime name -> why its toolchain is missing on that worker.
    unavailable_runtimes: dict[str, str]
    started_at: dt.datetime
    last_ping: dt.datetime
