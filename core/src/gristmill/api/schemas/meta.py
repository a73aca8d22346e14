"""What this server is and which languages it speaks."""

from __future__ import annotations

from pydantic import BaseModel

__all__ = ["RuntimeInfo"]


class RuntimeInfo(BaseModel):
    """A language this server can parse, and whether its jobs can run here."""

    name: str
    display_name: str
    aliases: list[str]
    file_extensions: list[str]
    #: The plugin (and distribution) that registered it, e.g. ``gristmill-python 0.1.0``.
    plugin: str
    available: bool
    toolchain_version: str | None
    #: When unavailable: what is missing and how to install it.
    toolchain_message: str
    template: str
