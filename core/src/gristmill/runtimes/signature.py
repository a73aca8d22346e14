"""The language-neutral description of a script's ``main`` parameters.

Every runtime turns its source into a :class:`Signature`; only the core turns a signature into
JSON schema (:mod:`gristmill.runtimes.schema`). The JSON form of a type (:func:`typ_to_json`) is the one
Windmill's parsers emit, so golden fixtures read the same in both projects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

__all__ = [
    "ANY",
    "BOOL",
    "BYTES",
    "DATE",
    "DATETIME",
    "EMAIL",
    "FLOAT",
    "FUNCTION_CALL_DEFAULT",
    "INT",
    "SQL",
    "STR",
    "Arg",
    "DynSelectType",
    "ListType",
    "ObjectType",
    "OneOfType",
    "Prop",
    "ResourceType",
    "Scalar",
    "ScalarKind",
    "Signature",
    "StrType",
    "Typ",
    "infer_typ_from_value",
    "signature_from_json",
    "signature_to_json",
    "typ_from_json",
    "typ_to_json",
]

#: Default recorded for a parameter whose default is a call (``datetime.now()``): the value is
#: only known when the script runs, so wrappers drop an argument equal to this marker.
FUNCTION_CALL_DEFAULT = "<function call>"

ScalarKind = Literal[
    "int", "float", "bool", "bytes", "datetime", "date", "email", "sql", "yaml", "unknown"
]


@dataclass(frozen=True)
class Scalar:
    """A type with no parameters: ``int``, ``float``, ``bool``, ``bytes``, ``datetime``, ...

    ``unknown`` means "any JSON value".
    """

    kind: ScalarKind


@dataclass(frozen=True)
class StrType:
    """A string, optionally restricted to ``enum``."""

    enum: tuple[str, ...] | None = None


@dataclass(frozen=True)
class ListType:
    """A homogeneous list."""

    item: Typ


@dataclass(frozen=True)
class ResourceType:
    """An object of a named resource type, such as ``postgresql``."""

    name: str


@dataclass(frozen=True)
class Prop:
    """One property of an :class:`ObjectType`."""

    key: str
    typ: Typ


@dataclass(frozen=True)
class ObjectType:
    """An object; ``props`` is ``None`` when its shape is unknown (``dict``, ``object``)."""

    name: str | None = None
    props: tuple[Prop, ...] | None = None


@dataclass(frozen=True)
class OneOfType:
    """A choice between object shapes, each with a label."""

    variants: tuple[tuple[str, tuple[Prop, ...]], ...]


@dataclass(frozen=True)
class DynSelectType:
    """A value picked from options computed by a function of the script."""

    function: str
    multi: bool = False


Typ: TypeAlias = Scalar | StrType | ListType | ResourceType | ObjectType | OneOfType | DynSelectType

INT = Scalar("int")
FLOAT = Scalar("float")
BOOL = Scalar("bool")
BYTES = Scalar("bytes")
DATETIME = Scalar("datetime")
DATE = Scalar("date")
EMAIL = Scalar("email")
SQL = Scalar("sql")
ANY = Scalar("unknown")
STR = StrType()


@dataclass(frozen=True)
class Arg:
    """One parameter of ``main``.

    ``default`` is a JSON value; ``has_default`` tells an explicit ``None`` default from no
    default. ``otyp`` keeps the type as written in the source, for runtimes that need it
    (Go's wrapper, SQL casts).
    """

    name: str
    typ: Typ
    default: Any = None
    has_default: bool = False
    otyp: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class Signature:
    """The parameters of a script's entry point, in source order."""

    args: tuple[Arg, ...] = ()
    star_args: bool = False
    star_kwargs: bool = False
    has_preprocessor: bool = False
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


def typ_to_json(typ: Typ) -> Any:
    """Serialize a type to Windmill's parser form (``"int"``, ``{"list": "int"}``, ...)."""
    match typ:
        case Scalar(kind):
            return kind
        case StrType(enum):
            return {"str": list(enum) if enum is not None else None}
        case ListType(item):
            return {"list": typ_to_json(item)}
        case ResourceType(name):
            return {"resource": name}
        case ObjectType(name, props):
            return {"object": {"name": name, "props": _props_to_json(props)}}
        case OneOfType(variants):
            return {
                "oneof": [
                    {"label": label, "properties": _props_to_json(props)}
                    for label, props in variants
                ]
            }
        case DynSelectType(function, multi):
            return {"dynmultiselect" if multi else "dynselect": function}
    raise TypeError(f"not a signature type: {typ!r}")


def _props_to_json(props: tuple[Prop, ...] | None) -> list[dict[str, Any]] | None:
    if props is None:
        return None
    return [{"key": p.key, "typ": typ_to_json(p.typ)} for p in props]


def typ_from_json(value: Any) -> Typ:
    """Inverse of :func:`typ_to_json`."""
    if isinstance(value, str):
        if value == "str":
            return STR
        return Scalar(value)  # type: ignore[arg-type]
    if isinstance(value, dict) and len(value) == 1:
        ((tag, body),) = value.items()
        if tag == "str":
            return StrType(tuple(body) if body is not None else None)
        if tag == "list":
            return ListType(typ_from_json(body))
        if tag == "resource":
            return ResourceType(body)
        if tag == "object":
            if isinstance(body, list):  # older Windmill form: the props directly
                return ObjectType(None, _props_from_json(body))
            return ObjectType(body.get("name"), _props_from_json(body.get("props")))
        if tag == "oneof":
            return OneOfType(
                tuple((v["label"], _props_from_json(v["properties"]) or ()) for v in body)
            )
        if tag in ("dynselect", "dynmultiselect"):
            return DynSelectType(body, multi=tag == "dynmultiselect")
    raise ValueError(f"not a signature type: {value!r}")


def _props_from_json(value: Any) -> tuple[Prop, ...] | None:
    if value is None:
        return None
    return tuple(Prop(p["key"], typ_from_json(p["typ"])) for p in value)


def signature_to_json(sig: Signature) -> dict[str, Any]:
    """Serialize a signature (the form golden fixtures are written in)."""
    out: dict[str, Any] = {
        "star_args": sig.star_args,
        "star_kwargs": sig.star_kwargs,
        "has_preprocessor": sig.has_preprocessor,
        "args": [
            {
                "name": a.name,
                "typ": typ_to_json(a.typ),
                "default": a.default,
                "has_default": a.has_default,
                "otyp": a.otyp,
                "description": a.description,
            }
            for a in sig.args
        ],
    }
    return out


def signature_from_json(value: dict[str, Any]) -> Signature:
    """Inverse of :func:`signature_to_json`."""
    return Signature(
        args=tuple(
            Arg(
                name=a["name"],
                typ=typ_from_json(a["typ"]),
                default=a.get("default"),
                has_default=a.get("has_default", False),
                otyp=a.get("otyp"),
                description=a.get("description"),
            )
            for a in value["args"]
        ),
        star_args=value.get("star_args", False),
        star_kwargs=value.get("star_kwargs", False),
        has_preprocessor=value.get("has_preprocessor", False),
    )


def infer_typ_from_value(value: Any) -> Typ:
    """The type a JSON default implies, for parameters written without a type."""
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int):
        return INT
    if isinstance(value, float):
        return FLOAT
    if isinstance(value, str):
        return STR
    if isinstance(value, dict):
        return ObjectType(
            None, tuple(Prop(str(k), infer_typ_from_value(v)) for k, v in value.items())
        )
    if isinstance(value, list):
        # An empty list says nothing of its items.
        return ListType(infer_typ_from_value(value[0]) if value else ANY)
    return ANY
