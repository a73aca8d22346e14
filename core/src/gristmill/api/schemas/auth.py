"""Logging in, and who the caller is."""

from __future__ import annotations

from pydantic import BaseModel

__all__ = ["Login", "WhoAmI"]


class Login(BaseModel):
    email: str
    password: str


class WhoAmI(BaseModel):
    email: str
    username: str
    super_admin: bool
    is_admin: bool
    #: Set when the caller is a job using its ``WM_TOKEN``.
    job_id: str | None
