"""TypeScript type annotations -> :mod:`gristmill.runtimes.signature` types (Windmill's rules).

``string`` is a string, ``number`` a float, ``bigint`` an integer, ``boolean`` a boolean,
``object`` an object of unknown shape; ``T[]`` and ``Array<T>`` are lists; string literals and
unions of them are enums; ``{a: string}`` is an object with properties; a union of objects that
each have a literal ``label`` is a one-of; ``undefined`` or ``null`` in a union makes the
parameter optional. Of type names, ``Date``, ``Base64``, ``Email``, ``Sql``, ``Resource<"x">``
and ``DynSelect_x`` mean what Windmill's client types mean; any other name is a resource type,
in snake_case (``FooBar`` -> ``foo_bar``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from gristmill import (
    ANY,
    BOOL,
    BYTES,
    DATETIME,
    EMAIL,
    FLOAT,
    INT,
    SQL,
    STR,
    DynSelectType,
    ListType,
    ObjectType,
    OneOfType,
    Prop,
    ResourceType,
    StrType,
    Typ,
)
from tree_sitter import Node

from gristmill_typescript.defaults import literal_value
from gristmill_typescript.syntax import first_child, text

__all__ = ["TypeInfo", "read_type", "snake_case"]

# Nesting of lists and objects in a type; deeper parts become "any value".
_MAX_DEPTH: Final = 10
# Properties kept per object type.
_MAX_PROPS: Final = 200

_PREDEFINED: Final[dict[str, Typ]] = {
    "string": STR,
    "number": FLOAT,
    "bigint": INT,
    "boolean": BOOL,
    "object": ObjectType(None, None),
}

# Type names with a meaning of their own. A qualified name (``wmill.Email``) is looked up by
# its last part. ``Object``, ``Record<K, V>`` and a bare ``Array`` are Gristmill's additions:
# Windmill would read them as resource types named "object", "record" and "array".
_NAMED: Final[dict[str, Typ]] = {
    "Date": DATETIME,
    "Base64": BYTES,
    "Email": EMAIL,
    "Sql": SQL,
    "Object": ObjectType(None, None),
    "Record": ObjectType(None, None),
    "Array": ListType(ANY),
    "ReadonlyArray": ListType(ANY),
}
_LIST_GENERICS: Final = frozenset({"Array", "ReadonlyArray"})


@dataclass(frozen=True)
class TypeInfo:
    """What a parameter's annotation says: its type and what its runtime value may be."""

    typ: Typ
    #: ``undefined`` is one of the union's members (``T | undefined``).
    undefined: bool = False
    #: ``null`` is one of the union's members (``T | null``).
    null: bool = False
    #: The value is a BigInt (``bigint``): the wrapper converts the JSON integer.
    bigint: bool = False


def read_type(
    node: Node | None, depth: int = 0, type_params: frozenset[str] = frozenset()
) -> TypeInfo:
    """The type of a type node (the node inside a ``type_annotation``).

    ``type_params`` are the type parameters of ``main`` (``main<T>(x: T)``): any value, not
    resource types. Windmill reads them as resource types ("t"), which no resource is.
    """
    if node is None or depth > _MAX_DEPTH:
        return TypeInfo(ANY)
    node = _strip_parentheses(node)
    kind = node.type
    if kind == "union_type":
        return _union(node, depth, type_params)
    if kind == "predefined_type":
        name = text(node)
        return TypeInfo(_PREDEFINED.get(name, ANY), bigint=name == "bigint")
    if kind == "literal_type":
        return _literal(node)
    if kind == "array_type":
        item = first_child(node)
        return TypeInfo(ListType(read_type(item, depth + 1, type_params).typ))
    if kind == "readonly_type":  # ``readonly string[]``
        return read_type(first_child(node), depth, type_params)
    if kind == "object_type":
        props = _props(node, depth, type_params)
        # ``{}`` says nothing of the shape.
        return TypeInfo(ObjectType(None, props or None))
    if kind == "type_identifier" and text(node) in _PREDEFINED:
        # The grammar reads ``bigint`` as a type name, not a predefined type.
        name = text(node)
        return TypeInfo(_PREDEFINED[name], bigint=name == "bigint")
    if kind == "type_identifier" and text(node) in type_params:
        return TypeInfo(ANY)
    if kind in ("type_identifier", "nested_type_identifier"):
        return TypeInfo(_named(_last_part(node)))
    if kind == "generic_type":
        return TypeInfo(_generic(node, depth, type_params))
    # Tuples, functions, intersections, conditional and template literal types...
    return TypeInfo(ANY)


def _strip_parentheses(node: Node) -> Node:
    while node.type == "parenthesized_type":
        inner = first_child(node)
        if inner is None:
            break
        node = inner
    return node


def _literal(node: Node) -> TypeInfo:
    inner = first_child(node)
    if inner is None:
        return TypeInfo(ANY)
    if inner.type == "null":
        return TypeInfo(ANY, null=True)
    if inner.type == "undefined":
        return TypeInfo(ANY, undefined=True)
    if inner.type == "string":
        value = literal_value(inner)
        if isinstance(value, str):
            return TypeInfo(StrType((value,)))
    # Number and boolean literals offer no string choices; Windmill reads them as any value.
    return TypeInfo(ANY)


def _union_members(node: Node) -> list[Node]:
    """The members of a union, nested unions and parentheses flattened (iteratively: a long
    union is a deep left-leaning tree)."""
    members: list[Node] = []
    pending = [node]
    while pending:
        current = _strip_parentheses(pending.pop())
        if current.type == "union_type":
            pending.extend(c for c in reversed(current.named_children) if c.type != "comment")
        else:
            members.append(current)
    return members


