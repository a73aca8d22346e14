"""The API of a stopping process: every request answered, none dropped.

:class:`Draining` wraps the application. Once the process stops (:meth:`Draining.refuse`), a
new request is answered ``503`` with ``Retry-After`` and its connection closed (a load
balancer moves on to another server; a client retries), and every answer closes its
connection, so that no keep-alive connection outlives the stop. A request carrying a job
token is still served: a running job may need the API to finish within the grace; so is the
liveness probe (``/api/health/live``).
:meth:`Draining.close` then answers whatever is still in flight (a request stuck on a
database that does not answer): ``503``, rather than a connection cut by the server's end.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gristmill.api.errors import STOPPING_RETRY_AFTER_S

__all__ = ["Draining"]

log = logging.getLogger(__name__)

_STOPPING = (
    b"Service unavailable: the server is stopping; retry in a moment (another server, or "
    b"this one once restarted, will answer)"
)
_CLOSE = (b"connection", b"close")
_LIVE = "/api/health/live"


@dataclass
class _InFlight:
    #: Whether its answer has begun (a cut request can then only lose its connection).
    answering: bool = False
    cut: bool = False


class Draining:
    """ASGI middleware refusing new requests once the process stops, and answering those in
    flight when it closes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.refusing = False
        self._in_flight: dict[asyncio.Task[object], _InFlight] = {}

    def refuse(self) -> None:
        """From now on, answer new requests 503 and close every connection after its
        answer."""
        self.refusing = True

    def __len__(self) -> int:
        return len(self._in_flight)

    async def close(self, timeout_s: float) -> None:
        """Wait at most ``timeout_s`` for the requests in flight, then cut those left: each
        is answered 503 (unless its answer had begun)."""
        if self._in_flight:
            await asyncio.wait(list(self._in_flight), timeout=timeout_s)
        if not self._in_flight:
            return
        log.warning("stopping: answering %d requests still in flight", len(self._in_flight))
        tasks = list(self._in_flight)
        for task in tasks:
            self._in_flight[task].cut = True
            task.cancel()
        # Their answers are written as they unwind; a moment is enough.
        await asyncio.wait(tasks, timeout=0.5)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # The liveness probe still answers: the process is alive while it stops (readiness,
        # refused like any request, tells the load balancer to move on).
        if self.refusing and not _from_a_job(scope) and scope.get("path") != _LIVE:
            await _answer_stopping(send)
            return
        task = asyncio.current_task()
        assert task is not None
        flight = _InFlight()
        self._in_flight[task] = flight

        async def tracked_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                flight.answering = True
                if self.refusing:
                    message = {**message, "headers": [*message.get("headers", ()), _CLOSE]}
            await send(message)

        try:
            await self.app(scope, receive, tracked_send)
        except asyncio.CancelledError:
            # Ours only (a cancellation from elsewhere as well goes on).
            if not flight.cut or task.uncancel() > 0:
                raise
            if not flight.answering:
                await _answer_stopping(send)
        finally:
            del self._in_flight[task]


def _from_a_job(scope: Scope) -> bool:
    """Whether the request carries a job token (``jt.``: gristmill.auth.tokens); it is
    checked, as any token, by the route."""
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            return value[:10].lower() == b"bearer jt."
    return False


async def _answer_stopping(send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(_STOPPING)).encode()),
                (b"retry-after", str(STOPPING_RETRY_AFTER_S).encode()),
                _CLOSE,
            ],
        }
    )
    await send({"type": "http.response.body", "body": _STOPPING})
