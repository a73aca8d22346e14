"""The JSON value of a parameter's default, when the default is a literal.

Windmill's rule: string, number, bigint, boolean, ``null``, object and array literals become
the default shown in the form; anything computed (``new Date()``, a call, a variable) is known
only when the script runs and is recorded as ``FUNCTION_CALL_DEFAULT``.
"""

from __future__ import annotations

import math
import re
from typing import Any, Final

from tree_sitter import Node

from gristmill_typescript.syntax import text

__all__ = ["NOT_LITERAL", "is_bigint_literal", "literal_value"]

#: Sentinel for "this expression is not a literal".
NOT_LITERAL: Final = object()

# Nesting of a literal default; deeper is not read (Python's own recursion limit is near).
_MAX_DEPTH: Final = 100
# Integers beyond this lose precision as JavaScript numbers; keep them as floats.
_MAX_SAFE_INTEGER: Final = 2**53 - 1
# Expressions that only change the static type of their operand (``[] as string[]``).
_TYPE_ONLY_WRAPPERS: Final = frozenset(
    {"parenthesized_expression", "as_expression", "satisfies_expression", "non_null_expression"}
)

_SIMPLE_ESCAPES: Final = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "b": "\b",
    "f": "\f",
    "v": "\v",
    "0": "\0",
}
_ESCAPE: Final = re.compile(
    r"\\(u\{[0-9a-fA-F]+\}|u[0-9a-fA-F]{4}|x[0-9a-fA-F]{2}|\r\n|[\s\S])", re.ASCII
)


def literal_value(node: Node | None, depth: int = 0) -> Any:
    """The JSON value of a literal expression, or ``NOT_LITERAL``."""
    if node is None or depth > _MAX_DEPTH:
        return NOT_LITERAL
    node = _unwrap(node)
    kind = node.type
    if kind == "string":
        return _string_value(node)
    if kind == "template_string":
        if any(c.type == "template_substitution" for c in node.named_children):
            return NOT_LITERAL  # computed when the script runs
        return _string_value(node)
    if kind == "number":
        return _number_value(text(node))
    if kind == "true":
        return True
    if kind == "false":
        return False
    if kind in ("null", "undefined"):
        return None
    if kind == "unary_expression":
        operator = text(node.child_by_field_name("operator"))
        operand = literal_value(node.child_by_field_name("argument"), depth + 1)
        if isinstance(operand, int | float) and not isinstance(operand, bool):
            if operator == "-":
                return -operand
            if operator == "+":
                return operand
        return NOT_LITERAL
    if kind == "array":
        return _array_value(node, depth)
    if kind == "object":
        return _object_value(node, depth)
    return NOT_LITERAL


def is_bigint_literal(node: Node | None) -> bool:
    """Whether the expression is a bigint literal (``10n``, ``-3n``): main expects a BigInt."""
    if node is None:
        return False
    node = _unwrap(node)
    if node.type == "unary_expression":
        argument = node.child_by_field_name("argument")
        return argument is not None and is_bigint_literal(argument)
    return node.type == "number" and text(node).endswith("n")


def _unwrap(node: Node) -> Node:
    for _ in range(_MAX_DEPTH):
        if node.type not in _TYPE_ONLY_WRAPPERS:
            break
        inner = next((c for c in node.named_children if c.type != "comment"), None)
        if inner is None:
            break
        node = inner
    return node


def _array_value(node: Node, depth: int) -> Any:
    items: list[Any] = []
    previous_was_comma = True
    for child in node.children:
        if child.type in ("[", "]", "comment"):
            continue
        if child.type == ",":
            if previous_was_comma:
                return NOT_LITERAL  # a hole (``[1, , 2]``) has no JSON form
            previous_was_comma = True
            continue
        previous_was_comma = False
        item = literal_value(child, depth + 1)
        if item is NOT_LITERAL:  # a spread, a call, a variable
            return NOT_LITERAL
        items.append(item)
    return items


def _object_value(node: Node, depth: int) -> Any:
    out: dict[str, Any] = {}
    for child in node.named_children:
        if child.type == "comment":
            continue
        if child.type != "pair":  # ``{x}``, ``{...other}``, methods
            return NOT_LITERAL
        key = _property_key(child.child_by_field_name("key"))
        value = literal_value(child.child_by_field_name("value"), depth + 1)
        if key is None or value is NOT_LITERAL:
            return NOT_LITERAL
        out[key] = value
    return out


def _property_key(node: Node | None) -> str | None:
    if node is None:
        return None
    if node.type == "property_identifier":
        return text(node)
    if node.type == "string":
        value = _string_value(node)
        return value if isinstance(value, str) else None
    if node.type == "number":
        number = _number_value(text(node))
        if number is NOT_LITERAL:
            return None
        # The key JavaScript makes of a number (``{1.0: x}`` has the key "1").
        if isinstance(number, float) and number.is_integer():
            number = int(number)
        return str(number)
    return None  # a computed key (``[name]: x``)


def _string_value(node: Node) -> Any:
    parts: list[str] = []
    for child in node.children:
        if child.type == "string_fragment":
            parts.append(text(child))
        elif child.type == "escape_sequence":
            parts.append(_unescape(text(child)))
    return "".join(parts)


def _unescape(sequence: str) -> str:
    def replace(match: re.Match[str]) -> str:
        body = match.group(1)
        if body.startswith("u{"):
            code = int(body[2:-1], 16)
            return chr(code) if code <= 0x10FFFF else ""
        if body[0] in "ux" and len(body) > 1:
            return chr(int(body[1:], 16))
        if body in ("\n", "\r\n", "\r", "\u2028", "\u2029"):
            return ""  # a line continuation
        return _SIMPLE_ESCAPES.get(body, body)

    return _ESCAPE.sub(replace, sequence)


def _number_value(literal: str) -> Any:
    literal = literal.replace("_", "")
    bigint = literal.endswith("n")
    if bigint:
        literal = literal[:-1]
    lowered = literal.lower()
    try:
        if lowered.startswith(("0x", "0o", "0b")):
            return int(lowered, 0)
        if bigint:
            return int(literal, 10)
        if len(literal) > 1 and literal[0] == "0" and literal.isdigit():
            # A legacy octal (``017``) is an error in a module; a decimal such as ``08`` too.
            return NOT_LITERAL
        number = float(literal)
    except ValueError:
        return NOT_LITERAL
    if not math.isfinite(number):
        return NOT_LITERAL  # ``1e999``: JSON has no infinity
    # Windmill: an integral number is an integer default (and so an ``int`` parameter).
    if number.is_integer() and abs(number) <= _MAX_SAFE_INTEGER:
        return int(number)
    return number
