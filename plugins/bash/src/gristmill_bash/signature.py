"""The arguments of a Bash script: its ``name="$1"`` lines, read as Windmill reads them.

A line ``name="$1"``, ``name="${1}"`` or ``name="${1:-default}"`` (a trailing ``# comment``
allowed) makes ``name`` the script's first argument, and so on for ``$2``, ``$3``...: the
arguments run from ``$1`` up to the first missing index. All are strings; ``${n:-default}``
makes one optional (``${n:-}``: default ``""``).

Windmill matches those lines anywhere in the file. Here a line only counts where Bash would
run it as an assignment (tree-sitter finds a ``variable_assignment`` at its start), so the
text of a here-document or of a multi-line string is not mistaken for an argument.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Final

import tree_sitter_bash
from gristmill import STR, Arg, Signature
from tree_sitter import Language, Node, Parser, Query, QueryCursor, Tree

__all__ = ["ArgLine", "BashParse", "arg_lines", "parse", "signature_from_lines"]

# Built once: creating a Language/Parser/Query costs far more than parsing a script.
LANGUAGE: Final = Language(tree_sitter_bash.language())
_PARSER: Final = Parser(LANGUAGE)
# A tree-sitter parser is not safe to share between threads; parsing is short, so a lock is
# cheaper than one parser per thread.
_PARSER_LOCK: Final = threading.Lock()
_ASSIGNMENTS: Final = Query(LANGUAGE, "(variable_assignment) @assignment")

# Windmill's rule, one line at a time. Bash names are ASCII (Windmill's \w also takes a
# name starting with a digit, which Bash would run as a command, not an assignment).
_ARG_LINE: Final = re.compile(
    r'([A-Za-z_][A-Za-z0-9_]*)="\$(?:(\d+)|\{(\d+)\}|\{(\d+):-(.*)\})"[\t ]*(?:#.*)?'
)
# Inside double quotes a backslash only escapes these; the default is what Bash would use.
_DQUOTE_ESCAPE: Final = re.compile(r'\\([$`"\\])')


@dataclass(frozen=True)
class ArgLine:
    """One ``name="$n"`` line: its 1-based line number, the index and the default."""

    line: int
    index: int
    name: str
    default: str | None


@dataclass(frozen=True)
class BashParse:
    tree: Tree
    data: bytes


def parse(source: str) -> BashParse:
    data = source.encode("utf-8", "replace")
    with _PARSER_LOCK:
        tree = _PARSER.parse(data)
    return BashParse(tree, data)


def arg_lines(source: str, parsed: BashParse | None = None) -> list[ArgLine]:
    """Every argument line of the script, in source order."""
    parsed = parsed or parse(source)
    lines = source.split("\n")
    root = parsed.tree.root_node
    if root.has_error:
        # Where tree-sitter could not follow the script (its grammar misses a few valid
        # constructs), Windmill's line rule alone decides.
        rows: set[int] | None = None
    else:
        rows = {node.start_point.row for node in _captures(root) if node.start_point.column == 0}
    found = []
    for row, text in enumerate(lines):
        if rows is not None and row not in rows:
            continue
        match = _ARG_LINE.fullmatch(text.removesuffix("\r"))
        if match is None:
            continue
        name, plain, braced, with_default, default = match.groups()
        index = int(plain or braced or with_default)
        if with_default is not None:
            default = _DQUOTE_ESCAPE.sub(r"\1", default)
        found.append(ArgLine(row + 1, index, name, default))
    return found


def _captures(root: Node) -> list[Node]:
    return QueryCursor(_ASSIGNMENTS).captures(root).get("assignment", [])


def signature_from_lines(lines: list[ArgLine]) -> Signature:
    """Arguments ``$1`` up to the first index no line assigns (a later line for the same
    index wins, as in Windmill)."""
    by_index = {line.index: line for line in lines}
    args = []
    index = 1
    while index in by_index:
        line = by_index[index]
        args.append(
            Arg(
                name=line.name,
                typ=STR,
                default=line.default,
                has_default=line.default is not None,
            )
        )
        index += 1
    return Signature(args=tuple(args))
