"""The signature of a Python script's ``main``, read with tree-sitter.

The rules follow Windmill's Python parser so that a script gets the same form in both
products: annotations map to :mod:`gristmill.runtimes.signature` types, defaults become JSON values,
enums / dataclasses / pydantic models defined in the script are expanded, and the Google-style
``Args:`` section of ``main``'s docstring gives the argument descriptions.

The whole file is parsed (tree-sitter is fast enough that a typical script takes well under a
millisecond), which also lets a syntax error anywhere in the script be reported with its
position instead of surfacing later as a failed job.
"""

from __future__ import annotations

import ast
import base64
import math
import re
from dataclasses import dataclass, field
from typing import Any, Final

from gristmill import (
    ANY,
    BOOL,
    BYTES,
    DATE,
    DATETIME,
    EMAIL,
    FLOAT,
    FUNCTION_CALL_DEFAULT,
    INT,
    SQL,
    STR,
    Arg,
    DynSelectType,
    ListType,
    ObjectType,
    Prop,
    ResourceType,
    ScriptError,
    Signature,
    StrType,
    Typ,
    infer_typ_from_value,
)
from tree_sitter import Node, Query, QueryCursor

from gristmill_python.grammar import LANGUAGE, parse

__all__ = ["parse_signature"]

# What tree-sitter accepts but CPython rejects, plus its own error nodes. An empty block is how
# tree-sitter recovers from a missing indented body ("def f():" followed by nothing); the
# Python 2 statements are part of the grammar for compatibility but are errors in Python 3.
_PROBLEMS: Final = Query(
    LANGUAGE,
    """
    (ERROR) @error
    (MISSING) @missing
    ((block) @empty_block (#eq? @empty_block ""))
    (print_statement) @py2
    (exec_statement) @py2
    """,
)
# Only run when there is no top-level main, to tell the user where their main is.
_NESTED_MAIN: Final = Query(
    LANGUAGE, '(function_definition name: (identifier) @name (#eq? @name "main"))'
)

_MAX_DEPTH: Final = 10  # nesting of models / generics; deeper types become "any value"
_MAX_FIELDS: Final = 200  # fields kept per dataclass / model
# Properties of one model's form, nested ones included. A model reused by several fields is
# shared in memory but expanded in the schema each time, so without this bound a few small
# classes could make a schema of billions of properties.
_MAX_FORM_PROPS: Final = 5000
# Nesting of a literal default; deeper is not read (Python's own recursion limit is near).
_MAX_LITERAL_DEPTH: Final = 100

#: Sentinel for "this expression is not a literal".
_NOT_LITERAL: Final = object()

# A list whose items say nothing of their type. Windmill makes a bare ``list`` a list of
# strings; Gristmill validates arguments, and `def main(xs: list)` must accept [1, 2].
_UNKNOWN_LIST: Final = ListType(ANY)

# Names whose meaning does not depend on the script. A dotted name is looked up by its last
# part, so ``wmill.Sql``, ``typing.List`` and ``datetime.date`` need no entries of their own.
_KNOWN_NAMES: Final[dict[str, Typ]] = {
    "str": STR,
    "int": INT,
    "float": FLOAT,
    "bool": BOOL,
    "bytes": BYTES,
    "bytearray": BYTES,
    "dict": ObjectType(None, None),
    "Dict": ObjectType(None, None),
    "Mapping": ObjectType(None, None),
    "MutableMapping": ObjectType(None, None),
    "list": _UNKNOWN_LIST,
    "List": _UNKNOWN_LIST,
    "Sequence": _UNKNOWN_LIST,
    "tuple": _UNKNOWN_LIST,
    "Tuple": _UNKNOWN_LIST,
    "set": _UNKNOWN_LIST,
    "Set": _UNKNOWN_LIST,
    "frozenset": _UNKNOWN_LIST,
    "datetime": DATETIME,
    "date": DATE,
    "Sql": SQL,
    "sql": SQL,
    "Email": EMAIL,
    "S3Object": ResourceType("s3_object"),
    "Any": ANY,
    "object": ANY,
}

