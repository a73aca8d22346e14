"""Login throttling: too many failed logins for an account, or from an address, within a
window, and further logins are refused (429) before any password is checked.

Failures are rows of ``login_failure`` (key ``email:<email>`` or ``addr:<address>``), so
every server process sees the same counts. A successful login clears its account's
failures (not its address's: one good password must not reset a spraying address). Rows
older than the window are deleted whenever a failure is recorded.

Concurrent attempts may each pass the check before any of them records its failure, so a
burst can exceed the limit by the number of attempts in flight; that bounds an attacker to
a handful more guesses, never an unlimited number.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import psycopg

from gristmill.db.queries import Q
from gristmill.errors import TooManyRequests

__all__ = ["LoginLimits", "check_login_allowed", "clear_failures", "record_failure"]


@dataclass(frozen=True)
class LoginLimits:
    """``GRISTMILL_LOGIN_MAX_FAILURES``, ``..._PER_ADDRESS`` and ``GRISTMILL_LOGIN_WINDOW_S``."""

    max_failures: int = 10
    max_failures_per_address: int = 50
    window_s: int = 300


def _account_key(email: str) -> str:
    return f"email:{email}"


def _address_key(address: str) -> str:
    return f"addr:{address}"


async def check_login_allowed(
    conn: psycopg.AsyncConnection, limits: LoginLimits, *, email: str, address: str
) -> None:
    """:class:`TooManyRequests` (with the seconds until the oldest failure leaves the window)
    when the account or the address has failed too often recently."""
    now = dt.datetime.now(dt.UTC)
    since = now - dt.timedelta(seconds=limits.window_s)
    checks = (
        (_account_key(email), limits.max_failures, "this account"),
        (_address_key(address), limits.max_failures_per_address, "your address"),
    )
    for key, limit, who in checks:
        row = await (
            await conn.execute(Q["count_login_failures"], {"key": key, "since": since})
        ).fetchone()
        count, oldest = (row[0], row[1]) if row else (0, None)
        if count >= limit:
            free_at = (oldest or now) + dt.timedelta(seconds=limits.window_s)
            retry = max(1, math.ceil((free_at - now).total_seconds()))
            raise TooManyRequests(
                f"too many failed logins for {who} ({count} in the last {limits.window_s} s); "
                f"try again in {retry} s",
                retry,
            )


async def record_failure(
    conn: psycopg.AsyncConnection, limits: LoginLimits, *, email: str, address: str
) -> None:
    """Count a failed login against the account and the address; drop expired rows."""
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=limits.window_s)
    await conn.execute(Q["prune_login_failures"], {"before": before})
    await conn.execute(Q["insert_login_failure"], {"key": _account_key(email)})
    await conn.execute(Q["insert_login_failure"], {"key": _address_key(address)})


async def clear_failures(conn: psycopg.AsyncConnection, *, email: str) -> None:
    """Forget an account's failures (after it logged in)."""
    await conn.execute(Q["clear_login_failures"], {"key": _account_key(email)})
