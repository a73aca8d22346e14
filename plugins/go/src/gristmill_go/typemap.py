"""Go types -> Gristmill signature types.

The mapping is Windmill's (``int``/``string``/``bool``, slices and arrays as lists, inline
structs as objects keyed by their ``json`` tag) with the gaps filled the way ``encoding/json``
reads a value, since that is what decodes the job's arguments:

* every integer type (``uint8``, ``rune``, ...) is an integer, ``float32``/``float64`` a number;
* ``[]byte`` is bytes (``encoding/json`` reads it from a base64 string), ``[N]byte`` a list;
* ``interface{}``/``any`` (and any interface) is "any value": Windmill's ``object`` would refuse
  the numbers and strings such a parameter accepts;
* ``map[K]V`` is an object of unknown shape;
* a struct type defined in the script is expanded into its fields, like an inline struct;
  fields ``encoding/json`` skips (unexported, ``json:"-"``) are left out, embedded structs'
  fields are promoted;
* ``time.Time`` is a date-time, ``time.Duration`` an integer (nanoseconds);
* a pointer is its element's type; anything else (channels, functions, types of other packages)
  is "any value", which ``encoding/json`` reports precisely at run time if it cannot decode it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final, TypeAlias

from gristmill import (
    ANY,
    BOOL,
    BYTES,
    DATETIME,
    FLOAT,
    INT,
    STR,
    ListType,
    ObjectType,
    Prop,
    Typ,
)
from tree_sitter import Node

from gristmill_go.syntax import text

__all__ = ["TypeResolver"]

_INTEGERS: Final = frozenset(
    {
        "int",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "uintptr",
        "byte",
        "rune",
    }
)
_BUILTINS: Final[dict[str, Typ]] = {
    **dict.fromkeys(_INTEGERS, INT),
    "float32": FLOAT,
    "float64": FLOAT,
    "string": STR,
    "bool": BOOL,
    "any": ANY,
}
_BYTE_NAMES: Final = frozenset({"byte", "uint8"})
# Types of other packages with a known JSON form, by (import path, name).
_QUALIFIED: Final[dict[tuple[str, str], Typ]] = {
    ("time", "Time"): DATETIME,
    ("time", "Duration"): INT,
    ("encoding/json", "RawMessage"): ANY,
    ("encoding/json", "Number"): FLOAT,
}

_MAX_DEPTH: Final = 10  # nesting of structs and lists; deeper is "any value"
_MAX_FIELDS: Final = 200  # properties kept per struct
# Properties of one argument's form, nested ones included: a struct used by many fields of
# another is expanded each time, so a few small types could otherwise make a huge schema.
_MAX_FORM_PROPS: Final = 5000
_MAX_CALLS: Final = 200  # nested resolutions of one type, whatever their kind

_Scope: TypeAlias = dict[str, "tuple[Node, _Scope] | None"]

_JSON_TAG: Final = re.compile(r'(?:^|\s)json:"((?:[^"\\]|\\.)*)"')


@dataclass
class TypeResolver:
    """Resolves type nodes of one script: its type declarations and its imports."""

    #: Type name -> its declaration (``T struct{...}``, ``T[P any] ...`` or ``T = U``).
    declared: dict[str, Node]
    #: Package name as used in the script -> import path.
    imports: dict[str, str]
    _in_progress: set[str] = field(default_factory=set)
    _budget: int = _MAX_FORM_PROPS
    _calls: int = 0
    # Type parameters of the generic type being expanded -> the type argument, with the scope
    # it was written in (None: not given, "any value").
    _scope: _Scope = field(default_factory=dict)

    def resolve(self, node: Node | None, depth: int = 0) -> Typ:
        """The signature type of a Go type node."""
        # Pointers, parentheses and chains of definitions do not nest a form, but they do nest
        # calls: thousands of them must not exhaust Python's stack.
        if node is None or depth > _MAX_DEPTH or self._calls > _MAX_CALLS:
            return ANY
        self._calls += 1
        try:
            return self._resolve(node, depth)
        finally:
            self._calls -= 1

    def _resolve(self, node: Node, depth: int) -> Typ:
        kind = node.type
        if kind == "type_identifier":
            name = text(node)
            if name in self._scope:
                return self._type_argument(name, depth)
            return self._named(name, depth, [])
        if kind == "type_elem":  # a type argument
            inner = [c for c in node.named_children if c.type != "comment"]
            return self.resolve(inner[0] if len(inner) == 1 else None, depth)
        if kind == "qualified_type":
            package = text(node.child_by_field_name("package"))
            name = text(node.child_by_field_name("name"))
            return _QUALIFIED.get((self.imports.get(package, ""), name), ANY)
        if kind in ("pointer_type", "parenthesized_type"):
            inner = [c for c in node.named_children if c.type != "comment"]
            return self.resolve(inner[0] if inner else None, depth)
        if kind == "generic_type":
            base = node.child_by_field_name("type")
            arguments = node.child_by_field_name("type_arguments")
            if base is None or base.type != "type_identifier":
                return ANY
            given = (
                [c for c in arguments.named_children if c.type != "comment"] if arguments else []
            )
            return self._named(text(base), depth, given)
        if kind == "slice_type":
            element = node.child_by_field_name("element")
            if self._is_byte(element):
                return BYTES
            return ListType(self.resolve(element, depth + 1))
        if kind == "array_type":
            return ListType(self.resolve(node.child_by_field_name("element"), depth + 1))
        if kind == "map_type":
            return ObjectType(None, None)
        if kind == "struct_type":
            return self._struct(node, depth)
        return ANY  # interfaces, channels, functions

    def _named(self, name: str, depth: int, arguments: list[Node]) -> Typ:
        # A type declared in the script shadows a predeclared one, as in Go.
        spec = self.declared.get(name)
        if spec is None:
            return _BUILTINS.get(name, ANY)
        if name in self._in_progress:  # a recursive type: its inner occurrences are unknown
            return ANY
        parameters = _type_parameters(spec)
        scope: _Scope = dict.fromkeys(parameters)
        for parameter, argument in zip(parameters, arguments, strict=False):
            scope[parameter] = (argument, self._scope)
        outer = self._scope
        self._in_progress.add(name)
        self._scope = scope
        try:
            return self.resolve(spec.child_by_field_name("type"), depth)
        finally:
            self._scope = outer
            self._in_progress.discard(name)

    def _type_argument(self, name: str, depth: int) -> Typ:
        bound = self._scope[name]
        if bound is None:
            return ANY
        argument, written_in = bound
        inner = self._scope
        self._scope = written_in
        try:
            return self.resolve(argument, depth)
        finally:
            self._scope = inner

    def _is_byte(self, node: Node | None) -> bool:
        """Whether a slice's element is a byte, through type definitions and arguments."""
        seen: set[str] = set()
        scope = self._scope
        while node is not None and node.type in ("type_identifier", "type_elem"):
            if node.type == "type_elem":
                node = node.named_children[0] if node.named_child_count == 1 else None
                continue
            name = text(node)
            if name in scope:  # a type parameter: its argument (``Slice[byte]``)
                bound = scope[name]
                if bound is None:
                    return False
                node, scope = bound
                continue
            if name not in self.declared:
                return name in _BYTE_NAMES
            if name in seen:
                return False
            seen.add(name)
            node, scope = self.declared[name].child_by_field_name("type"), {}
        return False

    def _struct(self, node: Node, depth: int) -> Typ:
        props = self.struct_props(node, depth)
        # Like Windmill: a struct without (visible) fields has an unknown shape.
        return ObjectType(None, tuple(props) if props else None)

    def struct_props(self, node: Node, depth: int) -> list[Prop]:
        """The properties ``encoding/json`` reads into a struct, in field order."""
        body = next((c for c in node.named_children if c.type == "field_declaration_list"), None)
        if body is None:
            return []
        props: list[Prop] = []
        promoted: set[int] = set()
        for decl in body.named_children:
            if decl.type != "field_declaration":
                continue
            type_node = decl.child_by_field_name("type")
            tag, skipped = _json_tag(_tag_text(decl.child_by_field_name("tag")))
            if skipped:
                continue
            names = [text(n) for n in decl.children_by_field_name("name")]
            if not names:  # an embedded field
                base = _embedded_base(type_node)
                struct = self._declared_struct(base)
                if not tag and struct is not None:
                    inner = self._promote(base, struct, depth)
                    promoted.update(id(p) for p in inner)
                    props.extend(inner)
                    continue
                name = _type_name(base)
                # encoding/json keeps an embedded non-struct only when its type is exported.
                if _exported(name) or (struct is not None and tag):
                    props.append(Prop(tag or name, self._field_typ(type_node, depth)))
            for name in names:
                if _exported(name):  # encoding/json never touches unexported fields
                    props.append(Prop(tag or name, self._field_typ(type_node, depth)))
            if len(props) >= _MAX_FIELDS:
                break
        # A field of the struct itself hides a promoted one of the same name; otherwise the
        # first of a name wins.
        direct = {p.key for p in props if id(p) not in promoted}
        kept: list[Prop] = []
        seen: set[str] = set()
        for prop in props:
            if (id(prop) in promoted and prop.key in direct) or prop.key in seen:
                continue
            seen.add(prop.key)
            kept.append(prop)
        return kept[:_MAX_FIELDS]

    def _field_typ(self, node: Node | None, depth: int) -> Typ:
        if self._budget <= 0:
            return ANY
        self._budget -= 1
        return self.resolve(node, depth + 1)

    def _declared_struct(self, base: Node | None) -> Node | None:
        """The struct type a type name of the script stands for, following definitions."""
        seen: set[str] = set()
        node = base
        while node is not None and node.type == "type_identifier":
            name = text(node)
            if name in seen or name not in self.declared:
                return None
            seen.add(name)
            node = self.declared[name].child_by_field_name("type")
        return node if node is not None and node.type == "struct_type" else None

    def _promote(self, base: Node | None, struct: Node, depth: int) -> list[Prop]:
        name = _type_name(base)
        # A struct embedding itself (through a pointer), or a chain too long to follow.
        if name in self._in_progress or self._calls > _MAX_CALLS:
            return []
        self._in_progress.add(name)
        self._calls += 1
        try:
            return self.struct_props(struct, depth)
        finally:
            self._calls -= 1
            self._in_progress.discard(name)


