"""Parsing TypeScript with tree-sitter, and reporting its syntax errors in plain words.

The whole script is parsed (tree-sitter reads a typical script in well under a millisecond),
so a syntax error anywhere is reported with its position when the script is saved, instead of
surfacing later as a failed job.
"""

from __future__ import annotations

import threading
from typing import Final

import tree_sitter_typescript
from gristmill import ScriptError
from tree_sitter import Language, Node, Parser, Query, QueryCursor, Tree

__all__ = ["LANGUAGE", "check_syntax", "first_child", "parse", "position", "text"]

# Built once: creating a Language/Parser/Query costs far more than parsing a script.
LANGUAGE: Final = Language(tree_sitter_typescript.language_typescript())
_PARSER: Final = Parser(LANGUAGE)
# A tree-sitter parser is not safe to share between threads; parsing is short, so a lock is
# cheaper than one parser per thread.
_PARSER_LOCK: Final = threading.Lock()

_PROBLEMS: Final = Query(LANGUAGE, "(ERROR) @error (MISSING) @missing")

_OPENERS: Final = {"(": ")", "[": "]", "{": "}", "${": "}"}
_CLOSERS: Final = frozenset(_OPENERS.values())
_QUOTES: Final = {'"': "string literal", "'": "string literal", "`": "template literal"}


def parse(source: str) -> tuple[Tree, bytes]:
    """The syntax tree of ``source`` and the UTF-8 bytes its positions refer to."""
    if source.startswith("\ufeff"):  # Bun and Deno ignore a BOM; tree-sitter would not
        source = source[1:]
    data = source.encode("utf-8", "replace")
    with _PARSER_LOCK:
        tree = _PARSER.parse(data)
    return tree, data


def check_syntax(root: Node, data: bytes) -> None:
    """Raise :class:`ScriptError` at the first syntax error of the tree, if any."""
    if not root.has_error:
        return
    captures = QueryCursor(_PROBLEMS).captures(root)
    found = [(kind, node) for kind, nodes in captures.items() for node in nodes]
    if not found:
        return
    # The first problem in the file; an ERROR wins over the nodes it contains.
    kind, node = min(found, key=lambda item: (item[1].start_byte, -item[1].end_byte))
    if kind == "missing":
        offset, message = _describe_missing(node, data)
    else:
        offset, message = _describe_error(node, data)
    line, column = position(data, offset)
    raise ScriptError(message, line=line, column=column)


def _describe_missing(node: Node, data: bytes) -> tuple[int, str]:
    what = node.type
    if what in _CLOSERS and not data[node.start_byte :].strip():
        # A bracket left open until the end of the file: point at the one left open, as the
        # place where tree-sitter gave up says nothing.
        opener = _unclosed_opener(node)
        if opener is not None:
            return opener.start_byte, f"'{text(opener)}' was never closed"
    if node.is_named:
        return node.start_byte, f"missing {what.replace('_', ' ')}"
    return node.start_byte, f"missing '{what}'"


def _unclosed_opener(missing: Node) -> Node | None:
    parent = missing.parent
    if parent is None:
        return None
    for child in parent.children:
        if not child.is_named and child.type in _OPENERS:
            return child
    return None


def _describe_error(node: Node, data: bytes) -> tuple[int, str]:
    """A plain-words message for an ERROR node, and where to point."""
    brackets: list[Node] = []
    for child in node.children:  # one pass: an ERROR node can hold a whole broken file
        kind = child.type
        if child.is_named:
            continue
        if kind in _QUOTES and child.end_byte == child.start_byte + 1:
            # A lone quote: a string that never ends (on its line, for '' and "").
            return child.start_byte, f"unterminated {_QUOTES[kind]}"
        if kind in _OPENERS:
            brackets.append(child)
        elif kind in _CLOSERS and brackets:
            if _OPENERS[brackets[-1].type] == kind:
                brackets.pop()
            else:  # ``[1, 2 }``: the bracket opened last is the one left open
                opener = brackets[-1]
                return opener.start_byte, f"'{text(opener)}' was never closed"
    if brackets:
        opener = brackets[-1]
        return opener.start_byte, f"'{text(opener)}' was never closed"

    # Tree-sitter often marks one token of a bad line (``a`` in ``main(a string)``); the token
    # after it, when on the same line, makes the snippet recognisable.
    end = node.end_byte
    following = node.next_sibling
    if following is not None and following.start_point.row == node.end_point.row:
        end = max(end, following.end_byte)
    snippet = data[node.start_byte : end].decode("utf-8", "replace")
    snippet = snippet.split("\n", 1)[0].strip() or snippet.strip()
    if len(snippet) > 40:
        snippet = snippet[:37] + "..."
    return node.start_byte, f"invalid syntax near '{snippet}'"


def position(data: bytes, offset: int) -> tuple[int, int]:
    """1-based line and column (in characters) of a byte offset."""
    line_start = data.rfind(b"\n", 0, offset) + 1
    line = data.count(b"\n", 0, offset) + 1
    column = len(data[line_start:offset].decode("utf-8", "replace")) + 1
    return line, column


def text(node: Node | None) -> str:
    """The source text of a node (empty for none)."""
    if node is None or node.text is None:
        return ""
    return node.text.decode("utf-8", "replace")


def first_child(node: Node | None) -> Node | None:
    """The first named child of a node that is not a comment (``x: /* why */ string``)."""
    if node is None:
        return None
    return next((c for c in node.named_children if c.type != "comment"), None)
