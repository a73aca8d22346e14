"""Pytest fixtures backed by a real Postgres (the embedded one the product uses).

Enable with ``pytest_plugins = ["gristmill.testing.pytest_plugin"]`` in a root conftest.py.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import httpx
import pluggy
import psycopg
import pytest
import pytest_asyncio

from gristmill.config import Settings
from gristmill.db.embedded import EmbeddedPostgres
from gristmill.db.migrations import apply_migrations
from gristmill.plugins import build_plugin_manager, load_runtimes
from gristmill.runtimes import RuntimeRegistry
from gristmill.sandbox import RunPolicy
from gristmill.server.platform import Platform, prepare_database

__all__ = [
    "SANDBOX_BACKENDS",
    "SUPERADMIN_SECRET",
    "PgCluster",
    "SharedRuntimes",
    "share_etc_copies",
    "shared_runtimes",
    "skip_unless_ci",
]

SUPERADMIN_SECRET = "test-superadmin-secret"
_TEMPLATE = "gristmill_template"
#: The template as a platform's first start leaves it (first admin, job token key): that
#: start hashes the admin's password (argon2, about half a second), once per session here
#: instead of once per test. Tests that need the first start itself (its new admin) get
#: ``PgCluster.create_database()``, a database from the migrated template only.
_READY_TEMPLATE = "gristmill_template_ready"


@dataclass
class PgCluster:
    server: EmbeddedPostgres

    def conninfo(self, dbname: str) -> str:
        return self.server.conninfo.replace("dbname=gristmill", f"dbname={dbname}")

    def create_database(self, *, prepared: bool = False) -> str:
        """A new database, migrated; ``prepared``: also with the first admin and the job
        token key a platform's first start adds (see :data:`_READY_TEMPLATE`)."""
        name = f"test_{uuid.uuid4().hex[:12]}"
        template = _READY_TEMPLATE if prepared else _TEMPLATE
        with psycopg.connect(self.conninfo("postgres"), autocommit=True) as conn:
            # FILE_COPY: a copy of the template's files, quicker here than the default
            # (WAL_LOG, block by block) for a small template with fsync off.
            conn.execute(
                f"CREATE DATABASE {name} TEMPLATE {template} STRATEGY FILE_COPY"  # type: ignore[arg-type]
            )
        return name

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.conninfo("postgres"), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")  # type: ignore[arg-type]


class SharedRuntimes(TypedDict):
    plugins: pluggy.PluginManager
    registry: RuntimeRegistry


@functools.cache
def shared_runtimes() -> SharedRuntimes:
    """The installed plugins and their runtimes, loaded once for the test session, as one
    ``gristmill`` process loads them once. A runtime caches its toolchain probe (the SQL
    runtime starts a Python that imports psycopg; a third-party one may start its own
    interpreter): a platform per test with its own runtimes paid those probes again in
    every test.
    ``Platform(..., **shared_runtimes())`` where a test needs no plugin of its own."""
    plugins = build_plugin_manager()
    return SharedRuntimes(plugins=plugins, registry=load_runtimes(plugins))


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """One Postgres for the session, with a migrated template database."""
    # Not under pytest's own (mode 0700) temp root: as root, Postgres runs as `nobody`,
    # which must be able to reach the directory.
    root = Path(tempfile.mkdtemp(prefix="gristmill-test-pg-"))
    root.chmod(0o755)
    server = EmbeddedPostgres(root, fsync=False)
    server.start()
    cluster = PgCluster(server)
    with psycopg.connect(cluster.conninfo("postgres"), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {_TEMPLATE}")  # type: ignore[arg-type]
    with psycopg.connect(cluster.conninfo(_TEMPLATE)) as conn:
        apply_migrations(conn)
    with psycopg.connect(cluster.conninfo("postgres"), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {_READY_TEMPLATE} TEMPLATE {_TEMPLATE}")  # type: ignore[arg-type]
    prepare_database(cluster.conninfo(_READY_TEMPLATE))
    try:
        yield cluster
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def database_url(pg_cluster: PgCluster) -> Iterator[str]:
    """A fresh, migrated database for one test, as a platform's first start leaves it (the
    first admin exists: ``PgCluster.create_database()`` makes one without)."""
    name = pg_cluster.create_database(prepared=True)
    try:
        yield pg_cluster.conninfo(name)
    finally:
        pg_cluster.drop_database(name)


def _reachable_dir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="gm-test-", dir="/var/tmp"))
    path.chmod(0o755)
    return path