# Subscripted names that mean "a list of the first parameter".
_LIST_GENERICS: Final = frozenset(
    {
        "list",
        "List",
        "Sequence",
        "MutableSequence",
        "Iterable",
        "Collection",
        "tuple",
        "Tuple",
        "set",
        "Set",
        "frozenset",
        "FrozenSet",
    }
)
_DICT_GENERICS: Final = frozenset({"dict", "Dict", "Mapping", "MutableMapping"})
# Wrappers whose first parameter is the real type.
_TRANSPARENT_GENERICS: Final = frozenset(
    {"Annotated", "Required", "NotRequired", "ReadOnly", "Final", "ClassVar"}
)
_ENUM_BASES: Final = frozenset({"Enum", "StrEnum", "IntEnum", "Flag", "IntFlag", "ReprEnum"})

_COMPOUND_NAMES: Final = {
    "function_definition": "function definition",
    "class_definition": "class definition",
    "if_statement": "'if' statement",
    "elif_clause": "'elif' statement",
    "else_clause": "'else' statement",
    "for_statement": "'for' statement",
    "while_statement": "'while' statement",
    "with_statement": "'with' statement",
    "try_statement": "'try' statement",
    "except_clause": "'except' statement",
    "except_group_clause": "'except*' statement",
    "finally_clause": "'finally' statement",
    "match_statement": "'match' statement",
    "case_clause": "'case' statement",
}
_COMPOUND_KEYWORDS: Final = re.compile(
    r"(async\s+)?(def|class|if|elif|else|for|while|with|try|except|finally|match|case)\b"
)
_OPENERS: Final = {"(": ")", "[": "]", "{": "}"}
_DOTTED_NAME: Final = re.compile(r"[^\W\d]\w*(\s*\.\s*[^\W\d]\w*)*")
# ``name (type): text`` or ``name: text``; names may be any Python identifier (``café``).
_DOC_ARG: Final = re.compile(r"\*{0,2}([^\W\d]\w*)\s*(?:\([^)]*\))?\s*:(.*)$")


def parse_signature(source: str) -> Signature:
    """Read the parameters of the top-level ``main`` of a Python script.

    Raises :class:`ScriptError` for a syntax error (with its 1-based line and column) and for a
    script without a top-level ``def main(...)``.
    """
    if source.startswith("\ufeff"):  # CPython ignores a BOM; tree-sitter would not
        source = source[1:]
    data = source.encode("utf-8", "replace")
    tree = parse(data)
    root = tree.root_node
    _check_syntax(root, data)

    main: Node | None = None
    has_preprocessor = False
    classes: dict[str, tuple[Node, list[Node]]] = {}
    for child in root.named_children:
        node, decorators = child, []
        if child.type == "decorated_definition":
            node = child.child_by_field_name("definition") or child
            decorators = [c for c in child.named_children if c.type == "decorator"]
        if node.type == "function_definition":
            name = _text(node.child_by_field_name("name"))
            if name == "main":
                main = node  # like at run time, a later definition replaces an earlier one
            elif name == "preprocessor":
                has_preprocessor = True
        elif node.type == "class_definition":
            classes[_text(node.child_by_field_name("name"))] = (node, decorators)
    if main is None:
        raise _no_main_error(root, data)

    ctx = _Context(classes)
    type_params = main.child_by_field_name("type_parameters")
    if type_params is not None:  # PEP 695 ``def main[T](x: T)``: T is not a resource
        ctx.type_params = {_text(t) for t in type_params.named_children}
    descriptions = _docstring_descriptions(ctx, main)

    args: list[Arg] = []
    star_args = star_kwargs = False
    params = main.child_by_field_name("parameters")
    for param in params.named_children if params is not None else ():
        kind = param.type
        name_node: Node | None = param
        annotation: Node | None = None
        value: Node | None = None
        if kind == "typed_parameter":
            name_node = param.named_children[0]
            annotation = param.child_by_field_name("type")
        elif kind in ("default_parameter", "typed_default_parameter"):
            name_node = param.child_by_field_name("name")
            annotation = param.child_by_field_name("type")
            value = param.child_by_field_name("value")
        # ``*args`` / ``**kwargs``, with or without an annotation, are not form fields.
        if name_node is None or name_node.type == "list_splat_pattern":
            star_args = star_args or name_node is not None
            continue
        if name_node.type == "dictionary_splat_pattern":
            star_kwargs = True
            continue
        if name_node.type != "identifier":  # ``*``, ``/``, comments
            continue
        name = _text(name_node)
        args.append(_make_arg(ctx, name, annotation, value, descriptions.get(name)))

    return Signature(
        args=tuple(args),
        star_args=star_args,
        star_kwargs=star_kwargs,
        has_preprocessor=has_preprocessor,
    )


