"""Variables: new, edit, the listed shape, contextual variables (Windmill's field names)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ContextualVariable", "CreateVariable", "EditVariable", "ListableVariable"]


class CreateVariable(BaseModel):
    """A new variable (Windmill's CreateVariable)."""

    model_config = ConfigDict(extra="ignore")

    path: str
    value: str
    is_secret: bool = False
    description: str = ""
    account: int | None = Field(default=None, ge=-(2**31), le=2**31 - 1)
    is_oauth: bool = False


class EditVariable(BaseModel):
    """What an update changes (Windmill's EditVariable); absent fields stay as they are,
    a new ``path`` renames."""

    model_config = ConfigDict(extra="ignore")

    path: str | None = None
    value: str | None = None
    is_secret: bool | None = None
    description: str | None = None


class ListableVariable(BaseModel):
    """A variable as listed and read; ``value`` is ``null`` for a secret unless decrypted."""

    workspace_id: str
    path: str
    value: str | None
    is_secret: bool
    description: str
    extra_perms: dict[str, bool]
    account: int | None = None
    is_oauth: bool = False
    is_expired: bool | None = None
    is_linked: bool = False
    is_refreshed: bool = False


class ContextualVariable(BaseModel):
    """A ``WM_*`` variable of every job's environment."""

    name: str
    value: str
    description: str
    is_custom: bool = False