@pytest.fixture
def reachable_tmp_path() -> Iterator[Path]:
    """A fresh directory every user can enter: jobs run sandboxed as another user (when the
    tests run as root), and pytest's own temporary directories are private to root. Outside
    /tmp, like the product's data directory (/tmp is private inside a sandbox)."""
    path = _reachable_dir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


#: The copies of the sandbox's /etc every platform of the session shares (see
#: :func:`share_etc_copies`), made on first use and removed at the session's end.
_etc_copies: Path | None = None


def share_etc_copies(data_dir: Path) -> None:
    """Give a platform on ``data_dir`` the session's store of /etc copies (the sandbox
    layout's ``EtcCopy``, as ``gristmill.sandbox.policy`` places it: ``<data_dir>/sandbox/etc``
    links to a copy in ``<data_dir>/sandbox/etc-copies``): its start then finds the copy of this machine's /etc
    made by an earlier platform instead of making its own (a second or more a start). For
    the data directory of a ``gristmill`` process a test starts, too."""
    global _etc_copies
    if _etc_copies is None:
        _etc_copies = _reachable_dir()
    sandbox = data_dir / "sandbox"
    sandbox.mkdir(exist_ok=True)
    sandbox.chmod(0o755)
    store = sandbox / "etc-copies"
    if not store.is_symlink() and not store.exists():
        store.symlink_to(_etc_copies)


def _test_settings(data_dir: Path, database_url: str) -> Settings:
    share_etc_copies(data_dir)
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        num_workers=2,
        superadmin_secret=SUPERADMIN_SECRET,
        sleep_queue_ms=1000,
        heartbeat_s=0.5,
        log_flush_ms=50,
        database_connections=6,
        # Running jobs get 5 s of a stop, as before the grace was a setting.
        shutdown_grace_s=7.0,
    )


@pytest.fixture
def settings(reachable_tmp_path: Path, database_url: str) -> Settings:
    """A platform's settings as a user gets them, jobs sandboxed by the default backend
    (``GRISTMILL_SANDBOX``: bwrap on Linux); fast flushes and heartbeats for tests."""
    return _test_settings(reachable_tmp_path, database_url)


@contextlib.asynccontextmanager
async def _started(settings: Settings, **platform_args: Any) -> AsyncIterator[Platform]:
    prepared = await _prepare(settings)
    platform = Platform(
        settings=settings,
        conninfo=settings.database_url,
        job_token_secret=prepared,
        **{**shared_runtimes(), **platform_args},
    )
    await platform.start()
    try:
        yield platform
    finally:
        await platform.stop()


def started_platform(settings: Settings, **platform_args: Any) -> Any:
    """``async with started_platform(settings, trigger_kinds=[...]) as platform``: a started
    platform on ``settings`` (migrated first) with some of its parts chosen by the test;
    for a second server on one database, or a test's own trigger kinds."""
    return _started(settings, **platform_args)


def api_client(platform: Platform) -> Any:
    """``async with api_client(platform) as api``: ``api`` on any platform."""
    return _client(platform)


@pytest_asyncio.fixture
async def platform(settings: Settings) -> AsyncIterator[Platform]:
    """A started platform (standalone mode: API parts and workers) on a fresh database."""
    async with _started(settings) as started:
        yield started


@pytest.fixture(scope="module")
def module_settings(pg_cluster: PgCluster) -> Iterator[Settings]:
    """As ``settings``, for every test of a module (with ``module_platform``)."""
    name = pg_cluster.create_database(prepared=True)
    data_dir = _reachable_dir()
    try:
        yield _test_settings(data_dir, pg_cluster.conninfo(name))
    finally:
        pg_cluster.drop_database(name)
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest_asyncio.fixture(scope="module")
async def module_platform(module_settings: Settings) -> AsyncIterator[Platform]:
    """One started platform for every test of a module: a start costs seconds, and tests
    that keep to their own paths and jobs need no database of their own."""
    async with _started(module_settings) as started:
        yield started