def _make_arg(
    ctx: _Context, name: str, annotation: Node | None, value: Node | None, description: str | None
) -> Arg:
    typ, optional = _annotation_typ(ctx, annotation, 0, False) if annotation else (ANY, False)
    if value is None:
        # ``Optional[T]`` without a default: Windmill makes the argument not required and
        # passes None.
        return Arg(name, typ, None, optional, description=description)
    default = _literal(ctx, value)
    if default is _NOT_LITERAL:
        # Known only at run time. The marker is a placeholder, not a string value, so it
        # implies no type (``x = datetime.now()`` stays "any value", not ``str``).
        default = FUNCTION_CALL_DEFAULT
    elif typ == ANY or (typ == _UNKNOWN_LIST and isinstance(default, list)):
        typ = infer_typ_from_value(default)
    return Arg(name, typ, default, True, description=description)


# -- types ----------------------------------------------------------------------------------


@dataclass
class _Context:
    """Per-parse state: the classes defined at the top level and what was learnt of them."""

    classes: dict[str, tuple[Node, list[Node]]]
    type_params: set[str] = field(default_factory=set)
    # Keyed by depth too: a model first met deep in another one is cut shorter by the depth
    # limit than the same model used directly.
    resolved: dict[tuple[str, int], Typ | None] = field(default_factory=dict)
    enum_values: dict[str, dict[str, str]] = field(default_factory=dict)
    in_progress: set[str] = field(default_factory=set)
    # id(typ) -> (typ, number of properties the form shows for it); the type is kept so that
    # its id cannot be reused by another object.
    sizes: dict[int, tuple[Typ, int]] = field(default_factory=dict)


def _annotation_typ(ctx: _Context, node: Node, depth: int, in_model: bool) -> tuple[Typ, bool]:
    """Map an annotation to a type; the flag says whether it admits None (``Optional``)."""
    while node.type in ("type", "parenthesized_expression") and node.named_child_count == 1:
        node = node.named_children[0]
    if depth >= _MAX_DEPTH:
        return ANY, False
    kind = node.type
    if kind in ("identifier", "attribute"):
        return _named_typ(ctx, _text(node), depth, in_model), False
    if kind == "none":
        return ANY, True
    if kind == "string":
        return _forward_ref_typ(ctx, node, depth, in_model)
    if kind == "binary_operator" and _is_union_operator(node):
        return _union(ctx, _union_members(node), depth, in_model)
    if kind == "generic_type":  # ``List[int]`` where the grammar knows it is a type
        base = node.named_children[0]
        params = [
            t
            for c in node.named_children[1:]
            if c.type == "type_parameter"
            for t in c.named_children
            if t.type != "comment"
        ]
        return _generic_typ(ctx, base, params, depth, in_model)
    if kind == "subscript":  # ``typing.List[int]``: parsed as an ordinary expression
        base = node.child_by_field_name("value")
        params = node.children_by_field_name("subscript")
        if len(params) == 1 and params[0].type == "tuple":
            params = [p for p in params[0].named_children if p.type != "comment"]
        if base is not None:
            return _generic_typ(ctx, base, params, depth, in_model)
    return ANY, False


def _forward_ref_typ(ctx: _Context, node: Node, depth: int, in_model: bool) -> tuple[Typ, bool]:
    """A quoted annotation such as ``"Color"`` or ``"Node | None"``."""
    ref = _literal(ctx, node)
    if not isinstance(ref, str):
        return ANY, False
    ref = ref.strip()
    if _DOTTED_NAME.fullmatch(ref):  # the common case needs no second parse
        return _named_typ(ctx, ref, depth, in_model), False
    tree = parse(ref.encode("utf-8", "replace"))
    statement = tree.root_node.named_children[0] if tree.root_node.named_child_count else None
    if tree.root_node.has_error or statement is None or statement.type != "expression_statement":
        return ANY, False
    return _annotation_typ(ctx, statement.named_children[0], depth + 1, in_model)


