"""Settings read from the environment, with Windmill's variable names where one exists.

Nothing reads the environment at import time: :func:`Settings.from_env` is called by the
commands, and tests build a :class:`Settings` directly.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import platformdirs

from gristmill.errors import GristmillError

__all__ = [
    "INSTANCE_KEY_BYTES",
    "MODES",
    "SANDBOXES",
    "ConfigError",
    "Settings",
    "default_data_dir",
    "parse_instance_key",
]

MODES = ("standalone", "server", "worker")
#: ``auto``: bwrap where it runs, else nsjail where installed; see docs/security.md.
SANDBOXES = ("auto", "bwrap", "nsjail", "none")


class ConfigError(GristmillError, ValueError):
    """An environment variable with a value Gristmill cannot use."""


#: The length of the instance key (AES-256).
INSTANCE_KEY_BYTES = 32


def parse_instance_key(raw: str, *, name: str = "GRISTMILL_INSTANCE_KEY") -> bytes | None:
    """The 32 bytes of an instance key written as 64 hex digits or base64 (standard or
    URL-safe); ``None`` for an empty value. Anything else is a :class:`ConfigError`: a
    mistyped key must stop the process, not encrypt with another key."""
    text = raw.strip()
    if not text:
        return None
    if re.fullmatch(r"[0-9a-fA-F]{64}", text):
        return bytes.fromhex(text)
    try:
        key = base64.b64decode(text.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != INSTANCE_KEY_BYTES:
        raise ConfigError(
            f"{name} must be {INSTANCE_KEY_BYTES} random bytes written as 64 hex digits or "
            "as base64 (e.g. the output of `openssl rand -base64 32`)"
        )
    return key


def default_data_dir() -> Path:
    """Where state lives when ``GRISTMILL_DATA_DIR`` is not set.

    As root the embedded Postgres runs as ``nobody``, which must be able to reach its data
    directory; root's home usually forbids that, so root gets the system location.
    """
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/lib/gristmill")
    return Path(platformdirs.user_data_dir("gristmill", appauthor=False))


@dataclass(frozen=True)
class Settings:
    data_dir: Path = field(default_factory=default_data_dir)
    #: Empty means: start the embedded Postgres in ``data_dir``.
    database_url: str = ""
    mode: str = "standalone"
    host: str = "0.0.0.0"
    port: int = 8000
    base_url: str = ""
    base_internal_url: str = ""
    num_workers: int = 2
    worker_group: str = "default"
    #: Tags this process's workers take; empty means the names of the available runtimes.
    worker_tags: tuple[str, ...] = ()
    #: Polling interval of an idle worker, a fallback for missed notifications (ms).
    sleep_queue_ms: int = 1000
    keep_job_dir: bool = False
    zombie_job_timeout_s: int = 60
    restart_zombie_jobs: bool = True
    #: Completed jobs (with their results and logs) older than this are deleted (s; 0: kept
    #: forever). ``JOB_RETENTION_SECS``, Windmill's name and default (30 days); the instance
    #: setting ``retention_period_secs``, when stored, wins (gristmill.queue.retention).
    job_retention_s: int = 30 * 86400
    #: Default and maximum time a job may run (s).
    job_timeout_s: int = 900
    timeout_wait_result_s: float = 600.0
    queue_limit_wait_result: int | None = None
    superadmin_secret: str = ""
    json_fmt: bool = False
    database_connections: int = 10
    #: How often running jobs' logs are written to the database (ms).
    log_flush_ms: int = 250
    #: How often a worker marks its running jobs as alive (s).
    heartbeat_s: float = 5.0
    #: How long to wait for an unreachable database at start before giving up (s).
    database_wait_s: float = 60.0
    #: Restarts of a dead embedded Postgres allowed within ``pg_restart_window_s``; one more
    #: death stops the process (``GRISTMILL_PG_MAX_RESTARTS``; 0: never restart).
    pg_max_restarts: int = 5
    #: The window of ``pg_max_restarts`` (``GRISTMILL_PG_RESTART_WINDOW_S``).
    pg_restart_window_s: float = 300.0
    #: In a worker-only process (which serves no API), the port of its health probes
    #: (``GRISTMILL_HEALTH_PORT``); ``None``: none are served.
    health_port: int | None = None
    #: How long a stop (SIGINT, SIGTERM) may take (``GRISTMILL_SHUTDOWN_GRACE_S``, s):
    #: running jobs and waiting callers get most of it, the rest bounds the closing.
    #: Windmill has no such setting (its workers wait for their job, bounded by the
    #: orchestrator's kill: Kubernetes' ``terminationGracePeriodSeconds``).
    shutdown_grace_s: float = 10.0

    #: Where job directories are made; ``None`` means ``<data_dir>/jobs``.
    jobs_root: Path | None = None
    #: Dependency environments unused for this long are removed (days).
    env_max_age_days: float = 14.0
    #: Below this much free disk, the least recently used environments are removed (MB).
    min_free_disk_space_mb: int = 1024
    #: How often a worker process collects unused environments (s).
    env_gc_every_s: float = 3600.0

    #: The sandbox jobs run in (``GRISTMILL_SANDBOX``): one of :data:`SANDBOXES`.
    sandbox: str = "auto"
    #: Who a root worker's sandboxes are outside (default 65533; 0: root, weaker).
    sandbox_uid: int | None = None
    sandbox_gid: int | None = None
    bwrap_path: str = ""
    nsjail_path: str = ""
    #: Whether jobs have the network (``GRISTMILL_JOB_NETWORK``), as in Windmill by default.
    job_network: bool = True
    #: Caps the address-space limit of job steps that have one (MB).
    job_max_memory_mb: int | None = None
    #: Warm runners (``GRISTMILL_WARM``): jobs of runtimes that support it run in a child
    #: forked from a process kept warm for their environment. Per worker (group): each
    #: worker reads its own environment.
    warm: bool = True
    #: Warm parents one worker keeps at most (``GRISTMILL_WARM_MAX_PROCESSES``).
    warm_max_processes: int = 8
    #: Resident memory of one worker's warm parents at most (``GRISTMILL_WARM_MAX_MEMORY_MB``).
    warm_max_memory_mb: int = 2048
    #: A job's log beyond this is dropped, after a marker line (MB).
    max_log_size_mb: int = 10
    #: A job's result larger than this is refused (MB).
    max_result_size_mb: int = 64
    #: A request body larger than this is refused with 413 before it is read whole (MB).
    max_body_size_mb: int = 32
    #: A script's source larger than this is refused (KB).
    max_script_size_kb: int = 1024
    #: A job's arguments larger than this (as JSON) are refused (MB).
    max_args_size_mb: int = 16
    #: Failed logins of one account within the window before logins are refused (429).
    login_max_failures: int = 10
    #: Failed logins from one address within the window before logins are refused (429).
    login_max_failures_per_address: int = 50
    #: The window of login throttling (s).
    login_window_s: int = 300
    #: Whether only super admins may create workspaces (Windmill's default: yes).
    create_workspace_require_superadmin: bool = True

    #: The web UI (``GRISTMILL_WEBUI``): ``auto`` builds ``frontend/`` of the checkout when its
    #: ``dist`` is missing or stale and serves it; ``off`` serves the API alone; any other
    #: value is the directory of a built UI, served as it is.
    webui: str = "auto"
    #: The built UI the API serves at ``/`` (set by ``gristmill up``/``server`` after the
    #: build); ``None``: no UI.
    webui_dist: Path | None = None

    #: The instance key (``GRISTMILL_INSTANCE_KEY``: 32 bytes, base64 or hex) that wraps each
    #: workspace's data key; ``None``: ``<data_dir>/instance.key``, created at first use.
    #: Every process of one install must use the same key (docs/security.md).
    instance_key: bytes | None = field(default=None, repr=False)

    @property
    def cache_dir(self) -> Path:
        """Caches that outlive jobs: each runtime's own, and installed dependencies."""
        return self.data_dir / "cache"

    @property
    def jobs_dir(self) -> Path:
        return self.jobs_root or self.data_dir / "jobs"

    @property
    def public_url(self) -> str:
        return self.base_url or f"http://localhost:{self.port}"

    @property
    def internal_url(self) -> str:
        return self.base_internal_url or f"http://127.0.0.1:{self.port}"

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from ``env`` (default: the process environment)."""
        env = os.environ if env is None else env
        reader = _Reader(env)
        data_dir = env.get("GRISTMILL_DATA_DIR")
        mode = (env.get("MODE") or "standalone").strip().lower()
        if mode not in MODES:
            raise ConfigError(f"MODE must be one of {', '.join(MODES)}; got {mode!r}")
        timeout_wait = reader.number("TIMEOUT_WAIT_RESULT", 600.0)
        resolved_data_dir = (
            Path(data_dir).expanduser().resolve() if data_dir else default_data_dir()
        )
        jobs_dir = env.get("GRISTMILL_JOBS_DIR", "").strip()
        sandbox = (env.get("GRISTMILL_SANDBOX") or "auto").strip().lower()
        if sandbox not in SANDBOXES:
            raise ConfigError(
                f"GRISTMILL_SANDBOX must be one of {', '.join(SANDBOXES)}; got {sandbox!r}"
            )
        return cls(
            data_dir=resolved_data_dir,
            jobs_root=Path(jobs_dir).expanduser().resolve() if jobs_dir else None,
            database_url=env.get("DATABASE_URL", "").strip(),
            mode=mode,
            host=env.get("GRISTMILL_HOST", "0.0.0.0"),
            port=reader.integer("PORT", 8000, minimum=0, maximum=65535),
            base_url=env.get("BASE_URL", "").rstrip("/"),
            base_internal_url=env.get("BASE_INTERNAL_URL", "").rstrip("/"),
            num_workers=reader.integer("NUM_WORKERS", 2, minimum=0),
            worker_group=env.get("WORKER_GROUP", "default"),
            worker_tags=tuple(
                t.strip() for t in env.get("WORKER_TAGS", "").split(",") if t.strip()
            ),
            sleep_queue_ms=reader.integer("SLEEP_QUEUE", 1000, minimum=1),
            keep_job_dir=reader.boolean("KEEP_JOB_DIR", False),
            zombie_job_timeout_s=reader.integer("ZOMBIE_JOB_TIMEOUT", 60, minimum=1),
            restart_zombie_jobs=reader.boolean("RESTART_ZOMBIE_JOBS", True),
            job_retention_s=reader.integer("JOB_RETENTION_SECS", 30 * 86400, minimum=0),
            job_timeout_s=reader.integer("TIMEOUT", 900, minimum=1),
            # As Windmill: zero or less means 2 s.
            timeout_wait_result_s=timeout_wait if timeout_wait > 0 else 2.0,
            queue_limit_wait_result=reader.optional_integer("QUEUE_LIMIT_WAIT_RESULT"),
            superadmin_secret=env.get("SUPERADMIN_SECRET", ""),
            json_fmt=reader.boolean("JSON_FMT", False),
            database_connections=reader.integer("DATABASE_CONNECTIONS", 10, minimum=2),
            log_flush_ms=reader.integer("GRISTMILL_LOG_FLUSH_MS", 250, minimum=10),
            heartbeat_s=reader.positive("GRISTMILL_HEARTBEAT_S", 5.0),
            database_wait_s=reader.positive("GRISTMILL_DB_WAIT_S", 60.0),
            pg_max_restarts=reader.integer("GRISTMILL_PG_MAX_RESTARTS", 5, minimum=0),
            pg_restart_window_s=reader.positive("GRISTMILL_PG_RESTART_WINDOW_S", 300.0),
            health_port=(
                reader.integer("GRISTMILL_HEALTH_PORT", 0, minimum=1, maximum=65535)
                if env.get("GRISTMILL_HEALTH_PORT", "").strip()
                else None
            ),
            shutdown_grace_s=reader.positive("GRISTMILL_SHUTDOWN_GRACE_S", 10.0),
            env_max_age_days=reader.positive("GRISTMILL_ENV_MAX_AGE_DAYS", 14.0),
            min_free_disk_space_mb=reader.integer("MIN_FREE_DISK_SPACE_MB", 1024, minimum=0),
            env_gc_every_s=reader.positive("GRISTMILL_ENV_GC_EVERY_S", 3600.0),
            sandbox=sandbox,
            sandbox_uid=reader.optional_integer("GRISTMILL_SANDBOX_UID"),
            sandbox_gid=reader.optional_integer("GRISTMILL_SANDBOX_GID"),
            bwrap_path=env.get("GRISTMILL_BWRAP_PATH", "").strip(),
            nsjail_path=env.get("GRISTMILL_NSJAIL_PATH", "").strip(),
            job_network=reader.boolean("GRISTMILL_JOB_NETWORK", True),
            job_max_memory_mb=reader.optional_integer("GRISTMILL_JOB_MAX_MEMORY_MB"),
            warm=reader.boolean("GRISTMILL_WARM", True),
            warm_max_processes=reader.integer("GRISTMILL_WARM_MAX_PROCESSES", 8, minimum=1),
            warm_max_memory_mb=reader.integer("GRISTMILL_WARM_MAX_MEMORY_MB", 2048, minimum=16),
            max_log_size_mb=reader.integer("GRISTMILL_MAX_LOG_SIZE_MB", 10, minimum=1),
            max_result_size_mb=reader.integer("GRISTMILL_MAX_RESULT_SIZE_MB", 64, minimum=1),
            max_body_size_mb=reader.integer("GRISTMILL_MAX_BODY_SIZE_MB", 32, minimum=1),
            max_script_size_kb=reader.integer("GRISTMILL_MAX_SCRIPT_SIZE_KB", 1024, minimum=1),
            max_args_size_mb=reader.integer("GRISTMILL_MAX_ARGS_SIZE_MB", 16, minimum=1),
            login_max_failures=reader.integer("GRISTMILL_LOGIN_MAX_FAILURES", 10, minimum=1),
            login_max_failures_per_address=reader.integer(
                "GRISTMILL_LOGIN_MAX_FAILURES_PER_ADDRESS", 50, minimum=1
            ),
            login_window_s=reader.integer("GRISTMILL_LOGIN_WINDOW_S", 300, minimum=1),
            create_workspace_require_superadmin=reader.boolean(
                "CREATE_WORKSPACE_REQUIRE_SUPERADMIN", True
            ),
            webui=(env.get("GRISTMILL_WEBUI") or "auto").strip(),
            instance_key=parse_instance_key(env.get("GRISTMILL_INSTANCE_KEY", "")),
        )


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def integer(
        self, name: str, default: int, *, minimum: int | None = None, maximum: int | None = None
    ) -> int:
        raw = self.env.get(name, "").strip()
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a whole number; got {raw!r}") from None
        if minimum is not None and value < minimum:
            raise ConfigError(f"{name} must be at least {minimum}; got {value}")
        if maximum is not None and value > maximum:
            raise ConfigError(f"{name} must be at most {maximum}; got {value}")
        return value

    def optional_integer(self, name: str) -> int | None:
        return self.integer(name, 0) if self.env.get(name, "").strip() else None

    def number(self, name: str, default: float) -> float:
        raw = self.env.get(name, "").strip()
        if not raw:
            return default
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a number; got {raw!r}") from None

    def positive(self, name: str, default: float) -> float:
        value = self.number(name, default)
        if not value > 0 or value == float("inf"):
            raise ConfigError(f"{name} must be a positive number of seconds; got {value}")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        raw = self.env.get(name, "").strip().lower()
        if not raw:
            return default
        if raw in ("1", "true", "yes", "on"):
            return True
        if raw in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name} must be true or false; got {raw!r}")