def _type_parameters(spec: Node) -> list[str]:
    """The names of a generic type's parameters (``K``, ``V`` of ``Pair[K comparable, V any]``)."""
    parameters = spec.child_by_field_name("type_parameters")
    if parameters is None:
        return []
    return [
        text(name)
        for declaration in parameters.named_children
        if declaration.type == "type_parameter_declaration"
        for name in declaration.children_by_field_name("name")
    ]


def _embedded_base(node: Node | None) -> Node | None:
    """``T`` of an embedded ``*T``, ``T[int]`` or ``pkg.T``."""
    while node is not None and node.type in ("pointer_type", "generic_type"):
        if node.type == "generic_type":
            node = node.child_by_field_name("type")
        else:
            node = next(iter(node.named_children), None)
    return node


def _type_name(node: Node | None) -> str:
    if node is not None and node.type == "qualified_type":
        return text(node.child_by_field_name("name"))
    return text(node)


def _tag_text(node: Node | None) -> str:
    """The value of a struct tag literal (raw `...` or interpreted "...")."""
    if node is None:
        return ""
    raw = text(node)
    if raw.startswith("`"):
        return raw[1:-1] if raw.endswith("`") and len(raw) >= 2 else raw[1:]
    body = raw[1:-1] if raw.endswith('"') and len(raw) >= 2 else raw[1:]
    return re.sub(r"\\(.)", r"\1", body)


def _json_tag(tag: str) -> tuple[str, bool]:
    """The name of a ``json:"name,opts"`` struct tag ("" when none), and whether the tag
    makes encoding/json skip the field (``json:"-"``; ``json:"-,"`` names it "-")."""
    match = _JSON_TAG.search(tag)
    if match is None:
        return "", False
    value = match.group(1).replace('\\"', '"')
    name, sep, _ = value.partition(",")
    if name == "-" and not sep:
        return "", True
    return name, False


def _exported(name: str) -> bool:
    return bool(name) and name[0].isupper()
