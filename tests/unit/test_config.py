"""Settings.from_env: defaults, parsing and errors that name the variable."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest
from gristmill.config import ConfigError, Settings, default_data_dir


def test_defaults_from_empty_environment() -> None:
    """An empty environment gives the dataclass defaults."""
    settings = Settings.from_env({})
    defaults = Settings()
    for f in fields(Settings):
        assert getattr(settings, f.name) == getattr(defaults, f.name), f.name
    assert settings.jobs_dir == settings.data_dir / "jobs"
    assert settings.data_dir == default_data_dir()
    assert settings.mode == "standalone"
    assert settings.port == 8000
    assert settings.num_workers == 2
    assert settings.worker_tags == ()
    assert settings.keep_job_dir is False
    assert settings.restart_zombie_jobs is True
    assert settings.timeout_wait_result_s == 600.0
    assert settings.queue_limit_wait_result is None
    assert settings.database_url == ""


def test_reads_process_environment_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an explicit mapping, os.environ is read."""
    monkeypatch.setenv("NUM_WORKERS", "5")
    assert Settings.from_env().num_workers == 5


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("NUM_WORKERS", "abc"),
        ("NUM_WORKERS", "-1"),
        ("MODE", "bogus"),
        ("KEEP_JOB_DIR", "maybe"),
        ("PORT", "-1"),
        ("PORT", "80.5"),
        ("TIMEOUT", "0"),
        ("SLEEP_QUEUE", "0"),
        ("TIMEOUT_WAIT_RESULT", "soon"),
        ("RESTART_ZOMBIE_JOBS", "2"),
        ("DATABASE_CONNECTIONS", "1"),
        ("QUEUE_LIMIT_WAIT_RESULT", "many"),
    ],
)
def test_bad_value_names_the_variable(name: str, value: str) -> None:
    """A value Gristmill cannot use raises ConfigError naming the variable and the value."""
    with pytest.raises(ConfigError) as info:
        Settings.from_env({name: value})
    assert name in str(info.value)
    assert value.strip().lower() in str(info.value).lower()


def test_port_above_65535_is_rejected() -> None:
    """A port number no socket can bind is a configuration error, not a crash at bind time."""
    with pytest.raises(ConfigError, match="PORT"):
        Settings.from_env({"PORT": "70000"})


def test_port_zero_and_max_accepted() -> None:
    """0 (any free port) and 65535 are valid ports."""
    assert Settings.from_env({"PORT": "0"}).port == 0
    assert Settings.from_env({"PORT": "65535"}).port == 65535


@pytest.mark.parametrize(("raw", "expected"), [("0", 2.0), ("-5", 2.0), ("0.5", 0.5), ("30", 30.0)])
def test_timeout_wait_result(raw: str, expected: float) -> None:
    """TIMEOUT_WAIT_RESULT of zero or less means 2 s, as in Windmill."""
    assert Settings.from_env({"TIMEOUT_WAIT_RESULT": raw}).timeout_wait_result_s == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", ()),
        ("python3", ("python3",)),
        ("python3, bash ,,deno", ("python3", "bash", "deno")),
        (" , ", ()),
    ],
)
def test_worker_tags(raw: str, expected: tuple[str, ...]) -> None:
    """WORKER_TAGS is a comma-separated list; blanks are dropped."""
    assert Settings.from_env({"WORKER_TAGS": raw}).worker_tags == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", True), ("TRUE", True), (" yes ", True), ("on", True), ("0", False), ("off", False)],
)
def test_booleans(raw: str, expected: bool) -> None:
    """Boolean variables take the usual spellings, case-insensitively."""
    assert Settings.from_env({"KEEP_JOB_DIR": raw}).keep_job_dir is expected


def test_mode_is_case_insensitive() -> None:
    """MODE=Worker means worker."""
    assert Settings.from_env({"MODE": " Worker "}).mode == "worker"


def test_data_dir_used(tmp_path: Path) -> None:
    """GRISTMILL_DATA_DIR becomes the (absolute) data directory."""
    settings = Settings.from_env({"GRISTMILL_DATA_DIR": str(tmp_path / "state")})
    assert settings.data_dir == (tmp_path / "state").resolve()
    assert Settings(data_dir=settings.data_dir).jobs_dir == settings.data_dir / "jobs"


def test_jobs_dir_setting(tmp_path: Path) -> None:
    """GRISTMILL_JOBS_DIR moves the job directories (for instance to a tmpfs)."""
    settings = Settings.from_env({"GRISTMILL_JOBS_DIR": str(tmp_path / "j")})
    assert settings.jobs_dir == (tmp_path / "j").resolve()


def test_data_dir_relative_is_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative GRISTMILL_DATA_DIR is resolved against the current directory."""
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({"GRISTMILL_DATA_DIR": "rel"})
    assert settings.data_dir.is_absolute()
    assert settings.data_dir == (tmp_path / "rel").resolve()


def test_urls() -> None:
    """BASE_URL loses its trailing slash; without it the public URL uses the port."""
    settings = Settings.from_env({"BASE_URL": "https://mill.example/", "PORT": "9000"})
    assert settings.public_url == "https://mill.example"
    assert settings.internal_url == "http://127.0.0.1:9000"
    assert Settings.from_env({"PORT": "9000"}).public_url == "http://localhost:9000"


def test_various_values_read() -> None:
    """Numbers and strings reach their fields."""
    settings = Settings.from_env(
        {
            "NUM_WORKERS": " 0 ",
            "QUEUE_LIMIT_WAIT_RESULT": "7",
            "DATABASE_URL": " postgres://x/y ",
            "WORKER_GROUP": "gpu",
            "TIMEOUT": "60",
        }
    )
    assert settings.num_workers == 0
    assert settings.queue_limit_wait_result == 7
    assert settings.database_url == "postgres://x/y"
    assert settings.worker_group == "gpu"
    assert settings.job_timeout_s == 60


@pytest.mark.parametrize("raw", ["0", "-1", "nan"])
def test_heartbeat_must_be_positive(raw: str) -> None:
    """A heartbeat interval of zero, below zero or NaN would spin the heartbeat loop."""
    with pytest.raises(ConfigError, match="GRISTMILL_HEARTBEAT_S"):
        Settings.from_env({"GRISTMILL_HEARTBEAT_S": raw})


def test_input_limits() -> None:
    settings = Settings.from_env(
        {
            "GRISTMILL_MAX_BODY_SIZE_MB": "5",
            "GRISTMILL_MAX_SCRIPT_SIZE_KB": "64",
            "GRISTMILL_MAX_ARGS_SIZE_MB": "2",
        }
    )
    assert (settings.max_body_size_mb, settings.max_script_size_kb) == (5, 64)
    assert settings.max_args_size_mb == 2
    with pytest.raises(ConfigError, match="GRISTMILL_MAX_BODY_SIZE_MB must be at least 1"):
        Settings.from_env({"GRISTMILL_MAX_BODY_SIZE_MB": "0"})


def test_shutdown_grace() -> None:
    """The stop's grace: 10 s unless set; a positive number of seconds."""
    assert Settings.from_env({}).shutdown_grace_s == 10.0
    assert Settings.from_env({"GRISTMILL_SHUTDOWN_GRACE_S": "2.5"}).shutdown_grace_s == 2.5
    for raw in ("0", "-3", "soon"):
        with pytest.raises(ConfigError, match="GRISTMILL_SHUTDOWN_GRACE_S"):
            Settings.from_env({"GRISTMILL_SHUTDOWN_GRACE_S": raw})
