"""The database: the connection pool (:mod:`~gristmill.db.pool`), the embedded Postgres
(:mod:`~gristmill.db.embedded`), migrations (``sql/migrations/*.sql``) and named queries
(``sql/queries/<domain>.sql``, :mod:`~gristmill.db.queries`)."""

from __future__ import annotations

from gristmill.db.pool import DatabaseUnavailableError, open_pool, redact, wait_for_database

__all__ = ["DatabaseUnavailableError", "open_pool", "redact", "wait_for_database"]
