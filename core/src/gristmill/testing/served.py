"""A platform and its API served by a real uvicorn on 127.0.0.1, for tests whose clients open
their own connections: schemathesis, Windmill's clients, a browser."""

from __future__ import annotations

import asyncio
import socket
import threading
from dataclasses import replace

import uvicorn

from gristmill.api.app import create_app
from gristmill.auth.users import NewAdmin
from gristmill.config import Settings
from gristmill.server.platform import Platform, prepare_database

__all__ = ["ServedPlatform"]


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
