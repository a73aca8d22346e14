"""The import specifiers of a script, and rewriting them in the copy of the script a job runs.

Deno reads ``import x from "npm:pkg@1.2.3"`` itself; Bun does not know the prefix, and its
runtime plugins are not consulted for the imports of a TypeScript file. A script written for
Deno (or Windmill) still runs on Bun because the prefix is dropped from the copy of the script
the job runs: Bun installs ``pkg@1.2.3`` on its own (auto-install), or finds it in the job's
installed dependencies. Only import sources change, so line numbers in stack traces stay those
of the script.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from tree_sitter import Node, Query, QueryCursor

from gristmill_typescript.syntax import LANGUAGE, parse

__all__ = ["ImportSource", "import_sources", "rewrite_sources", "without_npm_prefixes"]

_PREFIX: Final = "npm:"
# Static imports and re-exports, ``import x = require("x")``, and ``import("x")`` with a
# string literal (a computed specifier cannot be known before the script runs).
_SOURCES: Final = Query(
    LANGUAGE,
    """
    (import_statement source: (string (string_fragment) @source))
    (export_statement source: (string (string_fragment) @source))
    (import_require_clause source: (string (string_fragment) @source))
    (call_expression
      function: (import)
      arguments: (arguments . (string (string_fragment) @source)))
    """,
)
# A cheap test before parsing: most scripts that import nothing skip the parse.
_MAY_IMPORT: Final = re.compile(r"\b(?:import|from)\b")


@dataclass(frozen=True)
class ImportSource:
    """One import specifier, where it is (UTF-8 byte offsets, 1-based line)."""

    specifier: str
    start: int
    end: int
    line: int
    #: ``import type ... from`` / ``export type ... from``: erased before the script runs.
    type_only: bool


def import_sources(source: str) -> list[ImportSource]:
    """The import specifiers of ``source``, in source order."""
    if not _MAY_IMPORT.search(source):
        return []
    tree, data = parse(source)
    nodes = QueryCursor(_SOURCES).captures(tree.root_node).get("source", [])
    found = [
        ImportSource(
            specifier=data[node.start_byte : node.end_byte].decode("utf-8", "replace"),
            start=node.start_byte,
            end=node.end_byte,
            line=node.start_point.row + 1,
            type_only=_is_type_only(node),
        )
        for node in nodes
    ]
    return sorted(found, key=lambda found: found.start)


def _is_type_only(fragment: Node) -> bool:
    string = fragment.parent
    statement = string.parent if string is not None else None
    if statement is None or statement.type not in ("import_statement", "export_statement"):
        return False
    return any(child.type == "type" and not child.is_named for child in statement.children)


def rewrite_sources(source: str, replace: Callable[[ImportSource], str | None]) -> str:
    """``source`` with each import specifier for which ``replace`` gives a text replaced by
    it (``None``: left as it is). ``source`` itself when nothing changes."""
    sources = import_sources(source)
    if not sources:
        return source
    data = source.removeprefix("\ufeff").encode("utf-8", "replace")
    out = bytearray()
    previous = 0
    changed = False
    for found in sources:
        new = replace(found)
        if new is None or new == found.specifier:
            continue
        out += data[previous : found.start] + new.encode("utf-8")
        previous = found.end
        changed = True
    if not changed:
        return source
    out += data[previous:]
    return out.decode("utf-8")


def without_npm_prefixes(source: str) -> str:
    """``source`` with ``npm:`` removed from the start of its import specifiers."""
    if _PREFIX not in source:  # most scripts: no parse needed
        return source
    return rewrite_sources(source, _drop_npm_prefix)


def _drop_npm_prefix(found: ImportSource) -> str | None:
    return found.specifier.removeprefix(_PREFIX) if found.specifier.startswith(_PREFIX) else None
