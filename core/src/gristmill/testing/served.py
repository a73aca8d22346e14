"""A platform and its API served by a real uvicorn on 127.0.0.1, for tests whose clients open
their own connections: schemathesis, Windmill's clients, a browser."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import uvicorn

from gristmill.api.app import create_app
from gristmill.auth.users import NewAdmin
from gristmill.config import Settings
from gristmill.server.platform import Platform, prepare_database

if TYPE_CHECKING:
    from gristmill.testing.pytest_plugin import PgCluster

__all__ = ["Served", "ServedPlatform", "admin_token", "served_main_workspace"]


class ServedPlatform:
    """A platform (API and workers) and uvicorn on 127.0.0.1, on a thread of their own.

    ``with ServedPlatform(settings) as url:`` starts both and gives the base URL (no ``/api``).
    Unless the settings name a ``base_internal_url``, their port becomes the one listened on,
    so that jobs get a ``BASE_INTERNAL_URL`` that reaches this server. ``new_admin`` holds the
    first admin's credentials (the database is expected to be fresh).
    """

    def __init__(self, settings: Settings) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.settings = settings if settings.base_internal_url else replace(settings, port=port)
        self.new_admin: NewAdmin | None = None
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.server: uvicorn.Server | None = None
        self.thread = threading.Thread(target=self._run, name="served-api", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self.error = exc
            self.ready.set()

    async def _main(self) -> None:
        prepared = await asyncio.to_thread(prepare_database, self.settings.database_url)
        self.new_admin = prepared.new_admin
        platform = Platform(
            settings=self.settings,
            conninfo=self.settings.database_url,
            job_token_secret=prepared.job_token_secret,
        )
        await platform.start()
        try:
            config = uvicorn.Config(
                create_app(platform), log_level="warning", lifespan="off", access_log=False
            )
            self.server = uvicorn.Server(config)
            serving = asyncio.create_task(self.server.serve(sockets=[self.sock]))
            # uvicorn says it is listening only through this flag.
            while not self.server.started and not serving.done():  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            self.ready.set()
            await serving
        finally:
            await platform.stop()

    def __enter__(self) -> str:
        self.thread.start()
        self.ready.wait(120)
        if self.error is not None:
            raise self.error
        assert self.server is not None and self.server.started, "the API did not start"
        return self.url

    def __exit__(self, *exc: object) -> None:
        if self.server is not None:
            self.server.should_exit = True
        self.thread.join(60)
        self.sock.close()


@dataclass
class Served:
    """A served platform as its first admin sees it: the base URL (no ``/api``), a token of
    theirs, their email, the data directory, and an HTTP client on ``/api`` with the token."""

    url: str
    token: str
    email: str
    data_dir: Path
    http: httpx.Client
    workspace: str = "main"

    def save(self, path: str, content: str, language: str = "python3") -> str:
        """Save a version and wait until it can run (its dependencies locked); its hash."""
        r = self.http.post(
            f"/w/{self.workspace}/scripts/create",
            json={"path": path, "content": content, "language": language},
        )
        assert r.status_code == 201, r.text
        hash_ = r.text
        deadline = time.monotonic() + 300
        while True:
            status = self.http.get(
                f"/w/{self.workspace}/scripts/deployment_status/h/{hash_}"
            ).json()
            if status["status"] != "locking":
                assert status["status"] == "deployed", status
                return hash_
            assert time.monotonic() < deadline, f"still locking: {status}"
            time.sleep(0.1)


def admin_token(url: str, email: str, password: str) -> str:
    """A token of the first admin: one it creates for itself, as a user of Windmill does (its
    login token if that route is missing)."""
    r = httpx.post(f"{url}/api/auth/login", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    login = r.text
    expiration = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    created = httpx.post(
        f"{url}/api/users/tokens/create",
        json={"label": "windmill clients", "expiration": expiration.isoformat()},
        headers={"Authorization": f"Bearer {login}"},
    )
    return created.text if created.status_code in (200, 201) else login


@contextlib.contextmanager
def served_settings(
    pg_cluster: PgCluster, superadmin_secret: str, prefix: str, **overrides: Any
) -> Iterator[Settings]:
    """The settings of a served test platform: a database of its own, a data directory
    under /var/tmp, two workers, quick heartbeats and log flushes (``overrides`` change any);
    the database and the directory are dropped on exit."""
    database = pg_cluster.create_database()
    data_dir = Path(tempfile.mkdtemp(prefix=prefix, dir="/var/tmp"))
    # The sandbox's user (nobody, when running as root) reaches the job directories.
    data_dir.chmod(0o755)
    fields: dict[str, Any] = {
        "num_workers": 2,
        "heartbeat_s": 0.5,
        "log_flush_ms": 50,
        "database_connections": 8,
        **overrides,
    }
    try:
        yield Settings(
            data_dir=data_dir,
            database_url=pg_cluster.conninfo(database),
            superadmin_secret=superadmin_secret,
            **fields,
        )
    finally:
        pg_cluster.drop_database(database)
        shutil.rmtree(data_dir, ignore_errors=True)


@contextlib.contextmanager
def served_main_workspace(
    pg_cluster: PgCluster, superadmin_secret: str, prefix: str = "gm-served-"
) -> Iterator[Served]:
    """A platform on a database of its own, served on 127.0.0.1 with two workers, and its
    first admin's :class:`Served` view; everything is dropped on exit."""
    with served_settings(pg_cluster, superadmin_secret, prefix) as settings:
        server = ServedPlatform(settings)
        with server as url:
            admin = server.new_admin
            assert admin is not None
            token = admin_token(url, admin.email, admin.password)
            with httpx.Client(
                base_url=f"{url}/api", headers={"Authorization": f"Bearer {token}"}, timeout=120
            ) as http:
                yield Served(url, token, admin.email, settings.data_dir, http)
