"""Versioned schema migrations: ``sql/migrations/NNNN_name.sql``, applied in order at start.

Applied under an advisory lock, so many processes starting at once against one database
apply each migration exactly once. Each migration runs in its own transaction.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import resources
from typing import LiteralString, cast

import psycopg

from gristmill.db.queries import Q

__all__ = ["Migration", "apply_migrations", "list_migrations"]

log = logging.getLogger(__name__)

# Any constant distinct from other applications' advisory locks on the same database.
_LOCK_ID = 0x67726973746D696C  # "gristmil"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def list_migrations() -> list[Migration]:
    folder = resources.files("gristmill.db").joinpath("sql/migrations")
    migrations = []
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        number, _, rest = entry.name.partition("_")
        migrations.append(Migration(int(number), rest.removesuffix(".sql"), entry.read_text()))
    migrations.sort(key=lambda m: m.version)
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a version number: {versions}")
    return migrations


def apply_migrations(conn: psycopg.Connection) -> list[int]:
    """Bring the schema up to date; return the versions applied now."""
    conn.autocommit = True
    conn.execute(Q["migration_lock"], {"lock_id": _LOCK_ID})
    try:
        conn.execute(Q["create_migration_table"])
        done = {row[0] for row in conn.execute(Q["applied_migrations"])}
        applied = []
        for migration in list_migrations():
            if migration.version in done:
                continue
            log.info("applying migration %04d_%s", migration.version, migration.name)
            with conn.transaction():
                conn.execute(cast(LiteralString, migration.sql))
                conn.execute(
                    Q["record_migration"], {"version": migration.version, "name": migration.name}
                )
            applied.append(migration.version)
        return applied
    finally:
        conn.execute(Q["migration_unlock"], {"lock_id": _LOCK_ID})
