"""ACLs: the owner (and access) an ACL change names."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["AclOwner"]


class AclOwner(BaseModel):
    """``u/<username>`` or ``g/<group>``; ``write`` grants write (default: read only)."""

    model_config = ConfigDict(extra="ignore")

    owner: str
    write: bool = False
