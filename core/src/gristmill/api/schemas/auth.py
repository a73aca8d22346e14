"""Logging in."""

from __future__ import annotations

from pydantic import BaseModel

__all__ = ["Login"]


class Login(BaseModel):
    email: str
    password: str