def _union_members(node: Node) -> list[Node]:
    """The members of ``A | B | C`` in order (iterative: a long union must not recurse)."""
    members: list[Node] = []
    pending = [node]
    while pending:
        current = pending.pop()
        if current.type == "binary_operator" and _is_union_operator(current):
            right, left = current.child_by_field_name("right"), current.child_by_field_name("left")
            pending.extend(side for side in (right, left) if side is not None)
        else:
            members.append(current)
    return members


def _is_union_operator(node: Node) -> bool:
    return _text(node.child_by_field_name("operator")) == "|"


def _union(ctx: _Context, members: list[Node], depth: int, in_model: bool) -> tuple[Typ, bool]:
    """``A | None`` is ``A`` and optional; a union of several real types is "any value"."""
    optional = False
    typs: list[Typ] = []
    for member in members:
        typ, member_optional = _annotation_typ(ctx, member, depth + 1, in_model)
        if _is_none(member):
            optional = True
        else:
            optional = optional or member_optional
            typs.append(typ)
    return (typs[0] if len(typs) == 1 else ANY), optional


def _is_none(node: Node) -> bool:
    while node.type == "type" and node.named_child_count == 1:
        node = node.named_children[0]
    return node.type == "none"


def _generic_typ(
    ctx: _Context, base: Node, params: list[Node], depth: int, in_model: bool
) -> tuple[Typ, bool]:
    name = _last_part(_text(base))
    if name == "Optional" and params:
        return _annotation_typ(ctx, params[0], depth + 1, in_model)[0], True
    if name == "Union":
        return _union(ctx, params, depth, in_model)
    if name in _TRANSPARENT_GENERICS and params:
        return _annotation_typ(ctx, params[0], depth + 1, in_model)
    if name == "Literal":
        return _literal_typ(ctx, params), False
    if name in _LIST_GENERICS:
        if not params:
            return _UNKNOWN_LIST, False
        items = [_annotation_typ(ctx, p, depth + 1, in_model)[0] for p in params]
        if name in ("tuple", "Tuple") and len(params) == 2 and _is_ellipsis(params[1]):
            items = items[:1]  # ``tuple[int, ...]``
        # A fixed tuple of mixed types has no single item type.
        return ListType(items[0] if all(t == items[0] for t in items) else ANY), False
    if name in _DICT_GENERICS:
        return ObjectType(None, None), False
    # ``MyResource[...]`` and the like: the parameters do not change what the base is.
    return _annotation_typ(ctx, base, depth, in_model)


def _is_ellipsis(node: Node) -> bool:
    while node.type == "type" and node.named_child_count == 1:
        node = node.named_children[0]
    return node.type == "ellipsis"


def _literal_typ(ctx: _Context, params: list[Node]) -> Typ:
    values = [_literal(ctx, p.named_children[0] if p.type == "type" else p) for p in params]
    strings = tuple(v for v in values if isinstance(v, str))
    if strings:
        return StrType(strings)
    # ``Literal[1, 2]``: no string choices to offer; keep the value type.
    if values and values[0] is not _NOT_LITERAL and values[0] is not None:
        return infer_typ_from_value(values[0])
    return STR


def _named_typ(ctx: _Context, name: str, depth: int, in_model: bool) -> Typ:
    name = "".join(name.split())  # ``wmill . Sql`` is legal Python
    dotted = "." in name
    if not dotted:
        if name in ctx.type_params:
            return ANY
        local = _local_class_typ(ctx, name, depth)
        if local is not None:
            return local
    key = _last_part(name)
    known = _KNOWN_NAMES.get(key)
    if known is not None:
        return known
    if key.startswith("DynSelect_"):
        return DynSelectType(key.removeprefix("DynSelect_"))
    if key.startswith("DynMultiselect_"):
        return DynSelectType(key.removeprefix("DynMultiselect_"), multi=True)
    # Windmill: inside a dataclass/model an unknown class (Decimal, UUID, ...) is "any value";
    # only a parameter of ``main`` names a resource type.
    return ANY if in_model else ResourceType(key)


