"""``npm:`` import specifiers for Bun.

Deno reads ``import x from "npm:pkg@1.2.3"`` itself; Bun does not know the prefix, and its
runtime plugins are not consulted for the imports of a TypeScript file. A script written for
Deno (or Windmill) still runs on Bun because the prefix is dropped from the copy of the script
the job runs: Bun installs ``pkg@1.2.3`` on its own (auto-install). Only import sources
change, so line numbers in stack traces stay those of the script.
"""

from __future__ import annotations

from typing import Final

from tree_sitter import Query, QueryCursor

from gristmill_typescript.syntax import LANGUAGE, parse

__all__ = ["without_npm_prefixes"]

_PREFIX: Final = "npm:"
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


def without_npm_prefixes(source: str) -> str:
    """``source`` with ``npm:`` removed from the start of its import specifiers."""
    if _PREFIX not in source:  # most scripts: no parse needed
        return source
    tree, data = parse(source)
    starts = sorted(
        node.start_byte
        for node in QueryCursor(_SOURCES).captures(tree.root_node).get("source", [])
        if data.startswith(_PREFIX.encode(), node.start_byte)
    )
    if not starts:
        return source
    out = bytearray()
    previous = 0
    for start in starts:
        out += data[previous:start]
        previous = start + len(_PREFIX)
    out += data[previous:]
    return out.decode("utf-8")
