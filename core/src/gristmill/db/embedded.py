"""A private Postgres cluster inside Gristmill's data directory.

Started when no ``DATABASE_URL`` is given. It listens only on a unix socket that only its
owner can use. Postgres refuses to run as root, so as root the server runs as ``nobody``.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import logging
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg

from gristmill.db.queries import Q
from gristmill.errors import GristmillError

__all__ = ["EmbeddedPostgres", "EmbeddedPostgresError", "find_postgres_bin"]

log = logging.getLogger(__name__)

# The longest path a unix socket may have on Linux (sun_path is 108 bytes with the NUL).
_MAX_SOCKET_PATH = 107
_PORT = 5432
_SUPERUSER = "postgres"
DATABASE = "gristmill"


class EmbeddedPostgresError(GristmillError, RuntimeError):
    """The embedded Postgres could not be set up or started."""


@dataclass(frozen=True)
class _RunAs:
    user: str
    group: str
    uid: int
    gid: int


def find_postgres_bin() -> Path:
    """The directory holding ``initdb`` and ``postgres``.

    Looked up in order: ``GRISTMILL_PG_BIN``, ``pg_ctl`` on PATH, Debian's
    ``/usr/lib/postgresql/<version>/bin`` (newest first), then the ``pgserver`` wheel.
    """
    candidates: list[Path] = []
    if configured := os.environ.get("GRISTMILL_PG_BIN"):
        candidates.append(Path(configured))
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    debian = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates += [Path(p) for p in debian]
    with contextlib.suppress(ImportError):
        import pgserver  # type: ignore[import-not-found]

        if pgserver.__file__:
            candidates.append(Path(pgserver.__file__).parent / "pginstall" / "bin")
    for candidate in candidates:
        if (candidate / "initdb").is_file() and (candidate / "postgres").is_file():
            return candidate
    raise EmbeddedPostgresError(
        "no Postgres server binaries found (looked for initdb and postgres on PATH, in "
        "/usr/lib/postgresql/*/bin and in the pgserver package). Install Postgres "
        "(e.g. `apt-get install postgresql`), or `pip install 'gristmill[pgserver]'`, "
        "or point DATABASE_URL at an existing server."
    )


def _run_as() -> _RunAs | None:
    """``nobody`` when running as root (Postgres refuses root), else ``None`` (this user)."""
    if os.geteuid() != 0:
        return None
    import grp
    import pwd

    try:
        user = pwd.getpwnam("nobody")
    except KeyError:
        raise EmbeddedPostgresError(
            "running as root, the embedded Postgres must run as the user 'nobody', which "
            "does not exist on this machine; create it or run Gristmill as a normal user"
        ) from None
    group_name = next((name for name in ("nogroup", "nobody") if _group_exists(grp, name)), None)
    if group_name is None:
        raise EmbeddedPostgresError("running as root, no group 'nogroup' or 'nobody' exists")
    return _RunAs("nobody", group_name, user.pw_uid, grp.getgrnam(group_name).gr_gid)


def _group_exists(grp_module: object, name: str) -> bool:
    try:
        grp_module.getgrnam(name)  # type: ignore[attr-defined]
    except KeyError:
        return False
    return True


def _check_reachable(path: Path, run_as: _RunAs) -> None:
    """Fail clearly when ``run_as`` cannot traverse the directories leading to ``path``."""
    for ancestor in reversed(path.parents):
        mode = ancestor.stat()
        reachable = (
            mode.st_mode & stat.S_IXOTH
            or (mode.st_uid == run_as.uid and mode.st_mode & stat.S_IXUSR)
            or (mode.st_gid == run_as.gid and mode.st_mode & stat.S_IXGRP)
        )
        if not reachable:
            raise EmbeddedPostgresError(
                f"running as root, the embedded Postgres runs as '{run_as.user}', which cannot "
                f"enter {ancestor} (mode {stat.filemode(mode.st_mode)}) on the way to {path}. "
                "Set GRISTMILL_DATA_DIR to a directory others can reach (the default for root "
                f"is /var/lib/gristmill), or run `chmod o+x {ancestor}`."
            )


def _lock_pid(path: Path) -> int | None:
    """The pid on the first line of a Postgres lock file, if it has one."""
    try:
        first = path.read_text(errors="replace").split("\n", 1)[0].strip()
    except OSError:
        return None
    return int(first) if first.lstrip("-").isdigit() else None


def _orphaned_server_processes(pgdata: Path) -> list[int]:
    """Live Postgres server processes of ``pgdata`` whose postmaster is gone.

    Found by their working directory (Postgres's is its data directory) and their title
    (``postgres: ...``, which a postmaster never has); orphaned when their parent is not a
    process of that data directory (a dead postmaster's children are re-parented). The
    children of a postmaster that is alive, whoever started it, are left alone.
    """
    target = os.path.realpath(pgdata)
    titles: dict[int, bytes] = {}
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(entry / "cwd") != target:
                continue
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
            title = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if fields[0] == "Z":  # already dead: its parent reaps it
            continue
        pid = int(entry.name)
        titles[pid] = title
        parents[pid] = int(fields[1])
    return [
        pid
        for pid, title in titles.items()
        if title.startswith(b"postgres: ") and parents[pid] not in titles
    ]


class EmbeddedPostgres:
    """Create (once), start and stop the cluster in ``<data_dir>/postgres``."""

    def __init__(
        self, data_dir: Path, *, fsync: bool = True, server_settings: Sequence[str] = ()
    ) -> None:
        self.data_dir = data_dir
        #: More ``name=value`` settings for the server (e.g. ``wal_level=logical``).
        self.server_settings = tuple(server_settings)
        self.pgdata = data_dir / "postgres"
        self.log_file = data_dir / "postgres.log"
        self.fsync = fsync
        self._process: subprocess.Popen[bytes] | None = None
        self._run_as = _run_as()

    @property
    def socket_dir(self) -> Path:
        if len(str(self.pgdata / f".s.PGSQL.{_PORT}")) <= _MAX_SOCKET_PATH:
            return self.pgdata
        # Too long for a socket path: a short private directory named after the cluster.
        digest = hashlib.sha256(str(self.pgdata).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"gristmill-pg-{digest}"

    @property
    def conninfo(self) -> str:
        return f"host={self.socket_dir} port={_PORT} user={_SUPERUSER} dbname={DATABASE}"

    def _chown(self, path: Path) -> None:
        if self._run_as is not None:
            os.chown(path, self._run_as.uid, self._run_as.gid)

    def _subprocess_user(self) -> dict[str, object]:
        if self._run_as is None:
            return {}
        return {"user": self._run_as.uid, "group": self._run_as.gid, "extra_groups": []}

    def start(self, *, timeout_s: float = 60.0) -> str:
        """Initialize the cluster if needed, start it, and return its connection string.

        When a server started earlier (by another Gristmill process) is still running on
        this data directory, it is reused and left running at :meth:`stop`.
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._run_as is not None:
            _check_reachable(self.pgdata, self._run_as)
        bin_dir = find_postgres_bin()
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb(bin_dir)
        if self._accepting_connections():
            log.info("reusing the Postgres already running in %s", self.pgdata)
            return self.conninfo
        self._spawn(bin_dir)
        self._wait_ready(timeout_s)
        self._ensure_database()
        return self.conninfo

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        """The postmaster this object started (``None`` when it reuses another's, or after
        :meth:`stop`)."""
        return self._process

    def _spawn(self, bin_dir: Path) -> None:
        socket_dir = self.socket_dir
        if socket_dir != self.pgdata:
            socket_dir.mkdir(mode=0o700, exist_ok=True)
            self._chown(socket_dir)
        with open(self.log_file, "ab") as log_out:
            self._process = subprocess.Popen(
                [
                    str(bin_dir / "postgres"),
                    "-D",
                    str(self.pgdata),
                    "-k",
                    str(socket_dir),
                    "-p",
                    str(_PORT),
                    "-c",
                    "listen_addresses=",
                    "-c",
                    "unix_socket_permissions=0700",
                    "-c",
                    f"fsync={'on' if self.fsync else 'off'}",
                    "-c",
                    "max_connections=200",
                    *(arg for setting in self.server_settings for arg in ("-c", setting)),
                ],
                stdout=log_out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # Its own process group: Ctrl-C in a terminal reaches Gristmill, which then
                # stops Postgres last, after the workers and the API.
                process_group=0,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"},
                **self._subprocess_user(),  # type: ignore[arg-type]
            )

    def respawn(self, dead_pid: int) -> None:
        """Start the server again on the same data directory and socket after its
        postmaster ``dead_pid`` died and was reaped by the caller; return at once (the
        caller then waits with :meth:`wait_ready`).

        A killed postmaster leaves its backends running until they notice (they hold its
        shared memory, and a new postmaster refuses to start beside them) and its lock
        files naming its pid (which a new postmaster refuses when another process has
        reused that pid): both are cleared first.
        """
        self._end_orphans()
        for lock in (self.pgdata / "postmaster.pid", self.socket_dir / f".s.PGSQL.{_PORT}.lock"):
            if _lock_pid(lock) == dead_pid:
                with contextlib.suppress(FileNotFoundError):
                    lock.unlink()
        self._spawn(find_postgres_bin())

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Wait until the server this object started accepts connections (or fail with
        the end of its log)."""
        self._wait_ready(timeout_s)

    def _end_orphans(self, timeout_s: float = 10.0) -> None:
        """Kill what is left of a dead postmaster's server processes and wait until they
        are gone: the dead server's shared state is discarded anyway (the next start
        recovers from the WAL), so nothing is lost by killing them."""
        deadline = time.monotonic() + timeout_s
        while True:
            orphans = _orphaned_server_processes(self.pgdata)
            if not orphans:
                return
            for pid in orphans:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            if time.monotonic() >= deadline:
                raise EmbeddedPostgresError(
                    f"processes of the dead Postgres are still running ({orphans}); they "
                    f"hold its shared memory, so it cannot start again in {self.pgdata}"
                )
            time.sleep(0.05)

    def _initdb(self, bin_dir: Path) -> None:
        # initdb into a scratch directory renamed at the end: a crash halfway leaves no
        # half-made cluster that a later start would trip over.
        scratch = self.data_dir / f"postgres.init-{os.getpid()}"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(mode=0o700)
        self._chown(scratch)
        args = [
            str(bin_dir / "initdb"),
            "-D",
            str(scratch),
            "-U",
            _SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-instructions",
        ]
        if not self.fsync:
            args.append("--no-sync")
        log.info("creating the embedded Postgres cluster in %s", self.pgdata)
        done = subprocess.run(
            args,
            capture_output=True,
            text=True,
            cwd="/",
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"},
            **self._subprocess_user(),  # type: ignore[arg-type]
        )
        if done.returncode != 0:
            shutil.rmtree(scratch, ignore_errors=True)
            raise EmbeddedPostgresError(
                f"initdb failed (exit code {done.returncode}):\n{done.stderr or done.stdout}"
            )
        scratch.rename(self.pgdata)

    def attach(self, *, timeout_s: float = 60.0) -> str:
        """Use the cluster another Gristmill process runs on this data directory, waiting
        up to ``timeout_s`` for it; never start (nor, at exit, stop) it.

        This is how ``gristmill worker`` shares the embedded database of a ``gristmill up``
        on the same machine: the process that owns the cluster is the one that serves.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            if (self.pgdata / "PG_VERSION").exists() and self._accepting_connections():
                return self.conninfo
            if time.monotonic() >= deadline:
                raise EmbeddedPostgresError(
                    f"no embedded Postgres is running in {self.pgdata} (waited {timeout_s:g} s). "
                    "A worker uses the database of the `gristmill up` (or `gristmill server`) "
                    "of its data directory: start that first, or set DATABASE_URL."
                )
            time.sleep(0.5)

    def _accepting_connections(self) -> bool:
        try:
            with psycopg.connect(
                self.conninfo.replace(f"dbname={DATABASE}", "dbname=postgres"), connect_timeout=2
            ):
                return True
        except psycopg.OperationalError:
            return False

    def _wait_ready(self, timeout_s: float) -> None:
        assert self._process is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise EmbeddedPostgresError(
                    f"Postgres exited with code {self._process.returncode} while starting; "
                    f"its log ({self.log_file}) ends with:\n{self._log_tail()}"
                )
            if self._accepting_connections():
                return
            time.sleep(0.05)
        self.stop()
        raise EmbeddedPostgresError(
            f"Postgres did not accept connections within {timeout_s:.0f} s; its log "
            f"({self.log_file}) ends with:\n{self._log_tail()}"
        )

    def _ensure_database(self) -> None:
        with psycopg.connect(
            self.conninfo.replace(f"dbname={DATABASE}", "dbname=postgres"), autocommit=True
        ) as conn:
            if not conn.execute(Q["gristmill_database_exists"]).fetchone():
                conn.execute(Q["create_gristmill_database"])

    def log_tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines of the server's log."""
        return self._log_tail(lines)

    def _log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, *, timeout_s: float = 15.0) -> None:
        """Stop the server if this object started it (fast shutdown: clients are cut off)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGQUIT)
            process.wait(5)
