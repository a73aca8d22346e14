"""Signature -> JSON schema, and validation of job arguments against a stored schema.

The schema shape is Windmill's (``$schema``, ``type: object``, ``properties`` in signature
order, ``required``), so schemas written by Windmill's clients and by Gristmill are
interchangeable. One deliberate difference: a parameter of unknown type has no ``type`` key
(JSON schema for "any value"), because Gristmill validates arguments and Windmill's ``object``
would reject the numbers and strings such a parameter accepts.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Mapping
from typing import Any

from gristmill.errors import GristmillError
from gristmill.runtimes.signature import (
    DynSelectType,
    ListType,
    ObjectType,
    OneOfType,
    Prop,
    ResourceType,
    Scalar,
    Signature,
    StrType,
    Typ,
)

__all__ = [
    "JSON_SCHEMA_DIALECT",
    "ArgumentError",
    "empty_schema",
    "property_for_typ",
    "signature_to_schema",
    "validate_args",
]

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

# Keys a user may have edited in a stored schema; they survive re-inference of the same
# parameter (Windmill's list, so a schema edited in either product keeps its edits).
PRESERVED_KEYS = (
    "description",
    "pattern",
    "min",
    "max",
    "currency",
    "currencyLocale",
    "multiselect",
    "customErrorMessage",
    "required",
    "showExpr",
    "password",
    "order",
    "dateFormat",
    "title",
    "placeholder",
)


def empty_schema() -> dict[str, Any]:
    """A schema with no parameters."""
    return {"$schema": JSON_SCHEMA_DIALECT, "type": "object", "properties": {}, "required": []}


def signature_to_schema(
    sig: Signature, previous: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Build the stored JSON schema of a signature.

    Properties come in signature order; an argument is required when it has no default.
    Keys the user edited in ``previous`` (descriptions, patterns, ...) are kept.
    """
    schema = empty_schema()
    old_props: Mapping[str, Any] = (previous or {}).get("properties") or {}
    for arg in sig.args:
        prop = property_for_typ(arg.typ)
        old = old_props.get(arg.name) or {}
        prop["description"] = arg.description or ""
        for key in PRESERVED_KEYS:
            if key in old and not (key == "description" and arg.description):
                prop[key] = old[key]
        prop["default"] = arg.default if arg.has_default else None
        schema["properties"][arg.name] = prop
        if not arg.has_default:
            schema["required"].append(arg.name)
    if sig.star_kwargs:
        # ``**kwargs``: the script takes arguments it does not name.
        schema["additionalProperties"] = True
    if previous and previous.get("order"):
        order = [name for name in previous["order"] if name in schema["properties"]]
        order += [name for name in schema["properties"] if name not in order]
        schema["order"] = order
    return schema


def property_for_typ(typ: Typ) -> dict[str, Any]:
    """The JSON schema property of one type (Windmill's mapping)."""
    match typ:
        case Scalar("int"):
            return {"type": "integer"}
        case Scalar("float"):
            return {"type": "number"}
        case Scalar("bool"):
            return {"type": "boolean"}
        case Scalar("bytes"):
            return {"type": "string", "contentEncoding": "base64", "originalType": "bytes"}
        case Scalar("datetime"):
            return {"type": "string", "format": "date-time"}
        case Scalar("date"):
            return {"type": "string", "format": "date"}
        case Scalar("email" | "sql" | "yaml" as kind):
            return {"type": "string", "format": kind}
        case Scalar("unknown"):
            return {}
        case StrType(None):
            return {"type": "string", "originalType": "string"}
        case StrType(enum):
            return {"type": "string", "enum": list(enum or ()), "originalType": "enum"}
        case ResourceType(name):
            return {"type": "object", "format": f"resource-{name}"}
        case ObjectType(name, props):
            out: dict[str, Any] = {"type": "object"}
            if name:
                out["format"] = f"resource-{name}"
            if props is not None:
                out["properties"] = _props(props)
            return out
        case OneOfType(variants):
            return {
                "type": "object",
                "oneOf": [
                    {"type": "object", "title": label, "properties": _props(props)}
                    for label, props in variants
                ],
            }
        case DynSelectType(function, multi):
            kind = "dynmultiselect" if multi else "dynselect"
            return {"type": "object", "format": f"{kind}-{function}"}
        case ListType(item):
            return {"type": "array", **_list_items(item)}
    raise TypeError(f"not a signature type: {typ!r}")


def _props(props: tuple[Prop, ...]) -> dict[str, Any]:
    return {p.key: {**property_for_typ(p.typ), "description": ""} for p in props}


def _list_items(item: Typ) -> dict[str, Any]:
    match item:
        case Scalar("int" | "float"):
            return {"items": {"type": "number"}, "originalType": "number[]"}
        case Scalar("bool"):
            return {"items": {"type": "boolean"}, "originalType": "boolean[]"}
        case Scalar("bytes"):
            return {
                "items": {"type": "string", "contentEncoding": "base64"},
                "originalType": "bytes[]",
            }
        case StrType(None):
            return {"items": {"type": "string"}, "originalType": "string[]"}
        case StrType(enum):
            return {"items": {"type": "string", "enum": list(enum or ())}, "originalType": "enum[]"}
        case ResourceType(name):
            return {
                "items": {"type": "resource", "resourceType": name},
                "originalType": "resource[]",
            }
        case ObjectType(_, props) if props is not None:
            return {
                "items": {"type": "object", "properties": _props(props)},
                "originalType": "record[]",
            }
        case Scalar("unknown"):
            return {"items": {}, "originalType": "object[]"}
        case Scalar("datetime" | "date" | "email" | "sql" | "yaml"):
            # Windmill writes {"type": "object"} here, which refuses the strings these are.
            return {"items": property_for_typ(item), "originalType": "string[]"}
        case ListType(_):
            return {"items": property_for_typ(item), "originalType": "object[]"}
    return {"items": {"type": "object"}, "originalType": "object[]"}


