"""Syntax errors of a Go script, found by tree-sitter and told with a 1-based position.

Tree-sitter recovers from errors by wrapping what it could not read in ``ERROR`` nodes and
inventing ``MISSING`` tokens; the first of them in the file is the one reported, in words close
to the Go compiler's. The compiler still has the last word (type errors, unused variables): the
build step reports those, this module only spares the user a save that cannot compile.
"""

from __future__ import annotations

from typing import Final

from gristmill import ScriptError
from tree_sitter import Language, Node, Query, QueryCursor

__all__ = ["SyntaxChecker", "position", "text"]

_OPENERS: Final = {"(": ")", "[": "]", "{": "}"}


class SyntaxChecker:
    """Holds the compiled query: building it costs far more than running it."""

    def __init__(self, language: Language) -> None:
        self._problems = Query(language, "(ERROR) @error (MISSING) @missing")

    def check(self, root: Node, data: bytes) -> None:
        """Raise :class:`ScriptError` at the first syntax error of the tree, if any."""
        captures = QueryCursor(self._problems).captures(root)
        if not captures:
            return
        # The first problem in the file; an ERROR wins over the nodes it contains.
        kind, node = min(
            ((kind, node) for kind, nodes in captures.items() for node in nodes),
            key=lambda item: (item[1].start_byte, -item[1].end_byte),
        )
        if kind == "missing" and node.type in ('"', "`") and node.parent is not None:
            # A string cut by the end of its line: point at its start, as Go does.
            offset, message = node.parent.start_byte, "syntax error: string literal not terminated"
        elif kind == "missing":
            offset, message = node.start_byte, _missing_message(node)
        else:
            offset, message = _describe_error(node, data)
        line, column = position(data, offset)
        raise ScriptError(message, line=line, column=column)


def _missing_message(node: Node) -> str:
    what = node.type
    if node.is_named:
        return f"syntax error: missing {what.replace('_', ' ')}"
    return f"syntax error: missing '{what}'"


def _describe_error(node: Node, data: bytes) -> tuple[int, str]:
    """A plain-words message for an ERROR node, and the byte offset to point at."""
    starts = [node.start_byte] + [c.start_byte for c in node.children if c.type in ('"', "`")]
    for start in starts:
        if _opens_unterminated_string(data, start):
            return start, "syntax error: string literal not terminated"
    brackets: list[Node] = []
    for child in node.children:  # one pass: an ERROR node can hold a whole broken file
        if child.type in _OPENERS:
            brackets.append(child)
        elif brackets and child.type == _OPENERS[brackets[-1].type]:
            brackets.pop()
    if brackets:
        opener = brackets[-1]  # the innermost bracket left open
        return opener.start_byte, f"syntax error: '{opener.type}' is never closed"
    # Tree-sitter often marks one token of a bad line; the token after it, when on the same
    # line, makes the snippet recognisable.
    end = node.end_byte
    following = node.next_sibling
    if following is not None and following.start_point.row == node.end_point.row:
        end = max(end, following.end_byte)
    raw = data[node.start_byte : end].decode("utf-8", "replace")
    snippet = raw.split("\n", 1)[0].strip() or raw.strip()
    if len(snippet) > 40:
        snippet = snippet[:37] + "..."
    return node.start_byte, f"syntax error near '{snippet}'"


def _opens_unterminated_string(data: bytes, offset: int) -> bool:
    """Whether a string literal starting at ``offset`` has no end: an interpreted string
    ends on its own line, a raw string anywhere after."""
    quote = data[offset : offset + 1]
    if quote == b"`":
        return data.find(b"`", offset + 1) < 0
    if quote != b'"':
        return False
    pos = offset + 1
    while pos < len(data):
        byte = data[pos]
        if byte == ord("\\"):
            pos += 2
            continue
        if byte == ord('"'):
            return False
        if byte == ord("\n"):
            return True
        pos += 1
    return True


def position(data: bytes, offset: int) -> tuple[int, int]:
    """1-based line and column (in characters, as an editor counts) of a byte offset."""
    line_start = data.rfind(b"\n", 0, offset) + 1
    line = data.count(b"\n", 0, offset) + 1
    column = len(data[line_start:offset].decode("utf-8", "replace")) + 1
    return line, column


def text(node: Node | None) -> str:
    if node is None or node.text is None:
        return ""
    return node.text.decode("utf-8", "replace")
