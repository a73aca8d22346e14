"""The embedded Postgres's restart budget and the worker's health port: their settings,
and how a death is described."""

from __future__ import annotations

import pytest
from gristmill.config import ConfigError, Settings
from gristmill.db.supervisor import describe_exit


def test_restart_budget_settings() -> None:
    settings = Settings.from_env(
        {"GRISTMILL_PG_MAX_RESTARTS": "0", "GRISTMILL_PG_RESTART_WINDOW_S": "60"}
    )
    assert settings.pg_max_restarts == 0
    assert settings.pg_restart_window_s == 60.0
    defaults = Settings.from_env({})
    assert (defaults.pg_max_restarts, defaults.pg_restart_window_s) == (5, 300.0)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GRISTMILL_PG_MAX_RESTARTS", "-1"),
        ("GRISTMILL_PG_RESTART_WINDOW_S", "0"),
        ("GRISTMILL_HEALTH_PORT", "0"),
        ("GRISTMILL_HEALTH_PORT", "http"),
    ],
)
def test_bad_restart_budget_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})


def test_health_port() -> None:
    assert Settings.from_env({}).health_port is None
    assert Settings.from_env({"GRISTMILL_HEALTH_PORT": "8001"}).health_port == 8001


def test_describe_exit() -> None:
    assert describe_exit(1) == "exit code 1"
    assert describe_exit(-9) == "killed by signal 9 (SIGKILL)"