def _union(node: Node, depth: int, type_params: frozenset[str]) -> TypeInfo:
    undefined = null = False
    rest: list[Node] = []
    for member in _union_members(node):
        literal = first_child(member) if member.type == "literal_type" else None
        if literal is not None:
            inner = literal.type
            if inner == "undefined":
                undefined = True
                continue
            if inner == "null":
                null = True
                continue
        if member.type == "predefined_type" and text(member) in ("undefined", "void"):
            undefined = True
            continue
        rest.append(member)
    if not rest:
        return TypeInfo(ANY, undefined, null)
    if len(rest) == 1:
        only = read_type(rest[0], depth, type_params)
        return TypeInfo(only.typ, undefined, null, only.bigint)
    choices = [_string_literal(m) for m in rest]
    if all(c is not None for c in choices):
        unique = tuple(dict.fromkeys(c for c in choices if c is not None))
        return TypeInfo(StrType(unique), undefined, null)
    if all(c is not None or _is_string(m) for c, m in zip(choices, rest, strict=True)):
        # ``"a" | "b" | string`` is any string. Windmill offers an enum of the literals, which
        # would refuse the other strings the type accepts.
        return TypeInfo(STR, undefined, null)
    variants = [_one_of_variant(m, depth, type_params) for m in rest]
    if all(v is not None for v in variants):
        return TypeInfo(OneOfType(tuple(v for v in variants if v is not None)), undefined, null)
    return TypeInfo(ANY, undefined, null)


def _string_literal(node: Node) -> str | None:
    inner = first_child(node) if node.type == "literal_type" else None
    if inner is None or inner.type != "string":
        return None
    value = literal_value(inner)
    return value if isinstance(value, str) else None


def _is_string(node: Node) -> bool:
    return node.type == "predefined_type" and text(node) == "string"


def _one_of_variant(
    node: Node, depth: int, type_params: frozenset[str]
) -> tuple[str, tuple[Prop, ...]] | None:
    """``{label: "x", ...}``: one choice of a one-of, named by its literal ``label``."""
    if node.type != "object_type":
        return None
    label = None
    for member in node.named_children:
        if member.type != "property_signature" or _prop_key(member) != "label":
            continue
        annotation = member.child_by_field_name("type")
        inner = first_child(annotation)
        label = _string_literal(_strip_parentheses(inner)) if inner is not None else None
    if label is None:
        return None
    return label, _props(node, depth, type_params)


def _props(node: Node, depth: int, type_params: frozenset[str]) -> tuple[Prop, ...]:
    props: dict[str, Prop] = {}
    for member in node.named_children:
        if member.type != "property_signature":  # methods, index and call signatures
            continue
        key = _prop_key(member)
        if key is None:
            continue
        annotation = member.child_by_field_name("type")
        inner = first_child(annotation)
        typ = read_type(inner, depth + 1, type_params).typ if inner else ANY
        props[key] = Prop(key, typ)
        if len(props) >= _MAX_PROPS:
            break
    return tuple(props.values())


def _prop_key(member: Node) -> str | None:
    name = member.child_by_field_name("name")
    if name is None:
        return None
    if name.type == "property_identifier":
        return text(name)
    if name.type == "string":
        value = literal_value(name)
        return value if isinstance(value, str) else None
    if name.type == "number":
        return text(name)
    return None  # a computed key


def _last_part(node: Node) -> str:
    if node.type == "nested_type_identifier":
        name = node.child_by_field_name("name")
        return text(name) if name is not None else text(node).rsplit(".", 1)[-1]
    return text(node)


def _named(name: str) -> Typ:
    known = _NAMED.get(name)
    if known is not None:
        return known
    if name == "Resource":  # without its type argument: Windmill's unknown resource type
        return ResourceType("unknown")
    if name.startswith("DynSelect_"):
        return DynSelectType(name.removeprefix("DynSelect_"))
    return ResourceType(snake_case(name))


def _generic(node: Node, depth: int, type_params: frozenset[str]) -> Typ:
    name_node = node.child_by_field_name("name")
    name = _last_part(name_node) if name_node is not None else ""
    arguments = node.child_by_field_name("type_arguments")
    params = [c for c in arguments.named_children if c.type != "comment"] if arguments else []
    if name in _LIST_GENERICS:
        return ListType(read_type(params[0], depth + 1, type_params).typ if params else ANY)
    if name == "Resource":
        # ``Resource<"postgresql">``; without a literal the resource type is unknown.
        first = _strip_parentheses(params[0]) if params else None
        value = _string_literal(first) if first is not None else None
        return ResourceType(value if value is not None else "unknown")
    return _named(name)


_WORD: Final = re.compile(r"[A-Z]+(?=[A-Z][a-z]|[0-9]|\b|_)|[A-Z]?[a-z]+|[A-Z]+|[0-9]+", re.ASCII)


def snake_case(name: str) -> str:
    """Windmill's resource type name of a TypeScript type name: snake_case words, with no
    underscore before a number (``FooBar`` -> ``foo_bar``, ``S3Object`` -> ``s3_object``,
    ``HTTPServer`` -> ``http_server``)."""
    words = _WORD.findall(name)
    if not words:
        return name.lower()
    out = words[0].lower()
    for word in words[1:]:
        out += word.lower() if word[0].isdigit() else "_" + word.lower()
    return out
