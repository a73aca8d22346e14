"""What the job's wrapper executes: the script's statements, each with the parameters it uses.

PostgreSQL numbers a statement's parameters from ``$1`` with no gap, so a statement using
``$2`` and ``$5`` of the script is sent with them renumbered ``$1`` and ``$2``. A renumbered
placeholder keeps the length of the original (``$12`` becomes ``$3`` and a space), so a
position PostgreSQL reports in the statement is the same position in the script.
"""

from __future__ import annotations

from typing import Any

from gristmill_sql.signature import DATABASE_ARG, PgScript

__all__ = ["PLAN_FILE", "build_plan"]

PLAN_FILE = "plan.json"


def build_plan(script: PgScript, *, timeout_s: float) -> dict[str, Any]:
    """The plan as JSON, for ``wrapper.py``."""
    source = script.lexed.source
    statements = []
    for statement in script.lexed.statements:
        used = sorted({param.index for param in statement.params})
        renumbered = {old: new for new, old in enumerate(used, start=1)}
        pieces = []
        last = statement.start
        for param in statement.params:
            pieces.append(source[last : param.start])
            pieces.append(f"${renumbered[param.index]}".ljust(param.end - param.start))
            last = param.end
        pieces.append(source[last : statement.end])
        statements.append({"sql": "".join(pieces), "offset": statement.start, "params": used})
    return {
        "source": source,
        "statements": statements,
        "args": [
            {
                "index": arg.index,
                "name": arg.name,
                "otyp": arg.otyp,
                "default": arg.default,
                "has_default": arg.has_default,
                "inferred": arg.inferred,
            }
            for arg in script.args
        ],
        "database_arg": DATABASE_ARG if script.database is None else None,
        "database_path": script.database,
        "timeout_s": timeout_s,
    }
