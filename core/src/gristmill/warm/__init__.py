"""Warm runners: processes kept warm per environment, one isolated child per job (see
:mod:`gristmill.warm.pool` and :mod:`gristmill.warm.forkserver`)."""

from __future__ import annotations

from gristmill.warm.pool import FORKSERVER, WarmPool, WarmRun, WarmUnavailable

__all__ = ["FORKSERVER", "WarmPool", "WarmRun", "WarmUnavailable"]
