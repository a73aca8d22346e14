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
    #: What the token allows (``{domain}:{action}[:{path}]``); ``None``: all the user may do.
    scopes: tuple[str, ...] | None = None
    #: The only workspace the token may be used in, when it is limited to one.
    token_workspace: str | None = None
    #: A job token's state path (``WM_STATE_PATH``): the one item an operator's job writes.
    state_path: str | None = None

    @property
    def permissioned_as(self) -> str:
        return f"u/{self.username}"
