"""The named queries of ``sql/queries/*.sql`` (one file per domain), loaded once."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import LiteralString, cast

__all__ = ["Q", "like_prefix", "load_queries"]

_BLOCK = re.compile(r"^-- name: (\w+)\n", re.MULTILINE)


@cache
def load_queries() -> dict[str, LiteralString]:
    folder = resources.files("gristmill.db").joinpath("sql/queries")
    queries: dict[str, LiteralString] = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".sql"):
            continue
        parts = _BLOCK.split(entry.read_text("utf-8"))
        for name, body in zip(parts[1::2], parts[2::2], strict=True):
            if name in queries:
                raise ValueError(f"query {name!r} is defined twice (again in {entry.name})")
            # The text comes from a file inside the package, never from user input, which
            # is what LiteralString promises the type checker.
            queries[name] = cast(LiteralString, body.strip())
    return queries


class _Queries:
    def __getitem__(self, name: str) -> LiteralString:
        return load_queries()[name]


#: ``Q["claim_job"]`` is the text of the query named ``claim_job``.
Q = _Queries()


def like_prefix(text: str) -> str:
    """A ``LIKE ... ESCAPE '\\'`` pattern matching the strings that start with ``text``:
    ``%``, ``_`` and ``\\`` in it are literal (``path_start=%`` must not match every path)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"
