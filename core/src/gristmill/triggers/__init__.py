"""Triggers: what starts a script or a flow on its own (issue 13, reference §6).

One module per trigger kind, so that a kind can be read and tested on its own, and more
kinds added as plugins (the ``register_trigger_kinds`` hook):

- :mod:`~gristmill.triggers.kinds`: the contract of a kind (``TriggerKind``) and what the
  core lends it (``TriggerServices``); :mod:`~gristmill.triggers.store`: every kind's
  triggers in one table; :mod:`~gristmill.triggers.host`: a server's kinds and the leases of
  listeners; :mod:`~gristmill.triggers.runs`: runs as a trigger's owner;
  :mod:`~gristmill.triggers.builtin`: the core's kinds, registered through the hook.
- :mod:`~gristmill.triggers.http`: HTTP routes (``/api/r/...``), a kind.
- :mod:`~gristmill.triggers.postgres` and :mod:`~gristmill.triggers.pgoutput`: the Postgres
  trigger (logical replication), a listener kind.
- :mod:`~gristmill.triggers.webhooks`: the rules of the run endpoints as webhooks (the body
  as arguments, the answer a result sets). Pure.
- :mod:`~gristmill.triggers.cron`: Windmill's schedule cron expressions (croner's syntax:
  an optional seconds field, ``L``, ``W``, ``#``) and their fire times in a timezone. Pure.
- :mod:`~gristmill.triggers.schedules` (storage, checks) and
  :mod:`~gristmill.triggers.ticker` (firing, retries, handlers): schedules, with their own
  table and routes.

This package never imports ``gristmill.api`` or ``gristmill.server`` (a test checks).
"""

from __future__ import annotations

from gristmill.triggers.cron import Cron, CronError, load_timezone, parse_cron

__all__ = ["Cron", "CronError", "load_timezone", "parse_cron"]
