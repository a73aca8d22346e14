"""Triggers: what starts a script or a flow on its own (issue 13, reference §6).

One module per trigger kind, so that a kind can be read, tested and later added as a plugin
on its own: schedules (cron), webhooks, HTTP routes, the Postgres trigger.

- :mod:`~gristmill.triggers.cron`: Windmill's schedule cron expressions (croner's syntax:
  an optional seconds field, ``L``, ``W``, ``#``) parsed into a ``Cron``, and its fire times
  in a timezone. Pure: no clock, no I/O.

Schedules themselves (storage, API, firing) come next. This package never imports
``gristmill.api`` or ``gristmill.server``.
"""

from __future__ import annotations

from gristmill.triggers.cron import Cron, CronError, load_timezone, parse_cron

__all__ = ["Cron", "CronError", "load_timezone", "parse_cron"]
