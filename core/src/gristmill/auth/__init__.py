"""Who is calling: users, passwords, API tokens and signed job tokens."""

from __future__ import annotations

from gristmill.auth.actor import SUPERADMIN_SECRET_EMAIL, Actor

__all__ = ["SUPERADMIN_SECRET_EMAIL", "Actor"]
