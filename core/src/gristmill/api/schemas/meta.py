"""What this server is and which languages it speaks."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ParseRequest", "ParsedSchema", "RuntimeInfo", "SchemaError"]


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


class ParseRequest(BaseModel):
    """A script to read the parameters of, without saving it."""

    language: str = Field(max_length=64)
    content: str


class SchemaError(BaseModel):
    """Why the script cannot be used, and where (1-based, when the parser knows)."""

    message: str
    line: int | None = None
    column: int | None = None


class ParsedSchema(BaseModel):
    """The JSON schema of ``main``'s parameters, or the error that prevents reading it."""

    model_config = ConfigDict(populate_by_name=True)

    language: str
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    error: SchemaError | None = None
