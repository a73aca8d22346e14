"""Who a request (or a job) acts as."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

__all__ = ["SUPERADMIN_SECRET_EMAIL", "Actor"]

#: The identity of a request authenticated by ``SUPERADMIN_SECRET``.
SUPERADMIN_SECRET_EMAIL = "superadmin_secret@gristmill.local"


@dataclass(frozen=True)
class Actor:
    """The identity a request (or a job) acts as."""

    email: str
    username: str
    super_admin: bool = False
    #: Set when the caller is a job using its ``WM_TOKEN``.
    job_id: UUID | None = None

    @property
    def permissioned_as(self) -> str:
        return f"u/{self.username}"
