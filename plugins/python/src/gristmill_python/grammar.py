"""tree-sitter's Python grammar and one shared parser, for every reader of scripts here."""

from __future__ import annotations

import threading
from typing import Final

import tree_sitter_python
from tree_sitter import Language, Parser, Tree

__all__ = ["LANGUAGE", "parse"]

# Built once: creating a Language/Parser/Query costs far more than parsing a script.
LANGUAGE: Final = Language(tree_sitter_python.language())
_PARSER: Final = Parser(LANGUAGE)
# A tree-sitter parser is not safe to share between threads; parsing is short, so a lock is
# cheaper than one parser per thread.
_PARSER_LOCK: Final = threading.Lock()


def parse(data: bytes) -> Tree:
    """Parse UTF-8 source; safe to call from any thread."""
    with _PARSER_LOCK:
        return _PARSER.parse(data)