def _last_part(name: str) -> str:
    return name.rsplit(".", 1)[-1].strip()


def _local_class_typ(ctx: _Context, name: str, depth: int) -> Typ | None:
    """The type of an enum, dataclass or pydantic model defined in the script, else None."""
    if name not in ctx.classes:
        return None
    if (name, depth) in ctx.resolved:
        return ctx.resolved[name, depth]
    if name in ctx.in_progress:  # a model that contains itself: its shape is open-ended
        return ObjectType(None, None)
    node, decorators = ctx.classes[name]
    ctx.in_progress.add(name)
    try:
        typ: Typ | None = None
        bases = _base_names(node)
        if any(base in _ENUM_BASES for base in bases):
            values = _enum_members(ctx, name, node)
            typ = StrType(tuple(values.values())) if values else STR
        elif "BaseModel" in bases or any(_is_dataclass_decorator(d) for d in decorators):
            typ = _model_typ(ctx, node, "BaseModel" in bases, depth)
        elif any(
            isinstance(_local_class_typ(ctx, b, depth + 1), ObjectType)
            for b in bases
            if b in ctx.classes
        ):
            # A subclass of a model defined in the script is a model too.
            typ = _model_typ(ctx, node, True, depth)
    finally:
        ctx.in_progress.discard(name)
    ctx.resolved[name, depth] = typ
    return typ


def _base_names(class_node: Node) -> list[str]:
    supers = class_node.child_by_field_name("superclasses")
    if supers is None:
        return []
    return [
        _last_part(_text(b)) for b in supers.named_children if b.type in ("identifier", "attribute")
    ]


def _is_dataclass_decorator(decorator: Node) -> bool:
    # ``@dataclass``, ``@dataclass(frozen=True)``, ``@dataclasses.dataclass``,
    # ``@pydantic.dataclasses.dataclass``.
    expr = decorator.named_children[0] if decorator.named_child_count else decorator
    if expr.type == "call":
        expr = expr.child_by_field_name("function") or expr
    return expr.type in ("identifier", "attribute") and _last_part(_text(expr)) == "dataclass"


def _model_typ(ctx: _Context, node: Node, pydantic: bool, depth: int) -> ObjectType:
    props: list[Prop] = []
    # Fields of a base model defined in the script come first, as at run time.
    for base in _base_names(node):
        if base in ctx.classes and base not in ctx.in_progress:
            inherited = _local_class_typ(ctx, base, depth + 1)
            if isinstance(inherited, ObjectType) and inherited.props:
                props.extend(inherited.props)
    size = sum(1 + _expanded_size(ctx, p.typ) for p in props)
    body = node.child_by_field_name("body")
    for stmt in body.named_children if body is not None else ():
        if stmt.type != "expression_statement" or stmt.named_child_count != 1:
            continue
        assign = stmt.named_children[0]
        target = assign.child_by_field_name("left")
        annotation = assign.child_by_field_name("type")
        if assign.type != "assignment" or annotation is None or target is None:
            continue
        if target.type != "identifier":
            continue
        key = _text(target)
        if pydantic and key.startswith("_"):  # private attributes are not model fields
            continue
        if _is_classvar(annotation):  # class-level constants are not fields either
            continue
        typ = _annotation_typ(ctx, annotation, depth + 1, True)[0]
        weight = 1 + _expanded_size(ctx, typ)
        if size + weight > _MAX_FORM_PROPS:
            typ, weight = ANY, 1
        size += weight
        props = [p for p in props if p.key != key]  # a redefinition replaces the inherited one
        props.append(Prop(key, typ))
        if len(props) >= _MAX_FIELDS:
            break
    # Windmill: a model without fields has an unknown shape.
    return ObjectType(None, tuple(props) if props else None)