class ArgumentError(GristmillError, ValueError):
    """Arguments that do not match a script's schema; ``field`` names the offending one."""

    def __init__(self, field: str | None, message: str) -> None:
        self.field = field
        super().__init__(f"argument '{field}': {message}" if field else message)


_JSON_TYPE_NAMES = {
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    list: "an array",
    dict: "an object",
    type(None): "null",
}


def _describe(value: Any) -> str:
    kind = _JSON_TYPE_NAMES.get(type(value), type(value).__name__)
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{kind} ({text})" if value is not None else kind


def validate_args(
    schema: Mapping[str, Any] | None, args: Any, *, allow_extra: bool = False
) -> dict[str, Any]:
    """Check ``args`` against a script schema; return them (integral floats given for
    integer parameters made integers) or raise ArgumentError.

    Required arguments must be present; a value must match its property's type, enum, format
    (``date-time``, ``date``) and base64 encoding, unless it is a ``"$res:<path>"`` or
    ``"$var:<path>"`` reference (replaced by the worker). Arguments the schema does not know are an
    error (a misspelled name would otherwise run the script with its default) unless the
    schema has ``additionalProperties: true`` or ``allow_extra`` is set.
    """
    if not isinstance(args, dict):
        raise ArgumentError(None, f"arguments must be a JSON object, got {_describe(args)}")
    if not schema:
        return args
    props: Mapping[str, Any] = schema.get("properties") or {}
    required = set(schema.get("required") or ())
    for name in schema.get("required") or ():
        if name not in args and name in props:
            raise ArgumentError(name, "missing required argument")
    for name, value in args.items():
        prop = props.get(name)
        if prop is None:
            if allow_extra or schema.get("additionalProperties") is True:
                continue
            known = ", ".join(props) or "none"
            raise ArgumentError(name, f"unknown argument; the script takes: {known}")
        if value is None and (name not in required or prop.get("nullable")):
            continue
        _check_value(name, prop, value)
    # 5.0 passes as an integer; the script gets 5, as its type says.
    return {
        name: int(value)
        if isinstance(value, float) and (props.get(name) or {}).get("type") == "integer"
        else value
        for name, value in args.items()
    }


#: A string argument naming a resource or a variable, replaced by its value by the worker.
_REFERENCE_PREFIXES = ("$res:", "$var:")


def _check_value(path: str, prop: Mapping[str, Any], value: Any) -> None:
    if isinstance(value, str) and value.startswith(_REFERENCE_PREFIXES):
        # Its value is only known to the worker, read with the job's permissions: any
        # parameter takes a reference (Windmill's `"$res:f/team/pg"` for a resource).
        return
    expected = prop.get("type")
    if expected == "integer":
        if isinstance(value, bool) or not (
            isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        ):
            raise ArgumentError(path, f"expected an integer, got {_describe(value)}")
    elif expected == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ArgumentError(path, f"expected a number, got {_describe(value)}")
    elif expected == "boolean":
        if not isinstance(value, bool):
            raise ArgumentError(path, f"expected a boolean, got {_describe(value)}")
    elif expected == "string":
        if not isinstance(value, str):
            raise ArgumentError(path, f"expected a string, got {_describe(value)}")
        _check_string_format(path, prop, value)
    elif expected == "array":
        if not isinstance(value, list):
            raise ArgumentError(path, f"expected an array, got {_describe(value)}")
        items = prop.get("items") or {}
        if items.get("type") in ("integer", "number", "boolean", "string", "object", "array"):
            for i, item in enumerate(value):
                _check_value(f"{path}[{i}]", items, item)
    elif expected == "object":
        if not isinstance(value, dict):
            raise ArgumentError(path, f"expected an object, got {_describe(value)}")
        for key, sub in (prop.get("properties") or {}).items():
            if key in value and value[key] is not None:
                _check_value(f"{path}.{key}", sub, value[key])
    enum = prop.get("enum")
    if enum and value not in enum:
        choices = ", ".join(repr(e) for e in enum)
        raise ArgumentError(path, f"{value!r} is not one of {choices}")


def _check_string_format(path: str, prop: Mapping[str, Any], value: str) -> None:
    fmt = prop.get("format")
    if fmt == "date-time":
        try:
            dt.datetime.fromisoformat(value)
        except ValueError:
            raise ArgumentError(
                path, f"expected an ISO 8601 date-time such as 2024-01-31T12:00:00Z, got {value!r}"
            ) from None
    elif fmt == "date":
        try:
            dt.date.fromisoformat(value)
        except ValueError:
            raise ArgumentError(
                path, f"expected an ISO 8601 date such as 2024-01-31, got {value!r}"
            ) from None
    if prop.get("contentEncoding") == "base64":
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ArgumentError(path, "expected base64-encoded bytes") from None
