"""Syntax errors of a Bash script, found by tree-sitter and confirmed by Bash itself.

tree-sitter-bash gives a precise position (the ``if`` never closed, the string never ended),
but its grammar misses a few valid constructs (``for x do``, some nested expansions, about
3 % of the distributions' own scripts). Refusing a valid script is worse than reporting an
error at run time, so when ``bash`` is at hand, ``bash -n`` (Bash's own parser; it runs
nothing) has the last word: a script Bash accepts is accepted. Without ``bash`` on the
machine, tree-sitter alone decides.

Bash also rejects what tree-sitter takes for commands (a stray ``fi``); those are left to the
run, where Bash reports them with their line, since ``bash -n`` also rejects valid scripts
whose syntax depends on options set while they run (``shopt -s extglob``; checked with
extglob on, but other options exist).
"""

from __future__ import annotations

import re
import subprocess
from typing import Final

from gristmill import ScriptError
from tree_sitter import Node

from gristmill_bash.signature import BashParse

__all__ = ["check_syntax"]

# What a construct missing its end is called, for the message.
_CONSTRUCTS: Final = {
    "if_statement": "this `if`",
    "for_statement": "this `for` loop",
    "c_style_for_statement": "this `for ((...))` loop",
    "while_statement": "this loop",
    "case_statement": "this `case`",
    "compound_statement": "this `{` block",
    "subshell": "this `(` subshell",
    "function_definition": "this function",
    "command_substitution": "this command substitution",
    "process_substitution": "this process substitution",
    "arithmetic_expansion": "this arithmetic expansion",
    "expansion": "this `${` expansion",
    "string": "this string",
    "raw_string": "this string",
    "ansi_c_string": "this string",
    "test_command": "this test",
    "array": "this array",
}
_BASH_ERROR: Final = re.compile(r"line (\d+): (.*)")
_CHECK_TIMEOUT_S: Final = 10.0


def check_syntax(parsed: BashParse, bash: str | None) -> None:
    """Raise :class:`ScriptError` for a syntax error both tree-sitter and Bash see."""
    root = parsed.tree.root_node
    if not root.has_error:
        return
    problem = _first_problem(root)
    if problem is None:
        return
    verdict = _bash_verdict(parsed.data, bash) if bash else None
    if verdict is not None and verdict.ok:
        return
    node, message = problem
    line, column = _position(parsed.data, node)
    if verdict is not None and verdict.message:
        message += f" (bash: {verdict.message})"
    raise ScriptError(message, line=line, column=column)


def _first_problem(root: Node) -> tuple[Node, str] | None:
    """The first ERROR or MISSING node, in source order, and what to say about it."""
    stack = [root]
    while stack:
        node = stack.pop()
        if node.is_missing:
            if node.type == "heredoc_end":
                # Bash runs an unterminated here-document to the end of the file.
                continue
            return _missing(node)
        if node.is_error:
            return node, _near(node)
        if node.has_error:
            stack.extend(reversed(node.children))
    return None


def _missing(node: Node) -> tuple[Node, str]:
    token = node.type
    parent = node.parent
    while parent is not None and parent.type not in _CONSTRUCTS:
        parent = parent.parent
    if parent is None:
        return node, f"syntax error: `{token}` expected here"
    what = _CONSTRUCTS[parent.type]
    return parent, f"{what} is never closed: `{token}` is missing"


def _near(node: Node) -> str:
    text = (node.text or b"").decode("utf-8", "replace").strip()
    first = text.split("\n", 1)[0]
    if first[:1] in ("'", '"'):
        return f"this string is never closed: the {first[0]} here has no closing {first[0]}"
    if len(first) > 40:
        first = first[:37] + "..."
    if not first:
        return "syntax error"
    return f"syntax error near `{first}`"


def _position(data: bytes, node: Node) -> tuple[int, int]:
    """1-based line and column of the node's first character that is not blank."""
    start = node.start_byte
    end = max(node.end_byte, start)
    while start < end and data[start : start + 1] in (b" ", b"\t", b"\n", b"\r"):
        start += 1
    if start == end:
        start = node.start_byte
    line_start = data.rfind(b"\n", 0, start) + 1
    line = data.count(b"\n", 0, start) + 1
    # tree-sitter counts bytes; people count characters.
    column = len(data[line_start:start].decode("utf-8", "replace")) + 1
    return line, column


class _Verdict:
    def __init__(self, ok: bool, message: str = "") -> None:
        self.ok = ok
        self.message = message


def _bash_verdict(data: bytes, bash: str) -> _Verdict | None:
    """What ``bash -n`` says of the script, or None if Bash could not be asked."""
    try:
        done = subprocess.run(
            [bash, "-O", "extglob", "-n"],
            input=data,
            capture_output=True,
            # Nothing of the caller's environment: BASH_ENV would be read, even with -n.
            env={"LC_ALL": "C"},
            timeout=_CHECK_TIMEOUT_S,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode == 0:
        return _Verdict(True)
    for text in done.stderr.decode("utf-8", "replace").splitlines():
        match = _BASH_ERROR.search(text)
        if match:
            return _Verdict(False, f"line {match.group(1)}: {match.group(2)}")
    return _Verdict(False)
