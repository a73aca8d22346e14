"""``$var:<path>`` and ``$res:<path>`` references in JSON values (Windmill's
``transform_json_value``): a string that is exactly a reference is replaced by the
variable's value (a string) or the resource's value, anywhere in nested objects and lists.

The readers are injected, so that the caller decides whose permissions apply (a request's
caller, a job's ``permissioned_as``) and how a secret is read; this module only walks.
A resource's value may itself hold references: they are expanded too, up to ``depth``
levels, which also ends a cycle (``a`` refers to ``b`` which refers to ``a``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from gristmill.errors import BadInput

__all__ = [
    "MAX_DEPTH",
    "RES_PREFIX",
    "VAR_PREFIX",
    "has_references",
    "interpolate",
    "reference_of",
]

VAR_PREFIX = "$var:"
RES_PREFIX = "$res:"

#: How many resources deep references are followed (a resource naming a resource...).
MAX_DEPTH = 8

Reader = Callable[[str], Awaitable[Any]]


def reference_of(value: Any) -> tuple[str, str] | None:
    """``("var", path)`` / ``("res", path)`` when ``value`` is a reference string."""
    if isinstance(value, str):
        if value.startswith(VAR_PREFIX):
            return "var", value[len(VAR_PREFIX) :]
        if value.startswith(RES_PREFIX):
            return "res", value[len(RES_PREFIX) :]
    return None


def has_references(value: Any) -> bool:
    """Whether any string in ``value`` is a reference (cheap: no reader is called), so that
    a job's arguments without any cost no database round trip."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if reference_of(item) is not None:
                return True
        elif isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


async def interpolate(
    value: Any, *, read_variable: Reader, read_resource: Reader, depth: int = MAX_DEPTH
) -> Any:
    """``value`` with every reference replaced; the readers raise (``NotFound`` naming the
    path) for a reference that is missing or not visible."""
    ref = reference_of(value)
    if ref is not None:
        kind, path = ref
        if kind == "var":
            return await read_variable(path)
        if depth <= 0:
            raise BadInput(
                f"resource references nest more than {MAX_DEPTH} levels deep at $res:{path} "
                "(a resource referring to itself through others?)"
            )
        return await interpolate(
            await read_resource(path),
            read_variable=read_variable,
            read_resource=read_resource,
            depth=depth - 1,
        )
    if isinstance(value, Mapping):
        return {
            key: await interpolate(
                item, read_variable=read_variable, read_resource=read_resource, depth=depth
            )
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [
            await interpolate(
                item, read_variable=read_variable, read_resource=read_resource, depth=depth
            )
            for item in value
        ]
    return value
