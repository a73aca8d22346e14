"""The embedded Postgres and the migrations, on real clusters."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from gristmill.db import DatabaseUnavailableError, wait_for_database
from gristmill.db.embedded import EmbeddedPostgres, EmbeddedPostgresError
from gristmill.db.migrations import apply_migrations, list_migrations
from gristmill.testing.pytest_plugin import PgCluster

pytestmark = pytest.mark.slow


@pytest.fixture
def empty_database(pg_cluster: PgCluster) -> Iterator[str]:
    name = f"empty_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_cluster.conninfo("postgres"), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")  # type: ignore[arg-type]
    try:
        yield pg_cluster.conninfo(name)
    finally:
        pg_cluster.drop_database(name)


@pytest.fixture
def reachable_dir() -> Iterator[Path]:
    """A directory others can enter (as root, Postgres runs as `nobody`)."""
    path = Path(tempfile.mkdtemp(prefix="gristmill-pg-test-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_migrations_apply_once_even_when_started_together(empty_database: str) -> None:
    results: list[list[int]] = []
    errors: list[BaseException] = []

    def migrate() -> None:
        try:
            with psycopg.connect(empty_database) as conn:
                results.append(apply_migrations(conn))
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=migrate) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    versions = [m.version for m in list_migrations()]
    assert sorted(v for applied in results for v in applied) == versions
    with psycopg.connect(empty_database) as conn:
        rows = conn.execute("SELECT version FROM gristmill_migration ORDER BY version").fetchall()
        assert [r[0] for r in rows] == versions
        workspaces = conn.execute("SELECT id FROM workspace").fetchall()
        assert workspaces == [("main",)]
    with psycopg.connect(empty_database) as conn:
        assert apply_migrations(conn) == []


def _owner_uid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError("no Uid line")


def test_embedded_postgres_starts_reuses_and_stops(reachable_dir: Path) -> None:
    server = EmbeddedPostgres(reachable_dir, fsync=False)
    conninfo = server.start()
    try:
        with psycopg.connect(conninfo) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("gristmill",)
        assert server._process is not None
        pid = server._process.pid
        if os.geteuid() == 0:
            assert _owner_uid(pid) == 65534, "as root, Postgres must run as nobody"
        # Another Gristmill process on the same data directory attaches to it.
        second = EmbeddedPostgres(reachable_dir, fsync=False)
        assert second.start() == conninfo
        second.stop()
        with psycopg.connect(conninfo) as conn:
            conn.execute("SELECT 1")
    finally:
        server.stop()
    assert (
        not Path(f"/proc/{pid}").exists() or Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    )
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(conninfo, connect_timeout=2)
    # A second start finds the cluster made by the first.
    again = EmbeddedPostgres(reachable_dir, fsync=False)
    again.start()
    again.stop()
    assert not list(reachable_dir.glob("postgres.init-*"))


def test_a_long_data_directory_gets_a_short_socket_path(reachable_dir: Path) -> None:
    deep = reachable_dir / ("d" * 60) / ("e" * 40)
    deep.mkdir(parents=True)
    for part in (reachable_dir / ("d" * 60), deep):
        part.chmod(0o755)
    server = EmbeddedPostgres(deep, fsync=False)
    assert str(server.socket_dir).startswith(tempfile.gettempdir())
    conninfo = server.start()
    try:
        with psycopg.connect(conninfo) as conn:
            conn.execute("SELECT 1")
    finally:
        server.stop()


@pytest.mark.skipif(os.geteuid() != 0, reason="checks the root-only rule for the data directory")
def test_as_root_an_unreachable_data_directory_is_explained() -> None:
    private = Path(tempfile.mkdtemp(prefix="gristmill-private-"))  # mode 0700
    try:
        with pytest.raises(EmbeddedPostgresError) as caught:
            EmbeddedPostgres(private / "data").start()
        message = str(caught.value)
        assert "nobody" in message and str(private) in message and "GRISTMILL_DATA_DIR" in message
    finally:
        shutil.rmtree(private, ignore_errors=True)


def _interpreter_for(uid: int) -> str | None:
    """A Python of this version that ``uid`` can run (the venv's may live under /root)."""
    candidates = [
        os.path.realpath(sys.executable),
        f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}",
        f"/usr/local/bin/python{sys.version_info.major}.{sys.version_info.minor}",
    ]
    for candidate in candidates:
        if not os.path.exists(candidate):
            continue
        try:
            probe = subprocess.run(
                [candidate, "-c", "import sys; print(sys.version_info[:2])"],
                user=uid,
                capture_output=True,
                text=True,
                env={"PATH": "/usr/bin:/bin"},
            )
        except PermissionError:
            continue
        if probe.returncode == 0 and probe.stdout.strip() == str(tuple(sys.version_info[:2])):
            return candidate
    return None


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch to an ordinary user")
def test_embedded_postgres_as_an_ordinary_user(reachable_dir: Path) -> None:
    """As a normal user, Postgres runs as that user: started here as `nobody`."""
    interpreter = _interpreter_for(65534)
    if interpreter is None:
        pytest.fail(
            f"no Python {sys.version_info.major}.{sys.version_info.minor} that user nobody can "
            "run was found (install the distribution's python3)"
        )
    import gristmill
    import psycopg as psycopg_module

    paths = {
        str(Path(gristmill.__file__).parent.parent),
        str(Path(psycopg_module.__file__).parent.parent),
    }
    os.chown(reachable_dir, 65534, 65534)
    script = (
        "import sys, psycopg\n"
        "from pathlib import Path\n"
        "from gristmill.db.embedded import EmbeddedPostgres\n"
        "server = EmbeddedPostgres(Path(sys.argv[1]), fsync=False)\n"
        "conninfo = server.start()\n"
        "with psycopg.connect(conninfo) as conn:\n"
        "    print(conn.execute('SELECT current_user').fetchone()[0])\n"
        "server.stop()\n"
    )
    done = subprocess.run(
        [interpreter, "-c", script, str(reachable_dir)],
        user=65534,
        group=65534,
        capture_output=True,
        text=True,
        timeout=120,
        env={
            "PATH": os.environ["PATH"],
            "HOME": str(reachable_dir),
            "PYTHONPATH": os.pathsep.join(paths),
        },
        cwd=reachable_dir,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "postgres"
    assert (reachable_dir / "postgres" / "PG_VERSION").stat().st_uid == 65534


def test_an_unreachable_database_is_reported_clearly() -> None:
    with pytest.raises(DatabaseUnavailableError) as caught:
        wait_for_database("host=127.0.0.1 port=1 user=x password=secret dbname=y", timeout_s=0.5)
    message = str(caught.value)
    assert "127.0.0.1" in message and "DATABASE_URL" in message
    assert "secret" not in message, "the password must not be printed"