def _expanded_size(ctx: _Context, typ: Typ) -> int:
    """How many properties the form of ``typ`` shows, nested ones included."""
    known = ctx.sizes.get(id(typ))
    if known is not None:
        return known[1]
    size = 0
    if isinstance(typ, ListType):
        size = _expanded_size(ctx, typ.item)
    elif isinstance(typ, ObjectType) and typ.props:
        size = sum(1 + _expanded_size(ctx, p.typ) for p in typ.props)
    ctx.sizes[id(typ)] = (typ, size)
    return size


def _is_classvar(annotation: Node) -> bool:
    text = _text(annotation)
    return text.startswith(("ClassVar", "typing.ClassVar"))


def _enum_members(ctx: _Context, name: str, node: Node) -> dict[str, str]:
    """Member name -> value as a string, in definition order."""
    if name in ctx.enum_values:
        return ctx.enum_values[name]
    members: dict[str, str] = {}
    string_enum = "StrEnum" in _base_names(node)
    flag_enum = any(b in ("Flag", "IntFlag") for b in _base_names(node))
    last_int = 0
    body = node.child_by_field_name("body")
    for stmt in body.named_children if body is not None else ():
        if stmt.type != "expression_statement" or stmt.named_child_count != 1:
            continue
        assign = stmt.named_children[0]
        if assign.type != "assignment":
            continue
        target, value = assign.child_by_field_name("left"), assign.child_by_field_name("right")
        if target is None or value is None or target.type != "identifier":
            continue
        member = _text(target)
        if member.startswith("_"):  # ``_ignore_`` and friends are not members
            continue
        literal = _literal(ctx, value)
        if literal is _NOT_LITERAL and _is_auto_call(value):
            # ``auto()`` values as the enum module computes them.
            if string_enum:
                literal = member.lower()
            elif flag_enum:
                literal = 1 if last_int <= 0 else 1 << last_int.bit_length()
            else:
                literal = last_int + 1
        if isinstance(literal, bool):
            continue
        if isinstance(literal, int):
            last_int = literal
        if isinstance(literal, str | int | float):
            members[member] = literal if isinstance(literal, str) else str(literal)
    ctx.enum_values[name] = members
    return members


def _is_auto_call(node: Node) -> bool:
    if node.type != "call":
        return False
    function = node.child_by_field_name("function")
    return function is not None and _last_part(_text(function)) == "auto"


# -- defaults -------------------------------------------------------------------------------


def _literal(ctx: _Context, node: Node | None, depth: int = 0) -> Any:
    """The JSON value of a literal expression, or ``_NOT_LITERAL``."""
    if node is None or depth > _MAX_LITERAL_DEPTH:
        return _NOT_LITERAL
    kind = node.type
    if kind == "integer":
        try:
            return int(_text(node), 0)
        except ValueError:  # ``1j``, or an old-style octal CPython rejects as well
            return _NOT_LITERAL
    if kind == "float":
        try:
            number = float(_text(node).replace("_", ""))
        except ValueError:  # ``1.5j``
            return _NOT_LITERAL
        return number if math.isfinite(number) else _NOT_LITERAL  # JSON has no inf
    if kind == "true":
        return True
    if kind == "false":
        return False
    if kind == "none":
        return None
    if kind == "string":
        return _string_value(node)
    if kind == "concatenated_string":
        parts = [_string_value(p) for p in node.named_children if p.type == "string"]
        if any(p is _NOT_LITERAL for p in parts):
            return _NOT_LITERAL
        if all(isinstance(p, str) for p in parts):
            return "".join(parts)
        return _NOT_LITERAL  # mixing str and bytes is a TypeError at run time
    if kind == "unary_operator":
        operator = _text(node.child_by_field_name("operator"))
        argument = node.child_by_field_name("argument")
        operand = _literal(ctx, argument, depth + 1)
        if isinstance(operand, int | float) and not isinstance(operand, bool):
            if operator == "-":
                return -operand
            if operator == "+":
                return operand
        return _NOT_LITERAL
    if kind == "parenthesized_expression":
        inner = [c for c in node.named_children if c.type != "comment"]
        return _literal(ctx, inner[0], depth + 1) if len(inner) == 1 else _NOT_LITERAL
    if kind in ("list", "tuple", "set"):
        items = []
        for child in node.named_children:
            if child.type == "comment":
                continue
            item = _literal(ctx, child, depth + 1)
            if item is _NOT_LITERAL:
                return _NOT_LITERAL
            items.append(item)
        return items
    if kind == "dictionary":
        out: dict[str, Any] = {}
        for pair in node.named_children:
            if pair.type == "comment":
                continue
            if pair.type != "pair":  # ``**other``
                return _NOT_LITERAL
            key = _literal(ctx, pair.child_by_field_name("key"), depth + 1)
            value = _literal(ctx, pair.child_by_field_name("value"), depth + 1)
            if value is _NOT_LITERAL or isinstance(key, list | dict) or key is _NOT_LITERAL:
                return _NOT_LITERAL
            out[_json_key(key)] = value
        return out
    if kind == "attribute":  # ``Color.RED`` of an enum defined in the script
        obj, attr = node.child_by_field_name("object"), node.child_by_field_name("attribute")
        if obj is not None and attr is not None and obj.type == "identifier":
            enum_name = _text(obj)
            if isinstance(_local_class_typ(ctx, enum_name, 0), StrType):
                value = _enum_members(ctx, enum_name, ctx.classes[enum_name][0]).get(_text(attr))
                if value is not None:
                    return value
    return _NOT_LITERAL


