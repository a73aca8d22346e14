"""Checks of input that every entry point shares (the API today; triggers and flows later).

What Postgres cannot store must be refused before anything is written, with a message that
names the field and says how to fix it: a NUL character in text (``text`` and ``jsonb``
cannot hold one), an integer beyond its column, JSON nested deeper than the serializers
and the argument checks recurse, or a value larger than the instance allows. Each check
raises :class:`~gristmill.errors.BadInput` (400) or :class:`TooLarge` (413).

This module imports nothing of Gristmill but :mod:`gristmill.errors`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gristmill.errors import BadInput

__all__ = [
    "INT2_MAX",
    "INT2_MIN",
    "INT4_MAX",
    "MAX_ARGS_DEPTH",
    "MAX_PER_PAGE",
    "InputLimits",
    "TooLarge",
    "check_int",
    "check_json",
    "check_no_nul",
    "check_page",
    "check_script_size",
    "check_text_fields",
    "short",
]

INT2_MIN = -(2**15)
INT2_MAX = 2**15 - 1
INT4_MAX = 2**31 - 1

#: How deeply a job's arguments may nest. orjson refuses to serialize beyond 254 levels and
#: the argument checks recurse; 64 levels is far beyond any form or API payload.
MAX_ARGS_DEPTH = 64

#: The largest page of a list.
MAX_PER_PAGE = 1000


class TooLarge(BadInput):
    """Input over one of the instance's size limits (the API answers 413)."""


@dataclass(frozen=True)
class InputLimits:
    """The instance's size limits on input (``GRISTMILL_MAX_*`` settings), in bytes."""

    #: A script's source (``GRISTMILL_MAX_SCRIPT_SIZE_KB``).
    max_script_bytes: int = 1024 * 1024
    #: A job's arguments, as JSON (``GRISTMILL_MAX_ARGS_SIZE_MB``).
    max_args_bytes: int = 16 * 1024 * 1024
    max_args_depth: int = MAX_ARGS_DEPTH


def short(text: str, limit: int = 80) -> str:
    """``text`` cut for a message (a field may be megabytes long)."""
    return text if len(text) <= limit else f"{text[:limit]}..."


def check_no_nul(field: str, value: str | None) -> None:
    """Refuse a NUL character, which Postgres text cannot hold."""
    if value is not None and "\x00" in value:
        raise BadInput(
            f"{short(field)} contains a NUL character (\\u0000) at position {value.index(chr(0))}, "
            "which cannot be stored; remove it"
        )


def check_text_fields(obj: Any, *, what: str = "") -> None:
    """:func:`check_no_nul` on every text field of a dataclass (and lists of text)."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        name = f"{what}{f.name}"
        if isinstance(value, str):
            check_no_nul(name, value)
        elif isinstance(value, list | tuple):
            for item in value:
                if isinstance(item, str):
                    check_no_nul(name, item)


def check_script_size(content: str, limits: InputLimits) -> None:
    """Refuse a script's source over ``GRISTMILL_MAX_SCRIPT_SIZE_KB`` (saved or previewed)."""
    size = len(content.encode("utf-8", "surrogatepass"))
    if size > limits.max_script_bytes:
        raise TooLarge(
            f"content is {size} bytes, over the limit of {limits.max_script_bytes} bytes "
            f"(GRISTMILL_MAX_SCRIPT_SIZE_KB={limits.max_script_bytes // 1024}); split the "
            "script or move data out of its source"
        )


def check_int(field: str, value: int | None, minimum: int, maximum: int) -> None:
    """Refuse an integer outside ``[minimum, maximum]`` (the range of its column)."""
    if value is not None and not minimum <= value <= maximum:
        raise BadInput(f"{field} must be between {minimum} and {maximum}; got {value}")


def check_page(page: int, per_page: int) -> None:
    """``page`` and ``per_page`` of a list, bounded so that the offset fits the database."""
    check_int("page", page, 1, INT4_MAX)
    check_int("per_page", per_page, 1, MAX_PER_PAGE)


def check_json(field: str, value: Any, *, max_depth: int = MAX_ARGS_DEPTH) -> None:
    """Refuse JSON that Postgres cannot store (a NUL in a string or key) or that nests deeper
    than ``max_depth`` levels. Iterative: a value nested 100 000 deep costs no recursion."""
    stack: list[tuple[Any, int, str]] = [(value, 0, field)]
    while stack:
        item, depth, where = stack.pop()
        if isinstance(item, str):
            check_no_nul(where, item)
            continue
        children: Iterable[tuple[Any, str]]
        if isinstance(item, Mapping):
            children = ((v, f"{where}.{k}") for k, v in item.items())
            for key in item:
                check_no_nul(f"a key of {where}", str(key))
        elif isinstance(item, list | tuple):
            children = ((v, f"{where}[{i}]") for i, v in enumerate(item))
        else:
            continue
        if depth >= max_depth:
            raise BadInput(
                f"{short(where)} is nested more than {max_depth} levels deep (the limit of "
                "arguments); pass deeply nested data as a string or flatten it"
            )
        stack.extend((child, depth + 1, name) for child, name in children)