async def _prepare(settings: Settings) -> bytes:
    import asyncio

    prepared = await asyncio.to_thread(prepare_database, settings.database_url)
    return prepared.job_token_secret


@pytest.fixture(scope="session")
def sandbox_data_dir() -> Iterator[Path]:
    """A data directory the sandbox's user can enter (when the tests run as root, jobs run
    as uid 65534 and pytest's own temporary directories are private to root). Outside
    /tmp, which is private inside a sandbox."""
    path = Path(tempfile.mkdtemp(prefix="gm-sandbox-", dir="/var/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


#: The backends the sandboxed tests run under, each test once per backend (its id says which).
SANDBOX_BACKENDS = ("bwrap", "nsjail")


@pytest.fixture(scope="session", params=SANDBOX_BACKENDS)
def sandbox_backend(request: pytest.FixtureRequest) -> str:
    """The name of a sandbox backend (``GRISTMILL_SANDBOX``): every test that takes
    ``sandbox_policy`` (or this) runs once under each of :data:`SANDBOX_BACKENDS`."""
    return str(request.param)


def skip_unless_ci(reason: str) -> None:
    """Skip with ``reason``, except in CI (``CI`` set), where what the test needs must be
    there: fail instead."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must provide it)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def sandbox_policy(sandbox_data_dir: Path, sandbox_backend: str) -> Iterator[RunPolicy]:
    """A sandbox as a worker applies it, for ``run_job(..., policy=...)``, once per backend
    (bwrap, nsjail). Skipped with the reason where that backend cannot run, except in CI
    (``CI`` set), where it fails."""
    from gristmill.sandbox import SandboxUnavailable
    from gristmill.server.platform import run_policy

    # Cold: these tests drive the recipe path; warm runs are tested through real workers.
    settings = Settings(data_dir=sandbox_data_dir, sandbox=sandbox_backend, warm=False)
    try:
        policy = run_policy(settings)
    except SandboxUnavailable as exc:
        skip_unless_ci(f"{sandbox_backend} cannot run here: {exc}")
        raise  # not reached: skip_unless_ci raises
    yield policy
    policy.backend.close()


@pytest.fixture
def sandbox_root(sandbox_data_dir: Path) -> Iterator[Path]:
    """A fresh directory for the job directories and caches of sandboxed ``run_job`` calls."""
    path = sandbox_data_dir / "jobs" / uuid.uuid4().hex[:12]
    path.mkdir(parents=True)
    path.chmod(0o755)
    path.parent.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@contextlib.asynccontextmanager
async def _client(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    from gristmill.api.app import create_app

    transport = httpx.ASGITransport(app=create_app(platform))
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://gristmill.test/api",
        headers={"Authorization": f"Bearer {SUPERADMIN_SECRET}"},
        timeout=60,
    ) as client:
        yield client


@pytest_asyncio.fixture
async def api(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the platform's API, authenticated as the superadmin."""
    async with _client(platform) as client:
        yield client


@pytest_asyncio.fixture
async def platform_api(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    """``api`` on the test's own ``platform``: for a test that needs a platform of its own in
    a module whose ``api`` is its module's (``module_api``)."""
    async with _client(platform) as client:
        yield client


@pytest_asyncio.fixture(scope="module")
async def module_api(module_platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    """``api`` on ``module_platform``."""
    async with _client(module_platform) as client:
        yield client


def pytest_unconfigure(config: pytest.Config) -> None:
    if _etc_copies is not None:
        shutil.rmtree(_etc_copies, ignore_errors=True)


def pytest_configure(config: pytest.Config) -> None:
    # Tests never read the developer's own data directory.
    os.environ.setdefault("GRISTMILL_DATA_DIR", tempfile.mkdtemp(prefix="gristmill-test-data-"))