def _json_key(key: Any) -> str:
    # What ``json.dumps`` makes of a non-string key.
    if isinstance(key, str):
        return key
    if key is None:
        return "null"
    if isinstance(key, bool):
        return "true" if key else "false"
    return str(key)


def _string_value(node: Node) -> Any:
    children = node.children
    start = _text(children[0]) if children else ""
    if any(c.type == "interpolation" for c in children):
        return _NOT_LITERAL  # an f-string is computed at run time
    if start in ('"', "'", '"""', "'''") and not any(
        c.type == "string_content" and c.named_child_count for c in children
    ):
        # Fast path: no prefix and no escape sequences, the content is the value.
        return "".join(_text(c) for c in children if c.type == "string_content")
    try:
        value = ast.literal_eval(_text(node))
    except (ValueError, SyntaxError):
        return _NOT_LITERAL
    if isinstance(value, bytes):
        # JSON has no bytes; the form sends bytes base64-encoded.
        return base64.b64encode(value).decode("ascii")
    return value if isinstance(value, str) else _NOT_LITERAL


# -- docstring ------------------------------------------------------------------------------


def _docstring_descriptions(ctx: _Context, function: Node) -> dict[str, str]:
    """Argument descriptions from the Google-style ``Args:`` section of the docstring."""
    body = function.child_by_field_name("body")
    first = next((c for c in body.named_children if c.type != "comment"), None) if body else None
    if first is None or first.type != "expression_statement" or first.named_child_count != 1:
        return {}
    literal = first.named_children[0]
    if literal.type not in ("string", "concatenated_string"):
        return {}
    doc = _literal(ctx, literal)
    if not isinstance(doc, str) or ("Args:" not in doc and "Arguments:" not in doc):
        return {}
    lines = doc.expandtabs().splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.strip() in ("Args:", "Arguments:")), None)
    if start is None:
        return {}
    header_indent = _indent(lines[start])
    entry_indent: int | None = None
    parts: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in lines[start + 1 :]:
        stripped = line.strip()
        if not stripped:
            continue
        indent = _indent(line)
        if indent <= header_indent:  # the next section (``Returns:``) or the end
            break
        if entry_indent is None:
            entry_indent = indent
        if indent <= entry_indent:
            match = _DOC_ARG.match(stripped)
            current = None
            if match:
                current = parts[match.group(1)] = [match.group(2).strip()]
        elif current is not None:  # a continuation line, indented further
            current.append(stripped)
    return {name: " ".join(p for p in text if p) for name, text in parts.items() if any(text)}


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


# -- errors ---------------------------------------------------------------------------------


def _check_syntax(root: Node, data: bytes) -> None:
    captures = QueryCursor(_PROBLEMS).captures(root)
    if not captures:
        return
    # The first problem in the file; an ERROR wins over the nodes it contains.
    kind, node = min(
        ((kind, node) for kind, nodes in captures.items() for node in nodes),
        key=lambda item: (item[1].start_byte, -item[1].end_byte),
    )
    position = node.start_byte
    if kind == "missing":
        what = node.type
        message = f"missing {what.replace('_', ' ')}" if node.is_named else f"missing '{what}'"
    elif kind == "empty_block":
        position = _next_token(data, node.end_byte)
        owner = node.parent
        what = _COMPOUND_NAMES.get(owner.type, "statement") if owner else "statement"
        header_line = (owner or node).start_point.row + 1
        message = f"expected an indented block after {what} on line {header_line}"
    elif kind == "py2":
        keyword = _text(node.children[0]) if node.children else "print"
        message = f"Python 2 '{keyword}' statement: in Python 3 write {keyword}(...)"
    else:
        position, message = _describe_error(node, data)
    line, column = _position(data, position)
    raise ScriptError(message, line=line, column=column)


def _describe_error(node: Node, data: bytes) -> tuple[int, str]:
    """A plain-words message for an ERROR node, and where to point."""
    open_string: Node | None = None
    brackets: list[Node] = []
    for child in node.children:  # one pass: an ERROR node can hold a whole broken file
        if child.type == "string_start":
            open_string = open_string or child
        elif child.type == "string_end":
            open_string = None
        elif child.type in _OPENERS:
            brackets.append(child)
        elif brackets and child.type == _OPENERS[brackets[-1].type]:
            brackets.pop()
    if open_string is not None:
        return open_string.start_byte, "unterminated string literal"
    if brackets:
        opener = brackets[-1]  # like CPython, the innermost bracket left open
        return opener.start_byte, f"'{opener.type}' was never closed"

    line_end = data.find(b"\n", node.start_byte)
    first_line = data[node.start_byte : line_end if line_end >= 0 else len(data)]
    code = first_line.decode("utf-8", "replace").split("#", 1)[0].rstrip()
    if (
        _COMPOUND_KEYWORDS.match(code)
        and not code.endswith(":")
        and all(code.count(o) == code.count(c) for o, c in _OPENERS.items())
    ):
        # ``def main(x)`` followed by a body: the header lacks its colon.
        return node.start_byte + len(code.encode()), "expected ':'"

    # Tree-sitter often marks one token of a bad line (``hello`` in ``x = hello world``); the
    # token after it, when on the same line, makes the snippet recognisable.
    end = node.end_byte
    following = node.next_sibling
    if following is not None and following.start_point.row == node.end_point.row:
        end = max(end, following.end_byte)
    text = data[node.start_byte : end].decode("utf-8", "replace")
    snippet = text.split("\n", 1)[0].strip() or text.strip()
    if len(snippet) > 40:
        snippet = snippet[:37] + "..."
    return node.start_byte, f"invalid syntax near '{snippet}'"


def _next_token(data: bytes, offset: int) -> int:
    """The first byte after ``offset`` that is neither blank nor in a comment (or ``offset``)."""
    pos, size = offset, len(data)
    while pos < size:
        byte = data[pos]
        if byte in b" \t\r\n\f":
            pos += 1
        elif byte == ord("#"):
            end = data.find(b"\n", pos)
            pos = size if end < 0 else end
        else:
            return pos
    return offset  # only blanks follow: point at the end of the header, as CPython does


def _position(data: bytes, offset: int) -> tuple[int, int]:
    """1-based line and column (in characters) of a byte offset."""
    line_start = data.rfind(b"\n", 0, offset) + 1
    line = data.count(b"\n", 0, offset) + 1
    column = len(data[line_start:offset].decode("utf-8", "replace")) + 1
    return line, column


def _no_main_error(root: Node, data: bytes) -> ScriptError:
    message = "a Python script must define a top-level `def main(...)`"
    nested = QueryCursor(_NESTED_MAIN).captures(root).get("name")
    if nested:
        line, column = _position(data, nested[0].start_byte)
        return ScriptError(
            f"{message}; the `main` on line {line} is inside another block "
            "(a class or a function): move it to the top level",
            line=line,
            column=column,
        )
    return ScriptError(message + ", but none was found")


def _text(node: Node | None) -> str:
    if node is None or node.text is None:
        return ""
    return node.text.decode("utf-8", "replace")
